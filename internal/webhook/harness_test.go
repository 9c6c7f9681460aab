package webhook_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/events"
	"github.com/switchboard/switchboard/internal/store"
	"github.com/switchboard/switchboard/internal/webhook"
)

// The store and the deliverer fit the interfaces their users declare.
var (
	_ webhook.Store   = (*store.Store)(nil)
	_ events.Appender = (*store.Store)(nil)
	_ events.Poker    = (*webhook.Deliverer)(nil)
)

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// received is one request a receiver accepted.
type received struct {
	ID      string
	Header  http.Header
	Payload webhook.Payload
	Body    []byte
}

// receiver is a webhook receiver on 127.0.0.1 that checks every request's
// signature (any failure is kept for the test goroutine to report) and
// answers with what respond returns for the n-th request (from 1); status 0
// drops the connection without an answer.
type receiver struct {
	srv       *httptest.Server
	secret    string
	tolerance time.Duration // of the timestamp against the real clock; 0: unchecked

	mu       sync.Mutex
	respond  func(n int, r *http.Request, id string) int
	requests int
	got      []received
	problems []string
}

func newReceiver(t *testing.T, respond func(n int, r *http.Request, id string) int) *receiver {
	t.Helper()
	rc := &receiver{secret: testSecret, tolerance: 5 * time.Minute, respond: respond}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(func() {
		rc.srv.Close()
		rc.mu.Lock()
		defer rc.mu.Unlock()
		for _, p := range rc.problems {
			t.Error(p)
		}
	})
	return rc
}

func (rc *receiver) URL() string { return rc.srv.URL + "/hook" }

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.requests++
	n := rc.requests
	respond := rc.respond
	rc.mu.Unlock()
	problem := func(format string, args ...any) {
		rc.mu.Lock()
		rc.problems = append(rc.problems, fmt.Sprintf(format, args...))
		rc.mu.Unlock()
		w.WriteHeader(http.StatusBadRequest)
	}
	if err != nil {
		return // the sender gave up
	}
	if err := webhook.VerifyRequest(rc.secret, r.Header, body, time.Now(), rc.tolerance); err != nil {
		problem("request %d: %v", n, err)
		return
	}
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" ||
		r.Header.Get("User-Agent") != "Switchboard-Webhooks" || r.URL.Path != "/hook" {
		problem("request %d: %s %s, content-type %q, user-agent %q", n, r.Method, r.URL.Path,
			r.Header.Get("Content-Type"), r.Header.Get("User-Agent"))
		return
	}
	var p webhook.Payload
	if err := json.Unmarshal(body, &p); err != nil {
		problem("request %d: body %s: %v", n, body, err)
		return
	}
	id := r.Header.Get("webhook-id")
	status := http.StatusNoContent
	if respond != nil {
		status = respond(n, r, id)
	}
	if status == 0 {
		// Drop the connection: a network error for the sender.
		if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
			c.Close()
		}
		return
	}
	if status >= 200 && status < 300 {
		rc.mu.Lock()
		rc.got = append(rc.got, received{ID: id, Header: r.Header.Clone(), Payload: p, Body: body})
		rc.mu.Unlock()
	}
	w.WriteHeader(status)
	if status >= 300 {
		fmt.Fprintf(w, "failure #%d", n)
	}
}

// accepted returns the IDs of the accepted requests, in arrival order.
func (rc *receiver) accepted() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	ids := make([]string, len(rc.got))
	for i, g := range rc.got {
		ids[i] = g.ID
	}
	return ids
}

func (rc *receiver) requestCount() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.requests
}

func openStore(t *testing.T, path string) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), path, nil)
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func tempStore(t *testing.T) (*store.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "switchboard.db")
	return openStore(t, path), path
}

// fastConfig retries within milliseconds.
func fastConfig(targets ...webhook.Target) webhook.Config {
	return webhook.Config{
		Webhooks:     targets,
		MinBackoff:   5 * time.Millisecond,
		MaxBackoff:   20 * time.Millisecond,
		PollInterval: time.Second,
		Timeout:      5 * time.Second,
	}
}

// startDeliverer runs a Deliverer until the returned stop is called (also
// at cleanup). stop returns how long Run took to return.
func startDeliverer(t *testing.T, cfg webhook.Config, st webhook.Store) (*webhook.Deliverer, func() time.Duration) {
	t.Helper()
	d, err := webhook.New(cfg, st, nil)
	if err != nil {
		t.Fatalf("webhook.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	var took time.Duration
	stop := func() time.Duration {
		once.Do(func() {
			start := time.Now()
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return after its context ended")
			}
			took = time.Since(start)
		})
		return took
	}
	t.Cleanup(func() { stop() })
	return d, stop
}

// appendEvents writes n events of type typ and returns them with their seqs.
func appendEvents(t *testing.T, st *store.Store, typ string, n int) []store.Event {
	t.Helper()
	evs := make([]store.Event, n)
	for i := range evs {
		e, err := store.NewEvent(typ, map[string]int{"n": i})
		if err != nil {
			t.Fatal(err)
		}
		evs[i] = e
	}
	if err := st.AppendEvents(context.Background(), evs...); err != nil {
		t.Fatalf("AppendEvents: %v", err)
	}
	return evs
}

func ids(evs []store.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func statsFor(t *testing.T, st *store.Store, key string) store.DeliveryStats {
	t.Helper()
	all, err := st.DeliveryStats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range all {
		if s.Webhook == key {
			return s
		}
	}
	return store.DeliveryStats{Webhook: key}
}

func deliveriesOf(t *testing.T, st *store.Store, key string) []store.Delivery {
	t.Helper()
	ds, err := st.Deliveries(context.Background(), key, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}
