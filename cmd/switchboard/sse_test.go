package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/web"
)

// sseMessage is one message of the event stream.
type sseMessage struct {
	id    int64
	event string
	data  web.EventMessage
}

// sseStream reads an event stream on its own goroutine.
type sseStream struct {
	res  *http.Response
	msgs chan sseMessage
	errs chan error
}

// openEvents opens /api/v1/events with the given headers and query.
func (e *apiEnv) openEvents(t *testing.T, query string, header map[string]string) *sseStream {
	t.Helper()
	req, err := http.NewRequest("GET", e.base+"/api/v1/events"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+apiToken)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := (&http.Client{}).Do(req) // no timeout: the stream is endless
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 {
		res.Body.Close()
		t.Fatalf("events: %d", res.StatusCode)
	}
	if err := e.doc.CheckStream("GET", "/api/v1/events", 200, res.Header.Get("Content-Type")); err != nil {
		t.Fatal(err)
	}
	s := &sseStream{res: res, msgs: make(chan sseMessage, 100), errs: make(chan error, 1)}
	go s.read()
	t.Cleanup(s.close)
	return s
}

func (s *sseStream) close() { s.res.Body.Close() }

func (s *sseStream) read() {
	defer close(s.msgs)
	sc := bufio.NewScanner(s.res.Body)
	var m sseMessage
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if m.event != "" {
				s.msgs <- m
			}
			m = sseMessage{}
		case strings.HasPrefix(line, "id: "):
			m.id, _ = strconv.ParseInt(line[4:], 10, 64)
		case strings.HasPrefix(line, "event: "):
			m.event = line[7:]
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(line[6:]), &m.data); err != nil {
				s.errs <- fmt.Errorf("data %q: %w", line, err)
				return
			}
		}
	}
}

// next returns the next message.
func (s *sseStream) next(t *testing.T) sseMessage {
	t.Helper()
	select {
	case m, ok := <-s.msgs:
		if !ok {
			t.Fatal("event stream ended")
		}
		return m
	case err := <-s.errs:
		t.Fatal(err)
	case <-time.After(30 * time.Second):
		t.Fatal("no event within 30s")
	}
	return sseMessage{}
}

func TestEventStream(t *testing.T) {
	e := startAPI(t, map[string]string{"1001": "alice-1001", "1002": "bob-1002"})
	sipAddr := fmt.Sprintf("127.0.0.1:%d", e.sipPort)

	res, b := e.raw("GET", "/api/v1/events", "", nil)
	if res.StatusCode != 401 {
		t.Fatalf("events without a token: %d", res.StatusCode)
	}
	e.check("GET", "/api/v1/events", res, b, 401, nil)
	for _, q := range []string{"?after=-1", "?after=x"} {
		var p apiProblem
		e.api("GET", "/api/v1/events"+q, nil, 422, &p)
		if loc := p.locations(); len(loc) != 1 || loc[0] != "query.after" {
			t.Fatalf("%s: %+v", q, p)
		}
	}

	live := e.openEvents(t, "", nil)
	bob := newPhone(t, sipAddr, "1002", "bob-1002", "")
	if code := bob.register(300); code != 200 {
		t.Fatalf("REGISTER: %d", code)
	}
	m := live.next(t)
	var reg struct {
		User   string `json:"user"`
		Source string `json:"source"`
	}
	if err := json.Unmarshal(m.data.Data, &reg); err != nil || m.event != "registration.created" ||
		m.data.Type != m.event || m.id <= 0 || reg.User != "1002" || reg.Source != bob.addr() || m.data.Timestamp.IsZero() {
		t.Fatalf("first event %+v %s (%v)", m, m.data.Data, err)
	}
	first := m.id

	// Events missed while disconnected are replayed after Last-Event-ID,
	// then the stream goes on live.
	live.close()
	var regs web.Page[web.Registration]
	e.api("GET", "/api/v1/registrations", nil, 200, &regs)
	e.api("DELETE", "/api/v1/registrations/"+url.PathEscape(regs.Items[0].ID), nil, 204, nil)
	if code := bob.register(300); code != 200 {
		t.Fatalf("REGISTER: %d", code)
	}
	again := e.openEvents(t, "", map[string]string{"Last-Event-ID": strconv.FormatInt(first, 10)})
	want := []string{"registration.removed", "registration.created"}
	last := first
	for _, w := range want {
		m := again.next(t)
		if m.event != w || m.id <= last {
			t.Fatalf("replayed %s id %d, want %s after %d", m.event, m.id, w, last)
		}
		last = m.id
	}
	alice := newPhone(t, sipAddr, "1001", "alice-1001", "")
	answeredCall(t, e, alice, bob)
	for _, w := range []string{"call.started", "call.ringing", "call.answered", "call.ended"} {
		m := again.next(t)
		if m.event != w || m.id <= last {
			t.Fatalf("live %s id %d, want %s after %d", m.event, m.id, w, last)
		}
		last = m.id
	}
	// ?after= does the same for clients that cannot set headers.
	q := e.openEvents(t, "?after="+strconv.FormatInt(first, 10), nil)
	if m := q.next(t); m.event != "registration.removed" {
		t.Fatalf("?after= replay starts with %s", m.event)
	}
}
