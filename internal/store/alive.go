package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// MarkAlive records t as the last time the server was known to be
// running. A zero t means the current time.
func (s *Store) MarkAlive(ctx context.Context, t time.Time) error {
	at := millis(orNow(t, s.now()))
	err := s.write(ctx, func(ctx context.Context, w *writeTx) error {
		_, err := w.Exec(ctx, `INSERT INTO alive (id, at) VALUES (1, ?)
			ON CONFLICT (id) DO UPDATE SET at = excluded.at`, at)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: mark alive: %w", err)
	}
	return nil
}

// LastAlive returns the time MarkAlive last recorded, or the zero time if
// it never ran. After a crash it is the last time the previous run was
// known to be up: the calls it left open ended no earlier than that.
func (s *Store) LastAlive(ctx context.Context) (time.Time, error) {
	if err := s.readable(); err != nil {
		return time.Time{}, err
	}
	var at int64
	err := s.rdb.QueryRowContext(ctx, `SELECT at FROM alive WHERE id = 1`).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("store: last alive: %w", err)
	}
	return time.UnixMilli(at).UTC(), nil
}
