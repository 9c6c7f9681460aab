package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/events"
	"github.com/switchboard/switchboard/internal/store"
	"github.com/switchboard/switchboard/internal/webhook"
)

func TestDeliversInOrderSigned(t *testing.T) {
	st, _ := tempStore(t)
	rc := newReceiver(t, nil)
	d, _ := startDeliverer(t, fastConfig(webhook.Target{URL: rc.URL(), Secret: testSecret}), st)

	evs := appendEvents(t, st, "call.started", 20)
	d.Poke()
	waitFor(t, "20 deliveries", 10*time.Second, func() bool { return len(rc.accepted()) >= 20 })
	if got := rc.accepted(); !slices.Equal(got, ids(evs)) {
		t.Fatalf("received %q\nwant %q (seq order)", got, ids(evs))
	}
	rc.mu.Lock()
	first := rc.got[0]
	rc.mu.Unlock()
	// The body is the Standard Webhooks payload of the event.
	want := fmt.Sprintf(`{"type":"call.started","timestamp":%q,"data":{"n":0}}`, evs[0].Time.UTC().Format("2006-01-02T15:04:05.000Z"))
	if string(first.Body) != want {
		t.Errorf("body = %s\nwant %s", first.Body, want)
	}
	if !first.Payload.Timestamp.Equal(evs[0].Time) {
		t.Errorf("payload timestamp %v, want the event time %v", first.Payload.Timestamp, evs[0].Time)
	}
	// The signature timestamp is the attempt's: recent.
	sec, err := strconv.ParseInt(first.Header.Get("webhook-timestamp"), 10, 64)
	if err != nil || time.Since(time.Unix(sec, 0)) > time.Minute {
		t.Errorf("webhook-timestamp %q", first.Header.Get("webhook-timestamp"))
	}
	waitFor(t, "the deliveries to be recorded", 5*time.Second, func() bool {
		return statsFor(t, st, rc.URL()).Delivered == 20
	})
	if s := statsFor(t, st, rc.URL()); s.Pending != 0 || s.Expired != 0 {
		t.Errorf("stats = %+v", s)
	}
	for _, dl := range deliveriesOf(t, st, rc.URL()) {
		if dl.State != store.DeliveryDelivered || dl.Attempts != 1 || dl.DeliveredAt.IsZero() {
			t.Errorf("delivery %+v", dl)
		}
	}
}

// TestReceiverDownThenUp: the receiver drops connections, then answers 503,
// then recovers. Every event arrives, once accepted, in order; the failures
// are visible in the stats meanwhile and the attempts are recorded.
func TestReceiverDownThenUp(t *testing.T) {
	st, _ := tempStore(t)
	var mu sync.Mutex
	failing := true
	rc := newReceiver(t, func(n int, _ *http.Request, _ string) int {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case !failing:
			return http.StatusOK
		case n <= 3:
			return 0 // connection dropped
		default:
			return http.StatusServiceUnavailable
		}
	})
	cfg := fastConfig(webhook.Target{URL: rc.URL(), Secret: testSecret})
	d, _ := startDeliverer(t, cfg, st)
	evs := appendEvents(t, st, "call.ringing", 10)
	d.Poke()

	waitFor(t, "several failed attempts", 10*time.Second, func() bool { return rc.requestCount() >= 8 })
	s := statsFor(t, st, rc.URL())
	if s.Pending != 10 || s.HeadSeq != evs[0].Seq || s.HeadAttempts < 4 || !strings.Contains(s.LastError, "503") {
		t.Errorf("stats while failing = %+v, want 10 pending, head attempts >= 4 and a 503", s)
	}
	if got := rc.accepted(); len(got) != 0 {
		t.Fatalf("accepted %v while failing", got)
	}
	// Only the head was tried: the rest wait for it.
	if dls := deliveriesOf(t, st, rc.URL()); dls[1].Attempts != 0 {
		t.Errorf("second delivery tried %d times while the head fails", dls[1].Attempts)
	}

	mu.Lock()
	failing = false
	mu.Unlock()
	waitFor(t, "every event", 10*time.Second, func() bool { return len(rc.accepted()) >= 10 })
	if got := rc.accepted(); !slices.Equal(got, ids(evs)) {
		t.Fatalf("received %q\nwant %q", got, ids(evs))
	}
	waitFor(t, "the deliveries to be recorded", 5*time.Second, func() bool {
		return statsFor(t, st, rc.URL()).Delivered == 10
	})
	dls := deliveriesOf(t, st, rc.URL())
	if dls[0].Attempts < 5 || !strings.Contains(dls[0].LastError, "503") {
		t.Errorf("head delivery = %+v, want its failed attempts and last error kept", dls[0])
	}
	for _, dl := range dls[1:] {
		if dl.Attempts != 1 {
			t.Errorf("delivery %d took %d attempts, want 1", dl.Event.Seq, dl.Attempts)
		}
	}
}

// TestRestartDelivers: events queued (and failing) under one process are
// delivered by the next one, from the store alone.
func TestRestartDelivers(t *testing.T) {
	path := t.TempDir() + "/switchboard.db"
	ctx := context.Background()
	st, err := store.Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	up := false
	rc := newReceiver(t, func(int, *http.Request, string) int {
		mu.Lock()
		defer mu.Unlock()
		if up {
			return http.StatusOK
		}
		return http.StatusInternalServerError
	})
	target := webhook.Target{URL: rc.URL(), Secret: testSecret}
	_, stop := startDeliverer(t, fastConfig(target), st)
	evs := appendEvents(t, st, "call.ended", 15)
	waitFor(t, "failed attempts", 10*time.Second, func() bool { return statsFor(t, st, rc.URL()).HeadAttempts >= 2 })
	stop()
	attempts := statsFor(t, st, rc.URL()).HeadAttempts
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	up = true
	mu.Unlock()
	st = openStore(t, path)
	startDeliverer(t, fastConfig(target), st)
	waitFor(t, "every event after the restart", 10*time.Second, func() bool { return len(rc.accepted()) >= 15 })
	if got := rc.accepted(); !slices.Equal(got, ids(evs)) {
		t.Fatalf("received %q\nwant %q", got, ids(evs))
	}
	waitFor(t, "the deliveries to be recorded", 5*time.Second, func() bool {
		return statsFor(t, st, rc.URL()).Delivered == 15
	})
	if head := deliveriesOf(t, st, rc.URL())[0]; head.Attempts != attempts+1 {
		t.Errorf("head attempts = %d, want the %d before the restart plus 1", head.Attempts, attempts)
	}
}

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestExpiry: a delivery that still fails at the end of the retry period
// expires with its attempts and last error, and unblocks the next one.
func TestExpiry(t *testing.T) {
	st, _ := tempStore(t)
	evs := make([]store.Event, 2)
	for i := range evs {
		e, err := store.NewEvent("call.ended", i)
		if err != nil {
			t.Fatal(err)
		}
		evs[i] = e
	}
	clock := &fakeClock{now: evs[0].Time}
	rc := newReceiver(t, func(_ int, _ *http.Request, id string) int {
		if id == evs[0].ID {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	rc.tolerance = 0 // timestamps come from the fake clock
	cfg := webhook.Config{
		Webhooks:    []webhook.Target{{URL: rc.URL(), Secret: testSecret}},
		RetryPeriod: time.Hour,
		MinBackoff:  time.Minute,
		MaxBackoff:  time.Minute,
		Now:         clock.Now,
	}
	d, _ := startDeliverer(t, cfg, st)
	if err := st.AppendEvents(context.Background(), evs...); err != nil {
		t.Fatal(err)
	}
	d.Poke()
	waitFor(t, "the first attempt", 5*time.Second, func() bool { return statsFor(t, st, rc.URL()).HeadAttempts == 1 })
	s := statsFor(t, st, rc.URL())
	if next := s.NextAttemptAt.Sub(clock.Now()); next < 48*time.Second || next > 72*time.Second {
		t.Errorf("next attempt in %v, want a minute ± 20%%", next)
	}
	// Within the period it is retried; the next event waits.
	clock.Add(30 * time.Minute)
	d.Poke()
	waitFor(t, "the second attempt", 5*time.Second, func() bool { return statsFor(t, st, rc.URL()).HeadAttempts == 2 })
	if got := rc.accepted(); len(got) != 0 {
		t.Fatalf("delivered %v behind a failing head", got)
	}
	// Past the period: one more attempt fails and the head expires; the
	// next event goes.
	requests := rc.requestCount()
	clock.Add(time.Hour)
	d.Poke()
	waitFor(t, "the second event", 5*time.Second, func() bool { return len(rc.accepted()) == 1 })
	if got := rc.accepted(); got[0] != evs[1].ID {
		t.Errorf("delivered %v, want %s", got, evs[1].ID)
	}
	if n := rc.requestCount(); n != requests+2 {
		t.Errorf("%d requests after the period ended, want 2 (the head's last, the second event)", n-requests)
	}
	waitFor(t, "the outcome to be recorded", 5*time.Second, func() bool { return statsFor(t, st, rc.URL()).Delivered == 1 })
	dls := deliveriesOf(t, st, rc.URL())
	if dls[0].State != store.DeliveryExpired || dls[0].Attempts != 3 || !strings.Contains(dls[0].LastError, "500") {
		t.Errorf("head = %+v, want expired after 3 attempts with the 500", dls[0])
	}
	if s := statsFor(t, st, rc.URL()); s.Expired != 1 || s.Pending != 0 {
		t.Errorf("stats = %+v", s)
	}
}

// TestExpiryAtDeadline: the last retry is scheduled at the end of the
// period, not past it, and a failure then expires the delivery.
func TestExpiryAtDeadline(t *testing.T) {
	st, _ := tempStore(t)
	evs := appendEventsLater(t)
	clock := &fakeClock{now: evs[0].Time.Add(59 * time.Minute)}
	rc := newReceiver(t, func(int, *http.Request, string) int { return http.StatusBadGateway })
	rc.tolerance = 0
	cfg := webhook.Config{
		Webhooks:    []webhook.Target{{URL: rc.URL(), Secret: testSecret}},
		RetryPeriod: time.Hour,
		MinBackoff:  10 * time.Minute,
		MaxBackoff:  10 * time.Minute,
		Now:         clock.Now,
	}
	d, _ := startDeliverer(t, cfg, st)
	if err := st.AppendEvents(context.Background(), evs...); err != nil {
		t.Fatal(err)
	}
	d.Poke()
	waitFor(t, "the first attempt", 5*time.Second, func() bool { return statsFor(t, st, rc.URL()).HeadAttempts == 1 })
	if next := statsFor(t, st, rc.URL()).NextAttemptAt; !next.Equal(evs[0].Time.Add(time.Hour)) {
		t.Errorf("next attempt at %v, want the end of the period %v", next, evs[0].Time.Add(time.Hour))
	}
	clock.Add(time.Minute)
	d.Poke()
	waitFor(t, "expiry", 5*time.Second, func() bool { return statsFor(t, st, rc.URL()).Expired == 1 })
	if dl := deliveriesOf(t, st, rc.URL())[0]; dl.Attempts != 2 || !strings.Contains(dl.LastError, "502") {
		t.Errorf("expired delivery = %+v, want 2 attempts, the last at the deadline", dl)
	}
}

func appendEventsLater(t *testing.T) []store.Event {
	t.Helper()
	e, err := store.NewEvent("trunk.down", map[string]string{"trunk": "provider"})
	if err != nil {
		t.Fatal(err)
	}
	return []store.Event{e}
}

func TestFilter(t *testing.T) {
	st, _ := tempStore(t)
	ended := newReceiver(t, nil)
	all := newReceiver(t, nil)
	d, _ := startDeliverer(t, fastConfig(
		webhook.Target{URL: ended.URL(), Secret: testSecret, Events: []string{"call.ended"}},
		webhook.Target{URL: all.URL(), Secret: testSecret},
	), st)
	var want []string
	for _, typ := range []string{"call.started", "call.ringing", "call.answered", "call.ended", "trunk.up", "call.ended"} {
		evs := appendEvents(t, st, typ, 1)
		if typ == "call.ended" {
			want = append(want, evs[0].ID)
		}
	}
	d.Poke()
	waitFor(t, "the unfiltered webhook to get everything", 10*time.Second, func() bool { return len(all.accepted()) == 6 })
	waitFor(t, "the filtered webhook", 10*time.Second, func() bool { return len(ended.accepted()) >= 2 })
	if got := ended.accepted(); !slices.Equal(got, want) {
		t.Errorf("call.ended webhook got %v, want %v", got, want)
	}
	ended.mu.Lock()
	for _, g := range ended.got {
		if g.Payload.Type != "call.ended" {
			t.Errorf("call.ended webhook got a %s", g.Payload.Type)
		}
	}
	ended.mu.Unlock()
}

// TestSlowReceiverDoesNotSlowCallers: a receiver that takes 2 s per request
// holds up neither Notify nor AppendEvents callers, nor the other webhooks.
func TestSlowReceiverDoesNotSlowCallers(t *testing.T) {
	st, _ := tempStore(t)
	slowStarted := make(chan struct{}, 1)
	release := make(chan struct{})
	defer close(release)
	// The slow receiver holds every request until the test lets go (or the
	// deliverer gives up on it), so everything below happens while it is stuck.
	slow := newReceiver(t, func(_ int, r *http.Request, _ string) int {
		select {
		case slowStarted <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		return http.StatusOK
	})
	fast := newReceiver(t, nil)
	d, stopDeliverer := startDeliverer(t, fastConfig(
		webhook.Target{URL: slow.URL(), Secret: testSecret},
		webhook.Target{URL: fast.URL(), Secret: testSecret},
	), st)
	hub := events.NewHub(0)
	rec := events.NewRecorder(events.RecorderConfig{}, st, hub, d, nil)
	ctx, cancel := context.WithCancel(context.Background())
	recDone := make(chan error, 1)
	go func() { recDone <- rec.Run(ctx) }()
	defer func() {
		cancel()
		<-recDone
	}()

	rec.Notify("trunk.up", map[string]string{"trunk": "provider"})
	select {
	case <-slowStarted:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow receiver got no request")
	}
	// Callers finish while the receiver is stuck: were they waiting on it,
	// they would never return, since it is only released at the end.
	callers := make(chan error, 1)
	go func() {
		for i := range 100 {
			rec.Notify("call.ringing", map[string]int{"n": i})
		}
		for i := range 20 {
			e, err := store.NewEvent("call.answered", i)
			if err != nil {
				callers <- err
				return
			}
			if err := st.AppendEvents(context.Background(), e); err != nil {
				callers <- err
				return
			}
			rec.Committed(e)
		}
		callers <- nil
	}()
	select {
	case err := <-callers:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Notify/AppendEvents callers are blocked by a stuck webhook receiver")
	}
	// The other webhook is not held up: it gets everything while the slow
	// receiver still has its first request.
	waitFor(t, "the fast receiver to get all 121 events", 30*time.Second, func() bool { return len(fast.accepted()) == 121 })
	if n := len(slow.accepted()); n != 0 {
		t.Errorf("the slow receiver finished %d requests before the fast one got all: the fast one was held up", n)
	}
	// Stopping cancels the slow request in flight (the receiver is never
	// released before this, so a stop that waited for it would hang).
	if took := stopDeliverer(); took > 10*time.Second {
		t.Errorf("stopping took %v with a request in flight", took)
	}
	if s := statsFor(t, st, slow.URL()); s.Pending != 121 || s.HeadAttempts != 0 {
		t.Errorf("slow webhook after stop = %+v, want all 121 pending, the interrupted attempt not counted", s)
	}
}

func TestReload(t *testing.T) {
	st, _ := tempStore(t)
	a := newReceiver(t, nil)
	b := newReceiver(t, nil)
	d, _ := startDeliverer(t, fastConfig(webhook.Target{URL: a.URL(), Secret: testSecret}), st)
	first := appendEvents(t, st, "call.started", 3)
	d.Poke()
	waitFor(t, "a to get the first events", 5*time.Second, func() bool { return len(a.accepted()) == 3 })

	// Replace a by b, whose secret is a raw string.
	b.secret = "raw-secret-for-b"
	if err := d.SetWebhooks([]webhook.Target{{URL: b.URL(), Secret: b.secret}}); err != nil {
		t.Fatal(err)
	}
	second := appendEvents(t, st, "call.ended", 3)
	d.Poke()
	waitFor(t, "b to get the new events", 5*time.Second, func() bool { return len(b.accepted()) == 3 })
	if got := b.accepted(); !slices.Equal(got, ids(second)) {
		t.Errorf("b got %v, want only the events after it was added %v", got, ids(second))
	}
	time.Sleep(50 * time.Millisecond)
	if got := a.accepted(); !slices.Equal(got, ids(first)) {
		t.Errorf("a got %v after its removal, want only %v", got, ids(first))
	}

	if err := d.SetWebhooks([]webhook.Target{{URL: "mailto:x", Secret: "s"}}); err == nil {
		t.Error("SetWebhooks accepted an invalid URL")
	}
	if err := d.Run(context.Background()); !errors.Is(err, webhook.ErrRunning) {
		t.Errorf("second Run = %v, want ErrRunning", err)
	}
}

// TestRedirectIsAFailure: a 3xx is not followed (it would turn the POST
// into a GET) but retried as a failure.
func TestRedirectIsAFailure(t *testing.T) {
	st, _ := tempStore(t)
	redirect := newReceiver(t, func(_ int, _ *http.Request, _ string) int { return http.StatusFound })
	d, _ := startDeliverer(t, fastConfig(webhook.Target{URL: redirect.URL(), Secret: testSecret}), st)
	appendEvents(t, st, "trunk.up", 1)
	d.Poke()
	waitFor(t, "a failed attempt", 5*time.Second, func() bool { return statsFor(t, st, redirect.URL()).HeadAttempts >= 1 })
	if s := statsFor(t, st, redirect.URL()); !strings.Contains(s.LastError, "302") || s.Delivered != 0 {
		t.Errorf("stats = %+v, want a 302 failure", s)
	}
}

// TestTimeout: a receiver slower than the timeout fails the attempt.
func TestTimeout(t *testing.T) {
	st, _ := tempStore(t)
	rc := newReceiver(t, func(n int, r *http.Request, _ string) int {
		if n == 1 {
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
			}
			return 0 // the sender has given up: no answer, not accepted
		}
		return http.StatusOK
	})
	cfg := fastConfig(webhook.Target{URL: rc.URL(), Secret: testSecret})
	cfg.Timeout = 200 * time.Millisecond
	d, _ := startDeliverer(t, cfg, st)
	evs := appendEvents(t, st, "call.started", 1)
	d.Poke()
	waitFor(t, "delivery after a timeout", 5*time.Second, func() bool { return len(rc.accepted()) >= 1 })
	waitFor(t, "the outcome to be recorded", 5*time.Second, func() bool { return statsFor(t, st, rc.URL()).Delivered == 1 })
	dl := deliveriesOf(t, st, rc.URL())[0]
	if dl.Event.ID != evs[0].ID || dl.Attempts != 2 || !strings.Contains(dl.LastError, "Timeout") {
		t.Errorf("delivery = %+v, want delivered at attempt 2 after a timeout", dl)
	}
}
