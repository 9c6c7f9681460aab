package store

import (
	"context"
	"database/sql"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// The event outbox: events are written in the same transaction as the state
// change they report (a binding, a call record) or on their own
// (AppendEvents), and each one gets a delivery row per configured webhook
// whose filter accepts its type. The webhook deliverer works through those
// rows in seq order, so a committed event is never lost, whatever happens to
// the process afterwards.

// Event is one entry of the outbox.
type Event struct {
	// Seq is the event's position in the outbox: increasing in write order
	// and never reused. The store sets it when it writes the event; it is 0
	// before.
	Seq int64 `json:"seq"`
	// ID is unique: "evt_" and 26 characters that sort by creation time.
	// Webhook receivers see it as webhook-id and dedupe on it.
	ID string `json:"id"`
	// Type is the event type, such as "call.ended".
	Type string `json:"type"`
	// Time is when the event happened. It is stored at millisecond
	// precision, in UTC.
	Time time.Time `json:"time"`
	// Data is the event's JSON payload.
	Data json.RawMessage `json:"data"`
}

// States of a delivery.
const (
	DeliveryPending   = "pending"   // not sent successfully yet
	DeliveryDelivered = "delivered" // the receiver answered 2xx
	DeliveryExpired   = "expired"   // given up after the retry period
)

// eventIDEncoding is Crockford's base32 alphabet in lower case. Its
// characters are in ASCII order, so encoded IDs sort like the bytes.
var eventIDEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// NewEventID returns a new event ID: "evt_" and a UUIDv7 (RFC 9562 §5.7) in
// base32, so IDs created later in this process sort after earlier ones.
func NewEventID() (string, error) {
	u, err := uuid.NewV7()
	if err != nil {
		return "", fmt.Errorf("new event id: %w", err)
	}
	return "evt_" + eventIDEncoding.EncodeToString(u[:]), nil
}

// NewEvent returns an event of type typ with data encoded as JSON, a new ID
// and the current time (truncated to the millisecond, as it will be stored).
// Marshal data on the goroutine that owns it: the event holds a copy.
func NewEvent(typ string, data any) (Event, error) {
	if typ == "" {
		return Event{}, fmt.Errorf("new event: %w: empty type", ErrInvalid)
	}
	b, err := json.Marshal(data)
	if err != nil {
		return Event{}, fmt.Errorf("new event %q: encode data: %w", typ, err)
	}
	id, err := NewEventID()
	if err != nil {
		return Event{}, err
	}
	return Event{ID: id, Type: typ, Time: time.Now().UTC().Truncate(time.Millisecond), Data: b}, nil
}

// WebhookTarget is what the store needs to know of a webhook to queue
// deliveries for it.
type WebhookTarget struct {
	// Key identifies the webhook in the deliveries table: its URL.
	Key string
	// Events are the event types it receives; empty means every type.
	Events []string
}

// Delivery is the delivery of one event to one webhook.
type Delivery struct {
	Webhook       string // the webhook's key
	Event         Event
	State         string    // DeliveryPending, DeliveryDelivered or DeliveryExpired
	Attempts      int       // requests made so far
	NextAttemptAt time.Time // zero: as soon as possible
	LastError     string    // why the last failed attempt failed
	DeliveredAt   time.Time // zero unless delivered
}

// DeliveryStats summarises the deliveries of one webhook.
type DeliveryStats struct {
	Webhook   string
	Pending   int
	Delivered int
	Expired   int
	// The head of the queue: the oldest pending delivery, which blocks the
	// others until it is delivered or expires. Zero when nothing is pending.
	HeadSeq       int64
	OldestPending time.Time // the head's event time
	HeadAttempts  int
	NextAttemptAt time.Time // zero: as soon as possible
	LastError     string    // the head's last error
	// LastDeliveredAt is when the most recent delivery succeeded.
	LastDeliveredAt time.Time
}

// outbox is the Store's outbox state: the webhook set that new events fan
// out to, and the statements prepared on the writer connection.
type outbox struct {
	targets atomic.Pointer[targetSet] // nil until SetWebhooks

	insertEvent    *sql.Stmt
	insertDelivery *sql.Stmt
	markDelivered  *sql.Stmt
	markFailed     *sql.Stmt
	markExpired    *sql.Stmt
}

const (
	insertEventSQL    = `INSERT INTO events (id, type, time, data) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`
	insertDeliverySQL = `INSERT INTO deliveries (seq, webhook) VALUES (?, ?) ON CONFLICT DO NOTHING`
	markDeliveredSQL  = `UPDATE deliveries SET state = 'delivered', attempts = ?3, delivered_at = ?4
		WHERE webhook = ?1 AND seq = ?2 AND state = 'pending'`
	markFailedSQL = `UPDATE deliveries SET attempts = ?3, next_attempt_at = ?4, last_error = ?5
		WHERE webhook = ?1 AND seq = ?2 AND state = 'pending'`
	markExpiredSQL = `UPDATE deliveries SET state = 'expired', attempts = ?3, last_error = ?4
		WHERE webhook = ?1 AND seq = ?2 AND state = 'pending'`
)

func (o *outbox) prepare(ctx context.Context, db *sql.DB) error {
	for _, p := range []struct {
		dst   **sql.Stmt
		query string
	}{
		{&o.insertEvent, insertEventSQL},
		{&o.insertDelivery, insertDeliverySQL},
		{&o.markDelivered, markDeliveredSQL},
		{&o.markFailed, markFailedSQL},
		{&o.markExpired, markExpiredSQL},
	} {
		st, err := db.PrepareContext(ctx, p.query)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", p.query, err)
		}
		*p.dst = st
	}
	return nil
}

func (o *outbox) close() error {
	var errs []error
	for _, st := range []*sql.Stmt{o.insertEvent, o.insertDelivery, o.markDelivered, o.markFailed, o.markExpired} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}

// targetSet is an immutable copy of the webhook set.
type targetSet struct {
	targets []target
}

type target struct {
	key   string
	types map[string]bool // nil: every type
}

// keysFor returns the keys of the webhooks that receive events of type typ.
func (ts *targetSet) keysFor(typ string, dst []string) []string {
	dst = dst[:0]
	if ts == nil {
		return dst
	}
	for _, t := range ts.targets {
		if t.types == nil || t.types[typ] {
			dst = append(dst, t.key)
		}
	}
	return dst
}

// SetWebhooks sets the webhooks that events written from now on are queued
// for: each event gets a pending delivery for every target whose Events
// accept its type. Call it before the first event is written, and again when
// the configuration is reloaded; deliveries already queued are kept. Keys
// must be non-empty and distinct. targets is not retained.
func (s *Store) SetWebhooks(targets []WebhookTarget) error {
	ts := &targetSet{targets: make([]target, 0, len(targets))}
	seen := make(map[string]bool, len(targets))
	for _, wt := range targets {
		if wt.Key == "" {
			return fmt.Errorf("set webhooks: %w: empty key", ErrInvalid)
		}
		if seen[wt.Key] {
			return fmt.Errorf("set webhooks: %w: a key appears twice", ErrInvalid)
		}
		seen[wt.Key] = true
		t := target{key: wt.Key}
		if len(wt.Events) > 0 {
			t.types = make(map[string]bool, len(wt.Events))
			for _, e := range wt.Events {
				t.types[e] = true
			}
		}
		ts.targets = append(ts.targets, t)
	}
	s.outbox.targets.Store(ts)
	return nil
}

// eventRow is an event as statement arguments, built on the caller's
// goroutine.
type eventRow struct {
	id, typ string
	time    int64
	data    string
}

func eventRows(evs []Event) ([]eventRow, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	rows := make([]eventRow, len(evs))
	for i, e := range evs {
		if e.ID == "" || e.Type == "" || e.Time.IsZero() {
			return nil, fmt.Errorf("%w: event %q needs ID, Type and Time", ErrInvalid, e.ID)
		}
		data := string(e.Data)
		if len(e.Data) == 0 {
			data = "null"
		} else if !json.Valid(e.Data) {
			// It would make every delivery of the event fail forever.
			return nil, fmt.Errorf("%w: event %q: data is not valid JSON", ErrInvalid, e.ID)
		}
		rows[i] = eventRow{id: e.ID, typ: e.Type, time: millis(e.Time), data: data}
	}
	return rows, nil
}

// writeEvents inserts rows and their deliveries in the writer's transaction
// and puts the seq of each in seqs. An event whose ID is already stored (a
// retried write) is not written again: seqs gets the stored one.
func (s *Store) writeEvents(ctx context.Context, w *writeTx, rows []eventRow, seqs []int64) error {
	if len(rows) == 0 {
		return nil
	}
	ts := s.outbox.targets.Load()
	ins := w.stmt(ctx, s.outbox.insertEvent)
	var keys []string
	for i, r := range rows {
		res, err := ins.ExecContext(ctx, r.id, r.typ, r.time, r.data)
		if err != nil {
			return fmt.Errorf("insert event %q: %w", r.id, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("insert event %q: %w", r.id, err)
		} else if n == 0 {
			if err := w.tx.QueryRowContext(ctx, `SELECT seq FROM events WHERE id = ?`, r.id).Scan(&seqs[i]); err != nil {
				return fmt.Errorf("find event %q: %w", r.id, err)
			}
			continue
		}
		seq, err := res.LastInsertId()
		if err != nil {
			return fmt.Errorf("insert event %q: %w", r.id, err)
		}
		seqs[i] = seq
		keys = ts.keysFor(r.typ, keys)
		if len(keys) == 0 {
			continue
		}
		insD := w.stmt(ctx, s.outbox.insertDelivery)
		for _, k := range keys {
			if _, err := insD.ExecContext(ctx, seq, k); err != nil {
				return fmt.Errorf("queue event %q for %q: %w", r.id, k, err)
			}
		}
	}
	return nil
}

// setSeqs copies the seqs the writer assigned into the caller's events, on
// the caller's goroutine, once the write has succeeded.
func setSeqs(evs []Event, seqs []int64) {
	for i := range evs {
		evs[i].Seq = seqs[i]
	}
}

// AppendEvents writes events that go with no state change, each with a
// pending delivery per webhook that accepts its type (see SetWebhooks), in
// one transaction, and returns once it is committed. On success it sets the
// Seq of each element of events (visible to a caller that passed a slice as
// events...). An event whose ID is already stored is not written twice.
func (s *Store) AppendEvents(ctx context.Context, events ...Event) error {
	if len(events) == 0 {
		return nil
	}
	rows, err := eventRows(events)
	if err != nil {
		return fmt.Errorf("append events: %w", err)
	}
	seqs := make([]int64, len(rows))
	err = s.write(ctx, func(ctx context.Context, w *writeTx) error {
		return s.writeEvents(ctx, w, rows, seqs)
	})
	if err != nil {
		return fmt.Errorf("append events: %w", err)
	}
	setSeqs(events, seqs)
	return nil
}

// deliveryColumns are read by scanDelivery.
const deliveryColumns = `d.webhook, d.state, d.attempts, d.next_attempt_at, d.last_error, d.delivered_at,
	e.seq, e.id, e.type, e.time, e.data`

func scanDelivery(sc scanner) (Delivery, error) {
	var (
		d           Delivery
		next        int64
		deliveredAt sql.NullInt64
		evTime      int64
		data        string
	)
	if err := sc.Scan(&d.Webhook, &d.State, &d.Attempts, &next, &d.LastError, &deliveredAt,
		&d.Event.Seq, &d.Event.ID, &d.Event.Type, &evTime, &data); err != nil {
		return Delivery{}, err
	}
	if next != 0 {
		d.NextAttemptAt = fromMillis(next)
	}
	d.DeliveredAt = fromNullMillis(deliveredAt)
	d.Event.Time = fromMillis(evTime)
	d.Event.Data = json.RawMessage(data)
	return d, nil
}

func (s *Store) queryDeliveries(ctx context.Context, op, query string, args ...any) ([]Delivery, error) {
	if err := s.readable(); err != nil {
		return nil, err
	}
	rows, err := s.rdb.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	defer rows.Close()
	var out []Delivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, fmt.Errorf("store: %s: %w", op, err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	return out, nil
}

// NextDeliveries returns up to limit pending deliveries for the webhook key
// that are due at now, in seq order. Deliveries to one webhook go strictly in
// order: the result starts at the oldest pending delivery and stops before
// the first one that is not due, so a head that is waiting to be retried
// holds back everything after it (and the result is then empty).
func (s *Store) NextDeliveries(ctx context.Context, key string, now time.Time, limit int) ([]Delivery, error) {
	if limit <= 0 {
		limit = 1
	}
	ds, err := s.queryDeliveries(ctx, "next deliveries", `SELECT `+deliveryColumns+`
		FROM deliveries d JOIN events e ON e.seq = d.seq
		WHERE d.webhook = ? AND d.state = 'pending' ORDER BY d.seq LIMIT ?`, key, limit)
	if err != nil {
		return nil, err
	}
	for i, d := range ds {
		if d.NextAttemptAt.After(now) {
			return ds[:i], nil
		}
	}
	return ds, nil
}

// NextAttemptAt reports when the head of the webhook key's queue is due:
// ok is false when nothing is pending, and a zero time means now.
func (s *Store) NextAttemptAt(ctx context.Context, key string) (next time.Time, ok bool, err error) {
	if err := s.readable(); err != nil {
		return time.Time{}, false, err
	}
	var ms int64
	err = s.rdb.QueryRowContext(ctx, `SELECT next_attempt_at FROM deliveries
		WHERE webhook = ? AND state = 'pending' ORDER BY seq LIMIT 1`, key).Scan(&ms)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("store: next attempt: %w", err)
	}
	if ms == 0 {
		return time.Time{}, true, nil
	}
	return fromMillis(ms), true, nil
}

// Deliveries returns up to limit deliveries to the webhook key in any state,
// in seq order, starting after afterSeq.
func (s *Store) Deliveries(ctx context.Context, key string, afterSeq int64, limit int) ([]Delivery, error) {
	if limit <= 0 {
		limit = DefaultCallLimit
	}
	return s.queryDeliveries(ctx, "list deliveries", `SELECT `+deliveryColumns+`
		FROM deliveries d JOIN events e ON e.seq = d.seq
		WHERE d.webhook = ? AND d.seq > ? ORDER BY d.seq LIMIT ?`, key, afterSeq, limit)
}

// mark runs one of the delivery updates; it fails with ErrNotFound unless
// the delivery exists and is pending.
func (s *Store) mark(ctx context.Context, op string, p *sql.Stmt, key string, seq int64, args ...any) error {
	all := append([]any{key, seq}, args...)
	err := s.write(ctx, func(ctx context.Context, w *writeTx) error {
		res, err := w.stmt(ctx, p).ExecContext(ctx, all...)
		return rejectIfNone(res, err, ErrNotFound)
	})
	if err != nil {
		// Not the key: a webhook's URL may hold its secret, and this
		// error is logged.
		return fmt.Errorf("%s: delivery of event %d: %w", op, seq, err)
	}
	return nil
}

// MarkDelivered records that the pending delivery of event seq to the webhook
// key succeeded at attempt number attempts, at time at.
func (s *Store) MarkDelivered(ctx context.Context, key string, seq int64, attempts int, at time.Time) error {
	return s.mark(ctx, "mark delivered", s.outbox.markDelivered, key, seq, int64(attempts), millis(at))
}

// MarkFailed records a failed attempt of the pending delivery of event seq to
// the webhook key: attempts made so far, when to try next, and why it
// failed.
func (s *Store) MarkFailed(ctx context.Context, key string, seq int64, attempts int, nextAttempt time.Time, lastErr string) error {
	return s.mark(ctx, "mark failed", s.outbox.markFailed, key, seq, int64(attempts), millis(nextAttempt), lastErr)
}

// MarkExpired gives up the pending delivery of event seq to the webhook key,
// recording the attempts made and the last error.
func (s *Store) MarkExpired(ctx context.Context, key string, seq int64, attempts int, lastErr string) error {
	return s.mark(ctx, "mark expired", s.outbox.markExpired, key, seq, int64(attempts), lastErr)
}

// DeliveryStats summarises the deliveries of every webhook that has any,
// and of every configured webhook (see SetWebhooks), ordered by key.
func (s *Store) DeliveryStats(ctx context.Context) ([]DeliveryStats, error) {
	if err := s.readable(); err != nil {
		return nil, err
	}
	byKey := map[string]*DeliveryStats{}
	get := func(key string) *DeliveryStats {
		st, ok := byKey[key]
		if !ok {
			st = &DeliveryStats{Webhook: key}
			byKey[key] = st
		}
		return st
	}
	if ts := s.outbox.targets.Load(); ts != nil {
		for _, t := range ts.targets {
			get(t.key)
		}
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT webhook, state, count(*), max(delivered_at)
		FROM deliveries GROUP BY webhook, state`)
	if err != nil {
		return nil, fmt.Errorf("store: delivery stats: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			key, state string
			n          int
			last       sql.NullInt64
		)
		if err := rows.Scan(&key, &state, &n, &last); err != nil {
			return nil, fmt.Errorf("store: delivery stats: %w", err)
		}
		st := get(key)
		switch state {
		case DeliveryPending:
			st.Pending = n
		case DeliveryDelivered:
			st.Delivered = n
			st.LastDeliveredAt = fromNullMillis(last)
		case DeliveryExpired:
			st.Expired = n
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: delivery stats: %w", err)
	}
	rows.Close()

	out := make([]DeliveryStats, 0, len(byKey))
	for _, st := range byKey {
		if st.Pending > 0 {
			head, err := s.queryDeliveries(ctx, "delivery stats", `SELECT `+deliveryColumns+`
				FROM deliveries d JOIN events e ON e.seq = d.seq
				WHERE d.webhook = ? AND d.state = 'pending' ORDER BY d.seq LIMIT 1`, st.Webhook)
			if err != nil {
				return nil, err
			}
			if len(head) == 1 {
				h := head[0]
				st.HeadSeq, st.OldestPending = h.Event.Seq, h.Event.Time
				st.HeadAttempts, st.NextAttemptAt, st.LastError = h.Attempts, h.NextAttemptAt, h.LastError
			}
		}
		out = append(out, *st)
	}
	slices.SortFunc(out, func(a, b DeliveryStats) int { return strings.Compare(a.Webhook, b.Webhook) })
	return out, nil
}

// Events returns up to limit events written after afterSeq, in seq order:
// the replay of the event stream from a cursor.
func (s *Store) Events(ctx context.Context, afterSeq int64, limit int) ([]Event, error) {
	if err := s.readable(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = DefaultCallLimit
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT seq, id, type, time, data FROM events
		WHERE seq > ? ORDER BY seq LIMIT ?`, afterSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("store: list events: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var (
			e    Event
			t    int64
			data string
		)
		if err := rows.Scan(&e.Seq, &e.ID, &e.Type, &t, &data); err != nil {
			return nil, fmt.Errorf("store: list events: %w", err)
		}
		e.Time, e.Data = fromMillis(t), json.RawMessage(data)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list events: %w", err)
	}
	return out, nil
}

// pruneChunk bounds the rows one pruning transaction deletes, so that other
// writes are not held up behind a large cleanup.
const pruneChunk = 1000

// PruneEvents deletes what is no longer needed of the events that happened
// before olderThan: their delivered and expired deliveries, their pending
// deliveries to webhooks that are no longer configured (only once
// SetWebhooks has been called), and then the events that no delivery
// refers to. Pending deliveries to configured webhooks, and their events,
// are kept whatever their age: the deliverer expires them. It returns how
// many events it deleted. Choose olderThan well before now minus the retry
// period, or an event removed from a webhook's configuration and put back
// would find its deliveries gone.
func (s *Store) PruneEvents(ctx context.Context, olderThan time.Time) (int, error) {
	cutoff := millis(olderThan)
	ts := s.outbox.targets.Load()

	delDeliveries := `DELETE FROM deliveries WHERE (seq, webhook) IN (
		SELECT d.seq, d.webhook FROM deliveries d JOIN events e ON e.seq = d.seq
		WHERE e.time < ? AND (d.state != 'pending'`
	args := []any{cutoff}
	if ts != nil {
		// Pending deliveries to webhooks that are gone would never be sent.
		delDeliveries += ` OR d.webhook NOT IN (SELECT value FROM json_each(?))`
		keys := make([]string, 0, len(ts.targets))
		for _, t := range ts.targets {
			keys = append(keys, t.key)
		}
		b, err := json.Marshal(keys)
		if err != nil {
			return 0, fmt.Errorf("prune events: %w", err)
		}
		args = append(args, string(b))
	}
	delDeliveries += `) LIMIT ?)`
	args = append(args, pruneChunk)

	if err := s.deleteInChunks(ctx, delDeliveries, args...); err != nil {
		return 0, fmt.Errorf("prune events: deliveries: %w", err)
	}
	var total int64
	delEvents := `DELETE FROM events WHERE seq IN (
		SELECT seq FROM events WHERE time < ?
		AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.seq = events.seq) LIMIT ?)`
	err := s.deleteInChunksCount(ctx, &total, delEvents, cutoff, pruneChunk)
	if err != nil {
		return int(total), fmt.Errorf("prune events: %w", err)
	}
	return int(total), nil
}

func (s *Store) deleteInChunks(ctx context.Context, query string, args ...any) error {
	var n int64
	return s.deleteInChunksCount(ctx, &n, query, args...)
}

// deleteInChunksCount runs query, a DELETE of at most pruneChunk rows, as
// separate write requests until it deletes fewer, adding the rows deleted to
// total.
func (s *Store) deleteInChunksCount(ctx context.Context, total *int64, query string, args ...any) error {
	for {
		var n int64
		err := s.write(ctx, func(ctx context.Context, w *writeTx) error {
			res, err := w.Exec(ctx, query, args...)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		if err != nil {
			return err
		}
		*total += n
		if n < pruneChunk {
			return nil
		}
	}
}
