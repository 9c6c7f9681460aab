package sip

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard/switchboard/internal/store"
)

// fuzzTx is a server transaction that keeps the responses it is given.
type fuzzTx struct {
	mu    sync.Mutex
	codes []int
	done  chan struct{}
}

func (t *fuzzTx) Respond(res *sip.Response) error {
	t.mu.Lock()
	t.codes = append(t.codes, res.StatusCode)
	t.mu.Unlock()
	return nil
}
func (t *fuzzTx) Acks() <-chan *sip.Request          { return nil }
func (t *fuzzTx) OnCancel(sip.FnTxCancel) bool       { return false }
func (t *fuzzTx) Terminate()                         {}
func (t *fuzzTx) OnTerminate(sip.FnTxTerminate) bool { return false }
func (t *fuzzTx) Done() <-chan struct{}              { return t.done }
func (t *fuzzTx) Err() error                         { return nil }
func (f fuzzUsers) User(_ context.Context, name string) (store.User, error) {
	if u, ok := f[name]; ok {
		return u, nil
	}
	return store.User{}, store.ErrNotFound
}

type fuzzUsers map[string]store.User

type fuzzBindings struct{}

func (fuzzBindings) ApplyBindings(context.Context, []store.Binding, []string) error { return nil }
func (fuzzBindings) Bindings(context.Context) ([]store.Binding, error)              { return nil, nil }

type noRelay struct{}

func (noRelay) Open(string) (MediaSession, error) { return nil, errors.New("no ports") }

type nopRecords struct{}

func (nopRecords) StartCall(context.Context, store.CallRecord) error  { return nil }
func (nopRecords) UpdateCall(context.Context, store.CallRecord) error { return nil }

// FuzzSIPRequest feeds arbitrary messages, as sipgo parses them, to the
// server's request handlers behind the abuse protection: whatever
// arrives, nothing panics and a request that is not an ACK gets at most
// one final answer.
func FuzzSIPRequest(f *testing.F) {
	for _, seed := range []string{
		"REGISTER sip:" + testDomain + " SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1;rport\r\nFrom: <sip:1001@" + testDomain + ">;tag=a\r\n" +
			"To: <sip:1001@" + testDomain + ">\r\nCall-ID: c1\r\nCSeq: 1 REGISTER\r\nContact: <sip:1001@127.0.0.1:5070>;expires=60\r\nExpires: 60\r\nContent-Length: 0\r\n\r\n",
		"REGISTER sip:" + testDomain + " SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK2\r\nFrom: <sip:1001@" + testDomain + ">;tag=a\r\n" +
			"To: <sip:1001@" + testDomain + ">\r\nCall-ID: c1\r\nCSeq: 2 REGISTER\r\nContact: *\r\nExpires: 0\r\n" +
			`Authorization: Digest username="1001", realm="` + testDomain + `", nonce="x", uri="sip:` + testDomain + `", response="00", algorithm=MD5` + "\r\nContent-Length: 0\r\n\r\n",
		"INVITE sip:1002@" + testDomain + " SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK3\r\nFrom: <sip:1001@" + testDomain + ">;tag=b\r\n" +
			"To: <sip:1002@" + testDomain + ">\r\nCall-ID: c2\r\nCSeq: 1 INVITE\r\nContact: <sip:1001@127.0.0.1:5070>\r\nUser-Agent: friendly-scanner\r\n" +
			"Content-Type: application/sdp\r\nContent-Length: 0\r\n\r\n",
		"BYE sip:1002@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bK4\r\nFrom: <sip:1001@x>;tag=b\r\nTo: <sip:1002@x>;tag=c\r\n" +
			"Call-ID: c2\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
		"OPTIONS sip:" + testDomain + " SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK5\r\nFrom: <sip:p@x>;tag=1\r\nTo: <sip:x>\r\nCall-ID: o\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
		"ACK sip:1002@x SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK6\r\nFrom: <sip:1001@x>;tag=b\r\nTo: <sip:1002@x>;tag=q\r\nCall-ID: c9\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
	} {
		f.Add([]byte(seed), "127.0.0.1:5070")
		f.Add([]byte(seed), "192.0.2.7:5060")
	}
	cfg := testConfig()
	cfg.Limits = Limits{RequestsPerSecond: 1000, AuthFailures: 3, ScannerAgents: []string{"friendly-scanner"}, MaxHeaders: 60, MaxMessageSize: 8000, MaxCalls: 5, MaxCallsPerUser: 2, MaxPending: 100}
	s, err := NewServer(context.Background(), cfg, Deps{
		Users: fuzzUsers{"1001": testUser("1001", "pw-1001"), "1002": testUser("1002", "pw-1002")}, Bindings: fuzzBindings{},
		Relay: noRelay{}, Records: nopRecords{}, Log: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.reg.stop(); s.ua.Close() })
	parser := sip.NewParser()
	handlers := map[sip.RequestMethod]func(*sip.Request, sip.ServerTransaction){
		sip.REGISTER: s.handleRegister, sip.OPTIONS: s.handleOptions, sip.INVITE: s.handleInvite,
		sip.ACK: s.handleInDialogOnly, sip.BYE: s.handleInDialogOnly, sip.INFO: s.handleInDialogOnly, sip.UPDATE: s.handleInDialogOnly,
	}
	f.Fuzz(func(t *testing.T, data []byte, source string) {
		msg, err := parser.ParseSIP(data)
		if err != nil {
			return
		}
		req, ok := msg.(*sip.Request)
		if !ok {
			return
		}
		req.SetSource(source)
		h, ok := handlers[req.Method]
		if !ok {
			h = s.handleNoRoute
		}
		tx := &fuzzTx{done: make(chan struct{})}
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.guarded(h)(req, tx)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("handler stuck on %q", data)
		}
		final := 0
		for _, c := range tx.codes {
			if c >= 200 {
				final++
			}
		}
		if final > 1 {
			t.Fatalf("%d final responses (%v) to %q", final, tx.codes, data)
		}
	})
}

// FuzzBadRequestResponse: the 400 built for an unparseable datagram is
// itself a parseable SIP response, or nothing.
func FuzzBadRequestResponse(f *testing.F) {
	f.Add([]byte("INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bK1\r\nCall-ID: a\r\nCSeq: 1 INVITE\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nContent-Length: 99\r\n\r\n"))
	f.Add([]byte("REGISTER sip:x SIP/2.0\nv: SIP/2.0/UDP h\ni: c\nCSeq: 1 REGISTER\n\n"))
	f.Add([]byte("\x00\x01garbage"))
	parser := sip.NewParser()
	f.Fuzz(func(t *testing.T, data []byte) {
		res := badRequestResponse(data, errors.New("bad \"thing\"\r\n"))
		if res == nil {
			return
		}
		msg, err := parser.ParseSIP(res)
		if err != nil {
			t.Fatalf("unparseable 400 %q for %q: %v", res, data, err)
		}
		if r, ok := msg.(*sip.Response); !ok || r.StatusCode != 400 {
			t.Fatalf("not a 400: %q", res)
		}
	})
}
