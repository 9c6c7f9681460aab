package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/webhook"
	"github.com/switchboard/switchboard/web"
)

const hookSecret = "whsec_c3dpdGNoYm9hcmQtdGVzdC1zZWNyZXQ=" // base64 of "switchboard-test-secret"

// hookEvent is one webhook request as the receiver saw it.
type hookEvent struct {
	ID        string
	Type      string          `json:"type"`
	Timestamp string          `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// hookReceiver is a real HTTP webhook receiver on 127.0.0.1 that checks
// every request's signature. It can be stopped (connections refused) and
// started again on the same address.
type hookReceiver struct {
	addr string

	mu       sync.Mutex
	got      []hookEvent // in arrival order, retries included
	bad      []string    // requests that failed verification
	srv      *http.Server
	served   chan struct{}
	requests int
}

// newReceiver returns a receiver for a free address, not yet listening.
func newReceiver(t *testing.T) *hookReceiver {
	r := &hookReceiver{addr: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	t.Cleanup(r.stop)
	return r
}

func (r *hookReceiver) url() string { return "http://" + r.addr + "/hook" }

func (r *hookReceiver) start(t *testing.T) {
	t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the port may linger a moment after stop
		if ln, err = net.Listen("tcp", r.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(r.serveHTTP), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	r.mu.Lock()
	r.srv, r.served = srv, done
	r.mu.Unlock()
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
}

func (r *hookReceiver) stop() {
	r.mu.Lock()
	srv, done := r.srv, r.served
	r.srv = nil
	r.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
		<-done
	}
}

func (r *hookReceiver) serveHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		w.WriteHeader(400)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	if err := webhook.VerifyRequest(hookSecret, req.Header, body, time.Now(), 5*time.Minute); err != nil {
		r.bad = append(r.bad, err.Error())
		w.WriteHeader(401)
		return
	}
	var ev hookEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		r.bad = append(r.bad, "body: "+err.Error())
		w.WriteHeader(400)
		return
	}
	ev.ID = req.Header.Get("webhook-id")
	r.got = append(r.got, ev)
	w.WriteHeader(204)
}

// events returns the events received, each once (a retried event keeps
// its first place), and the verification failures.
func (r *hookReceiver) events() ([]hookEvent, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[string]bool{}
	var out []hookEvent
	for _, e := range r.got {
		if !seen[e.ID] {
			seen[e.ID] = true
			out = append(out, e)
		}
	}
	return out, slices.Clone(r.bad)
}

func types(evs []hookEvent) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

// waitEvents waits until the receiver has exactly want (by type, in
// order), and returns them.
func (r *hookReceiver) waitEvents(t *testing.T, timeout time.Duration, want ...string) []hookEvent {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		evs, bad := r.events()
		if len(bad) > 0 {
			t.Fatalf("requests failed verification: %v", bad)
		}
		if slices.Equal(types(evs), want) {
			return evs
		}
		if len(evs) > len(want) || time.Now().After(deadline) {
			t.Fatalf("webhook events\n got %v\nwant %v", types(evs), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// millisRFC3339 is the form of every time in an event: RFC 3339 in UTC to
// the millisecond, always with three fractional digits.
var millisRFC3339 = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

// checkEventTimes checks the times in the data of registration and call
// events: each in the millisecond form, and a call's the same instants as
// its record in /api/v1/records.
func checkEventTimes(t *testing.T, e *apiEnv, evs []hookEvent) {
	t.Helper()
	for _, ev := range evs {
		var data map[string]any
		if err := json.Unmarshal(ev.Data, &data); err != nil {
			t.Fatalf("%s data %s: %v", ev.Type, ev.Data, err)
		}
		keys := []string{"expires_at"}
		if strings.HasPrefix(ev.Type, "call.") {
			keys = []string{"started_at", "answered_at", "ended_at"}
		}
		for _, k := range keys {
			v, ok := data[k].(string)
			if !ok {
				continue // answered_at and ended_at come with the call's progress
			}
			if !millisRFC3339.MatchString(v) {
				t.Errorf("%s data %s %q: want RFC 3339 UTC with three fractional digits", ev.Type, k, v)
			}
		}
		if !strings.HasPrefix(ev.Type, "call.") {
			continue
		}
		var rec web.Record
		e.api("GET", "/api/v1/records/"+url.PathEscape(fmt.Sprint(data["id"])), nil, 200, &rec)
		for k, want := range map[string]time.Time{"started_at": rec.StartedAt.Time(), "answered_at": rec.AnsweredAt.Time(), "ended_at": rec.EndedAt.Time()} {
			v, ok := data[k].(string)
			if !ok {
				if k == "started_at" || ev.Type == "call.ended" && !want.IsZero() {
					t.Errorf("%s has no %s", ev.Type, k)
				}
				continue
			}
			if got, err := time.Parse(time.RFC3339, v); err != nil || !got.Equal(want) {
				t.Errorf("%s %s %s, but the record has %s", ev.Type, k, v, want.Format(time.RFC3339Nano))
			}
		}
	}
}

func hookConfig(r *hookReceiver) string {
	return fmt.Sprintf("webhooks:\n  - {url: %q, secret: %q}\n", r.url(), hookSecret)
}

// upCall has alice call bob, bob ring and answer, and returns the ID of
// the call, the only one up.
func upCall(t *testing.T, e *apiEnv, alice, bob *sipPhone) string {
	t.Helper()
	inv := alice.invite("1002")
	in := bob.readRequest("INVITE")
	bob.respond(in, 180, "")
	// A real phone rings a while: let the 180 reach the caller first.
	alice.read("180 Ringing", func(m *sipMsg) bool { return m.status == 180 && m.get("call-id") == inv.callID })
	bob.respond(in, 200, testSDP(bob.conn.LocalAddr().(*net.UDPAddr).Port+1000))
	if res := alice.finalResponse(inv); res.status != 200 {
		t.Fatalf("call: caller got %d", res.status)
	}
	bob.readRequest("ACK")
	var calls web.Page[web.Call]
	e.api("GET", "/api/v1/calls", nil, 200, &calls)
	if len(calls.Items) != 1 {
		t.Fatalf("calls %+v", calls)
	}
	return calls.Items[0].ID
}

// answeredCall has alice call bob, bob ring and answer, and the API hang
// up the call; it returns the call's ID.
func answeredCall(t *testing.T, e *apiEnv, alice, bob *sipPhone) string {
	t.Helper()
	id := upCall(t, e, alice, bob)
	hungUp := make(chan error, 1)
	go func() {
		res, _, err := e.send("DELETE", "/api/v1/calls/"+id, "Bearer "+apiToken, nil)
		if err == nil && res.StatusCode != 204 {
			err = fmt.Errorf("hangup: %d", res.StatusCode)
		}
		hungUp <- err
	}()
	alice.respond(alice.readRequest("BYE"), 200, "")
	bob.respond(bob.readRequest("BYE"), 200, "")
	select {
	case err := <-hungUp:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("hangup did not return")
	}
	return id
}

func TestWebhooksSignedInOrderAcrossOutage(t *testing.T) {
	r := newReceiver(t)
	r.start(t)
	e := startAPIWith(t, map[string]string{"1001": "alice-1001", "1002": "bob-1002"}, hookConfig(r))
	sipAddr := fmt.Sprintf("127.0.0.1:%d", e.sipPort)
	alice := newPhone(t, sipAddr, "1001", "alice-1001", "")
	bob := newPhone(t, sipAddr, "1002", "bob-1002", "")
	if code := bob.register(300); code != 200 {
		t.Fatalf("bob REGISTER: %d", code)
	}
	callID := answeredCall(t, e, alice, bob)
	evs := r.waitEvents(t, 20*time.Second,
		"registration.created", "call.started", "call.ringing", "call.answered", "call.ended")

	var reg struct {
		User, Source, Transport string
		ExpiresAt               time.Time `json:"expires_at"`
	}
	if err := json.Unmarshal(evs[0].Data, &reg); err != nil || reg.User != "1002" || reg.Source != bob.addr() ||
		reg.Transport != "UDP" || reg.ExpiresAt.IsZero() {
		t.Fatalf("registration.created data %s (%v)", evs[0].Data, err)
	}
	var ended struct {
		ID         string `json:"id"`
		Caller     string `json:"caller"`
		Callee     string `json:"callee"`
		Result     string `json:"result"`
		HangupBy   string `json:"hangup_by"`
		Status     int    `json:"status"`
		AnsweredAt string `json:"answered_at"`
		EndedAt    string `json:"ended_at"`
		Legs       []struct {
			Name string `json:"name"`
		} `json:"legs"`
	}
	if err := json.Unmarshal(evs[4].Data, &ended); err != nil || ended.ID != callID || ended.Caller != "1001" ||
		ended.Callee != "1002" || ended.Result != "answered" || ended.HangupBy != "system" || ended.Status != 200 ||
		ended.AnsweredAt == "" || ended.EndedAt == "" || len(ended.Legs) != 2 {
		t.Fatalf("call.ended data %s (%v)", evs[4].Data, err)
	}
	for _, ev := range evs {
		if !millisRFC3339.MatchString(ev.Timestamp) {
			t.Errorf("%s timestamp %q: want RFC 3339 UTC with three fractional digits", ev.Type, ev.Timestamp)
		}
		if !strings.HasPrefix(ev.ID, "evt_") {
			t.Errorf("webhook-id %q", ev.ID)
		}
	}
	checkEventTimes(t, e, evs)

	// The receiver goes away. Calls go on as fast as ever, events queue up.
	r.stop()
	var regs web.Page[web.Registration]
	e.api("GET", "/api/v1/registrations", nil, 200, &regs)
	if len(regs.Items) != 1 {
		t.Fatalf("registrations %+v", regs)
	}
	e.api("DELETE", "/api/v1/registrations/"+url.PathEscape(regs.Items[0].ID), nil, 204, nil)
	if code := bob.register(300); code != 200 {
		t.Fatalf("bob REGISTER again: %d", code)
	}
	start := time.Now()
	inv := alice.invite("1002")
	in := bob.readRequest("INVITE")
	bob.respond(in, 486, "")
	bob.readRequest("ACK")
	if res := alice.finalResponse(inv); res.status != 486 {
		t.Fatalf("busy call: caller got %d", res.status)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("a call took %s while the webhook receiver was down", d)
	}
	answeredCall(t, e, alice, bob)
	// The API shows the queue held up by the failing receiver.
	var hooks web.List[web.WebhookStatus]
	waitFor(t, "a failed attempt in the webhook state", func() bool {
		e.api("GET", "/api/v1/webhooks", nil, 200, &hooks)
		return len(hooks.Items) == 1 && hooks.Items[0].Attempts >= 1
	})
	if h := hooks.Items[0]; h.URL != r.url() || !h.Configured || h.Pending != 8 || h.Delivered != 5 ||
		h.LastError == "" || h.OldestPendingAt.IsZero() {
		t.Fatalf("webhook state while the receiver is down: %+v", h)
	}
	_, m := e.raw("GET", "/metrics", "", nil)
	if want := fmt.Sprintf("switchboard_webhook_pending{webhook=%q} 8\n", webhook.Label(r.url())); !strings.Contains(string(m), want) {
		t.Fatalf("metrics lack %q", want)
	}
	time.Sleep(time.Second) // a few more failed attempts

	r.start(t)
	all := r.waitEvents(t, 60*time.Second,
		"registration.created", "call.started", "call.ringing", "call.answered", "call.ended",
		"registration.removed", "registration.created", "call.started", "call.ended",
		"call.started", "call.ringing", "call.answered", "call.ended")
	waitFor(t, "an empty webhook queue", func() bool {
		e.api("GET", "/api/v1/webhooks", nil, 200, &hooks)
		return len(hooks.Items) == 1 && hooks.Items[0].Pending == 0
	})
	if h := hooks.Items[0]; h.Delivered != len(all) || h.Expired != 0 || h.LastDeliveredAt.IsZero() {
		t.Fatalf("webhook state after recovery: %+v", h)
	}
	var busy struct {
		Result string `json:"result"`
		Status int    `json:"status"`
	}
	if err := json.Unmarshal(all[8].Data, &busy); err != nil || busy.Result != "busy" || busy.Status != 486 {
		t.Fatalf("busy call.ended data %s (%v)", all[8].Data, err)
	}
	r.mu.Lock()
	requests := r.requests
	r.mu.Unlock()
	if requests < len(all) {
		t.Fatalf("%d requests for %d events", requests, len(all))
	}
}

// startAPIWith is startAPI with extra config.
func startAPIWith(t *testing.T, users map[string]string, extra string) *apiEnv {
	t.Helper()
	return startAPIServer(t, startServer(t, users, extra))
}

// The child process of TestWebhookEventsSurviveKill runs the server on the
// config file this variable names.
const serveChildEnv = "SWITCHBOARD_TEST_SERVE_CONFIG"

// runServeChild is main for that child process.
func runServeChild(cfg string) int {
	return run(context.Background(), []string{"serve", "--config", cfg}, os.Stdout, os.Stderr)
}

func TestWebhookEventsSurviveKill(t *testing.T) {
	r := newReceiver(t) // not listening: every delivery fails
	s := &server{sipPort: freePort(t), dir: t.TempDir(), done: make(chan int, 1), stderr: &lockedBuffer{}}
	cfgPath := writeServerConfig(t, s, map[string]string{"1001": "alice-1001", "1002": "bob-1002"}, hookConfig(r))

	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), serveChildEnv+"="+cfgPath)
	var childErr bytes.Buffer
	child.Stderr = &childErr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			_ = child.Process.Kill()
			_ = child.Wait()
		}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !s.answersOptions() {
		if time.Now().After(deadline) {
			t.Fatalf("child server did not come up: %s", childErr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	e := newAPIEnv(t, s, cfgPath)
	sipAddr := fmt.Sprintf("127.0.0.1:%d", s.sipPort)
	alice := newPhone(t, sipAddr, "1001", "alice-1001", "")
	bob := newPhone(t, sipAddr, "1002", "bob-1002", "")
	if code := bob.register(300); code != 200 {
		t.Fatalf("bob REGISTER: %d", code)
	}
	if code := alice.register(300); code != 200 {
		t.Fatalf("alice REGISTER: %d", code)
	}
	callID := answeredCall(t, e, alice, bob)
	// call.ended is committed with the record's end.
	var rec web.Record
	waitFor(t, "the call record's end", func() bool {
		e.api("GET", "/api/v1/records/"+callID, nil, 200, &rec)
		return !rec.EndedAt.IsZero()
	})
	// A second call is up when the server is killed.
	upID := upCall(t, e, alice, bob)
	waitFor(t, "the second call's answer in its record", func() bool {
		rec = web.Record{}
		e.api("GET", "/api/v1/records/"+upID, nil, 200, &rec)
		return !rec.AnsweredAt.IsZero()
	})
	e.http.CloseIdleConnections()

	if err := child.Process.Kill(); err != nil { // SIGKILL: no shutdown at all
		t.Fatal(err)
	}
	killed = true
	if err := child.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("child exit: %v", err)
	}

	// The receiver comes up, the server restarts: every event arrives.
	r.start(t)
	s.start(t, cfgPath)
	// The call that was up when the server died ends, as crashed, at
	// the restart.
	evs := r.waitEvents(t, 60*time.Second,
		"registration.created", "registration.created", "call.started", "call.ringing", "call.answered", "call.ended",
		"call.started", "call.ringing", "call.answered", "call.ended")
	var ended struct {
		ID     string `json:"id"`
		Result string `json:"result"`
	}
	if err := json.Unmarshal(evs[5].Data, &ended); err != nil || ended.ID != callID || ended.Result != "answered" {
		t.Fatalf("call.ended data %s (%v)", evs[5].Data, err)
	}
	if err := json.Unmarshal(evs[9].Data, &ended); err != nil || ended.ID != upID || ended.Result != "crashed" {
		t.Fatalf("call.ended of the call cut by the kill: %s (%v)", evs[9].Data, err)
	}
	// Both phones were still in that call: the restarted server ends it.
	for _, p := range []*sipPhone{alice, bob} {
		bye := p.readRequest("BYE")
		if !strings.Contains(bye.get("reason"), "server restarted") {
			t.Errorf("%s got a BYE without the reason: %+v", p.user, bye.headers)
		}
		p.respond(bye, 200, "")
	}
}

// errNoChild is returned by childMain when the process is not a child.
var errNoChild = errors.New("not a child process")

// childMain runs the process as a test child when its environment says so.
func childMain() (int, error) {
	if cfg := os.Getenv(serveChildEnv); cfg != "" {
		return runServeChild(cfg), nil
	}
	return 0, errNoChild
}

// TestSlowWebhookReceiverDoesNotSlowCalls: a receiver that takes every
// request and never answers holds up only its own queue.
func TestSlowWebhookReceiverDoesNotSlowCalls(t *testing.T) {
	release := make(chan struct{})
	var got atomic.Int32
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		<-release // until the test ends: longer than the delivery timeout
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer func() {
		close(release)
		_ = srv.Close()
	}()
	hook := fmt.Sprintf("webhooks:\n  - {url: %q, secret: %q}\n", "http://"+ln.Addr().String()+"/hook", hookSecret)
	e := startAPIWith(t, map[string]string{"1001": "alice-1001", "1002": "bob-1002"}, hook)
	sipAddr := fmt.Sprintf("127.0.0.1:%d", e.sipPort)
	alice := newPhone(t, sipAddr, "1001", "alice-1001", "")
	bob := newPhone(t, sipAddr, "1002", "bob-1002", "")
	if code := bob.register(300); code != 200 {
		t.Fatalf("REGISTER: %d", code)
	}
	waitFor(t, "the receiver to hold the first delivery", func() bool { return got.Load() >= 1 })
	// Had calls waited for deliveries, each of the call's four events
	// would cost a delivery timeout (10 s).
	start := time.Now()
	for range 3 {
		answeredCall(t, e, alice, bob)
	}
	if d := time.Since(start); d >= 10*time.Second {
		t.Fatalf("three calls took %s with a receiver that does not answer", d)
	}
	var hooks web.List[web.WebhookStatus]
	e.api("GET", "/api/v1/webhooks", nil, 200, &hooks)
	if len(hooks.Items) != 1 || hooks.Items[0].Pending != 13 {
		t.Fatalf("webhook state %+v, want 13 pending (1 registration, 3×4 call events)", hooks.Items)
	}
}
