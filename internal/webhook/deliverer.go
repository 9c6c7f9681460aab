package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard/switchboard/internal/store"
)

// Store is the outbox as the Deliverer uses it. *store.Store implements it.
type Store interface {
	// SetWebhooks tells the store which webhooks new events are queued for.
	SetWebhooks(targets []store.WebhookTarget) error
	// NextDeliveries returns the due head of a webhook's queue, in order.
	NextDeliveries(ctx context.Context, key string, now time.Time, limit int) ([]store.Delivery, error)
	// NextAttemptAt reports when the head of a webhook's queue is due.
	NextAttemptAt(ctx context.Context, key string) (next time.Time, ok bool, err error)
	MarkDelivered(ctx context.Context, key string, seq int64, attempts int, at time.Time) error
	MarkFailed(ctx context.Context, key string, seq int64, attempts int, nextAttempt time.Time, lastErr string) error
	MarkExpired(ctx context.Context, key string, seq int64, attempts int, lastErr string) error
}

// ErrRunning reports a second concurrent call of Run.
var ErrRunning = errors.New("webhook: deliverer already running")

const (
	// batchSize is how many due deliveries a worker reads at once.
	batchSize = 32
	// storeRetry is the wait after the store failed a worker's read or
	// write.
	storeRetry = time.Second
	// markTimeout bounds recording an attempt's outcome, which goes on
	// when the worker is stopping.
	markTimeout = 5 * time.Second
)

// Deliverer sends each webhook's queued events, one worker goroutine per
// webhook, so a slow or dead receiver delays only its own queue. Nothing on
// the call path waits for it: writers of events only call Poke.
type Deliverer struct {
	cfg    Config
	st     Store
	log    *slog.Logger
	client *http.Client
	tr     *http.Transport

	mu      sync.Mutex
	targets []Target           // the wanted set, for Run to apply
	workers map[string]*worker // by URL; owned by Run, read by Poke
	changed chan struct{}      // wakes Run to apply targets; capacity 1
	running atomic.Bool
}

// New returns a Deliverer for cfg.Webhooks and tells st about them (so call
// it before any event is written). A nil log discards log output.
func New(cfg Config, st Store, log *slog.Logger) (*Deliverer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 2 // one worker per URL; a spare for a changed one
	d := &Deliverer{
		cfg: cfg,
		st:  st,
		log: log.With("component", "webhook"),
		tr:  tr,
		client: &http.Client{
			Transport: tr,
			Timeout:   cfg.Timeout,
			// A redirect would turn the POST into a GET: a 3xx is a
			// failure, to be fixed in the configuration.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		changed: make(chan struct{}, 1),
	}
	if err := d.SetWebhooks(cfg.Webhooks); err != nil {
		return nil, err
	}
	return d, nil
}

// SetWebhooks replaces the set of webhooks, on configuration reload: the
// store queues new events for the new set at once, and the running
// Deliverer starts workers for added URLs, stops those of removed URLs (their
// pending deliveries stay in the store; see store.PruneEvents) and uses new
// secrets from the next request. Events queued before a webhook was added
// are not sent to it. It does not block on delivery.
func (d *Deliverer) SetWebhooks(targets []Target) error {
	if err := validateTargets(targets); err != nil {
		return err
	}
	targets = slices.Clone(targets)
	keys := make([]store.WebhookTarget, len(targets))
	for i, t := range targets {
		targets[i].Events = slices.Clone(t.Events)
		keys[i] = store.WebhookTarget{Key: t.URL, Events: targets[i].Events}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	// Under mu, so that concurrent calls reach the store and Run in the
	// same order.
	if err := d.st.SetWebhooks(keys); err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	d.targets = targets
	select {
	case d.changed <- struct{}{}:
	default:
	}
	return nil
}

// Poke tells every worker that events may have been queued. It never
// blocks.
func (d *Deliverer) Poke() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, w := range d.workers {
		w.wake()
	}
}

// Run delivers until ctx ends, then cancels the requests in flight (their
// deliveries stay pending) and returns nil once every worker has stopped.
func (d *Deliverer) Run(ctx context.Context) error {
	if !d.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer d.running.Store(false)
	var wg sync.WaitGroup
	defer func() {
		d.mu.Lock()
		ws := d.workers
		d.workers = nil
		d.mu.Unlock()
		for _, w := range ws {
			w.cancel()
		}
		wg.Wait()
		d.tr.CloseIdleConnections()
	}()
	for {
		d.apply(ctx, &wg)
		select {
		case <-ctx.Done():
			return nil
		case <-d.changed:
		}
	}
}

// apply makes the workers match d.targets.
func (d *Deliverer) apply(ctx context.Context, wg *sync.WaitGroup) {
	d.mu.Lock()
	if d.workers == nil {
		d.workers = make(map[string]*worker)
	}
	want := make(map[string]Target, len(d.targets))
	for _, t := range d.targets {
		want[t.URL] = t
	}
	var stopped []*worker
	for key, w := range d.workers {
		if _, ok := want[key]; !ok {
			delete(d.workers, key)
			stopped = append(stopped, w)
		}
	}
	d.mu.Unlock()
	// Wait for removed workers outside mu (Poke must not wait): a URL put
	// back at once must not get a second worker while the first runs.
	for _, w := range stopped {
		w.cancel()
		<-w.done
		w.log.Info("webhook removed")
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	for key, t := range want {
		if w, ok := d.workers[key]; ok {
			w.target.Store(&t)
			continue
		}
		w := d.newWorker(t)
		d.workers[key] = w
		wctx, cancel := context.WithCancel(ctx)
		w.cancel = cancel
		wg.Go(func() { w.run(wctx) })
	}
}

// backoff returns the wait after the given number of failed attempts:
// MinBackoff doubled per earlier failure, capped at MaxBackoff, times a
// random factor in [0.8, 1.2) so that receivers coming back are not hit by
// every sender at once.
func (d *Deliverer) backoff(attempts int) time.Duration {
	b := d.cfg.MinBackoff
	for i := 1; i < attempts && b < d.cfg.MaxBackoff; i++ {
		b *= 2
	}
	b = min(b, d.cfg.MaxBackoff)
	return time.Duration(float64(b) * (0.8 + 0.4*rand.Float64()))
}
