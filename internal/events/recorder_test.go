package events

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/store"
)

// fakeStore is an Appender that assigns seqs, with an optional hook.
type fakeStore struct {
	mu     sync.Mutex
	seq    int64
	events []store.Event
	append func(ctx context.Context, evs []store.Event) error // optional
	calls  atomic.Int32
}

func (f *fakeStore) AppendEvents(ctx context.Context, evs ...store.Event) error {
	f.calls.Add(1)
	if f.append != nil {
		if err := f.append(ctx, evs); err != nil {
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range evs {
		f.seq++
		evs[i].Seq = f.seq
		f.events = append(f.events, evs[i])
	}
	return nil
}

func (f *fakeStore) stored() []store.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]store.Event(nil), f.events...)
}

type pokeCounter struct{ n atomic.Int32 }

func (p *pokeCounter) Poke() { p.n.Add(1) }

// runRecorder runs r until the returned stop is called (also at cleanup).
func runRecorder(t *testing.T, r *Recorder) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func TestRecorderWritesPublishesAndPokes(t *testing.T) {
	st := &fakeStore{}
	hub := NewHub(0)
	var pokes pokeCounter
	r := NewRecorder(RecorderConfig{}, st, hub, &pokes, nil)
	sub, cancel := hub.Subscribe(context.Background())
	defer cancel()
	runRecorder(t, r)

	type binding struct {
		User string `json:"user"`
	}
	b := binding{User: "1001"}
	r.Notify("registration.created", b)
	b.User = "changed" // Notify took a copy
	r.Notify("trunk.up", map[string]string{"trunk": "provider"})

	for i, want := range []struct{ typ, data string }{
		{"registration.created", `{"user":"1001"}`},
		{"trunk.up", `{"trunk":"provider"}`},
	} {
		select {
		case e := <-sub:
			if e.Type != want.typ || string(e.Data) != want.data || e.Seq != int64(i+1) || e.ID == "" {
				t.Errorf("published %+v, want %s %s with seq %d", e, want.typ, want.data, i+1)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("event %d not published", i)
		}
	}
	if got := st.stored(); len(got) != 2 || got[0].Type != "registration.created" {
		t.Errorf("stored %+v", got)
	}
	waitFor(t, "a poke", time.Second, func() bool { return pokes.n.Load() > 0 })
	if s := r.Stats(); s.Recorded != 2 || s.Dropped != 0 || s.Failed != 0 {
		t.Errorf("Stats = %+v", s)
	}
}

// TestNotifyNeverBlocks checks that Notify returns at once while the store
// is stuck, and that what does not fit in the queue is dropped and counted
// rather than waited for.
func TestNotifyNeverBlocks(t *testing.T) {
	release := make(chan struct{})
	st := &fakeStore{append: func(ctx context.Context, _ []store.Event) error {
		<-release
		return nil
	}}
	const queue = 10
	r := NewRecorder(RecorderConfig{QueueSize: queue}, st, nil, nil, nil)
	stop := runRecorder(t, r)

	r.Notify("call.started", 0)
	waitFor(t, "the writer to take the first event", time.Second, func() bool { return st.calls.Load() == 1 })
	// Notify from another goroutine, so that a Notify that blocks fails
	// the test instead of hanging it.
	took := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		for i := range 100 {
			r.Notify("call.ringing", i)
		}
		took <- time.Since(start)
	}()
	select {
	case d := <-took:
		if d > 50*time.Millisecond {
			t.Errorf("100 Notify calls took %v with the store stuck", d)
		}
	case <-time.After(5 * time.Second):
		close(release)
		go func() { // unblock Notify, so that the cleanup can stop Run
			for {
				select {
				case <-r.queue:
				case <-took:
					return
				}
			}
		}()
		t.Fatal("Notify blocked while the store is stuck")
	}
	if s := r.Stats(); s.Dropped != 100-queue {
		t.Errorf("Dropped = %d, want %d", s.Dropped, 100-queue)
	}
	close(release)
	stop()
	if s := r.Stats(); s.Recorded != 1+queue || s.Recorded+s.Dropped != 101 {
		t.Errorf("Stats = %+v, want %d recorded", s, 1+queue)
	}
}

func TestRecorderDrainsOnStop(t *testing.T) {
	st := &fakeStore{}
	r := NewRecorder(RecorderConfig{}, st, nil, nil, nil)
	// Queued before Run starts, written by it.
	for i := range 300 {
		r.Notify("call.ended", i)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
	got := st.stored()
	if len(got) != 300 {
		t.Fatalf("stored %d events after stop, want 300", len(got))
	}
	for i, e := range got {
		var n int
		if err := json.Unmarshal(e.Data, &n); err != nil || n != i {
			t.Fatalf("event %d has data %s", i, e.Data)
		}
	}
	if st.calls.Load() >= 300 {
		t.Errorf("%d AppendEvents calls for 300 events: want batches", st.calls.Load())
	}
	r.Notify("call.ended", "late")
	if s := r.Stats(); s.Dropped != 1 || s.Recorded != 300 {
		t.Errorf("Stats after a Notify past Run = %+v, want 1 dropped", s)
	}
	if err := r.Run(context.Background()); !errors.Is(err, ErrRecorderRunning) {
		t.Errorf("second Run = %v", err)
	}
}

func TestRecorderFailures(t *testing.T) {
	st := &fakeStore{append: func(context.Context, []store.Event) error { return store.ErrClosed }}
	hub := NewHub(0)
	sub, cancel := hub.Subscribe(context.Background())
	defer cancel()
	r := NewRecorder(RecorderConfig{}, st, hub, nil, nil)
	stop := runRecorder(t, r)
	r.Notify("call.started", make(chan int)) // not encodable
	r.Notify("call.started", 1)
	waitFor(t, "the failed write", 5*time.Second, func() bool { return r.Stats().Failed == 2 })
	stop()
	if st.calls.Load() != 1 {
		t.Errorf("%d AppendEvents calls, want 1 (ErrClosed is not retried)", st.calls.Load())
	}
	select {
	case e := <-sub:
		t.Errorf("an unwritten event was published: %+v", e)
	default:
	}
}

func TestCommitted(t *testing.T) {
	hub := NewHub(0)
	var pokes pokeCounter
	r := NewRecorder(RecorderConfig{}, &fakeStore{}, hub, &pokes, nil)
	sub, cancel := hub.Subscribe(context.Background())
	defer cancel()
	r.Committed(ev(7), ev(8))
	r.Committed()
	if a, b := <-sub, <-sub; a.Seq != 7 || b.Seq != 8 {
		t.Errorf("published %d, %d; want 7, 8", a.Seq, b.Seq)
	}
	if pokes.n.Load() != 1 {
		t.Errorf("%d pokes, want 1", pokes.n.Load())
	}
}
