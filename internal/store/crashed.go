package store

import (
	"context"
	"fmt"
	"time"
)

// OpenCalls returns the records of calls that have not ended, oldest first.
// At start-up they are the calls the previous run left open.
func (s *Store) OpenCalls(ctx context.Context) ([]CallRecord, error) {
	if err := s.readable(); err != nil {
		return nil, err
	}
	rows, err := s.rdb.QueryContext(ctx, selectCall+` WHERE ended_at IS NULL ORDER BY started_at, id`)
	if err != nil {
		return nil, fmt.Errorf("store: open calls: %w", err)
	}
	defer rows.Close()
	var out []CallRecord
	for rows.Next() {
		r, err := scanCall(rows)
		if err != nil {
			return nil, fmt.Errorf("store: open calls: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: open calls: %w", err)
	}
	return out, nil
}

// MarkOpenCallsCrashedWithEvents is MarkOpenCallsCrashed that also writes,
// with each record it ends and in the same transaction, the events ev
// returns for the ended record (such as call.ended). Records are ended one
// by one: if the process stops half-way, the rest are still open and the
// next start ends them. A record ends at now, or at its start or answer if
// that was later. A zero now means the current time.
func (s *Store) MarkOpenCallsCrashedWithEvents(ctx context.Context, now time.Time, ev func(CallRecord) ([]Event, error)) (int, error) {
	open, err := s.OpenCalls(ctx)
	if err != nil {
		return 0, err
	}
	now = orNow(now, s.now()).Truncate(time.Millisecond)
	for i, r := range open {
		// The call was up at least until it started, and was answered.
		r.EndedAt = now
		for _, t := range []time.Time{r.StartedAt, r.AnsweredAt} {
			if r.EndedAt.Before(t) {
				r.EndedAt = t
			}
		}
		r.Duration = 0
		if !r.AnsweredAt.IsZero() && r.EndedAt.After(r.AnsweredAt) {
			r.Duration = r.EndedAt.Sub(r.AnsweredAt)
		}
		r.Result, r.HangupBy, r.Reason = ResultCrashed, "system", ReasonCrashed
		evs, err := ev(r)
		if err != nil {
			return i, fmt.Errorf("mark call %q crashed: %w", r.ID, err)
		}
		if err := s.UpdateCallWithEvents(ctx, r, evs...); err != nil {
			return i, fmt.Errorf("mark call %q crashed: %w", r.ID, err)
		}
	}
	return len(open), nil
}
