package events

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard/switchboard/internal/store"
)

// Appender writes events to the outbox. *store.Store implements it.
type Appender interface {
	AppendEvents(ctx context.Context, events ...store.Event) error
}

// Poker is told that events were committed; *webhook.Deliverer implements
// it.
type Poker interface {
	Poke()
}

// DefaultQueueSize is the Recorder's queue length when RecorderConfig
// leaves it zero.
const DefaultQueueSize = 4096

const (
	// maxBatch caps how many queued events one AppendEvents call writes.
	maxBatch = 256
	// writeTimeout bounds one AppendEvents call, including the final ones
	// after Run's context has ended.
	writeTimeout = 10 * time.Second
	// writeTries is how often a batch is tried before it is given up.
	writeTries = 3
	// dropLogEvery rate-limits the log of dropped events.
	dropLogEvery = 10 * time.Second
)

// RecorderConfig configures a Recorder.
type RecorderConfig struct {
	// QueueSize is how many events may wait to be written; more are
	// dropped (and counted). Default 4096.
	QueueSize int `yaml:"queue_size"`
}

// RecorderStats counts a Recorder's events since it was made.
type RecorderStats struct {
	Recorded uint64 // written to the store
	Dropped  uint64 // not queued: the queue was full, or Run had ended
	Failed   uint64 // not encodable, or the store refused them
}

// Recorder turns Notify calls (events that go with no state change, or
// whose writer does not write them itself) into outbox events without
// blocking the caller: Notify encodes the event and queues it, and Run's
// goroutine writes the queue to the store in batches, then publishes the
// written events to the Hub and pokes the webhook deliverer.
//
// An event that goes with a state change should rather be written in the
// same transaction (store.ApplyBindingsWithEvents and the like) and handed
// to Committed: a queued event is lost if the process dies before Run
// writes it, or if the queue overflows.
type Recorder struct {
	st    Appender
	hub   *Hub  // may be nil
	poker Poker // may be nil
	log   *slog.Logger
	queue chan store.Event

	// mu orders Notify's enqueue against Run's final drain: Notify holds it
	// shared, Run takes it to set stopped, so an event is either drained or
	// counted as dropped, never silently left in the queue.
	mu      sync.RWMutex
	stopped bool
	running atomic.Bool

	recorded, dropped, failed atomic.Uint64
	lastDropLog               atomic.Int64 // unix nanoseconds
}

// ErrRecorderRunning reports a second call of Run.
var ErrRecorderRunning = errors.New("events: recorder already running")

// NewRecorder returns a Recorder that writes to st and then publishes to
// hub and pokes p; hub and p may be nil. A nil log discards log output.
func NewRecorder(cfg RecorderConfig, st Appender, hub *Hub, p Poker, log *slog.Logger) *Recorder {
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Recorder{
		st:    st,
		hub:   hub,
		poker: p,
		log:   log.With("component", "events"),
		queue: make(chan store.Event, cfg.QueueSize),
	}
}

// Notify records an event of type eventType with data. It encodes data as
// JSON at once, on the caller's goroutine (so the caller may change it
// afterwards), and never blocks: when the queue is full the event is
// dropped, logged and counted. It implements the signalling plane's
// notifier.
func (r *Recorder) Notify(eventType string, data any) {
	ev, err := store.NewEvent(eventType, data)
	if err != nil {
		r.failed.Add(1)
		r.log.Error("event not recorded", "event_type", eventType, "error", err)
		return
	}
	r.mu.RLock()
	queued := false
	if !r.stopped {
		select {
		case r.queue <- ev:
			queued = true
		default:
		}
	}
	r.mu.RUnlock()
	if !queued {
		r.drop(ev)
	}
}

func (r *Recorder) drop(ev store.Event) {
	n := r.dropped.Add(1)
	now := time.Now().UnixNano()
	last := r.lastDropLog.Load()
	if now-last >= int64(dropLogEvery) && r.lastDropLog.CompareAndSwap(last, now) {
		r.log.Warn("events dropped: recorder queue full or stopped", "event_id", ev.ID, "event_type", ev.Type, "dropped_total", n)
	}
}

// Committed publishes events that their writer has committed to the outbox
// itself (in the transaction of a state change) to the Hub, and pokes the
// deliverer. Call it after the commit, with the events whose Seq the store
// set.
func (r *Recorder) Committed(evs ...store.Event) {
	if len(evs) == 0 {
		return
	}
	if r.hub != nil {
		r.hub.Publish(evs...)
	}
	if r.poker != nil {
		r.poker.Poke()
	}
}

// Stats returns the Recorder's counters.
func (r *Recorder) Stats() RecorderStats {
	return RecorderStats{Recorded: r.recorded.Load(), Dropped: r.dropped.Load(), Failed: r.failed.Load()}
}

// Run writes queued events until ctx ends. Then it stops accepting events
// (later ones are dropped and counted), writes those still queued, and
// returns nil. Stop it before closing the store.
func (r *Recorder) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return ErrRecorderRunning
	}
	batch := make([]store.Event, 0, maxBatch)
	for {
		select {
		case <-ctx.Done():
			r.mu.Lock()
			r.stopped = true
			r.mu.Unlock()
			// Nothing can be queued any more: write what is.
			for len(r.queue) > 0 {
				batch = r.fill(batch[:0], <-r.queue)
				r.write(ctx, batch)
			}
			return nil
		case ev := <-r.queue:
			batch = r.fill(batch[:0], ev)
			r.write(ctx, batch)
		}
	}
}

// fill appends first and whatever else is queued, up to maxBatch.
func (r *Recorder) fill(batch []store.Event, first store.Event) []store.Event {
	batch = append(batch, first)
	for len(batch) < maxBatch {
		select {
		case ev := <-r.queue:
			batch = append(batch, ev)
		default:
			return batch
		}
	}
	return batch
}

// write appends batch to the store in one transaction, then publishes it.
// It keeps going after ctx ends (within writeTimeout), so that shutting down
// writes what was queued.
func (r *Recorder) write(ctx context.Context, batch []store.Event) {
	var err error
	for try := range writeTries {
		if try > 0 {
			// Retry a failure that may be passing (a busy database),
			// but not for long: the queue is filling meanwhile.
			time.Sleep(time.Duration(try) * 100 * time.Millisecond)
		}
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
		err = r.st.AppendEvents(wctx, batch...)
		cancel()
		if err == nil || errors.Is(err, store.ErrClosed) || errors.Is(err, store.ErrInvalid) {
			break
		}
	}
	if err != nil {
		r.failed.Add(uint64(len(batch)))
		r.log.Error("events not recorded", "events", len(batch), "first_event_id", batch[0].ID, "error", err)
		return
	}
	r.recorded.Add(uint64(len(batch)))
	r.Committed(batch...)
	clear(batch) // drop references to the data
}
