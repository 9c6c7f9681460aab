package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// CallRecord is the record of one call: written when the call starts (with
// a zero EndedAt) and updated when it ends.
type CallRecord struct {
	ID         string
	Caller     string // user or number
	Callee     string // user or number
	CallerURI  string
	CalleeURI  string
	Direction  string // "internal", "outbound", "inbound"
	StartedAt  time.Time
	AnsweredAt time.Time     // zero if never answered
	EndedAt    time.Time     // zero while the call is up
	Duration   time.Duration // answered → ended, 0 if not answered; stored in milliseconds
	Result     string        // "answered", "busy", "no_answer", "cancelled", "failed", "unavailable", "not_found", "crashed", …
	Status     int           // final SIP status of the call setup (e.g. 200, 486, 487)
	HangupBy   string        // "caller", "callee", "system", ""
	Reason     string        // free text: Reason header, "media timeout", "shutdown", …
	Legs       []LegStats    // per-leg media statistics; stored as JSON, nil when empty
	// Trunk is the trunk an outbound call left through or an inbound call
	// came in through; empty for internal calls and for outbound calls no
	// trunk carried.
	Trunk string
	// DID is the provider's number an inbound trunk call dialled.
	DID string
}

// LegStats are the media counters of one call leg.
type LegStats struct {
	Name       string  `json:"name"`
	PacketsIn  uint64  `json:"packets_in"`
	PacketsOut uint64  `json:"packets_out"`
	BytesIn    uint64  `json:"bytes_in"`
	BytesOut   uint64  `json:"bytes_out"`
	Lost       uint64  `json:"lost"`
	Jitter     float64 `json:"jitter"`
}

// Results that the store itself writes.
const (
	// ResultCrashed marks a call that was up when the server stopped
	// without ending it (see MarkOpenCallsCrashed).
	ResultCrashed = "crashed"
	// ReasonCrashed is the Reason of such a call.
	ReasonCrashed = "server stopped unexpectedly"
)

// DefaultCallLimit is how many records Calls returns when the filter has no
// Limit.
const DefaultCallLimit = 100

const callColumns = `id, caller, callee, caller_uri, callee_uri, direction, started_at, answered_at, ended_at,
	duration_ms, result, status, hangup_by, reason, legs, trunk, did`

const selectCall = `SELECT ` + callColumns + ` FROM calls`

const insertCallSQL = `INSERT INTO calls (` + callColumns + `)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`

// updateCallSQL keeps started_at when the record's StartedAt is zero.
const updateCallSQL = `UPDATE calls SET caller = ?2, callee = ?3, caller_uri = ?4, callee_uri = ?5, direction = ?6,
	started_at = coalesce(?7, started_at), answered_at = ?8, ended_at = ?9, duration_ms = ?10, result = ?11,
	status = ?12, hangup_by = ?13, reason = ?14, legs = ?15, trunk = ?16, did = ?17
	WHERE id = ?1`

// callArgs returns the parameters of insertCallSQL and updateCallSQL, in
// column order. startedAt is NULL when zero.
func callArgs(r CallRecord) ([]any, error) {
	var legs any // NULL
	if len(r.Legs) > 0 {
		b, err := json.Marshal(r.Legs)
		if err != nil {
			return nil, fmt.Errorf("encode legs: %w", err)
		}
		legs = string(b)
	}
	return []any{r.ID, r.Caller, r.Callee, r.CallerURI, r.CalleeURI, r.Direction,
		nullMillis(r.StartedAt), nullMillis(r.AnsweredAt), nullMillis(r.EndedAt), r.Duration.Milliseconds(),
		r.Result, int64(r.Status), r.HangupBy, r.Reason, legs, r.Trunk, r.DID}, nil
}

func scanCall(sc scanner) (CallRecord, error) {
	var (
		r                   CallRecord
		startedAt           int64
		answeredAt, endedAt sql.NullInt64
		durationMS          int64
		legs                sql.NullString
	)
	if err := sc.Scan(&r.ID, &r.Caller, &r.Callee, &r.CallerURI, &r.CalleeURI, &r.Direction, &startedAt,
		&answeredAt, &endedAt, &durationMS, &r.Result, &r.Status, &r.HangupBy, &r.Reason, &legs, &r.Trunk, &r.DID); err != nil {
		return CallRecord{}, err
	}
	r.StartedAt = fromMillis(startedAt)
	r.AnsweredAt = fromNullMillis(answeredAt)
	r.EndedAt = fromNullMillis(endedAt)
	r.Duration = time.Duration(durationMS) * time.Millisecond
	if legs.Valid && legs.String != "" {
		if err := json.Unmarshal([]byte(legs.String), &r.Legs); err != nil {
			return CallRecord{}, fmt.Errorf("call %q: decode legs: %w", r.ID, err)
		}
	}
	return r, nil
}

// StartCall inserts r, or fails with ErrExists. A zero StartedAt is set to
// the current time.
func (s *Store) StartCall(ctx context.Context, r CallRecord) error {
	return s.StartCallWithEvents(ctx, r)
}

// StartCallWithEvents is StartCall that also writes events to the outbox in
// the same transaction (see AppendEvents). When the call exists (ErrExists)
// nothing is written. On success it sets the Seq of each element of events.
func (s *Store) StartCallWithEvents(ctx context.Context, r CallRecord, events ...Event) error {
	if r.ID == "" {
		return fmt.Errorf("start call: %w: empty ID", ErrInvalid)
	}
	r.StartedAt = orNow(r.StartedAt, s.now())
	args, err := callArgs(r)
	if err != nil {
		return fmt.Errorf("start call %q: %w", r.ID, err)
	}
	evRows, err := eventRows(events)
	if err != nil {
		return fmt.Errorf("start call %q: %w", r.ID, err)
	}
	seqs := make([]int64, len(evRows))
	err = s.write(ctx, func(ctx context.Context, w *writeTx) error {
		res, err := w.stmt(ctx, s.stmts.insertCall).ExecContext(ctx, args...)
		if err := rejectIfNone(res, err, ErrExists); err != nil {
			return err
		}
		return s.writeEvents(ctx, w, evRows, seqs)
	})
	if err != nil {
		return fmt.Errorf("start call %q: %w", r.ID, err)
	}
	setSeqs(events, seqs)
	return nil
}

// UpdateCall replaces every field of the record r.ID (a zero StartedAt keeps
// the stored one), or fails with ErrNotFound.
func (s *Store) UpdateCall(ctx context.Context, r CallRecord) error {
	return s.UpdateCallWithEvents(ctx, r)
}

// UpdateCallWithEvents is UpdateCall that also writes events to the outbox
// in the same transaction (see AppendEvents), such as call.ended with the
// final record. When the call does not exist (ErrNotFound) nothing is
// written. On success it sets the Seq of each element of events.
func (s *Store) UpdateCallWithEvents(ctx context.Context, r CallRecord, events ...Event) error {
	if r.ID == "" {
		return fmt.Errorf("update call: %w: empty ID", ErrInvalid)
	}
	args, err := callArgs(r)
	if err != nil {
		return fmt.Errorf("update call %q: %w", r.ID, err)
	}
	evRows, err := eventRows(events)
	if err != nil {
		return fmt.Errorf("update call %q: %w", r.ID, err)
	}
	seqs := make([]int64, len(evRows))
	err = s.write(ctx, func(ctx context.Context, w *writeTx) error {
		res, err := w.stmt(ctx, s.stmts.updateCall).ExecContext(ctx, args...)
		if err := rejectIfNone(res, err, ErrNotFound); err != nil {
			return err
		}
		return s.writeEvents(ctx, w, evRows, seqs)
	})
	if err != nil {
		return fmt.Errorf("update call %q: %w", r.ID, err)
	}
	setSeqs(events, seqs)
	return nil
}

// Call returns the record with the given ID, or ErrNotFound.
func (s *Store) Call(ctx context.Context, id string) (CallRecord, error) {
	if err := s.readable(); err != nil {
		return CallRecord{}, err
	}
	r, err := scanCall(s.rdb.QueryRowContext(ctx, selectCall+` WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return CallRecord{}, fmt.Errorf("call %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return CallRecord{}, fmt.Errorf("store: get call %q: %w", id, err)
	}
	return r, nil
}

// CallFilter selects call records. Zero fields do not filter.
type CallFilter struct {
	User   string    // caller or callee
	Since  time.Time // started at or after
	Until  time.Time // started before
	Result string
	Limit  int // at most this many records; 0 means DefaultCallLimit
	// Before is a pagination cursor: the ID of the last record of the
	// previous page. Only records that sort after it (older, or as old with
	// a smaller ID) are returned. An unknown ID is ErrNotFound.
	Before string
}

// Calls returns the records that match f, newest first (by StartedAt, then
// by ID descending, so that pages never skip or repeat a record).
func (s *Store) Calls(ctx context.Context, f CallFilter) ([]CallRecord, error) {
	if err := s.readable(); err != nil {
		return nil, err
	}
	var (
		where []string
		args  []any
	)
	if f.User != "" {
		where = append(where, `(caller = ? OR callee = ?)`)
		args = append(args, f.User, f.User)
	}
	if !f.Since.IsZero() {
		where = append(where, `started_at >= ?`)
		args = append(args, millis(f.Since))
	}
	if !f.Until.IsZero() {
		where = append(where, `started_at < ?`)
		args = append(args, millis(f.Until))
	}
	if f.Result != "" {
		where = append(where, `result = ?`)
		args = append(args, f.Result)
	}
	if f.Before != "" {
		var startedAt int64
		err := s.rdb.QueryRowContext(ctx, `SELECT started_at FROM calls WHERE id = ?`, f.Before).Scan(&startedAt)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("list calls: cursor %q: %w", f.Before, ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("store: list calls: %w", err)
		}
		where = append(where, `(started_at, id) < (?, ?)`)
		args = append(args, startedAt, f.Before)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultCallLimit
	}
	q := selectCall
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	q += ` ORDER BY started_at DESC, id DESC LIMIT ?`
	args = append(args, limit)

	rows, err := s.rdb.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list calls: %w", err)
	}
	defer rows.Close()
	var out []CallRecord
	for rows.Next() {
		r, err := scanCall(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list calls: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list calls: %w", err)
	}
	return out, nil
}

// MarkOpenCallsCrashed ends every record that is still open (zero EndedAt),
// which at start-up means the previous process died with those calls up:
// EndedAt becomes now (or StartedAt or AnsweredAt, if later), Duration runs from
// AnsweredAt to that if the call was answered, Result becomes "crashed",
// HangupBy "system" and Reason "server stopped unexpectedly"; Status is kept.
// It returns how many records it ended. A zero now means the current time.
func (s *Store) MarkOpenCallsCrashed(ctx context.Context, now time.Time) (int, error) {
	end := millis(orNow(now, s.now()))
	var n int64
	err := s.write(ctx, func(ctx context.Context, w *writeTx) error {
		res, err := w.Exec(ctx, `UPDATE calls SET
				ended_at = max(?1, started_at, coalesce(answered_at, 0)),
				duration_ms = CASE WHEN answered_at IS NULL THEN 0 ELSE max(0, ?1 - answered_at) END,
				result = ?2, hangup_by = 'system', reason = ?3
			WHERE ended_at IS NULL`, end, ResultCrashed, ReasonCrashed)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("mark open calls crashed: %w", err)
	}
	if n > 0 {
		s.log.Warn("calls left open by the previous run marked crashed", "calls", n)
	}
	return int(n), nil
}
