package web

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeEvents is an event log in memory.
type fakeEvents struct {
	mu   sync.Mutex
	log  []Event
	subs map[*fakeSub]bool
}

type fakeSub struct {
	f  *fakeEvents
	ch chan Event
}

func newFakeEvents() *fakeEvents { return &fakeEvents{subs: map[*fakeSub]bool{}} }

// add appends an event of type typ and publishes it.
func (f *fakeEvents) add(typ string) Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	e := Event{Seq: int64(len(f.log) + 1), ID: fmt.Sprintf("evt_%d", len(f.log)+1), Type: typ, Time: time.Now(), Data: json.RawMessage(`{"n":1}`)}
	f.log = append(f.log, e)
	for s := range f.subs {
		s.ch <- e
	}
	return e
}

func (f *fakeEvents) subscribers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}

func (f *fakeEvents) Subscribe(context.Context) Subscription {
	s := &fakeSub{f: f, ch: make(chan Event, 100)}
	f.mu.Lock()
	f.subs[s] = true
	f.mu.Unlock()
	return s
}

func (f *fakeEvents) EventsAfter(_ context.Context, after int64, limit int) ([]Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Event
	for _, e := range f.log {
		if e.Seq > after && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

func (s *fakeSub) Next(ctx context.Context) (Event, error) {
	select {
	case e := <-s.ch:
		return e, nil
	case <-ctx.Done():
		return Event{}, ctx.Err()
	}
}

func (s *fakeSub) Close() {
	s.f.mu.Lock()
	delete(s.f.subs, s)
	s.f.mu.Unlock()
}

// stream is an open /api/v1/events response.
type stream struct {
	res   *http.Response
	lines chan string
}

func (e *testEnv) openStream(t *testing.T, lastID string) *stream {
	t.Helper()
	req, err := http.NewRequest("GET", e.http.URL+"/api/v1/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	res, err := e.http.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.doc.CheckStream("GET", "/api/v1/events", res.StatusCode, res.Header.Get("Content-Type")); err != nil {
		res.Body.Close()
		t.Fatal(err)
	}
	st := &stream{res: res, lines: make(chan string, 100)}
	go func() {
		defer close(st.lines)
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			st.lines <- sc.Text()
		}
	}()
	t.Cleanup(st.close)
	return st
}

func (s *stream) close() { s.res.Body.Close() }

// ids reads messages until n events came and returns "seq type" of each.
func (s *stream) ids(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	var id string
	for len(out) < n {
		select {
		case l, ok := <-s.lines:
			if !ok {
				t.Fatalf("stream ended after %v", out)
			}
			if v, ok := strings.CutPrefix(l, "id: "); ok {
				id = v
			}
			if v, ok := strings.CutPrefix(l, "event: "); ok {
				out = append(out, id+" "+v)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("only %v", out)
		}
	}
	return out
}

func TestEventStreamReplayThenLive(t *testing.T) {
	e := newEnv(t)
	for _, typ := range []string{"a", "b", "c"} {
		e.evs.add(typ)
	}
	st := e.openStream(t, "1")
	if got := strings.Join(st.ids(t, 2), ","); got != "2 b,3 c" {
		t.Fatalf("replay %s", got)
	}
	e.evs.add("d")
	if got := strings.Join(st.ids(t, 1), ","); got != "4 d" {
		t.Fatalf("live %s", got)
	}
	st.close()
	deadline := time.Now().Add(20 * time.Second)
	for e.evs.subscribers() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("subscription outlived its client")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestEventStreamEndsWhenServerStops(t *testing.T) {
	e := newEnv(t)
	// A stream that held up the stop would make it last this long.
	e.srv.cfg.ShutdownTimeout = time.Minute
	ln := listenLoopback(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.serve(ctx, ln, e.srv.Handler()) }()
	req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/api/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	start := time.Now()
	cancel()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("serve did not return")
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("stopping took %s: the stream held it up", d)
	}
	http.DefaultClient.CloseIdleConnections()
}

// TestEventMessageTimestampHasMilliseconds: the stream's bodies are the
// webhook bodies, their timestamp always with three fractional digits.
func TestEventMessageTimestampHasMilliseconds(t *testing.T) {
	for at, want := range map[time.Time]string{
		time.Date(2026, 11, 26, 7, 19, 24, 130_000_000, time.UTC):                  "2026-11-26T07:19:24.130Z",
		time.Date(2026, 11, 26, 7, 19, 24, 0, time.UTC):                            "2026-11-26T07:19:24.000Z",
		time.Date(2026, 11, 26, 8, 19, 24, 1_999_999, time.FixedZone("CET", 3600)): "2026-11-26T07:19:24.001Z",
	} {
		rec := httptest.NewRecorder()
		if err := writeEvent(rec, Event{Seq: 7, ID: "evt_x", Type: "call.started", Time: at, Data: json.RawMessage(`{}`)}); err != nil {
			t.Fatal(err)
		}
		if w := "id: 7\nevent: call.started\ndata: {\"type\":\"call.started\",\"timestamp\":\"" + want + "\",\"data\":{}}\n\n"; rec.Body.String() != w {
			t.Errorf("message %q\nwant %q", rec.Body.String(), w)
		}
	}
}
