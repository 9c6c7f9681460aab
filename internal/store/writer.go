package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

const (
	// maxBatch caps how many write requests share one transaction, which
	// bounds the latency the last of them sees.
	maxBatch = 256
	// queueSize lets callers hand over requests without waiting for the
	// writer while it commits the previous batch.
	queueSize = 4 * maxBatch
	// linger is how long the writer waits for more requests before
	// committing a batch while writes keep coming (the previous batch ended
	// less than busyGap before this one's first request arrived). A
	// commit costs far more than one upsert (it writes every page the batch
	// touched to the WAL), so under REGISTER load a short wait that lets
	// several requests share it saves CPU: 4 ms took 1.16× less CPU per
	// REGISTER than 1 ms at 1,000 new registrations/s (docs/bench/notes.md).
	// An isolated write is committed at once.
	linger  = 4 * time.Millisecond
	busyGap = 5 * time.Millisecond
)

// writeFunc does one write request's work inside the writer's transaction.
// Everything it uses must have been copied or computed by the caller before
// the request was queued: the caller may return (when its context ends) while
// the function runs. To fail without having changed anything, so that the
// rest of its batch can still commit, it returns rejected{err}.
type writeFunc func(ctx context.Context, w *writeTx) error

// rejected wraps an error that a writeFunc returns before changing anything
// (a key that exists or does not): the request fails, its batch does not.
type rejected struct{ err error }

func (r rejected) Error() string { return r.err.Error() }
func (r rejected) Unwrap() error { return r.err }

type writeReq struct {
	ctx  context.Context
	fn   writeFunc
	err  error      // result within the current batch attempt
	done chan error // buffered: the writer never waits for the caller
	// then, when set, is called with the result on the writer goroutine
	// instead of sending it on done (writeThen).
	then func(error)
}

func (r *writeReq) finish(err error) {
	if r.then != nil {
		r.then(err)
		return
	}
	r.done <- err
}

// writeTx is the transaction a batch runs in, with the prepared statements
// bound to it.
type writeTx struct {
	tx    *sql.Tx
	bound map[*sql.Stmt]*sql.Stmt
}

// Exec runs a statement that is not worth preparing (a rare write).
func (w *writeTx) Exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return w.tx.ExecContext(ctx, query, args...)
}

// stmt returns the prepared statement p bound to the transaction. The writer
// connection has p prepared already, so binding does not prepare it again.
func (w *writeTx) stmt(ctx context.Context, p *sql.Stmt) *sql.Stmt {
	if st, ok := w.bound[p]; ok {
		return st
	}
	st := w.tx.StmtContext(ctx, p)
	w.bound[p] = st
	return st
}

// writeStmts are the statements of the frequent writes, prepared once on the
// writer connection.
type writeStmts struct {
	upsertBinding *sql.Stmt
	moveBinding   *sql.Stmt
	deleteBinding *sql.Stmt
	insertCall    *sql.Stmt
	updateCall    *sql.Stmt
}

func (ws *writeStmts) prepare(ctx context.Context, db *sql.DB) error {
	for _, p := range []struct {
		dst   **sql.Stmt
		query string
	}{
		{&ws.upsertBinding, upsertBindingSQL},
		{&ws.moveBinding, moveBindingSQL},
		{&ws.deleteBinding, deleteBindingSQL},
		{&ws.insertCall, insertCallSQL},
		{&ws.updateCall, updateCallSQL},
	} {
		st, err := db.PrepareContext(ctx, p.query)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", p.query, err)
		}
		*p.dst = st
	}
	return nil
}

func (ws *writeStmts) close() error {
	var errs []error
	for _, st := range []*sql.Stmt{ws.upsertBinding, ws.moveBinding, ws.deleteBinding, ws.insertCall, ws.updateCall} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}

// WriteStats counts the writer goroutine's work since Open. Commits much
// smaller than Requests means group commit is working.
type WriteStats struct {
	Requests  uint64 // write requests executed
	Batches   uint64 // groups of requests taken from the queue together
	Commits   uint64 // transactions committed
	Fallbacks uint64 // batches that failed and were retried one request at a time
	MaxBatch  uint64 // the largest batch so far
}

type writeCounters struct {
	requests, batches, commits, fallbacks, maxBatch atomic.Uint64
}

// WriteStats returns the writer's counters.
func (s *Store) WriteStats() WriteStats {
	return WriteStats{
		Requests:  s.stats.requests.Load(),
		Batches:   s.stats.batches.Load(),
		Commits:   s.stats.commits.Load(),
		Fallbacks: s.stats.fallbacks.Load(),
		MaxBatch:  s.stats.maxBatch.Load(),
	}
}

// write hands fn to the writer goroutine and waits until it is committed (or
// has failed). If ctx ends first, write returns ctx.Err(); the request is then
// dropped if the writer has not started it yet, and otherwise may still
// commit.
func (s *Store) write(ctx context.Context, fn writeFunc) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &writeReq{ctx: ctx, fn: fn, done: make(chan error, 1)}
	s.mu.RLock()
	if s.closed.Load() {
		s.mu.RUnlock()
		return ErrClosed
	}
	select {
	case s.reqs <- r:
	case <-ctx.Done():
		s.mu.RUnlock()
		return ctx.Err()
	}
	s.mu.RUnlock()
	// The writer answers every request it has received, also while Close
	// drains the queue, so this cannot hang.
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// writeThen hands fn to the writer goroutine and returns without waiting
// for it (it waits only while the queue is full): then gets the result on
// the writer goroutine once the write is committed or has failed, or at
// once, on the caller's goroutine, when the store is closed. then runs
// between the writer's batches, so it must be quick, must not block and
// must not write to the store (the writer would wait for itself).
func (s *Store) writeThen(fn writeFunc, then func(error)) {
	r := &writeReq{ctx: context.Background(), fn: fn, then: then}
	s.mu.RLock()
	if s.closed.Load() {
		s.mu.RUnlock()
		then(ErrClosed)
		return
	}
	s.reqs <- r
	s.mu.RUnlock()
}

// runWriter is the writer goroutine: it takes the first queued request, adds
// whatever else is queued or, while writes keep coming, arrives within
// linger (up to maxBatch), and commits them together. It
// returns when Close has closed the queue and every queued request has been
// answered.
func (s *Store) runWriter() {
	defer close(s.writerDone)
	batch := make([]*writeReq, 0, maxBatch)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var lastDone time.Time
	for r := range s.reqs {
		batch = append(batch[:0], r)
		busy := time.Since(lastDone) < busyGap
		if busy {
			timer.Reset(linger)
		}
	fill:
		for len(batch) < maxBatch {
			if busy {
				select {
				case r, ok := <-s.reqs:
					if !ok {
						break fill
					}
					batch = append(batch, r)
				case <-timer.C:
					busy = false // take what is queued, then commit
				}
				continue
			}
			select {
			case r, ok := <-s.reqs:
				if !ok {
					break fill
				}
				batch = append(batch, r)
			default:
				break fill
			}
		}
		timer.Stop()
		s.runBatch(batch)
		clear(batch) // drop references for the garbage collector
		lastDone = time.Now()
	}
}

// runBatch commits the requests of batch in one transaction. If that fails,
// it runs each request in its own transaction, so one bad request fails alone.
func (s *Store) runBatch(batch []*writeReq) {
	live := batch[:0] // filtered in place
	for _, r := range batch {
		// A caller that gave up before its write started gets a clean
		// "not done".
		if err := r.ctx.Err(); err != nil {
			r.finish(err)
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	n := uint64(len(live))
	s.stats.requests.Add(n)
	s.stats.batches.Add(1)
	for {
		m := s.stats.maxBatch.Load()
		if n <= m || s.stats.maxBatch.CompareAndSwap(m, n) {
			break
		}
	}

	if len(live) == 1 {
		live[0].finish(s.runAlone(live[0]))
		return
	}
	if err := s.runTogether(live); err != nil {
		s.stats.fallbacks.Add(1)
		s.log.Warn("store batch failed, retrying its requests one by one", "requests", len(live), "error", err)
		for _, r := range live {
			r.finish(s.runAlone(r))
		}
		return
	}
	for _, r := range live {
		r.finish(r.err)
	}
}

// writerCtx is the context of the writer's own database work: one caller's
// cancellation must not abort a transaction that carries other callers'
// writes. busy_timeout bounds the waits.
var writerCtx = context.Background()

func (s *Store) runTogether(batch []*writeReq) error {
	tx, err := s.wdb.BeginTx(writerCtx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	w := &writeTx{tx: tx, bound: make(map[*sql.Stmt]*sql.Stmt, 4)}
	for _, r := range batch {
		r.err = nil
		if err := r.fn(writerCtx, w); err != nil {
			if rj, ok := errors.AsType[rejected](err); ok {
				r.err = rj.err
				continue
			}
			_ = tx.Rollback()
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		s.endFailedCommit()
		return fmt.Errorf("commit: %w", err)
	}
	s.stats.commits.Add(1)
	return nil
}

func (s *Store) runAlone(r *writeReq) error {
	tx, err := s.wdb.BeginTx(writerCtx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	w := &writeTx{tx: tx, bound: make(map[*sql.Stmt]*sql.Stmt, 2)}
	if err := r.fn(writerCtx, w); err != nil {
		_ = tx.Rollback()
		if rj, ok := errors.AsType[rejected](err); ok {
			return rj.err
		}
		return err
	}
	if err := tx.Commit(); err != nil {
		s.endFailedCommit()
		return fmt.Errorf("store: commit: %w", err)
	}
	s.stats.commits.Add(1)
	return nil
}

// endFailedCommit rolls back what a failed COMMIT may have left open: SQLite
// keeps the transaction after some commit errors (SQLITE_BUSY), while
// database/sql considers it finished, and the next BEGIN would fail.
func (s *Store) endFailedCommit() {
	_, _ = s.wdb.ExecContext(writerCtx, "ROLLBACK") // "no transaction is active" is fine
}
