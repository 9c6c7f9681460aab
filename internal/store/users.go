package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// User is a SIP account. The password itself is never stored: only the
// digest HA1 hashes for each algorithm (RFC 7616 §3.4.2, RFC 8760), which
// are valid for Realm only.
type User struct {
	Name        string // SIP user part, e.g. "1001"
	DisplayName string
	Realm       string
	HA1MD5      string // hex MD5(name:realm:password)
	HA1SHA256   string // hex SHA-256(name:realm:password)
	FromConfig  bool   // the user comes from the config file (see SyncConfigUsers)
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

const selectUser = `SELECT name, display_name, realm, ha1_md5, ha1_sha256, from_config, created_at, updated_at FROM users`

func scanUser(sc scanner) (User, error) {
	var (
		u                    User
		fromConfig           int64
		createdAt, updatedAt int64
	)
	if err := sc.Scan(&u.Name, &u.DisplayName, &u.Realm, &u.HA1MD5, &u.HA1SHA256, &fromConfig, &createdAt, &updatedAt); err != nil {
		return User{}, err
	}
	u.FromConfig = fromConfig != 0
	u.CreatedAt = fromMillis(createdAt)
	u.UpdatedAt = fromMillis(updatedAt)
	return u, nil
}

func validUser(u User) error {
	if u.Name == "" {
		return fmt.Errorf("%w: user with empty name", ErrInvalid)
	}
	return nil
}

// User returns the user called name, or ErrNotFound.
func (s *Store) User(ctx context.Context, name string) (User, error) {
	if err := s.readable(); err != nil {
		return User{}, err
	}
	u, err := scanUser(s.getUser.QueryRowContext(ctx, name))
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, fmt.Errorf("user %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return User{}, fmt.Errorf("store: get user %q: %w", name, err)
	}
	return u, nil
}

// Users returns every user, ordered by name.
func (s *Store) Users(ctx context.Context) ([]User, error) {
	if err := s.readable(); err != nil {
		return nil, err
	}
	rows, err := s.rdb.QueryContext(ctx, selectUser+` ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("store: list users: %w", err)
	}
	defer rows.Close()
	var users []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list users: %w", err)
		}
		users = append(users, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list users: %w", err)
	}
	return users, nil
}

// CreateUser adds u, or fails with ErrExists. A zero CreatedAt or UpdatedAt
// is set to the current time.
func (s *Store) CreateUser(ctx context.Context, u User) error {
	if err := validUser(u); err != nil {
		return err
	}
	now := s.now()
	args := []any{u.Name, u.DisplayName, u.Realm, u.HA1MD5, u.HA1SHA256, boolInt(u.FromConfig),
		millis(orNow(u.CreatedAt, now)), millis(orNow(u.UpdatedAt, now))}
	err := s.write(ctx, func(ctx context.Context, w *writeTx) error {
		res, err := w.Exec(ctx, `INSERT INTO users (name, display_name, realm, ha1_md5, ha1_sha256, from_config, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING`, args...)
		return rejectIfNone(res, err, ErrExists)
	})
	if err != nil {
		return fmt.Errorf("create user %q: %w", u.Name, err)
	}
	return nil
}

// UpdateUser replaces every field of the user called u.Name except
// CreatedAt, or fails with ErrNotFound. A zero UpdatedAt is set to the
// current time.
func (s *Store) UpdateUser(ctx context.Context, u User) error {
	if err := validUser(u); err != nil {
		return err
	}
	args := []any{u.DisplayName, u.Realm, u.HA1MD5, u.HA1SHA256, boolInt(u.FromConfig),
		millis(orNow(u.UpdatedAt, s.now())), u.Name}
	err := s.write(ctx, func(ctx context.Context, w *writeTx) error {
		res, err := w.Exec(ctx, `UPDATE users SET display_name = ?, realm = ?, ha1_md5 = ?, ha1_sha256 = ?,
			from_config = ?, updated_at = ? WHERE name = ?`, args...)
		return rejectIfNone(res, err, ErrNotFound)
	})
	if err != nil {
		return fmt.Errorf("update user %q: %w", u.Name, err)
	}
	return nil
}

// DeleteUser deletes the user called name and its bindings, or fails with
// ErrNotFound.
func (s *Store) DeleteUser(ctx context.Context, name string) error {
	err := s.write(ctx, func(ctx context.Context, w *writeTx) error {
		// bindings.user_name is ON DELETE CASCADE.
		res, err := w.Exec(ctx, `DELETE FROM users WHERE name = ?`, name)
		return rejectIfNone(res, err, ErrNotFound)
	})
	if err != nil {
		return fmt.Errorf("delete user %q: %w", name, err)
	}
	return nil
}

// SyncConfigUsers makes the config file's users authoritative, in one
// transaction: each of users is inserted or updated with FromConfig set (a
// user created through the API with the same name becomes a config user);
// users that came from the config before but are not in users any more are
// deleted with their bindings. Users created through the API are kept.
// UpdatedAt changes only for users whose fields changed.
func (s *Store) SyncConfigUsers(ctx context.Context, users []User) error {
	now := millis(s.now())
	rows := make([][]any, len(users))
	names := make([]string, len(users))
	for i, u := range users {
		if err := validUser(u); err != nil {
			return fmt.Errorf("sync config users: %w", err)
		}
		rows[i] = []any{u.Name, u.DisplayName, u.Realm, u.HA1MD5, u.HA1SHA256,
			orMillis(u.CreatedAt, now), orMillis(u.UpdatedAt, now)}
		names[i] = u.Name
	}
	keep, err := json.Marshal(names)
	if err != nil {
		return fmt.Errorf("sync config users: %w", err)
	}
	var upserted, removed int64
	err = s.write(ctx, func(ctx context.Context, w *writeTx) error {
		upserted, removed = 0, 0 // the function may run twice (batch, then alone)
		for _, args := range rows {
			res, err := w.Exec(ctx, `INSERT INTO users (name, display_name, realm, ha1_md5, ha1_sha256, from_config, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, 1, ?, ?)
				ON CONFLICT (name) DO UPDATE SET
					display_name = excluded.display_name, realm = excluded.realm,
					ha1_md5 = excluded.ha1_md5, ha1_sha256 = excluded.ha1_sha256,
					from_config = 1, updated_at = excluded.updated_at
				WHERE display_name IS NOT excluded.display_name OR realm IS NOT excluded.realm
					OR ha1_md5 IS NOT excluded.ha1_md5 OR ha1_sha256 IS NOT excluded.ha1_sha256
					OR from_config IS NOT 1`, args...)
			if err != nil {
				return fmt.Errorf("upsert user %q: %w", args[0], err)
			}
			n, _ := res.RowsAffected()
			upserted += n
		}
		res, err := w.Exec(ctx, `DELETE FROM users WHERE from_config = 1
			AND name NOT IN (SELECT value FROM json_each(?))`, string(keep))
		if err != nil {
			return fmt.Errorf("delete stale config users: %w", err)
		}
		removed, _ = res.RowsAffected()
		return nil
	})
	if err != nil {
		return fmt.Errorf("sync config users: %w", err)
	}
	s.log.Info("config users synced", "users", len(users), "changed", upserted, "removed", removed)
	return nil
}

func orMillis(t time.Time, now int64) int64 {
	if t.IsZero() {
		return now
	}
	return millis(t)
}

// rejectIfNone turns a statement that changed no row into rejected{sentinel}:
// the request fails without having changed anything.
func rejectIfNone(res sql.Result, err error, sentinel error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return rejected{sentinel}
	}
	return nil
}
