package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestBindingsRoundTrip(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	mustCreateUser(t, s, "1001")
	mustCreateUser(t, s, "1002")

	b1, b2, b3 := testBinding("1001", 1), testBinding("1001", 2), testBinding("1002", 3)
	b3.Instance, b3.RegID, b3.Q = "", 0, 0 // absent optional fields
	if err := s.ApplyBindings(ctx, []Binding{b1, b2, b3}, nil); err != nil {
		t.Fatal(err)
	}
	got := bindingMap(t, s)
	for _, b := range []Binding{b1, b2, b3} {
		if !reflect.DeepEqual(got[b.ID], b.stored()) {
			t.Errorf("binding %s:\n got  %+v\n want %+v", b.ID, got[b.ID], b.stored())
		}
	}

	// Update every field of b1, delete b2, in one call.
	u := testBinding("1002", 99)
	u.ID = b1.ID
	if err := s.ApplyBindings(ctx, []Binding{u}, []string{b2.ID, "no-such-id"}); err != nil {
		t.Fatal(err)
	}
	got = bindingMap(t, s)
	if len(got) != 2 {
		t.Fatalf("%d bindings after update and delete, want 2: %v", len(got), got)
	}
	if !reflect.DeepEqual(got[u.ID], u.stored()) {
		t.Errorf("updated binding:\n got  %+v\n want %+v", got[u.ID], u.stored())
	}
	if _, ok := got[b2.ID]; ok {
		t.Error("deleted binding still there")
	}

	ub, err := s.UserBindings(ctx, "1002")
	if err != nil {
		t.Fatal(err)
	}
	if len(ub) != 2 || ub[0].ID != b1.ID || ub[1].ID != b3.ID {
		t.Errorf("UserBindings(1002) = %v, want %s and %s", ub, b1.ID, b3.ID)
	}

	// A zero UpdatedAt is the store's clock.
	s.now = func() time.Time { return baseTime.Add(time.Minute) }
	z := testBinding("1001", 4)
	z.UpdatedAt = time.Time{}
	if err := s.ApplyBindings(ctx, []Binding{z}, nil); err != nil {
		t.Fatal(err)
	}
	if got := bindingMap(t, s)[z.ID].UpdatedAt; !got.Equal(storedTime(baseTime.Add(time.Minute))) {
		t.Errorf("zero UpdatedAt stored as %v", got)
	}
}

func TestApplyBindingsIsAtomic(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	mustCreateUser(t, s, "1001")

	good, ghost := testBinding("1001", 1), testBinding("ghost", 2) // ghost's user does not exist
	err := s.ApplyBindings(ctx, []Binding{good, ghost}, nil)
	if err == nil {
		t.Fatal("binding for a missing user accepted (foreign keys off?)")
	}
	if n := len(bindingMap(t, s)); n != 0 {
		t.Errorf("%d bindings after a failed ApplyBindings, want 0 (half applied)", n)
	}

	for name, b := range map[string]Binding{
		"no ID":      {User: "1001", Contact: "c", Expires: baseTime},
		"no user":    {ID: "x", Contact: "c", Expires: baseTime},
		"no contact": {ID: "x", User: "1001", Expires: baseTime},
		"no expiry":  {ID: "x", User: "1001", Contact: "c"},
	} {
		if err := s.ApplyBindings(ctx, []Binding{b}, nil); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: ApplyBindings = %v, want ErrInvalid", name, err)
		}
	}
	if err := s.ApplyBindings(ctx, nil, []string{""}); !errors.Is(err, ErrInvalid) {
		t.Errorf("deleting an empty ID = %v, want ErrInvalid", err)
	}
}

func TestDeleteBindingsExpiredBefore(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	mustCreateUser(t, s, "1001")
	var put []Binding
	for i := range 10 {
		b := testBinding("1001", i)
		b.Expires = baseTime.Add(time.Duration(i) * time.Second)
		put = append(put, b)
	}
	if err := s.ApplyBindings(ctx, put, nil); err != nil {
		t.Fatal(err)
	}
	n, err := s.DeleteBindingsExpiredBefore(ctx, baseTime.Add(4*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Errorf("deleted %d, want 4", n)
	}
	got := bindingMap(t, s)
	for i, b := range put {
		if _, ok := got[b.ID]; ok != (i >= 4) {
			t.Errorf("binding expiring at +%ds present = %v", i, ok)
		}
	}
}

// TestGroupCommit checks that concurrent ApplyBindings calls share
// transactions and that every acknowledged binding is stored.
func TestGroupCommit(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	const users, goroutines, requests = 8, 64, 2000
	for u := range users {
		mustCreateUser(t, s, fmt.Sprint(1000+u))
	}

	before := s.WriteStats()
	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= requests {
					return
				}
				if err := s.ApplyBindings(ctx, []Binding{testBinding(fmt.Sprint(1000+i%users), i)}, nil); err != nil {
					failed.Add(1)
					t.Errorf("ApplyBindings %d: %v", i, err)
				}
			}
		})
	}
	wg.Wait()
	after := s.WriteStats()
	if failed.Load() > 0 {
		t.Fatalf("%d requests failed", failed.Load())
	}

	got := bindingMap(t, s)
	if len(got) != requests {
		t.Fatalf("%d bindings stored, want %d", len(got), requests)
	}
	for i := range requests {
		b := testBinding(fmt.Sprint(1000+i%users), i)
		if !reflect.DeepEqual(got[b.ID], b.stored()) {
			t.Fatalf("binding %s = %+v, want %+v", b.ID, got[b.ID], b.stored())
		}
	}

	reqs, commits := after.Requests-before.Requests, after.Commits-before.Commits
	t.Logf("%d requests in %d batches, %d commits, largest batch %d",
		reqs, after.Batches-before.Batches, commits, after.MaxBatch)
	if reqs != requests {
		t.Errorf("writer saw %d requests, want %d", reqs, requests)
	}
	if commits >= requests || after.MaxBatch < 2 {
		t.Errorf("%d commits for %d requests (largest batch %d): no group commit", commits, requests, after.MaxBatch)
	}
	if after.Fallbacks != before.Fallbacks {
		t.Errorf("%d batches fell back to one-by-one", after.Fallbacks-before.Fallbacks)
	}
}

// blockWriter occupies the writer goroutine until the returned function is
// called, so that requests queue up and form one batch.
func blockWriter(t *testing.T, s *Store) (release func()) {
	t.Helper()
	started, unblock := make(chan struct{}), make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- s.write(context.Background(), func(context.Context, *writeTx) error {
			close(started)
			<-unblock
			return nil
		})
	}()
	<-started
	return func() {
		close(unblock)
		if err := <-errc; err != nil {
			t.Errorf("blocking write: %v", err)
		}
	}
}

// waitQueued waits until n requests wait in the writer's queue.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(s.reqs) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests queued, want %d", len(s.reqs), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestBatchFallback checks that a failing request in a batch fails alone:
// the batch is retried one request at a time.
func TestBatchFallback(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	mustCreateUser(t, s, "1001")

	good1, good2, bad := testBinding("1001", 1), testBinding("1001", 2), testBinding("ghost", 3)
	release := blockWriter(t, s)
	before := s.WriteStats()
	results := make(map[string]chan error)
	for _, b := range []Binding{good1, bad, good2} {
		errc := make(chan error, 1)
		results[b.ID] = errc
		go func() { errc <- s.ApplyBindings(ctx, []Binding{b}, nil) }()
	}
	waitQueued(t, s, 3)
	release()

	if err := <-results[good1.ID]; err != nil {
		t.Errorf("good request 1 failed with the bad one: %v", err)
	}
	if err := <-results[good2.ID]; err != nil {
		t.Errorf("good request 2 failed with the bad one: %v", err)
	}
	if err := <-results[bad.ID]; err == nil {
		t.Error("bad request succeeded")
	}
	after := s.WriteStats()
	if after.Fallbacks-before.Fallbacks != 1 || after.MaxBatch < 3 {
		t.Errorf("stats %+v after %+v: want one batch of 3 that fell back", after, before)
	}
	got := bindingMap(t, s)
	if len(got) != 2 || got[good1.ID].ID == "" || got[good2.ID].ID == "" {
		t.Errorf("stored %v, want the two good bindings", got)
	}
}

// TestRejectedRequestKeepsBatch checks that a request failing with a
// sentinel (ErrExists) does not cost its batch a fallback.
func TestRejectedRequestKeepsBatch(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	mustCreateUser(t, s, "1001")

	release := blockWriter(t, s)
	before := s.WriteStats()
	dup, put := make(chan error, 1), make(chan error, 1)
	go func() { dup <- s.CreateUser(ctx, User{Name: "1001"}) }()
	go func() { put <- s.ApplyBindings(ctx, []Binding{testBinding("1001", 1)}, nil) }()
	waitQueued(t, s, 2)
	release()

	if err := <-dup; !errors.Is(err, ErrExists) {
		t.Errorf("duplicate CreateUser in a batch = %v, want ErrExists", err)
	}
	if err := <-put; err != nil {
		t.Errorf("ApplyBindings batched with a rejected request = %v", err)
	}
	after := s.WriteStats()
	if after.Fallbacks != before.Fallbacks || after.Commits-before.Commits != 2 { // blocker + batch
		t.Errorf("stats %+v after %+v: want one commit for the batch and no fallback", after, before)
	}
	if len(bindingMap(t, s)) != 1 {
		t.Error("binding not stored")
	}
}

func TestApplyBindingsContext(t *testing.T) {
	s := openTest(t)
	mustCreateUser(t, s, "1001")

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.ApplyBindings(cancelled, []Binding{testBinding("1001", 1)}, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("ApplyBindings with a cancelled context = %v", err)
	}

	// A request whose context ends while it waits in the queue returns at
	// once and is then dropped, not applied.
	release := blockWriter(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.ApplyBindings(ctx, []Binding{testBinding("1001", 2)}, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("ApplyBindings stuck behind a busy writer = %v, want DeadlineExceeded", err)
	}
	release()
	if n := len(bindingMap(t, s)); n != 0 {
		t.Errorf("%d bindings stored from abandoned requests, want 0", n)
	}
}

// TestCloseDuringWrites checks that Close with writes in flight neither
// hangs nor loses an acknowledged write: each call returns nil (and its
// binding is stored) or ErrClosed.
func TestCloseDuringWrites(t *testing.T) {
	ctx := context.Background()
	path := t.TempDir() + "/switchboard.db"
	s, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustCreateUser(t, s, "1001")

	var (
		mu    sync.Mutex
		acked []Binding
		other []error
		wg    sync.WaitGroup
		next  atomic.Int64
		some  = make(chan struct{})
		once  sync.Once
	)
	for range 32 {
		wg.Go(func() {
			for {
				b := testBinding("1001", int(next.Add(1)))
				err := s.ApplyBindings(ctx, []Binding{b}, nil)
				mu.Lock()
				switch {
				case err == nil:
					acked = append(acked, b)
					if len(acked) == 100 {
						once.Do(func() { close(some) })
					}
				case errors.Is(err, ErrClosed):
					mu.Unlock()
					return
				default:
					other = append(other, err)
				}
				mu.Unlock()
			}
		})
	}
	<-some
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("ApplyBindings calls hang after Close")
	}
	if len(other) > 0 {
		t.Fatalf("unexpected errors: %v", other)
	}

	s, err = Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := bindingMap(t, s)
	for _, b := range acked {
		if _, ok := got[b.ID]; !ok {
			t.Fatalf("acknowledged binding %s lost by Close", b.ID)
		}
	}
	t.Logf("%d writes acknowledged before Close, %d stored", len(acked), len(got))
}

// ApplyBindingsThen returns before the write is committed and reports the
// result once: the binding and its event are stored when then gets nil,
// requests queued together share a commit, a failing one fails alone, and a
// closed store answers at once.
func TestApplyBindingsThen(t *testing.T) {
	s := openTest(t)
	mustCreateUser(t, s, "1001")
	ev, err := NewEvent("registration.created", map[string]string{"user": "1001"})
	if err != nil {
		t.Fatal(err)
	}
	release := blockWriter(t, s)
	before := s.WriteStats()
	type result struct {
		id  string
		err error
	}
	results := make(chan result, 3)
	good1, bad, good2 := testBinding("1001", 1), testBinding("ghost", 2), testBinding("1001", 3)
	events := []Event{ev}
	s.ApplyBindingsThen([]Binding{good1}, nil, events, func(err error) { results <- result{good1.ID, err} })
	s.ApplyBindingsThen([]Binding{bad}, nil, nil, func(err error) { results <- result{bad.ID, err} })
	s.ApplyBindingsThen([]Binding{good2}, nil, nil, func(err error) { results <- result{good2.ID, err} })
	select {
	case r := <-results:
		t.Fatalf("%s answered before the writer ran: %v", r.id, r.err)
	default:
	}
	waitQueued(t, s, 3)
	release()
	got := map[string]error{}
	for range 3 {
		select {
		case r := <-results:
			if _, dup := got[r.id]; dup {
				t.Fatalf("%s answered twice", r.id)
			}
			got[r.id] = r.err
		case <-time.After(10 * time.Second):
			t.Fatalf("answers after 10 s: %v", got)
		}
	}
	if got[good1.ID] != nil || got[good2.ID] != nil || got[bad.ID] == nil {
		t.Fatalf("results %v: want the ghost user's binding alone to fail", got)
	}
	if events[0].Seq == 0 {
		t.Error("the event's Seq is not set after its write")
	}
	stored := bindingMap(t, s)
	if len(stored) != 2 || !reflect.DeepEqual(stored[good1.ID], good1.stored()) || !reflect.DeepEqual(stored[good2.ID], good2.stored()) {
		t.Fatalf("stored %+v", stored)
	}
	if after := s.WriteStats(); after.Batches-before.Batches != 1 {
		t.Errorf("%d batches for three queued requests, want 1", after.Batches-before.Batches)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	called := false
	s.ApplyBindingsThen([]Binding{testBinding("1001", 4)}, nil, nil, func(err error) {
		called = true
		if !errors.Is(err, ErrClosed) {
			t.Errorf("closed store: %v, want ErrClosed", err)
		}
	})
	if !called {
		t.Error("a closed store did not answer at once")
	}
}
