package store

import (
	"context"
	"fmt"
)

// SetCallDialogs stores the SIP dialogs of the call callID (opaque data,
// replacing what was stored for it).
func (s *Store) SetCallDialogs(ctx context.Context, callID, dialogs string) error {
	if callID == "" {
		return fmt.Errorf("set call dialogs: %w: empty call ID", ErrInvalid)
	}
	err := s.write(ctx, func(ctx context.Context, w *writeTx) error {
		_, err := w.Exec(ctx, `INSERT INTO call_dialogs (call_id, dialogs) VALUES (?, ?)
			ON CONFLICT (call_id) DO UPDATE SET dialogs = excluded.dialogs`, callID, dialogs)
		return err
	})
	if err != nil {
		return fmt.Errorf("set dialogs of call %q: %w", callID, err)
	}
	return nil
}

// DeleteCallDialogs forgets the dialogs of the call callID, which ended.
func (s *Store) DeleteCallDialogs(ctx context.Context, callID string) error {
	err := s.write(ctx, func(ctx context.Context, w *writeTx) error {
		_, err := w.Exec(ctx, `DELETE FROM call_dialogs WHERE call_id = ?`, callID)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete dialogs of call %q: %w", callID, err)
	}
	return nil
}

// TakeCallDialogs returns every stored call's dialogs and deletes them: at
// start-up, those of the calls a crash left up, to be ended.
func (s *Store) TakeCallDialogs(ctx context.Context) (map[string]string, error) {
	out := map[string]string{}
	err := s.write(ctx, func(ctx context.Context, w *writeTx) error {
		rows, err := w.tx.QueryContext(ctx, `SELECT call_id, dialogs FROM call_dialogs`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id, d string
			if err := rows.Scan(&id, &d); err != nil {
				return err
			}
			out[id] = d
		}
		if err := rows.Err(); err != nil {
			return err
		}
		_, err = w.Exec(ctx, `DELETE FROM call_dialogs`)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("take call dialogs: %w", err)
	}
	return out, nil
}
