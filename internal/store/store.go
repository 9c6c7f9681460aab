package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Sentinel errors. Check them with errors.Is: the methods wrap them with
// context.
var (
	// ErrNotFound reports that the user, binding or call does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrExists reports that a user or call with the same key already exists.
	ErrExists = errors.New("store: already exists")
	// ErrInvalid reports an argument the store refuses before touching the
	// database, such as an empty key.
	ErrInvalid = errors.New("store: invalid argument")
	// ErrClosed reports a call made after (or cut short by) Close.
	ErrClosed = errors.New("store: closed")
)

// busyTimeout bounds how long a connection waits for a lock held by another
// connection (in practice: another process, or a checkpoint) before failing
// with SQLITE_BUSY.
const busyTimeout = 5 * time.Second

// Store is the SQLite storage. It is safe for concurrent use. Open creates
// it; Close must be called to stop its writer goroutine.
type Store struct {
	log  *slog.Logger
	path string
	lock *os.File         // held open while the store is: see lockFile
	now  func() time.Time // the clock; tests replace it

	wdb *sql.DB // the single write connection, owned by the writer goroutine
	rdb *sql.DB // read-only connection pool

	stmts writeStmts // prepared on wdb
	// getUser is prepared on rdb: digest authentication reads a user per
	// REGISTER and INVITE.
	getUser *sql.Stmt

	outbox outbox // webhook targets and outbox statements (outbox.go)

	// mu orders enqueueing against Close: senders hold it shared while they
	// put a request on reqs, Close holds it exclusively to close reqs, so no
	// send can race with the close.
	mu     sync.RWMutex
	closed atomic.Bool
	reqs   chan *writeReq

	writerDone chan struct{}
	closeOnce  sync.Once
	closeErr   error

	stats writeCounters
}

// Open opens (creating it if needed) the database at path, applies pending
// migrations and starts the writer goroutine. The parent directory is created
// with mode 0700 if missing and a new database file is created with mode
// 0600: it holds the HA1 hashes. A nil log discards log output.
func Open(ctx context.Context, path string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		// Separate reader and writer connections need a real file; an
		// in-memory database would be a different one per connection.
		return nil, fmt.Errorf("open store: %w: path %q must be a file path", ErrInvalid, path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open store %q: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("open store: create directory: %w", err)
	}
	lock, err := lockFile(abs)
	if err != nil {
		return nil, fmt.Errorf("open store %q: %w", abs, err)
	}
	if err := createPrivate(abs); err != nil {
		lock.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}

	s := &Store{
		log:        log,
		path:       abs,
		now:        time.Now,
		reqs:       make(chan *writeReq, queueSize),
		writerDone: make(chan struct{}),
		lock:       lock,
	}
	if err := s.open(ctx); err != nil {
		s.closeDBs()
		lock.Close()
		return nil, fmt.Errorf("open store %q: %w", abs, err)
	}
	go s.runWriter()
	return s, nil
}

// createPrivate creates an empty database file readable only by its owner,
// unless it exists. SQLite gives the -wal and -shm files the same mode.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("create database file: %w", err)
	}
	return f.Close()
}

// dsn builds the modernc.org/sqlite data source name. The path goes in a
// file: URI so that '?' or '#' in it cannot be taken for the query.
func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Set("_busy_timeout", fmt.Sprint(busyTimeout.Milliseconds()))
	q.Set("_foreign_keys", "1")
	// NORMAL in WAL mode: a commit is written to the WAL (the OS has it)
	// before it returns, and the WAL is fsynced at checkpoints. A killed
	// process loses nothing committed; a power cut may lose the last commits.
	q.Set("_synchronous", "NORMAL")
	if readOnly {
		q.Set("_query_only", "1")
	} else {
		q.Set("_journal_mode", "WAL")
		// Take the write lock at BEGIN: a transaction that would have to
		// upgrade a read lock later can fail with SQLITE_BUSY regardless of
		// busy_timeout.
		q.Set("_txlock", "immediate")
		// The writer's page cache holds the bindings table and its indexes
		// for a large registrar (SQLite's default is 2 MiB): with the
		// default, every refresh of a binding not touched lately read its
		// pages back with pread, 12% of the server's CPU under REGISTER
		// load (docs/bench/notes.md). Memory is used only as pages are.
		q.Add("_pragma", "cache_size(-65536)")
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: q.Encode()}
	return u.String()
}

func (s *Store) open(ctx context.Context) error {
	var err error
	if s.wdb, err = sql.Open("sqlite", dsn(s.path, false)); err != nil {
		return err
	}
	// One connection, kept forever: the writer goroutine's, with its
	// prepared statements.
	s.wdb.SetMaxOpenConns(1)
	s.wdb.SetMaxIdleConns(1)
	s.wdb.SetConnMaxLifetime(0)
	s.wdb.SetConnMaxIdleTime(0)

	var mode string
	if err := s.wdb.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("read journal mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal mode is %q, want wal (is the file system local?)", mode)
	}
	version, err := migrate(ctx, s.wdb, s.log)
	if err != nil {
		return err
	}
	if err := s.stmts.prepare(ctx, s.wdb); err != nil {
		return err
	}
	if err := s.outbox.prepare(ctx, s.wdb); err != nil {
		return err
	}

	if s.rdb, err = sql.Open("sqlite", dsn(s.path, true)); err != nil {
		return err
	}
	readers := max(4, runtime.GOMAXPROCS(0))
	s.rdb.SetMaxOpenConns(readers)
	s.rdb.SetMaxIdleConns(readers)
	s.rdb.SetConnMaxIdleTime(5 * time.Minute)
	if s.getUser, err = s.rdb.PrepareContext(ctx, selectUser+` WHERE name = ?`); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	s.log.Info("store opened", "path", s.path, "schema_version", version)
	return nil
}

// Close stops the writer goroutine and waits for it, then closes the
// database. Writes already handed to the writer are committed first and their
// callers get the result; writes attempted afterwards fail with ErrClosed.
// Close is idempotent and safe to call concurrently.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed.Store(true)
		close(s.reqs)
		s.mu.Unlock()
		<-s.writerDone
		s.closeErr = s.closeDBs()
		s.lock.Close() // after the last write: the next server may start
		if s.closeErr == nil {
			s.log.Info("store closed", "path", s.path)
		}
	})
	return s.closeErr
}

func (s *Store) closeDBs() error {
	var errs []error
	if s.getUser != nil {
		errs = append(errs, s.getUser.Close())
	}
	errs = append(errs, s.stmts.close(), s.outbox.close())
	// Readers first: the last connection to close checkpoints the WAL and
	// removes it, and that should be the writer.
	if s.rdb != nil {
		errs = append(errs, s.rdb.Close())
	}
	if s.wdb != nil {
		errs = append(errs, s.wdb.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// readable reports ErrClosed once Close has started.
func (s *Store) readable() error {
	if s.closed.Load() {
		return ErrClosed
	}
	return nil
}

// Times are stored as Unix milliseconds in UTC: they round-trip exactly at
// millisecond precision (sub-millisecond parts are truncated).

func millis(t time.Time) int64 { return t.UnixMilli() }

// nullMillis stores the zero time as NULL.
func nullMillis(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

func fromNullMillis(ms sql.NullInt64) time.Time {
	if !ms.Valid {
		return time.Time{}
	}
	return fromMillis(ms.Int64)
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// orNow returns t, or now when t is zero.
func orNow(t, now time.Time) time.Time {
	if t.IsZero() {
		return now
	}
	return t
}

// scanner is what *sql.Row and *sql.Rows have in common.
type scanner interface {
	Scan(dest ...any) error
}
