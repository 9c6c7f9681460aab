package sip

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// wsPhone is a phone that talks to the server over SIP over WebSocket, as a
// browser does, through the HTTP handler.
func (e *env) wsPhone(user, pass string) (*phone, *httptest.Server) {
	t := e.t
	hs := httptest.NewServer(e.srv.WebSocketHandler())
	t.Cleanup(hs.Close)
	ws := &sip.TransportWS{DialURI: func(host string) string { return "ws://" + host + "/ws" }}
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("test-browser/"+user),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerTransports(sip.TransportsConfig{WS: ws})))
	if err != nil {
		t.Fatal(err)
	}
	c, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ua.Close() })
	return &phone{t: t, ua: ua, client: c, user: user, pass: pass,
		server: strings.TrimPrefix(hs.URL, "http://"), tp: "WS", callID: sip.GenerateTagN(16) + "@ws"}, hs
}

func TestWebSocketRegister(t *testing.T) {
	evs := &eventLog{}
	e := newEnvDeps(t, func(d *Deps) { d.Events = evs })
	p, hs := e.wsPhone("1003", "pw-1003")
	res := p.register([]string{"<sip:abc@df7jal23ls0d.invalid;transport=ws>"})
	if res.StatusCode != 200 {
		t.Fatalf("REGISTER over WebSocket: %d %s", res.StatusCode, res.Reason)
	}
	bs := e.srv.UserBindings("1003")
	if len(bs) != 1 || bs[0].Transport != "WS" {
		t.Fatalf("bindings = %+v, want one over WS", bs)
	}
	// Dialogs over WebSocket name the HTTP listener as our Contact, where
	// a WebSocket client can reach us; other transports the SIP one.
	if got, want := e.srv.contactFor("WS").Address.HostPort(), strings.TrimPrefix(hs.URL, "http://"); got != want {
		t.Fatalf("Contact over WS = %s, want %s", got, want)
	}
	if got := e.srv.contactFor("UDP").Address.HostPort(); got != e.udp {
		t.Fatalf("Contact over UDP = %s, want %s", got, e.udp)
	}

	// Closing the WebSocket removes the binding at once, long before it
	// would expire.
	p.ua.Close()
	deadline := time.Now().Add(5 * time.Second)
	for len(e.srv.UserBindings("1003")) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("binding still there after the WebSocket closed: %+v", e.srv.UserBindings("1003"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(e.logBuf.String(), "websocket closed") {
		t.Fatalf("no log line for the removal:\n%s", e.logBuf.String())
	}
	// Its registration.removed event has the shape of every registration
	// event (receivers decode them alike).
	evs.mu.Lock()
	defer evs.mu.Unlock()
	if len(evs.types) != 2 || evs.types[0] != EventRegistrationCreated || evs.types[1] != EventRegistrationRemoved {
		t.Fatalf("events %v, want registration.created then registration.removed", evs.types)
	}
	created, removed := reflect.TypeOf(evs.data[0]), reflect.TypeOf(evs.data[1])
	if created != removed {
		t.Errorf("registration.removed carries a %v, registration.created a %v", removed, created)
	}
}

// A binding over a WebSocket does not outlive a restart: its connection
// is gone.
func TestWebSocketBindingsDroppedOnRestart(t *testing.T) {
	e := newEnv(t)
	p, _ := e.wsPhone("1003", "pw-1003")
	if res := p.register([]string{"<sip:abc@x.invalid;transport=ws>"}); res.StatusCode != 200 {
		t.Fatalf("REGISTER: %d", res.StatusCode)
	}
	udp := e.phone("1001", "pw-1001", "UDP")
	if res := udp.register([]string{"<sip:1001@127.0.0.1:5999>"}); res.StatusCode != 200 {
		t.Fatalf("REGISTER: %d", res.StatusCode)
	}
	e.restart()
	if bs := e.srv.UserBindings("1003"); len(bs) != 0 {
		t.Fatalf("WebSocket binding restored after restart: %+v", bs)
	}
	if bs := e.srv.UserBindings("1001"); len(bs) != 1 {
		t.Fatalf("UDP binding lost in restart: %+v", bs)
	}
}

func TestWebSocketHandlerRejects(t *testing.T) {
	e := newEnv(t)
	hs := httptest.NewServer(e.srv.WebSocketHandler())
	defer hs.Close()
	for name, tc := range map[string]struct {
		hdr  map[string]string
		want int
	}{
		"plain GET":      {nil, http.StatusUpgradeRequired},
		"no subprotocol": {map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}, http.StatusBadRequest},
	} {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", hs.URL+"/ws", nil)
			for k, v := range tc.hdr {
				req.Header.Set(k, v)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != tc.want {
				t.Fatalf("status = %d, want %d", res.StatusCode, tc.want)
			}
		})
	}
}
