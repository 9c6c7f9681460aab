package events

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/switchboard/switchboard/internal/store"
)

// DefaultHubBuffer is the per-subscriber buffer of a Hub made with a
// non-positive size.
const DefaultHubBuffer = 256

// Hub fans events out to subscribers in memory. It starts no goroutine.
// Publish never blocks: a subscriber that falls a whole buffer behind is
// dropped (its channel is closed), and catches up from the store (see
// store.Events) when it subscribes again.
type Hub struct {
	buffer  int
	mu      sync.Mutex
	subs    map[*subscription]struct{}
	dropped atomic.Uint64
}

type subscription struct {
	ch chan store.Event
}

// NewHub returns a Hub that buffers up to buffer events per subscriber
// (DefaultHubBuffer if buffer <= 0).
func NewHub(buffer int) *Hub {
	if buffer <= 0 {
		buffer = DefaultHubBuffer
	}
	return &Hub{buffer: buffer, subs: make(map[*subscription]struct{})}
}

// Publish sends evs, in order, to every subscriber. A subscriber whose
// buffer is full is dropped: it gets no more events and its channel is
// closed.
func (h *Hub) Publish(evs ...store.Event) {
	if len(evs) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		for _, e := range evs {
			select {
			case s.ch <- e:
				continue
			default:
			}
			h.remove(s)
			h.dropped.Add(1)
			break
		}
	}
}

// remove closes s's channel; h.mu is held.
func (h *Hub) remove(s *subscription) {
	if _, ok := h.subs[s]; ok {
		delete(h.subs, s)
		close(s.ch)
	}
}

// Subscribe returns a channel of the events published from now on, and a
// function that ends the subscription and closes the channel. The
// subscription also ends when ctx does. A closed channel before either
// means the subscriber was too slow and was dropped. cancel is idempotent.
func (h *Hub) Subscribe(ctx context.Context) (<-chan store.Event, func()) {
	s := &subscription{ch: make(chan store.Event, h.buffer)}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	end := func() {
		h.mu.Lock()
		h.remove(s)
		h.mu.Unlock()
	}
	stop := context.AfterFunc(ctx, end)
	var once sync.Once
	cancel := func() {
		once.Do(func() {
			stop()
			end()
		})
	}
	return s.ch, cancel
}

// Subscribers returns the number of current subscribers.
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// Dropped returns how many subscribers were dropped for being too slow.
func (h *Hub) Dropped() uint64 { return h.dropped.Load() }
