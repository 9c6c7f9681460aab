package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

func TestOpenMigratesAndReopens(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data", "sub")
	path := filepath.Join(dir, "switchboard.db")

	s, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	ms, err := loadMigrations(migrationFiles)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || ms[0].version != 1 {
		t.Fatalf("embedded migrations = %+v, want 0001 first", ms)
	}
	versions := func(s *Store) []int {
		t.Helper()
		rows, err := s.rdb.QueryContext(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var vs []int
		for rows.Next() {
			var v int
			if err := rows.Scan(&v); err != nil {
				t.Fatal(err)
			}
			vs = append(vs, v)
		}
		return vs
	}
	if got := versions(s); len(got) != len(ms) || got[len(got)-1] != ms[len(ms)-1].version {
		t.Fatalf("schema_migrations = %v, want the %d embedded versions", got, len(ms))
	}
	mustCreateUser(t, s, "1001")
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	// The directory was created private, the file too.
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("mode of %s = %v, want %v", p, got, want)
		}
	}

	// Re-open: nothing applied twice, data kept.
	s, err = Open(ctx, path, nil)
	if err != nil {
		t.Fatalf("re-Open: %v", err)
	}
	defer s.Close()
	if got := versions(s); len(got) != len(ms) {
		t.Errorf("after re-open schema_migrations = %v, want %d rows", got, len(ms))
	}
	if _, err := s.User(ctx, "1001"); err != nil {
		t.Errorf("user lost across re-open: %v", err)
	}
}

func TestPragmas(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()

	// Ask the writer's own connection, through the writer goroutine.
	var journal string
	var synchronous, foreignKeys, busy int
	err := s.write(ctx, func(ctx context.Context, w *writeTx) error {
		for q, dst := range map[string]any{
			"PRAGMA journal_mode": &journal,
			"PRAGMA synchronous":  &synchronous,
			"PRAGMA foreign_keys": &foreignKeys,
			"PRAGMA busy_timeout": &busy,
		} {
			if err := w.tx.QueryRowContext(ctx, q).Scan(dst); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if journal != "wal" {
		t.Errorf("journal_mode = %q, want wal", journal)
	}
	if synchronous != 1 { // NORMAL
		t.Errorf("synchronous = %d, want 1 (NORMAL)", synchronous)
	}
	if foreignKeys != 1 {
		t.Errorf("foreign_keys = %d, want 1", foreignKeys)
	}
	if busy != int(busyTimeout.Milliseconds()) {
		t.Errorf("busy_timeout = %d, want %d", busy, busyTimeout.Milliseconds())
	}

	// Readers see WAL too and cannot write.
	if err := s.rdb.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&journal); err != nil || journal != "wal" {
		t.Errorf("reader journal_mode = %q, %v; want wal", journal, err)
	}
	if _, err := s.rdb.ExecContext(ctx, `DELETE FROM users`); err == nil {
		t.Error("a reader connection could write")
	}
}

func TestMigrationRunner(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("sqlite", dsn(filepath.Join(t.TempDir(), "m.db"), false))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)

	v1 := fstest.MapFS{
		"migrations/0001_a.sql": {Data: []byte(`CREATE TABLE a (x INTEGER); INSERT INTO a VALUES (1);`)},
	}
	v2 := fstest.MapFS{
		"migrations/0001_a.sql": v1["migrations/0001_a.sql"],
		"migrations/0002_b.sql": {Data: []byte(`CREATE TABLE b (y INTEGER); INSERT INTO a VALUES (2);`)},
	}
	broken := fstest.MapFS{
		"migrations/0001_a.sql": v1["migrations/0001_a.sql"],
		"migrations/0002_b.sql": v2["migrations/0002_b.sql"],
		"migrations/0003_c.sql": {Data: []byte(`INSERT INTO a VALUES (3); THIS IS NOT SQL;`)},
	}
	apply := func(fsys fstest.MapFS) (int, error) {
		ms, err := loadMigrations(fsys)
		if err != nil {
			return 0, err
		}
		return applyMigrations(ctx, db, discardLog(), ms)
	}
	rowsInA := func() int {
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM a`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	for i, step := range []struct {
		fsys        fstest.MapFS
		wantVersion int
		wantRows    int
		wantErr     bool
	}{
		{v1, 1, 1, false},
		{v1, 1, 1, false}, // idempotent
		{v2, 2, 2, false}, // only the new one runs
		{v2, 2, 2, false},
		{broken, 0, 2, true}, // a failing migration leaves nothing behind
		{v1, 0, 2, true},     // the database is newer than the program
	} {
		v, err := apply(step.fsys)
		if (err != nil) != step.wantErr || v != step.wantVersion {
			t.Fatalf("step %d: version %d, err %v; want %d, error %v", i, v, err, step.wantVersion, step.wantErr)
		}
		if got := rowsInA(); got != step.wantRows {
			t.Fatalf("step %d: %d rows in a, want %d", i, got, step.wantRows)
		}
	}

	if _, err := loadMigrations(fstest.MapFS{"migrations/init.sql": {}}); err == nil {
		t.Error("a migration without a version number was accepted")
	}
	if _, err := loadMigrations(fstest.MapFS{"migrations/0001_a.sql": {}, "migrations/1_b.sql": {}}); err == nil {
		t.Error("two migrations with the same version were accepted")
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "switchboard.db")
	s, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = s.write(ctx, func(ctx context.Context, w *writeTx) error {
		_, err := w.Exec(ctx, `INSERT INTO schema_migrations VALUES (9999, 'future', 0)`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := Open(ctx, path, nil); err == nil || !strings.Contains(err.Error(), "newer") {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open of a newer schema: %v, want an error", err)
	}
}

func TestOpenRejectsMemoryPath(t *testing.T) {
	for _, p := range []string{"", ":memory:", "file::memory:"} {
		if s, err := Open(context.Background(), p, nil); !errors.Is(err, ErrInvalid) {
			if s != nil {
				s.Close()
			}
			t.Errorf("Open(%q) = %v, want ErrInvalid", p, err)
		}
	}
}

func TestPathWithURICharacters(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "a?b#c d", "x.db")
	s, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustCreateUser(t, s, "1001")
	s.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database not at %q: %v", path, err)
	}
}

func TestCloseIsIdempotentAndFinal(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	mustCreateUser(t, s, "1001")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.ApplyBindings(ctx, []Binding{testBinding("1001", 1)}, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("ApplyBindings after Close = %v, want ErrClosed", err)
	}
	if _, err := s.User(ctx, "1001"); !errors.Is(err, ErrClosed) {
		t.Errorf("User after Close = %v, want ErrClosed", err)
	}
	if err := s.CreateUser(ctx, User{Name: "x"}); !errors.Is(err, ErrClosed) {
		t.Errorf("CreateUser after Close = %v, want ErrClosed", err)
	}
}

// TestOneProcessPerDatabase: a second open of a database in use fails
// with ErrLocked naming the holder; once the first is closed it succeeds.
func TestOneProcessPerDatabase(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "switchboard.db")
	s, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(ctx, path, nil)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), fmt.Sprintf("process %d", os.Getpid())) || !strings.Contains(err.Error(), "storage.path") {
		t.Fatalf("second open: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatalf("open after close: %v", err)
	}
	s2.Close()
}

// TestCallDialogs: dialogs stored for calls in progress survive a reopen;
// TakeCallDialogs returns them once and leaves none behind.
func TestCallDialogs(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "switchboard.db")
	s, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for id, d := range map[string]string{"a": `{"legs":1}`, "b": `{"legs":2}`, "c": `x`} {
		if err := s.SetCallDialogs(ctx, id, d); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetCallDialogs(ctx, "b", `{"legs":3}`); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteCallDialogs(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.TakeCallDialogs(ctx)
	if err != nil || len(got) != 2 || got["a"] != `{"legs":1}` || got["b"] != `{"legs":3}` {
		t.Fatalf("TakeCallDialogs = %v, %v", got, err)
	}
	if again, err := s.TakeCallDialogs(ctx); err != nil || len(again) != 0 {
		t.Fatalf("second TakeCallDialogs = %v, %v", again, err)
	}
}
