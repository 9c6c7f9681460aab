package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard/switchboard/internal/jsontime"
	"github.com/switchboard/switchboard/web/webtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const testToken = "test-token-1"

// testEnv is a Server over a fake service behind a real HTTP listener on
// 127.0.0.1, with a client that checks every API response against the
// server's own OpenAPI document.
type testEnv struct {
	t    *testing.T
	svc  *fakeService
	srv  *Server
	http *httptest.Server
	doc  *webtest.Doc
	log  *bytes.Buffer
	evs  *fakeEvents
}

func newEnv(t *testing.T) *testEnv {
	t.Helper()
	e := &testEnv{t: t, svc: newFake(), log: &bytes.Buffer{}, evs: newFakeEvents()}
	var err error
	e.srv, err = New(Config{Tokens: []string{"other-token", testToken}, Version: "1.2.3"}, Deps{
		Service: e.svc, CallResults: fakeResults{"answered": 3, "busy": 1}, Events: e.evs, Originator: e.svc,
		Log: slog.New(slog.NewTextHandler(e.log, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.http = httptest.NewServer(e.srv.Handler())
	t.Cleanup(e.http.Close)
	res, body := e.raw("GET", "/api/v1/openapi.json", "", nil)
	if res.StatusCode != 200 {
		t.Fatalf("openapi.json: %d %s", res.StatusCode, body)
	}
	if e.doc, err = webtest.Parse(body); err != nil {
		t.Fatal(err)
	}
	return e
}

// with returns the environment reporting to t (a subtest).
func (e *testEnv) with(t *testing.T) *testEnv {
	c := *e
	c.t = t
	return &c
}

// raw sends a request with the given token ("" for none).
func (e *testEnv) raw(method, path, token string, body any) (*http.Response, []byte) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.http.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := e.http.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return res, b
}

// api sends an authenticated API request, checks the status and the
// response against the document, and decodes the body into out.
func (e *testEnv) api(method, path string, body any, want int, out any) *http.Response {
	e.t.Helper()
	res, b := e.raw(method, path, testToken, body)
	if res.StatusCode != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, res.StatusCode, want, b)
	}
	if err := e.doc.Check(method, path, res.StatusCode, res.Header.Get("Content-Type"), b); err != nil {
		e.t.Fatalf("response does not match the OpenAPI document: %v\n%s", err, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s %s: decode: %v", method, path, err)
		}
	}
	return res
}

type problem struct {
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Errors []struct {
		Message  string `json:"message"`
		Location string `json:"location"`
	} `json:"errors"`
}

func TestAuth(t *testing.T) {
	e := newEnv(t)
	e.svc.users["1001"] = User{Name: "1001"}
	for name, tc := range map[string]struct {
		method, path, auth string
		want               int
	}{
		"no token":         {"GET", "/api/v1/users", "", 401},
		"wrong token":      {"GET", "/api/v1/users", "Bearer nope-nope", 401},
		"token prefix":     {"GET", "/api/v1/users", "Bearer " + testToken[:5], 401},
		"basic scheme":     {"GET", "/api/v1/users", "Basic " + testToken, 401},
		"empty bearer":     {"GET", "/api/v1/users", "Bearer ", 401},
		"unknown api path": {"GET", "/api/v1/nothing", "", 401},
		"delete no token":  {"DELETE", "/api/v1/users/1001", "", 401},
		"good token":       {"GET", "/api/v1/users", "Bearer " + testToken, 200},
		"second token":     {"GET", "/api/v1/users", "Bearer other-token", 200},
		"scheme any case":  {"GET", "/api/v1/users", "bearer " + testToken, 200},
		"openapi public":   {"GET", "/api/v1/openapi.json", "", 200},
		"openapi yaml":     {"GET", "/api/v1/openapi.yaml", "", 200},
		"healthz public":   {"GET", "/healthz", "", 200},
		"metrics public":   {"GET", "/metrics", "", 200},
	} {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, e.http.URL+tc.path, nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			res, err := e.http.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tc.want {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tc.want, b)
			}
			if tc.want != 401 {
				return
			}
			if got := res.Header.Get("WWW-Authenticate"); got != `Bearer realm="switchboard"` {
				t.Fatalf("WWW-Authenticate %q", got)
			}
			if tc.path == "/api/v1/users" {
				if err := e.doc.Check(tc.method, tc.path, res.StatusCode, res.Header.Get("Content-Type"), b); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	if _, ok := e.svc.users["1001"]; !ok {
		t.Fatal("unauthenticated DELETE deleted the user")
	}
	// The control handler needs no token.
	rec := httptest.NewRecorder()
	e.srv.ControlHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/users", nil))
	if rec.Code != 200 {
		t.Fatalf("control handler: %d %s", rec.Code, rec.Body)
	}
}

func TestUsersAPI(t *testing.T) {
	e := newEnv(t)
	var u User
	res := e.api("POST", "/api/v1/users", map[string]string{"name": "2001", "display_name": "Dora", "password": "pw-2001"}, 201, &u)
	if u.Name != "2001" || u.DisplayName != "Dora" || res.Header.Get("Location") != "/api/v1/users/2001" {
		t.Fatalf("created %+v, location %q", u, res.Header.Get("Location"))
	}
	var p problem
	e.api("POST", "/api/v1/users", map[string]string{"name": "2001", "password": "pw-2001"}, 409, &p)
	if !strings.Contains(p.Detail, `"2001" already exists`) {
		t.Fatalf("409 detail %q", p.Detail)
	}
	for name, tc := range map[string]struct {
		body     any
		location string // where the error points
		field    string // the field its location or message names
	}{
		"bad name":       {map[string]string{"name": "no spaces", "password": "pw-2001"}, "body.name", "name"},
		"long name":      {map[string]string{"name": strings.Repeat("a", 65), "password": "pw-2001"}, "body.name", "name"},
		"short password": {map[string]string{"name": "2002", "password": "abc"}, "body.password", "password"},
		"no password":    {map[string]string{"name": "2002"}, "body", "password"},
		"unknown field":  {map[string]string{"name": "2002", "password": "pw-2002", "pasword": "x"}, "body.pasword", "pasword"},
		"line break in display name": {map[string]string{"name": "2002", "password": "pw-2002", "display_name": "Eve\r\nX-Injected: 1"},
			"body.display_name", "display_name"},
	} {
		t.Run(name, func(t *testing.T) {
			var p problem
			e.with(t).api("POST", "/api/v1/users", tc.body, 422, &p)
			if len(p.Errors) == 0 || p.Errors[0].Location != tc.location {
				t.Fatalf("422 errors %+v, want location %s", p.Errors, tc.location)
			}
			if !strings.Contains(p.Errors[0].Location+" "+p.Errors[0].Message, tc.field) {
				t.Fatalf("422 error %+v does not name %s", p.Errors[0], tc.field)
			}
		})
	}
	e.api("GET", "/api/v1/users/2001", nil, 200, &u)
	e.api("GET", "/api/v1/users/nobody", nil, 404, &p)
	e.api("PATCH", "/api/v1/users/2001", map[string]string{"display_name": "Dorothy"}, 200, &u)
	if u.DisplayName != "Dorothy" {
		t.Fatalf("patched %+v", u)
	}
	e.api("PATCH", "/api/v1/users/2001", map[string]string{"password": "x"}, 422, &p)
	e.api("PATCH", "/api/v1/users/2001", map[string]string{"display_name": "Dora\nX-Injected: 1"}, 422, &p)
	e.api("PATCH", "/api/v1/users/2001", map[string]string{"display_name": "Dora\u0085Next"}, 422, &p)
	e.api("PATCH", "/api/v1/users/2001", map[string]string{"display_name": `Dora "The Explorer"`}, 200, &u)
	e.api("PATCH", "/api/v1/users/nobody", map[string]string{"display_name": "x"}, 404, nil)
	e.api("DELETE", "/api/v1/users/2001", nil, 204, nil)
	e.api("DELETE", "/api/v1/users/2001", nil, 404, nil)
}

func TestPagination(t *testing.T) {
	e := newEnv(t)
	for _, n := range []string{"e", "a", "d", "c", "b"} {
		e.svc.users[n] = User{Name: n}
	}
	var names []string
	path := "/api/v1/users?limit=2"
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		var p Page[User]
		e.api("GET", path, nil, 200, &p)
		for _, u := range p.Items {
			names = append(names, u.Name)
		}
		if p.NextCursor == "" {
			break
		}
		path = "/api/v1/users?limit=2&cursor=" + p.NextCursor
	}
	if strings.Join(names, ",") != "a,b,c,d,e" {
		t.Fatalf("pages gave %v", names)
	}
	for name, q := range map[string]string{"zero limit": "limit=0", "huge limit": "limit=1001", "bad cursor": "cursor=!!!"} {
		t.Run(name, func(t *testing.T) {
			var p problem
			e.with(t).api("GET", "/api/v1/users?"+q, nil, 422, &p)
			if len(p.Errors) == 0 || !strings.HasPrefix(p.Errors[0].Location, "query.") {
				t.Fatalf("422 %+v", p)
			}
		})
	}

	// Records page through the service with its cursor.
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 5 {
		e.svc.records = append(e.svc.records, Record{ID: string(rune('z' - i)), Caller: "1001", Callee: "1002",
			StartedAt: jsontime.Millis(base.Add(-time.Duration(i) * time.Minute)), Result: "answered"})
	}
	var p1, p2 Page[Record]
	e.api("GET", "/api/v1/records?limit=3", nil, 200, &p1)
	e.api("GET", "/api/v1/records?limit=3&cursor="+p1.NextCursor, nil, 200, &p2)
	if len(p1.Items) != 3 || p1.NextCursor == "" || len(p2.Items) != 2 || p2.NextCursor != "" || p2.Items[0].ID != "w" {
		t.Fatalf("record pages %+v / %+v", p1, p2)
	}
	var p problem
	e.api("GET", "/api/v1/records?cursor="+encodeCursor("gone"), nil, 422, &p)
	if len(p.Errors) == 0 || p.Errors[0].Location != "query.cursor" {
		t.Fatalf("unknown record cursor: %+v", p)
	}
	e.api("GET", "/api/v1/records?since=yesterday", nil, 422, &p)
}

func TestCallsAndRegistrationsAPI(t *testing.T) {
	e := newEnv(t)
	now := time.Now().UTC()
	e.svc.regs = []Registration{{ID: "1001|sip:1001@127.0.0.1:5070", User: "1001", Contact: "sip:1001@127.0.0.1:5070",
		Source: "127.0.0.1:5070", Transport: "UDP", ExpiresAt: jsontime.Millis(now.Add(time.Minute))}}
	e.svc.calls = []Call{
		{ID: "c2", Caller: "1001", Callee: "1002", State: "answered", StartedAt: jsontime.Millis(now), AnsweredAt: jsontime.Millis(now),
			Legs: []CallLeg{{Name: "caller", RelayPort: 20000, Remote: "127.0.0.1:4000"}, {Name: "callee", RelayPort: 20002}}},
		{ID: "c1", Caller: "1003", Callee: "1002", State: "ringing", StartedAt: jsontime.Millis(now.Add(-time.Second))},
	}
	var regs Page[Registration]
	e.api("GET", "/api/v1/registrations", nil, 200, &regs)
	if len(regs.Items) != 1 || regs.Items[0].ExpiresIn < 58 || regs.Items[0].ExpiresIn > 60 {
		t.Fatalf("registrations %+v", regs)
	}
	e.api("DELETE", "/api/v1/registrations/"+"1001%7Csip:1001@127.0.0.1:5070", nil, 204, nil)
	e.api("DELETE", "/api/v1/registrations/"+"1001%7Csip:1001@127.0.0.1:5070", nil, 404, nil)

	var calls Page[Call]
	e.api("GET", "/api/v1/calls", nil, 200, &calls)
	if len(calls.Items) != 2 || calls.Items[0].ID != "c1" || calls.Items[1].Legs[0].RelayPort != 20000 {
		t.Fatalf("calls %+v", calls)
	}
	var c Call
	e.api("GET", "/api/v1/calls/c1", nil, 200, &c)
	if c.Legs == nil || !c.AnsweredAt.IsZero() {
		t.Fatalf("call %+v", c)
	}
	e.api("DELETE", "/api/v1/calls/c1", nil, 204, nil)
	e.api("GET", "/api/v1/calls/c1", nil, 404, nil)
	e.api("DELETE", "/api/v1/calls/c1", nil, 404, nil)

	var st Status
	e.api("GET", "/api/v1/status", nil, 200, &st)
	if st.Version != "1.2.3" || st.ActiveCalls != 1 || st.Registrations != 0 || st.Ready {
		t.Fatalf("status %+v", st)
	}
	var trunks List[Trunk]
	e.api("GET", "/api/v1/trunks", nil, 200, &trunks)
	if trunks.Items == nil || len(trunks.Items) != 0 {
		t.Fatalf("trunks %+v", trunks)
	}
}

func TestNewRefusesEmptyTokens(t *testing.T) {
	for name, tokens := range map[string][]string{"none": nil, "empty": {"good-token", ""}, "blank": {"  "}} {
		t.Run(name, func(t *testing.T) {
			if _, err := New(Config{Tokens: tokens}, Deps{Service: newFake()}); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestServiceErrorsAreHidden(t *testing.T) {
	e := newEnv(t)
	e.svc.err = errors.New("disk on fire at /secret/path")
	res, b := e.raw("GET", "/api/v1/users", testToken, nil)
	if res.StatusCode != 500 || strings.Contains(string(b), "secret") {
		t.Fatalf("%d %s", res.StatusCode, b)
	}
	if err := e.doc.Check("GET", "/api/v1/users", 500, res.Header.Get("Content-Type"), b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(e.log.String(), "disk on fire") {
		t.Fatalf("error not logged: %s", e.log)
	}
}

func TestProbes(t *testing.T) {
	e := newEnv(t)
	res, _ := e.raw("GET", "/healthz", "", nil)
	if res.StatusCode != 200 {
		t.Fatalf("healthz %d", res.StatusCode)
	}
	res, _ = e.raw("GET", "/readyz", "", nil)
	if res.StatusCode != 503 {
		t.Fatalf("readyz before SetReady: %d", res.StatusCode)
	}
	e.srv.SetReady(true)
	res, _ = e.raw("GET", "/readyz", "", nil)
	if res.StatusCode != 200 {
		t.Fatalf("readyz after SetReady(true): %d", res.StatusCode)
	}
	e.srv.SetReady(false)
	res, _ = e.raw("GET", "/readyz", "", nil)
	if res.StatusCode != 503 {
		t.Fatalf("readyz after SetReady(false): %d", res.StatusCode)
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t)
	e.srv.SetReady(true)
	e.svc.users["a"] = User{Name: "a"}
	e.svc.regs = []Registration{{ID: "a|x"}, {ID: "a|y"}}
	e.svc.calls = []Call{{ID: "1", State: "ringing"}, {ID: "2", State: "answered"}, {ID: "3", State: "answered"}}
	res, b := e.raw("GET", "/metrics", "", nil)
	if res.StatusCode != 200 {
		t.Fatalf("metrics %d", res.StatusCode)
	}
	for _, want := range []string{
		"switchboard_users 1\n",
		"switchboard_registrations 2\n",
		`switchboard_active_calls{state="answered"} 2` + "\n",
		`switchboard_active_calls{state="ringing"} 1` + "\n",
		`switchboard_calls_total{result="answered"} 3` + "\n",
		`switchboard_calls_total{result="busy"} 1` + "\n",
		`switchboard_build_info{version="1.2.3"} 1` + "\n",
		"switchboard_ready 1\n",
		"go_goroutines ",
		"process_resident_memory_bytes ",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// A failing service shows up as a scrape error, not as zeros.
	e.svc.err = errors.New("db gone")
	_, b = e.raw("GET", "/metrics", "", nil)
	if strings.Contains(string(b), "switchboard_users 0") {
		t.Fatalf("failing service reported as zero users")
	}
}

// TestEveryOperationChecked fails when an operation of the document has
// no successful response checked by the tests above run on one server.
func TestEveryOperationChecked(t *testing.T) {
	e := newEnv(t)
	e.svc.users["a"] = User{Name: "a"}
	e.svc.regs = []Registration{{ID: "a|x", ExpiresAt: jsontime.Millis(time.Now())}}
	e.svc.calls = []Call{{ID: "c", State: "ringing", StartedAt: jsontime.Millis(time.Now())}}
	e.svc.records = []Record{{ID: "r", StartedAt: jsontime.Millis(time.Now())}}
	for _, r := range []struct {
		method, path string
		body         any
		want         int
	}{
		{"GET", "/api/v1/users", nil, 200},
		{"POST", "/api/v1/users", map[string]string{"name": "b", "password": "secret"}, 201},
		{"GET", "/api/v1/users/b", nil, 200},
		{"PATCH", "/api/v1/users/b", map[string]string{"password": "secret2"}, 200},
		{"DELETE", "/api/v1/users/b", nil, 204},
		{"GET", "/api/v1/registrations", nil, 200},
		{"DELETE", "/api/v1/registrations/a%7Cx", nil, 204},
		{"GET", "/api/v1/calls", nil, 200},
		{"POST", "/api/v1/calls", map[string]string{"from": "a", "to": "1002"}, 202},
		{"GET", "/api/v1/calls/c", nil, 200},
		{"DELETE", "/api/v1/calls/c", nil, 204},
		{"GET", "/api/v1/records", nil, 200},
		{"GET", "/api/v1/records/r", nil, 200},
		{"GET", "/api/v1/trunks", nil, 200},
		{"GET", "/api/v1/status", nil, 200},
		{"GET", "/api/v1/webhooks", nil, 200},
	} {
		e.api(r.method, r.path, r.body, r.want, nil)
	}
	st := e.openStream(t, "")
	st.close()
	if left := e.doc.Unexercised(); len(left) > 0 {
		t.Fatalf("operations never checked: %v", left)
	}
}

func TestServeShutsDown(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	ln := listenLoopback(t)
	done := make(chan error, 1)
	go func() { done <- e.srv.serve(ctx, ln, e.srv.Handler()) }()
	res, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
	http.DefaultClient.CloseIdleConnections()
}

// Times in API bodies have exactly three fractional digits, as event and
// webhook times do, and the document still calls them date-time strings.
func TestAPITimesHaveMilliseconds(t *testing.T) {
	e := newEnv(t)
	started := time.Date(2026, 11, 26, 10, 8, 35, 670_000_000, time.UTC)
	answered := time.Date(2026, 11, 26, 10, 8, 36, 0, time.UTC)
	e.svc.records = []Record{{ID: "r1", Caller: "1001", Callee: "1002", Result: "answered",
		StartedAt: jsontime.Millis(started), AnsweredAt: jsontime.Millis(answered), EndedAt: jsontime.Millis(answered.Add(1500 * time.Microsecond))}}
	res, body := e.raw("GET", "/api/v1/records", testToken, nil)
	if res.StatusCode != 200 {
		t.Fatalf("records: %d %s", res.StatusCode, body)
	}
	for _, want := range []string{`"started_at":"2026-11-26T10:08:35.670Z"`, `"answered_at":"2026-11-26T10:08:36.000Z"`, `"ended_at":"2026-11-26T10:08:36.001Z"`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("records body lacks %s: %s", want, body)
		}
	}
	var rec Page[Record]
	e.api("GET", "/api/v1/records", nil, 200, &rec) // also validated against the document
	if len(rec.Items) != 1 || !rec.Items[0].StartedAt.Time().Equal(started) {
		t.Fatalf("records decoded as %+v", rec.Items)
	}
	_, doc := e.raw("GET", "/api/v1/openapi.json", "", nil)
	var d struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Type   any    `json:"type"`
					Format string `json:"format"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatal(err)
	}
	p := d.Components.Schemas["Record"].Properties["started_at"]
	if p.Type != "string" || p.Format != "date-time" {
		t.Fatalf("Record.started_at in the document: %+v", p)
	}
}
