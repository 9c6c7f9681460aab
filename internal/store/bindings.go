package store

import (
	"context"
	"fmt"
	"time"
)

// Binding is one registrar binding of a user to a contact (RFC 3261 §10.3),
// with what the registrar needs to reach it through NAT: the source address
// and transport the REGISTER came from (RFC 3581, RFC 5626).
type Binding struct {
	ID        string // unique key chosen by the registrar, e.g. user + instance or user + contact URI
	User      string // must name an existing user
	Contact   string // the full Contact URI as registered
	Instance  string // +sip.instance, may be empty (RFC 5626 §4.1)
	RegID     int    // reg-id, 0 if absent (RFC 5626 §4.2)
	Source    string // ip:port the REGISTER came from: where requests go
	Transport string // "UDP", "TCP", "TLS", "WS", "WSS"
	UserAgent string
	CallID    string
	CSeq      uint32
	Q         float64   // 0 means unset
	Expires   time.Time // absolute expiry
	UpdatedAt time.Time // zero is stored as the time of the write
}

// bindingArgs is the number of parameters of upsertBindingSQL.
const bindingArgs = 13

// upsertBindingSQL inserts a binding or refreshes it in place. It leaves
// user_name out of the update: SQLite maintains an index for every column an
// UPDATE sets, changed or not, and refreshes never move a binding to another
// user. When one does, the WHERE clause makes this change nothing and
// moveBindingSQL follows.
const upsertBindingSQL = `INSERT INTO bindings
	(id, user_name, contact, instance, reg_id, source, transport, user_agent, call_id, cseq, q, expires_at, updated_at)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (id) DO UPDATE SET
		contact = excluded.contact, instance = excluded.instance, reg_id = excluded.reg_id,
		source = excluded.source, transport = excluded.transport, user_agent = excluded.user_agent,
		call_id = excluded.call_id, cseq = excluded.cseq, q = excluded.q,
		expires_at = excluded.expires_at, updated_at = excluded.updated_at
	WHERE user_name = excluded.user_name`

// moveBindingSQL rewrites every column of an existing binding; its
// parameters are those of upsertBindingSQL.
const moveBindingSQL = `UPDATE bindings SET
	user_name = ?2, contact = ?3, instance = ?4, reg_id = ?5, source = ?6, transport = ?7,
	user_agent = ?8, call_id = ?9, cseq = ?10, q = ?11, expires_at = ?12, updated_at = ?13
	WHERE id = ?1`

const deleteBindingSQL = `DELETE FROM bindings WHERE id = ?`

const selectBinding = `SELECT id, user_name, contact, instance, reg_id, source, transport, user_agent,
	call_id, cseq, q, expires_at, updated_at FROM bindings`

func scanBinding(sc scanner) (Binding, error) {
	var (
		b                  Binding
		cseq               int64
		expires, updatedAt int64
	)
	if err := sc.Scan(&b.ID, &b.User, &b.Contact, &b.Instance, &b.RegID, &b.Source, &b.Transport, &b.UserAgent,
		&b.CallID, &cseq, &b.Q, &expires, &updatedAt); err != nil {
		return Binding{}, err
	}
	b.CSeq = uint32(cseq)
	b.Expires = fromMillis(expires)
	b.UpdatedAt = fromMillis(updatedAt)
	return b, nil
}

// ApplyBindings upserts put (by ID) and deletes the bindings whose IDs are in
// del, atomically, and returns only once that is committed: the registrar
// answers 200 OK only after ApplyBindings returns nil. Deleting an ID that
// does not exist is not an error. A binding whose user does not exist fails
// the call. put and del are not retained.
//
// Concurrent calls are committed together by the writer goroutine (group
// commit), so the cost of a commit is shared by every REGISTER waiting for
// one. If ctx ends before the write is committed, ApplyBindings returns
// ctx.Err() and the write may or may not be applied.
func (s *Store) ApplyBindings(ctx context.Context, put []Binding, del []string) error {
	return s.ApplyBindingsWithEvents(ctx, put, del)
}

// ApplyBindingsWithEvents is ApplyBindings that also writes events to the
// outbox in the same transaction (see AppendEvents): the bindings change if
// and only if the events are recorded. On success it sets the Seq of each
// element of events.
func (s *Store) ApplyBindingsWithEvents(ctx context.Context, put []Binding, del []string, events ...Event) error {
	if len(put) == 0 && len(del) == 0 && len(events) == 0 {
		return nil
	}
	fn, seqs, err := s.bindingsWrite(put, del, events)
	if err != nil {
		return fmt.Errorf("apply bindings: %w", err)
	}
	if err := s.write(ctx, fn); err != nil {
		return fmt.Errorf("apply bindings: %w", err)
	}
	setSeqs(events, seqs)
	return nil
}

// ApplyBindingsThen is ApplyBindingsWithEvents without the wait: it queues
// the write and returns, and then is called once with the result (nil once
// the bindings and events are committed, when the Seq of each element of
// events is set). then is called on the store's writer goroutine, or on the
// caller's when the write cannot be queued, so it must be quick, must not
// block and must not write to the store. A caller that answers a REGISTER
// from then saves the goroutine that would wait for the commit.
func (s *Store) ApplyBindingsThen(put []Binding, del []string, events []Event, then func(error)) {
	if len(put) == 0 && len(del) == 0 && len(events) == 0 {
		then(nil)
		return
	}
	fn, seqs, err := s.bindingsWrite(put, del, events)
	if err != nil {
		then(fmt.Errorf("apply bindings: %w", err))
		return
	}
	s.writeThen(fn, func(err error) {
		if err != nil {
			then(fmt.Errorf("apply bindings: %w", err))
			return
		}
		setSeqs(events, seqs)
		then(nil)
	})
}

// bindingsWrite checks put, del and events and returns the write that
// applies them, and the slice it puts the events' seqs in.
func (s *Store) bindingsWrite(put []Binding, del []string, events []Event) (writeFunc, []int64, error) {
	// Build the statement arguments here, on the caller's goroutine: it
	// spreads the work over the cores and leaves the writer nothing of the
	// caller's to read.
	now := s.now()
	args := make([]any, 0, len(put)*bindingArgs)
	for i := range put {
		b := &put[i]
		if b.ID == "" || b.User == "" || b.Contact == "" || b.Expires.IsZero() {
			return nil, nil, fmt.Errorf("%w: binding %q needs ID, User, Contact and Expires", ErrInvalid, b.ID)
		}
		args = append(args, b.ID, b.User, b.Contact, b.Instance, int64(b.RegID), b.Source, b.Transport, b.UserAgent,
			b.CallID, int64(b.CSeq), b.Q, millis(b.Expires), millis(orNow(b.UpdatedAt, now)))
	}
	ids := make([]any, len(del))
	for i, id := range del {
		if id == "" {
			return nil, nil, fmt.Errorf("%w: empty binding ID to delete", ErrInvalid)
		}
		ids[i] = id
	}
	evRows, err := eventRows(events)
	if err != nil {
		return nil, nil, err
	}
	seqs := make([]int64, len(evRows))
	return func(ctx context.Context, w *writeTx) error {
		if len(args) > 0 {
			up := w.stmt(ctx, s.stmts.upsertBinding)
			for i := 0; i < len(args); i += bindingArgs {
				a := args[i : i+bindingArgs]
				res, err := up.ExecContext(ctx, a...)
				if err != nil {
					return fmt.Errorf("upsert binding %q: %w", a[0], err)
				}
				if n, _ := res.RowsAffected(); n == 0 {
					// The binding exists under another user.
					if _, err := w.stmt(ctx, s.stmts.moveBinding).ExecContext(ctx, a...); err != nil {
						return fmt.Errorf("move binding %q: %w", a[0], err)
					}
				}
			}
		}
		if len(ids) > 0 {
			d := w.stmt(ctx, s.stmts.deleteBinding)
			for _, id := range ids {
				if _, err := d.ExecContext(ctx, id); err != nil {
					return fmt.Errorf("delete binding %q: %w", id, err)
				}
			}
		}
		return s.writeEvents(ctx, w, evRows, seqs)
	}, seqs, nil
}

// Bindings returns every binding, expired or not, ordered by user and ID. The
// registrar loads them at start-up.
func (s *Store) Bindings(ctx context.Context) ([]Binding, error) {
	return s.queryBindings(ctx, selectBinding+` ORDER BY user_name, id`)
}

// UserBindings returns the bindings of one user, ordered by ID.
func (s *Store) UserBindings(ctx context.Context, user string) ([]Binding, error) {
	return s.queryBindings(ctx, selectBinding+` WHERE user_name = ? ORDER BY id`, user)
}

func (s *Store) queryBindings(ctx context.Context, query string, args ...any) ([]Binding, error) {
	if err := s.readable(); err != nil {
		return nil, err
	}
	rows, err := s.rdb.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list bindings: %w", err)
	}
	defer rows.Close()
	var bs []Binding
	for rows.Next() {
		b, err := scanBinding(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list bindings: %w", err)
		}
		bs = append(bs, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list bindings: %w", err)
	}
	return bs, nil
}

// DeleteBindingsExpiredBefore deletes the bindings that expire before t and
// returns how many it deleted.
func (s *Store) DeleteBindingsExpiredBefore(ctx context.Context, t time.Time) (int, error) {
	cutoff := millis(t)
	var n int64
	err := s.write(ctx, func(ctx context.Context, w *writeTx) error {
		res, err := w.Exec(ctx, `DELETE FROM bindings WHERE expires_at < ?`, cutoff)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("delete expired bindings: %w", err)
	}
	return int(n), nil
}
