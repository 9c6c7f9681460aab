package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/switchboard/switchboard/internal/jsontime"
	"github.com/switchboard/switchboard/internal/store"
)

// Payload is the body of a delivery request, in the Standard Webhooks
// payload shape.
type Payload struct {
	Type      string          `json:"type"`      // the event type, such as "call.ended"
	Timestamp time.Time       `json:"timestamp"` // when the event happened (RFC 3339, to the millisecond)
	Data      json.RawMessage `json:"data"`      // the event's data
}

// MarshalJSON writes the timestamp with exactly three fractional digits
// (jsontime), so receivers can parse it with one fixed layout.
func (p Payload) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Type      string          `json:"type"`
		Timestamp jsontime.Millis `json:"timestamp"`
		Data      json.RawMessage `json:"data"`
	}{p.Type, jsontime.Millis(p.Timestamp), p.Data})
}

// worker delivers the queue of one webhook, in order.
type worker struct {
	d      *Deliverer
	key    string
	target atomic.Pointer[Target] // the secret may change on reload
	log    *slog.Logger
	poke   chan struct{} // capacity 1
	cancel context.CancelFunc
	done   chan struct{} // closed when run returns
}

func (d *Deliverer) newWorker(t Target) *worker {
	w := &worker{
		d:    d,
		key:  t.URL,
		log:  d.log.With("webhook", Label(t.URL)),
		poke: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
	w.target.Store(&t)
	return w
}

func (w *worker) wake() {
	select {
	case w.poke <- struct{}{}:
	default:
	}
}

// run drains the queue, then sleeps until poked, until the head's retry
// time or for the poll interval, whichever comes first.
func (w *worker) run(ctx context.Context) {
	defer close(w.done)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		wait := min(w.drain(ctx), w.d.cfg.PollInterval)
		if ctx.Err() != nil {
			return
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-w.poke:
		case <-timer.C:
		}
	}
}

// drain sends every due delivery, in order, and returns how long to wait
// before looking again.
func (w *worker) drain(ctx context.Context) time.Duration {
	for {
		ds, err := w.d.st.NextDeliveries(ctx, w.key, w.d.cfg.Now(), batchSize)
		if err != nil {
			if ctx.Err() == nil {
				w.log.Error("webhook queue unreadable", "error", err)
			}
			return storeRetry
		}
		if len(ds) == 0 {
			next, ok, err := w.d.st.NextAttemptAt(ctx, w.key)
			switch {
			case err != nil:
				if ctx.Err() == nil {
					w.log.Error("webhook queue unreadable", "error", err)
				}
				return storeRetry
			case !ok:
				return w.d.cfg.PollInterval
			}
			// At least a millisecond: never spin on a clock that does
			// not move.
			return max(next.Sub(w.d.cfg.Now()), time.Millisecond)
		}
		for _, dl := range ds {
			advanced, err := w.attempt(ctx, dl)
			if ctx.Err() != nil {
				return 0
			}
			if err != nil {
				w.log.Error("webhook delivery state not recorded", "event_id", dl.Event.ID, "error", err)
				return storeRetry
			}
			if !advanced {
				break // the head failed: it blocks the rest until its retry
			}
		}
	}
}

// attempt sends one delivery and records the outcome. advanced reports
// whether the delivery left the queue (delivered or expired); err is a
// failure to record it.
func (w *worker) attempt(ctx context.Context, dl store.Delivery) (advanced bool, err error) {
	ev := dl.Event
	sendErr := w.send(ctx, ev)
	if ctx.Err() != nil {
		// Stopping: an interrupted attempt does not count. If the
		// receiver got it, it gets it again after the restart.
		return false, nil
	}
	attempts := dl.Attempts + 1
	// Record the outcome even if ctx ends meanwhile: a delivered event
	// should not be sent again after a restart for want of a millisecond.
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), markTimeout)
	defer cancel()
	now := w.d.cfg.Now()
	// A due delivery is always tried, however late (after a long stop of
	// the server, say); it expires when an attempt fails at or after the
	// end of its retry period.
	deadline := ev.Time.Add(w.d.cfg.RetryPeriod)
	if sendErr == nil {
		w.log.Debug("webhook delivered", "event_id", ev.ID, "event_type", ev.Type, "attempts", attempts)
		return true, w.d.st.MarkDelivered(mctx, w.key, ev.Seq, attempts, now)
	}
	msg := sendErr.Error()
	if !now.Before(deadline) {
		w.log.Warn("webhook delivery expired", "event_id", ev.ID, "event_type", ev.Type, "attempts", attempts, "error", msg)
		return true, w.d.st.MarkExpired(mctx, w.key, ev.Seq, attempts, msg)
	}
	next := now.Add(w.d.backoff(attempts))
	if next.After(deadline) {
		next = deadline // the last attempt is at the end of the retry period
	}
	w.log.Warn("webhook delivery failed", "event_id", ev.ID, "event_type", ev.Type, "attempts", attempts,
		"retry_in", next.Sub(now).Round(time.Millisecond), "error", msg)
	return false, w.d.st.MarkFailed(mctx, w.key, ev.Seq, attempts, next, msg)
}

// maxErrorBody is how much of a failed response's body goes into the
// delivery's last error.
const maxErrorBody = 200

// send POSTs ev to the webhook, signed: nil means a 2xx response.
func (w *worker) send(ctx context.Context, ev store.Event) error {
	t := w.target.Load()
	body, err := json.Marshal(Payload{Type: ev.Type, Timestamp: ev.Time.UTC(), Data: ev.Data})
	if err != nil {
		return fmt.Errorf("encode payload: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build request: %w", hideURL(err, Label(t.URL)))
	}
	// The signature's timestamp is the attempt's, not the event's:
	// receivers reject old timestamps to defeat replays (the body carries
	// the event's time).
	ts := w.d.cfg.Now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set(HeaderID, ev.ID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set(HeaderSignature, Sign(t.Secret, ev.ID, ts, body))
	resp, err := w.d.client.Do(req)
	if err != nil {
		return hideURL(err, Label(t.URL))
	}
	defer resp.Body.Close()
	head, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	// Read a little more so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	msg := "HTTP " + resp.Status
	if s := strings.TrimSpace(strings.ToValidUTF8(string(head), "")); s != "" {
		msg += ": " + s
	}
	return statusError(msg)
}

// statusError is a non-2xx response.
type statusError string

func (e statusError) Error() string { return string(e) }
