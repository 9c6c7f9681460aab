package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/digest"
	"github.com/switchboard/switchboard/internal/store"
	"github.com/switchboard/switchboard/web"
	"github.com/switchboard/switchboard/web/webtest"
)

const apiToken = "test-token-1" // what startServer configures

// apiEnv is the real server (startServer) with clients for its HTTP API,
// which check every response against the server's own OpenAPI document.
type apiEnv struct {
	*server
	t      *testing.T
	base   string // http://127.0.0.1:port
	socket string
	http   *http.Client
	doc    *webtest.Doc
}

func startAPI(t *testing.T, users map[string]string) *apiEnv {
	t.Helper()
	return startAPIServer(t, startServer(t, users, ""))
}

// startAPIServer is startAPI for a server already started.
func startAPIServer(t *testing.T, s *server) *apiEnv {
	t.Helper()
	return newAPIEnv(t, s, filepath.Join(s.dir, "switchboard.yaml"))
}

// newAPIEnv waits for the HTTP side of the server running on the config
// file at path and reads its OpenAPI document.
func newAPIEnv(t *testing.T, s *server, path string) *apiEnv {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	e := &apiEnv{server: s, t: t, base: "http://" + cfg.Web.Listen, socket: cfg.Control.Socket,
		http: &http.Client{Timeout: 10 * time.Second}}
	t.Cleanup(e.http.CloseIdleConnections)
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := e.http.Get(e.base + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("HTTP did not come up: %v\n%s", err, s.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	res, body := e.raw("GET", "/api/v1/openapi.json", "", nil)
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/openapi+json") {
		t.Fatalf("openapi.json: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if e.doc, err = webtest.Parse(body); err != nil {
		t.Fatal(err)
	}
	return e
}

// with returns the environment reporting to t (a subtest).
func (e *apiEnv) with(t *testing.T) *apiEnv {
	c := *e
	c.t = t
	return &c
}

// send sends a request with the given Authorization header value. It is
// safe off the test goroutine.
func (e *apiEnv) send(method, path, auth string, body any) (*http.Response, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.base+path, rd)
	if err != nil {
		return nil, nil, err
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := e.http.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res, b, err
}

// raw sends a request with the given Authorization header value.
func (e *apiEnv) raw(method, path, auth string, body any) (*http.Response, []byte) {
	e.t.Helper()
	res, b, err := e.send(method, path, auth, body)
	if err != nil {
		e.t.Fatal(err)
	}
	return res, b
}

// api sends an authenticated request, checks the status and that the
// response matches the OpenAPI document, and decodes it into out.
func (e *apiEnv) api(method, path string, body any, want int, out any) *http.Response {
	e.t.Helper()
	res, b := e.raw(method, path, "Bearer "+apiToken, body)
	return e.check(method, path, res, b, want, out)
}

// check checks a response's status and that it matches the OpenAPI
// document, and decodes it into out.
func (e *apiEnv) check(method, path string, res *http.Response, b []byte, want int, out any) *http.Response {
	e.t.Helper()
	if res.StatusCode != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, res.StatusCode, want, b)
	}
	if err := e.doc.Check(method, path, res.StatusCode, res.Header.Get("Content-Type"), b); err != nil {
		e.t.Fatalf("response does not match the OpenAPI document: %v\n%s", err, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s %s: decode: %v: %s", method, path, err, b)
		}
	}
	return res
}

type apiProblem struct {
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Errors []struct {
		Message  string `json:"message"`
		Location string `json:"location"`
	} `json:"errors"`
}

func (p apiProblem) locations() []string {
	var out []string
	for _, e := range p.Errors {
		out = append(out, e.Location)
	}
	return out
}

// TestAPI drives every endpoint of the real server over real HTTP, with
// real SIP phones registering and calling, and checks each response
// against the published OpenAPI document.
func TestAPI(t *testing.T) {
	// 127.0.0.2 is not trusted, so that it can be banned.
	e := startAPIServer(t, startServer(t, map[string]string{"1001": "alice-1001", "1002": "bob-1002"}, "limits:\n  trusted: [\"127.0.0.1\"]\n"))

	t.Run("auth", func(t *testing.T) {
		e := e.with(t)
		for name, auth := range map[string]string{"none": "", "wrong token": "Bearer wrong-token", "basic": "Basic " + apiToken} {
			res, b := e.raw("GET", "/api/v1/users", auth, nil)
			if res.StatusCode != 401 || res.Header.Get("WWW-Authenticate") != `Bearer realm="switchboard"` {
				t.Fatalf("%s: %d %q", name, res.StatusCode, res.Header.Get("WWW-Authenticate"))
			}
			if err := e.doc.Check("GET", "/api/v1/users", 401, res.Header.Get("Content-Type"), b); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		res, _ := e.raw("DELETE", "/api/v1/users/1001", "", nil)
		if res.StatusCode != 401 {
			t.Fatalf("unauthenticated delete: %d", res.StatusCode)
		}
		for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
			if res, _ := e.raw("GET", p, "", nil); res.StatusCode != 200 {
				t.Fatalf("%s: %d", p, res.StatusCode)
			}
		}
	})

	var status web.Status
	e.api("GET", "/api/v1/status", nil, 200, &status)
	if status.Users != 2 || status.Registrations != 0 || status.ActiveCalls != 0 || !status.Ready || status.Version != version {
		t.Fatalf("status %+v", status)
	}

	sipAddr := fmt.Sprintf("127.0.0.1:%d", e.sipPort)
	var users web.Page[web.User]
	e.api("GET", "/api/v1/users", nil, 200, &users)
	if len(users.Items) != 2 || users.Items[0].Name != "1001" || !users.Items[0].FromConfig {
		t.Fatalf("users %+v", users)
	}

	// A user created through the API registers over SIP with its password
	// at once, even right after an attempt that found no such user.
	dora := newPhone(t, sipAddr, "2001", "dora-pw-1", "apitest/1.0") // offered SHA-256 first
	if code := dora.register(300); code != 401 {
		t.Fatalf("unknown user registered: %d", code)
	}
	var u web.User
	res := e.api("POST", "/api/v1/users", map[string]string{"name": "2001", "display_name": "Dora", "password": "dora-pw-1"}, 201, &u)
	if u.Name != "2001" || u.DisplayName != "Dora" || u.FromConfig || res.Header.Get("Location") != "/api/v1/users/2001" {
		t.Fatalf("created %+v at %q", u, res.Header.Get("Location"))
	}
	if code := dora.register(300); code != 200 {
		t.Fatalf("user created through the API: REGISTER got %d", code)
	}
	var p apiProblem
	e.api("POST", "/api/v1/users", map[string]string{"name": "2001", "password": "other-pw"}, 409, &p)
	if !strings.Contains(p.Detail, "already exists") {
		t.Fatalf("409 %+v", p)
	}
	for name, tc := range map[string]struct {
		body  map[string]string
		field string
	}{
		"bad name":       {map[string]string{"name": "has space", "password": "pw-long"}, "body.name"},
		"short password": {map[string]string{"name": "2009", "password": "abc"}, "body.password"},
	} {
		t.Run(name, func(t *testing.T) {
			var p apiProblem
			e.with(t).api("POST", "/api/v1/users", tc.body, 422, &p)
			if loc := p.locations(); len(loc) != 1 || loc[0] != tc.field {
				t.Fatalf("422 locations %v, want %s", loc, tc.field)
			}
		})
	}
	e.api("GET", "/api/v1/users/2001", nil, 200, &u)
	e.api("GET", "/api/v1/users/nobody", nil, 404, &p)
	e.api("PATCH", "/api/v1/users/1001", map[string]string{"display_name": "Alice A."}, 200, &u)
	if u.DisplayName != "Alice A." || !u.FromConfig {
		t.Fatalf("patched config user %+v", u)
	}
	e.api("PATCH", "/api/v1/users/nobody", map[string]string{"display_name": "x"}, 404, nil)

	// The registration shows up with where it came from, and goes away
	// through the API.
	var regs web.Page[web.Registration]
	e.api("GET", "/api/v1/registrations", nil, 200, &regs)
	if len(regs.Items) != 1 {
		t.Fatalf("registrations %+v", regs)
	}
	r := regs.Items[0]
	if r.User != "2001" || r.Source != dora.addr() || r.Transport != "UDP" || r.UserAgent != "apitest/1.0" ||
		!strings.Contains(r.Contact, dora.addr()) || r.ExpiresIn <= 290 || r.ExpiresIn > 300 || !strings.Contains(r.ID, "|") {
		t.Fatalf("registration %+v (phone at %s)", r, dora.addr())
	}
	regPath := "/api/v1/registrations/" + url.PathEscape(r.ID)
	if !strings.Contains(regPath, "%7C") {
		t.Fatalf("registration path %q not escaped", regPath)
	}
	e.api("DELETE", regPath, nil, 204, nil)
	e.api("DELETE", regPath, nil, 404, nil)
	e.api("GET", "/api/v1/registrations", nil, 200, &regs)
	if len(regs.Items) != 0 {
		t.Fatalf("registration still listed after DELETE: %+v", regs)
	}

	// A new password works at once and the old one stops working.
	e.api("PATCH", "/api/v1/users/2001", map[string]string{"password": "dora-pw-2"}, 200, &u)
	if code := dora.register(300); code != 401 {
		t.Fatalf("old password after change: %d", code)
	}
	dora.pass = "dora-pw-2"
	if code := dora.register(300); code != 200 {
		t.Fatalf("new password: %d", code)
	}
	doraMD5 := newPhone(t, sipAddr, "2001", "dora-pw-2", "") // no User-Agent: MD5 only
	if code := doraMD5.register(300); code != 200 {
		t.Fatalf("MD5 REGISTER with the new password: %d", code)
	}
	e.api("GET", "/api/v1/registrations", nil, 200, &regs)
	if len(regs.Items) != 2 {
		t.Fatalf("want 2 registrations of 2001: %+v", regs)
	}

	// Deleting the user drops its registrations and its access.
	e.api("DELETE", "/api/v1/users/2001", nil, 204, nil)
	e.api("GET", "/api/v1/registrations", nil, 200, &regs)
	if len(regs.Items) != 0 {
		t.Fatalf("registrations of a deleted user: %+v", regs)
	}
	if code := dora.register(300); code != 401 {
		t.Fatalf("deleted user REGISTER: %d", code)
	}
	e.api("GET", "/api/v1/users/2001", nil, 404, nil)
	e.api("DELETE", "/api/v1/users/2001", nil, 404, nil)

	// Calls to a callee that is not registered fail at once and leave records.
	alice := newPhone(t, sipAddr, "1001", "alice-1001", "")
	for range 3 {
		inv := alice.invite("1002")
		if res := alice.finalResponse(inv); res.status != 480 {
			t.Fatalf("call to unregistered callee: %d", res.status)
		}
	}

	// An answered call is listed with its legs and hung up through the API.
	bob := newPhone(t, sipAddr, "1002", "bob-1002", "")
	if code := bob.register(300); code != 200 {
		t.Fatalf("bob REGISTER: %d", code)
	}
	inv := alice.invite("1002")
	in := bob.readRequest("INVITE")
	bob.respond(in, 180, "")
	bob.respond(in, 200, testSDP(bob.conn.LocalAddr().(*net.UDPAddr).Port+1000))
	if res := alice.finalResponse(inv); res.status != 200 {
		t.Fatalf("answered call: caller got %d", res.status)
	}
	bob.readRequest("ACK")

	var calls web.Page[web.Call]
	e.api("GET", "/api/v1/calls", nil, 200, &calls)
	if len(calls.Items) != 1 {
		t.Fatalf("calls %+v", calls)
	}
	c := calls.Items[0]
	if c.Caller != "1001" || c.Callee != "1002" || c.State != "answered" || c.AnsweredAt.IsZero() || len(c.Legs) != 2 ||
		len(c.Codecs) != 1 || c.Codecs[0] != "PCMU/8000" ||
		c.Legs[0].Name != "caller" || c.Legs[0].RelayPort == 0 || c.Legs[1].RelayPort == 0 {
		t.Fatalf("call %+v", c)
	}
	var one web.Call
	e.api("GET", "/api/v1/calls/"+c.ID, nil, 200, &one)
	if one.ID != c.ID {
		t.Fatalf("get call %+v", one)
	}
	e.api("GET", "/api/v1/status", nil, 200, &status)
	if status.ActiveCalls != 1 || status.Registrations != 1 || status.Users != 2 {
		t.Fatalf("status during the call %+v", status)
	}
	// The hangup returns once both phones answered their BYE: send it
	// from another goroutine while this one answers.
	type answer struct {
		res  *http.Response
		body []byte
		err  error
	}
	hungUp := make(chan answer, 1)
	go func() {
		res, b, err := e.send("DELETE", "/api/v1/calls/"+c.ID, "Bearer "+apiToken, nil)
		hungUp <- answer{res, b, err}
	}()
	alice.respond(alice.readRequest("BYE"), 200, "")
	bob.respond(bob.readRequest("BYE"), 200, "")
	select {
	case a := <-hungUp:
		if a.err != nil {
			t.Fatal(a.err)
		}
		e.check("DELETE", "/api/v1/calls/"+c.ID, a.res, a.body, 204, nil)
	case <-time.After(3 * time.Second):
		t.Fatal("hangup did not return after both phones answered BYE")
	}
	e.api("GET", "/api/v1/calls/"+c.ID, nil, 404, nil)
	e.api("DELETE", "/api/v1/calls/"+c.ID, nil, 404, nil)

	// Records: newest first, filtered, paginated.
	var rec web.Record
	waitFor(t, "record of the hung-up call", func() bool {
		e.api("GET", "/api/v1/records/"+c.ID, nil, 200, &rec)
		return !rec.EndedAt.IsZero()
	})
	if rec.HangupBy != "system" || rec.Caller != "1001" || rec.AnsweredAt.IsZero() || len(rec.Legs) != 2 {
		t.Fatalf("record %+v", rec)
	}
	e.api("GET", "/api/v1/records/no-such-call", nil, 404, nil)
	var page web.Page[web.Record]
	e.api("GET", "/api/v1/records", nil, 200, &page)
	if len(page.Items) != 4 || page.Items[0].ID != c.ID || page.NextCursor != "" {
		t.Fatalf("records %+v", page)
	}
	var ids []string
	path := "/api/v1/records?limit=3"
	for range 5 {
		var pg web.Page[web.Record]
		e.api("GET", path, nil, 200, &pg)
		for _, r := range pg.Items {
			ids = append(ids, r.ID)
		}
		if pg.NextCursor == "" {
			break
		}
		path = "/api/v1/records?limit=3&cursor=" + url.QueryEscape(pg.NextCursor)
	}
	if len(ids) != 4 || ids[0] != c.ID {
		t.Fatalf("paged records %v", ids)
	}
	for name, tc := range map[string]struct {
		q    url.Values
		want int
	}{
		"by caller":       {url.Values{"user": {"1001"}}, 4},
		"by other user":   {url.Values{"user": {"1003"}}, 0},
		"by result":       {url.Values{"result": {"unavailable"}}, 3},
		"by result+limit": {url.Values{"result": {"unavailable"}, "limit": {"2"}}, 2},
		"since future":    {url.Values{"since": {time.Now().Add(time.Hour).Format(time.RFC3339)}}, 0},
		"until past":      {url.Values{"until": {time.Now().Add(-time.Hour).Format(time.RFC3339)}}, 0},
		"window":          {url.Values{"since": {time.Now().Add(-time.Hour).Format(time.RFC3339)}, "until": {time.Now().Add(time.Hour).Format(time.RFC3339)}}, 4},
	} {
		t.Run(name, func(t *testing.T) {
			var pg web.Page[web.Record]
			e.with(t).api("GET", "/api/v1/records?"+tc.q.Encode(), nil, 200, &pg)
			if len(pg.Items) != tc.want {
				t.Fatalf("%d records, want %d", len(pg.Items), tc.want)
			}
		})
	}
	e.api("GET", "/api/v1/records?cursor=bm8tc3VjaC1jYWxs", nil, 422, &p) // "no-such-call"
	if loc := p.locations(); len(loc) != 1 || loc[0] != "query.cursor" {
		t.Fatalf("unknown cursor: %+v", p)
	}
	e.api("GET", "/api/v1/records?since=yesterday", nil, 422, &p)
	if loc := p.locations(); len(loc) != 1 || loc[0] != "query.since" {
		t.Fatalf("bad since: %+v", p)
	}
	e.api("GET", "/api/v1/users?limit=0", nil, 422, &p)

	var trunks web.List[web.Trunk]
	e.api("GET", "/api/v1/trunks", nil, 200, &trunks)
	if trunks.Items == nil || len(trunks.Items) != 0 {
		t.Fatalf("trunks %+v", trunks)
	}

	t.Run("metrics", func(t *testing.T) {
		e := e.with(t)
		results := map[string]int{}
		e.api("GET", "/api/v1/records", nil, 200, &page)
		for _, r := range page.Items {
			results[r.Result]++
		}
		_, b := e.raw("GET", "/metrics", "", nil)
		m := string(b)
		want := []string{
			"switchboard_registrations 1\n",
			"switchboard_users 2\n",
			`switchboard_active_calls{state="answered"} 0` + "\n",
			`switchboard_active_calls{state="ringing"} 0` + "\n",
			"switchboard_ready 1\n",
			`switchboard_limit{limit="max_calls_per_user"} 10` + "\n",
			"switchboard_sip_banned_sources 0\n",
			`switchboard_sip_responses_total{class="2xx",method="REGISTER"} `,
			`switchboard_sip_responses_total{class="4xx",method="INVITE"} `,
			`switchboard_sip_requests_total{method="ACK"} `,
			"switchboard_call_setup_seconds_count 1\n",
			`switchboard_call_setup_seconds_bucket{le="10"} 1` + "\n",
			`switchboard_relay_packets_total{direction="in"} 0` + "\n",
			"go_goroutines ",
			"go_memstats_alloc_bytes ",
			"process_open_fds ",
		}
		for result, n := range results {
			want = append(want, fmt.Sprintf("switchboard_calls_total{result=%q} %d\n", result, n))
		}
		for _, w := range want {
			if !strings.Contains(m, w) {
				t.Errorf("metrics lack %q", w)
			}
		}
	})

	var prot web.ProtectionState
	e.api("GET", "/api/v1/protection", nil, 200, &prot)
	if prot.Limits["max_calls_per_user"] != 10 || prot.Limits["requests_per_second"] != 50 || prot.Bans == nil {
		t.Fatalf("protection: %+v", prot)
	}
	e.api("DELETE", "/api/v1/protection/bans/192.0.2.1", nil, 404, &p)

	// A scanner from 127.0.0.2 is banned; the operator lifts the ban.
	scan, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Fatal(err)
	}
	defer scan.Close()
	probe := fmt.Sprintf("OPTIONS sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bKscan1\r\nFrom: <sip:100@x>;tag=1\r\nTo: <sip:100@x>\r\n"+
		"Call-ID: scan-1\r\nCSeq: 1 OPTIONS\r\nUser-Agent: friendly-scanner\r\nContent-Length: 0\r\n\r\n", scan.LocalAddr())
	if _, err := scan.WriteToUDP([]byte(probe), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: e.server.sipPort}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the scanner's ban", func() bool {
		e.api("GET", "/api/v1/protection", nil, 200, &prot)
		return len(prot.Bans) == 1 && prot.Bans[0].Address == "127.0.0.2" && prot.Bans[0].Reason == "scanner"
	})
	if prot.Dropped["scanner"] != 1 || prot.BansTotal != 1 {
		t.Fatalf("protection counters: %+v", prot)
	}
	e.api("DELETE", "/api/v1/protection/bans/127.0.0.2", nil, 204, nil)
	e.api("GET", "/api/v1/protection", nil, 200, &prot)
	if len(prot.Bans) != 0 {
		t.Fatalf("bans after unban: %+v", prot.Bans)
	}

	var rr web.ReloadResult
	e.api("POST", "/api/v1/reload", nil, 200, &rr)
	if len(rr.Applied) == 0 || rr.Applied[0] != "users" || rr.RestartNeeded == nil {
		t.Fatalf("reload: %+v", rr)
	}

	var hooks web.List[web.WebhookStatus]
	e.api("GET", "/api/v1/webhooks", nil, 200, &hooks)
	if len(hooks.Items) != 0 {
		t.Fatalf("webhooks without any configured: %+v", hooks)
	}

	// Click-to-call has its own test (TestOriginate); here the ringing
	// device declines.
	var orig web.Originate
	e.api("POST", "/api/v1/calls", map[string]string{"from": "1002", "to": "1001"}, 202, &orig)
	bob.respond(bob.readRequest("INVITE"), 486, "")

	// The event stream has its own test (TestEventStream); here it only
	// needs to answer as documented.
	e.openEvents(t, "?after=0", nil).close()

	if left := e.doc.Unexercised(); len(left) > 0 {
		t.Fatalf("operations of the OpenAPI document never exercised: %v", left)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sipPhone is a minimal SIP user agent over UDP on 127.0.0.1 for driving
// the server in tests: REGISTER and INVITE with digest authentication,
// answers, ACK and BYE. Everything runs on the test goroutine.
type sipPhone struct {
	t          *testing.T
	user, pass string
	ua         string // User-Agent; "" sends none, which is offered MD5 only
	conn       *net.UDPConn
	server     *net.UDPAddr
	regCallID  string
	cseq       int
	tag        string // our tag in dialogs we answer
}

func newPhone(t *testing.T, server, user, pass, ua string) *sipPhone {
	t.Helper()
	srv, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &sipPhone{t: t, user: user, pass: pass, ua: ua, conn: conn, server: srv, regCallID: randHex(8), tag: randHex(4)}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (p *sipPhone) addr() string { return p.conn.LocalAddr().String() }

func (p *sipPhone) send(to *net.UDPAddr, msg string) {
	p.t.Helper()
	if _, err := p.conn.WriteToUDP([]byte(msg), to); err != nil {
		p.t.Fatal(err)
	}
}

// sipMsg is a parsed SIP message.
type sipMsg struct {
	method  string // requests
	uri     string // requests
	status  int    // responses
	headers [][2]string
	body    string
	from    *net.UDPAddr
}

var compactHeaders = map[string]string{"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact", "l": "content-length", "c": "content-type"}

func parseSIP(b []byte, from *net.UDPAddr) (*sipMsg, error) {
	head, body, _ := bytes.Cut(b, []byte("\r\n\r\n"))
	sc := bufio.NewScanner(bytes.NewReader(head))
	if !sc.Scan() {
		return nil, fmt.Errorf("empty message")
	}
	m := &sipMsg{body: string(body), from: from}
	first := strings.Fields(sc.Text())
	if len(first) < 3 {
		return nil, fmt.Errorf("bad start line %q", sc.Text())
	}
	if first[0] == "SIP/2.0" {
		m.status, _ = strconv.Atoi(first[1])
	} else {
		m.method, m.uri = first[0], first[1]
	}
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		name = strings.ToLower(strings.TrimSpace(name))
		if full, ok := compactHeaders[name]; ok {
			name = full
		}
		m.headers = append(m.headers, [2]string{name, strings.TrimSpace(value)})
	}
	return m, nil
}

func (m *sipMsg) get(name string) string {
	for _, h := range m.headers {
		if h[0] == name {
			return h[1]
		}
	}
	return ""
}

func (m *sipMsg) cseq() (int, string) {
	n, method, _ := strings.Cut(m.get("cseq"), " ")
	i, _ := strconv.Atoi(n)
	return i, strings.TrimSpace(method)
}

// read returns the next message that match accepts.
func (p *sipPhone) read(what string, match func(*sipMsg) bool) *sipMsg {
	p.t.Helper()
	buf := make([]byte, 65535)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_ = p.conn.SetReadDeadline(deadline)
		n, from, err := p.conn.ReadFromUDP(buf)
		if err != nil {
			p.t.Fatalf("%s waiting for %s: %v", p.user, what, err)
		}
		m, err := parseSIP(buf[:n], from)
		if err == nil && match(m) {
			return m
		}
	}
}

// within returns the next message that match accepts within d, or nil.
func (p *sipPhone) within(d time.Duration, match func(*sipMsg) bool) *sipMsg {
	buf := make([]byte, 65535)
	deadline := time.Now().Add(d)
	for {
		_ = p.conn.SetReadDeadline(deadline)
		n, from, err := p.conn.ReadFromUDP(buf)
		if err != nil {
			return nil
		}
		if m, err := parseSIP(buf[:n], from); err == nil && match(m) {
			return m
		}
	}
}

// readRequest returns the next request with the given method.
func (p *sipPhone) readRequest(method string) *sipMsg {
	p.t.Helper()
	return p.read(method, func(m *sipMsg) bool { return m.method == method })
}

// readFinal returns the final response to the request callID/cseq.
func (p *sipPhone) readFinal(callID string, cseq int) *sipMsg {
	p.t.Helper()
	return p.read(fmt.Sprintf("response to CSeq %d", cseq), func(m *sipMsg) bool {
		n, _ := m.cseq()
		return m.status >= 200 && m.get("call-id") == callID && n == cseq
	})
}

var challengeParam = regexp.MustCompile(`(\w+)=(?:"([^"]*)"|([^,\s]*))`)

// authorization answers a digest challenge (RFC 7616 §3.4, qop=auth).
func (p *sipPhone) authorization(challenge, method, uri string) string {
	params := map[string]string{}
	for _, m := range challengeParam.FindAllStringSubmatch(challenge, -1) {
		params[strings.ToLower(m[1])] = m[2] + m[3]
	}
	alg := params["algorithm"]
	if alg == "" {
		alg = digest.MD5
	}
	c := digest.Credentials{Username: p.user, Realm: params["realm"], Nonce: params["nonce"], URI: uri,
		Algorithm: alg, CNonce: randHex(8), NC: "00000001"}
	if params["qop"] != "" {
		c.QOP = "auth"
	}
	resp := c.ExpectedResponse(method, digest.HA1(alg, p.user, c.Realm, p.pass))
	h := fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=%s`,
		p.user, c.Realm, c.Nonce, uri, resp, alg)
	if c.QOP != "" {
		h += fmt.Sprintf(`, qop=auth, nc=%s, cnonce="%s"`, c.NC, c.CNonce)
	}
	if o := params["opaque"]; o != "" {
		h += fmt.Sprintf(`, opaque="%s"`, o)
	}
	return h
}

func (p *sipPhone) registerRequest(expires int, auth string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "REGISTER sip:switchboard.local SIP/2.0\r\n")
	fmt.Fprintf(&b, "Via: SIP/2.0/UDP %s;branch=z9hG4bK%s;rport\r\n", p.addr(), randHex(8))
	fmt.Fprintf(&b, "Max-Forwards: 70\r\nFrom: <sip:%s@switchboard.local>;tag=%s\r\nTo: <sip:%s@switchboard.local>\r\n", p.user, randHex(4), p.user)
	fmt.Fprintf(&b, "Call-ID: %s\r\nCSeq: %d REGISTER\r\nContact: <sip:%s@%s>\r\nExpires: %d\r\n", p.regCallID, p.cseq, p.user, p.addr(), expires)
	if p.ua != "" {
		fmt.Fprintf(&b, "User-Agent: %s\r\n", p.ua)
	}
	if auth != "" {
		fmt.Fprintf(&b, "Authorization: %s\r\n", auth)
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return b.String()
}

// register registers the phone's address, answering one challenge, and
// returns the final status.
func (p *sipPhone) register(expires int) int {
	p.t.Helper()
	p.cseq++
	p.send(p.server, p.registerRequest(expires, ""))
	res := p.readFinal(p.regCallID, p.cseq)
	if res.status != 401 {
		return res.status
	}
	p.cseq++
	p.send(p.server, p.registerRequest(expires, p.authorization(res.get("www-authenticate"), "REGISTER", "sip:switchboard.local")))
	return p.readFinal(p.regCallID, p.cseq).status
}

// outCall is an INVITE transaction the phone sent.
type outCall struct {
	callee, callID, fromTag, branch string
	cseq                            int
}

func testSDP(port int) string {
	return fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n", port)
}

func (p *sipPhone) inviteRequest(c *outCall, auth string) string {
	sdp := testSDP(p.conn.LocalAddr().(*net.UDPAddr).Port + 1000)
	var b strings.Builder
	fmt.Fprintf(&b, "INVITE sip:%s@switchboard.local SIP/2.0\r\n", c.callee)
	fmt.Fprintf(&b, "Via: SIP/2.0/UDP %s;branch=%s;rport\r\nMax-Forwards: 70\r\n", p.addr(), c.branch)
	fmt.Fprintf(&b, "From: <sip:%s@switchboard.local>;tag=%s\r\nTo: <sip:%s@switchboard.local>\r\n", p.user, c.fromTag, c.callee)
	fmt.Fprintf(&b, "Call-ID: %s\r\nCSeq: %d INVITE\r\nContact: <sip:%s@%s>\r\n", c.callID, c.cseq, p.user, p.addr())
	if auth != "" {
		fmt.Fprintf(&b, "Proxy-Authorization: %s\r\n", auth)
	}
	fmt.Fprintf(&b, "Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s", len(sdp), sdp)
	return b.String()
}

// invite calls callee, answering the server's 407 challenge; the final
// response is read with finalResponse.
func (p *sipPhone) invite(callee string) *outCall {
	p.t.Helper()
	c := &outCall{callee: callee, callID: randHex(8), fromTag: randHex(4), branch: "z9hG4bK" + randHex(8), cseq: 1}
	p.send(p.server, p.inviteRequest(c, ""))
	res := p.readFinal(c.callID, c.cseq)
	if res.status != 407 {
		p.t.Fatalf("INVITE without credentials: %d, want 407", res.status)
	}
	p.ack(c, res)
	c.cseq, c.branch = 2, "z9hG4bK"+randHex(8)
	p.send(p.server, p.inviteRequest(c, p.authorization(res.get("proxy-authenticate"), "INVITE", "sip:"+callee+"@switchboard.local")))
	return c
}

// finalResponse reads the final response to the call's INVITE and ACKs it.
func (p *sipPhone) finalResponse(c *outCall) *sipMsg {
	p.t.Helper()
	res := p.readFinal(c.callID, c.cseq)
	p.ack(c, res)
	return res
}

// ack acknowledges a final response (RFC 3261 §17.1.1.3 for failures,
// §13.2.2.4 for 2xx).
func (p *sipPhone) ack(c *outCall, res *sipMsg) {
	uri, branch := "sip:"+c.callee+"@switchboard.local", c.branch
	if res.status < 300 {
		branch = "z9hG4bK" + randHex(8)
		if ct := res.get("contact"); ct != "" {
			if i, j := strings.Index(ct, "<"), strings.Index(ct, ">"); i >= 0 && j > i {
				uri = ct[i+1 : j]
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "ACK %s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=%s;rport\r\nMax-Forwards: 70\r\n", uri, p.addr(), branch)
	fmt.Fprintf(&b, "From: <sip:%s@switchboard.local>;tag=%s\r\nTo: %s\r\n", p.user, c.fromTag, res.get("to"))
	fmt.Fprintf(&b, "Call-ID: %s\r\nCSeq: %d ACK\r\nContent-Length: 0\r\n\r\n", c.callID, c.cseq)
	p.send(p.server, b.String())
}

// respond answers a request from the server, with an SDP body if not "".
func (p *sipPhone) respond(req *sipMsg, code int, sdp string) {
	p.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "SIP/2.0 %d %s\r\n", code, http.StatusText(code))
	if code == 180 {
		b.Reset()
		b.WriteString("SIP/2.0 180 Ringing\r\n")
	}
	for _, h := range req.headers {
		if h[0] == "via" {
			fmt.Fprintf(&b, "Via: %s\r\n", h[1])
		}
	}
	to := req.get("to")
	if !strings.Contains(to, ";tag=") {
		to += ";tag=" + p.tag
	}
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %s\r\n", req.get("from"), to, req.get("call-id"), req.get("cseq"))
	fmt.Fprintf(&b, "Contact: <sip:%s@%s>\r\n", p.user, p.addr())
	if sdp != "" {
		fmt.Fprintf(&b, "Content-Type: application/sdp\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(sdp), sdp)
	p.send(req.from, b.String())
}

// fakeCalls is a call record table with the store's ordering and filter
// semantics for Since, Limit and Before.
type fakeCalls struct {
	recs []store.CallRecord
	// read counts the records returned, to show that old ones are not read again.
	read int
}

func (f *fakeCalls) Calls(_ context.Context, flt store.CallFilter) ([]store.CallRecord, error) {
	sorted := slices.Clone(f.recs)
	slices.SortFunc(sorted, func(a, b store.CallRecord) int {
		if c := b.StartedAt.Compare(a.StartedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	var out []store.CallRecord
	skipping := flt.Before != ""
	for _, r := range sorted {
		if skipping {
			skipping = r.ID != flt.Before
			continue
		}
		if !flt.Since.IsZero() && r.StartedAt.Before(flt.Since) {
			continue
		}
		out = append(out, r)
		if len(out) == flt.Limit {
			break
		}
	}
	f.read += len(out)
	return out, nil
}

func TestResultCounter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	calls := &fakeCalls{}
	c := &resultCounter{calls: calls, now: func() time.Time { return now }}
	add := func(id string, ago time.Duration, result string) {
		r := store.CallRecord{ID: id, StartedAt: now.Add(-ago), Result: result}
		if result != "" {
			r.EndedAt = r.StartedAt.Add(time.Second)
		}
		calls.recs = append(calls.recs, r)
	}
	end := func(id, result string) {
		for i := range calls.recs {
			if calls.recs[i].ID == id {
				calls.recs[i].EndedAt, calls.recs[i].Result = now, result
			}
		}
	}
	check := func(want map[string]uint64) {
		t.Helper()
		got, err := c.CallResults(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(got, want) {
			t.Fatalf("results %v, want %v", got, want)
		}
	}

	for i := range 2500 { // more than one page
		add(fmt.Sprintf("old-%04d", i), 48*time.Hour+time.Duration(i)*time.Second, "answered")
	}
	add("long", 2*time.Hour, "") // a long call still up
	add("busy1", time.Hour, "busy")
	add("recent", 10*time.Second, "no_answer")
	check(map[string]uint64{"answered": 2500, "busy": 1, "no_answer": 1})

	// Later scrapes read only what started since the oldest open call.
	calls.read = 0
	now = now.Add(time.Minute)
	add("new", 0, "answered")
	check(map[string]uint64{"answered": 2501, "busy": 1, "no_answer": 1})
	if calls.read > 10 {
		t.Fatalf("second scrape read %d records", calls.read)
	}

	// The long call ends: counted once, then kept.
	end("long", "cancelled")
	now = now.Add(time.Minute)
	check(map[string]uint64{"answered": 2501, "busy": 1, "no_answer": 1, "cancelled": 1})
	now = now.Add(time.Hour)
	check(map[string]uint64{"answered": 2501, "busy": 1, "no_answer": 1, "cancelled": 1})
	calls.read = 0
	check(map[string]uint64{"answered": 2501, "busy": 1, "no_answer": 1, "cancelled": 1})
	if calls.read != 0 {
		t.Fatalf("nothing new, yet %d records read", calls.read)
	}
}
