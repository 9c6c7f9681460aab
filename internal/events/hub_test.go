package events

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/store"
)

func ev(i int) store.Event {
	return store.Event{Seq: int64(i), ID: fmt.Sprintf("evt_%d", i), Type: "call.started"}
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestHubDeliversInOrder(t *testing.T) {
	h := NewHub(16)
	a, cancelA := h.Subscribe(context.Background())
	defer cancelA()
	b, cancelB := h.Subscribe(context.Background())
	defer cancelB()
	h.Publish(ev(1), ev(2))
	h.Publish()
	h.Publish(ev(3))
	for name, ch := range map[string]<-chan store.Event{"a": a, "b": b} {
		for want := 1; want <= 3; want++ {
			select {
			case e := <-ch:
				if e.Seq != int64(want) {
					t.Fatalf("%s got seq %d, want %d", name, e.Seq, want)
				}
			default:
				t.Fatalf("%s: event %d missing", name, want)
			}
		}
	}
}

func TestHubDropsStuckSubscriber(t *testing.T) {
	const buffer = 8
	h := NewHub(buffer)
	// No deferred cancel: if Publish blocks while holding the hub, a
	// cancel would block too and hang the test instead of failing it.
	stuck, cancelStuck := h.Subscribe(context.Background())
	live, cancelLive := h.Subscribe(context.Background())

	// Publish from another goroutine, so that a Publish that blocks
	// fails the test instead of hanging it.
	const n = 100
	published := make(chan struct{})
	got := make(chan []int64, 1)
	go func() {
		defer close(published)
		var seqs []int64
		for i := range n {
			h.Publish(ev(i))
			// The live subscriber keeps up.
			if e, ok := <-live; ok {
				seqs = append(seqs, e.Seq)
			}
		}
		got <- seqs
	}()
	select {
	case <-published:
	case <-time.After(5 * time.Second):
		t.Fatal("Publish blocked on a subscriber that does not read")
	}
	if seqs := <-got; len(seqs) != n {
		t.Errorf("live subscriber got %d events, want %d", len(seqs), n)
	}
	// The stuck one kept its buffer, then was closed.
	var drained int
	for range stuck {
		drained++
	}
	if drained != buffer {
		t.Errorf("stuck subscriber had %d events buffered, want %d", drained, buffer)
	}
	if h.Dropped() != 1 || h.Subscribers() != 1 {
		t.Errorf("Dropped = %d, Subscribers = %d; want 1 and 1", h.Dropped(), h.Subscribers())
	}
	cancelStuck() // after a drop: no panic, no effect on others
	h.Publish(ev(n))
	if e := <-live; e.Seq != n {
		t.Errorf("live subscriber got %d after the drop, want %d", e.Seq, n)
	}
	cancelLive()
}

func TestHubUnsubscribe(t *testing.T) {
	h := NewHub(0)
	ch, cancel := h.Subscribe(context.Background())
	cancel()
	cancel() // idempotent
	if _, ok := <-ch; ok {
		t.Error("channel open after cancel")
	}
	if h.Subscribers() != 0 {
		t.Errorf("Subscribers = %d after cancel", h.Subscribers())
	}

	ctx, stop := context.WithCancel(context.Background())
	ch, cancel = h.Subscribe(ctx)
	defer cancel()
	stop()
	waitFor(t, "the subscription to end with its context", time.Second, func() bool { return h.Subscribers() == 0 })
	if _, ok := <-ch; ok {
		t.Error("channel open after its context ended")
	}
	h.Publish(ev(1)) // nobody left: fine
}
