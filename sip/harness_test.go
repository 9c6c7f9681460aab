package sip

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"go.uber.org/goleak"

	"github.com/switchboard/switchboard/internal/digest"
	"github.com/switchboard/switchboard/internal/store"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// sipgo opens an ephemeral UDP socket for a client request that has
		// no listener to leave from; when that happens as the user agent is
		// being closed, the socket's reader can outlive the close. It is a
		// shutdown race inside the library, not a leak while running: the
		// soak test (cmd/switchboard) checks goroutines and descriptors of
		// a running server after thousands of calls.
		goleak.IgnoreAnyFunction("github.com/emiago/sipgo/sip.(*TransportUDP).readUDPConnection"),
	)
}

const testDomain = "switchboard.local"

// testClock is a settable clock shared by a server under test.
type testClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

// env is one real server on loopback with its own store.
type env struct {
	t      *testing.T
	dbPath string
	st     *store.Store
	srv    *Server
	clock  *testClock
	udp    string
	tcp    string
	cancel context.CancelFunc
	done   chan error
	logBuf *syncBuffer
	// deps, when set, completes the server's dependencies (a media relay
	// and call records for call tests).
	deps func(*Deps)
}

type envOption func(*Config)

func testConfig() Config {
	return Config{
		Listen:             netip.MustParseAddrPort("127.0.0.1:0"),
		Domain:             testDomain,
		MinExpires:         2 * time.Second,
		MaxExpires:         time.Hour,
		DefaultExpires:     600 * time.Second,
		MaxContacts:        5,
		NonceLifetime:      time.Minute,
		AuthAlgorithms:     []string{"SHA-256", "MD5"},
		LegacyDigestAgents: []string{"SIPp", "baresip v1."},
		RingTimeout:        10 * time.Second,
		UserAgent:          "Switchboard-test",
	}
}

// newEnv starts a server with users 1001..1003 (password "pw-<name>").
func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	return newEnvDeps(t, nil, opts...)
}

// newEnvDeps is newEnv with a hook that completes the server's Deps.
func newEnvDeps(t *testing.T, deps func(*Deps), opts ...envOption) *env {
	t.Helper()
	e := &env{t: t, dbPath: filepath.Join(t.TempDir(), "sb.db"), clock: &testClock{}, deps: deps}
	st, err := store.Open(context.Background(), e.dbPath, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	e.st = st
	var users []store.User
	for _, n := range []string{"1001", "1002", "1003"} {
		users = append(users, testUser(n, "pw-"+n))
	}
	if err := st.SyncConfigUsers(context.Background(), users); err != nil {
		t.Fatal(err)
	}
	e.start(opts...)
	t.Cleanup(func() {
		e.stop()
		st.Close()
	})
	return e
}

func testUser(name, pass string) store.User {
	return store.User{
		Name: name, Realm: testDomain, FromConfig: true,
		HA1MD5:    digest.HA1(digest.MD5, name, testDomain, pass),
		HA1SHA256: digest.HA1(digest.SHA256, name, testDomain, pass),
	}
}

func (e *env) start(opts ...envOption) {
	t := e.t
	cfg := testConfig()
	for _, o := range opts {
		o(&cfg)
	}
	// With port 0 the server binds TCP on the port number UDP got, which
	// another socket may hold: try again with a new port.
	for attempt := 1; ; attempt++ {
		e.logBuf = &syncBuffer{}
		log := slog.New(slog.NewTextHandler(e.logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		ctx, cancel := context.WithCancel(context.Background())
		deps := Deps{Users: e.st, Bindings: e.st, Log: log, Now: e.clock.now}
		if e.deps != nil {
			e.deps(&deps)
		}
		srv, err := NewServer(ctx, cfg, deps)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		e.srv, e.cancel, e.done = srv, cancel, make(chan error, 1)
		go func() { e.done <- srv.Run(ctx) }()
		wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
		ready := make(chan error, 1)
		go func() {
			_, err := srv.Addr(wctx, "udp")
			ready <- err
		}()
		select {
		case err = <-ready:
		case err = <-e.done:
			if err == nil {
				err = errors.New("server stopped at once")
			}
			wcancel()
			<-ready
		}
		wcancel()
		if err == nil {
			e.udp, _ = srv.Addr(ctx, "udp")
			e.tcp, _ = srv.Addr(ctx, "tcp")
			return
		}
		cancel()
		if attempt == 5 || !strings.Contains(err.Error(), "listen tcp") {
			e.cancel = nil
			t.Fatal(err)
		}
	}
}

func (e *env) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	select {
	case err := <-e.done:
		if err != nil {
			e.t.Errorf("server Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		e.t.Error("server did not stop")
	}
	e.cancel = nil
}

func (e *env) restart() {
	e.stop()
	e.start()
}

// phone is a sipgo user agent playing a softphone.
type phone struct {
	t      *testing.T
	ua     *sipgo.UserAgent
	client *sipgo.Client
	user   string
	pass   string
	server string // host:port of the server
	tp     string // "UDP" or "TCP"
	callID string
	cseq   uint32
}

func (e *env) phone(user, pass, transport string) *phone {
	t := e.t
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("test-phone/" + user))
	if err != nil {
		t.Fatal(err)
	}
	c, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ua.Close() })
	srv := e.udp
	if transport == "TCP" {
		srv = e.tcp
	}
	return &phone{t: t, ua: ua, client: c, user: user, pass: pass, server: srv, tp: transport,
		callID: sip.GenerateTagN(16) + "@test"}
}

// registerReq builds a REGISTER for the phone's own address.
func (p *phone) registerReq(contacts []string, hdrs ...sip.Header) *sip.Request {
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: testDomain})
	aor := sip.Uri{Scheme: "sip", User: p.user, Host: testDomain}
	fromParams := sip.NewParams()
	fromParams.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(&sip.FromHeader{Address: aor, Params: fromParams})
	req.AppendHeader(&sip.ToHeader{Address: aor, Params: sip.NewParams()})
	cid := sip.CallIDHeader(p.callID)
	req.AppendHeader(&cid)
	p.cseq++
	req.AppendHeader(&sip.CSeqHeader{SeqNo: p.cseq, MethodName: sip.REGISTER})
	req.AppendHeader(sip.NewHeader("User-Agent", "test-phone/"+p.user))
	for _, c := range contacts {
		req.AppendHeader(sip.NewHeader("Contact", c))
	}
	for _, h := range hdrs {
		req.AppendHeader(h)
	}
	req.SetDestination(p.server)
	req.SetTransport(p.tp)
	return req
}

func (p *phone) do(req *sip.Request) *sip.Response {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := p.client.Do(ctx, req, sipgo.ClientRequestBuild)
	if err != nil {
		p.t.Fatalf("%s: %v", req.Method, err)
	}
	return res
}

// register sends REGISTER, answers one challenge with the phone's password,
// and returns the final response.
func (p *phone) register(contacts []string, hdrs ...sip.Header) *sip.Response {
	p.t.Helper()
	req := p.registerReq(contacts, hdrs...)
	res := p.do(req)
	if res.StatusCode != 401 {
		return res
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p.cseq++
	res, err := p.client.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: p.user, Password: p.pass})
	if err != nil {
		p.t.Fatalf("REGISTER with auth: %v", err)
	}
	return res
}

// contactExpires returns each Contact of res with its expires parameter.
func contactExpires(res *sip.Response) map[string]string {
	out := map[string]string{}
	for _, h := range res.GetHeaders("Contact") {
		c := h.(*sip.ContactHeader)
		v, _ := c.Params.Get("expires")
		out[c.Address.String()] = v
	}
	return out
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// rawUDP sends one datagram to addr and returns the reply, or "" on timeout.
func rawUDP(t *testing.T, addr, msg string, wait time.Duration) string {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}

func netDial(network, addr string) (net.Conn, error) {
	return net.DialTimeout(network, addr, 2*time.Second)
}

func sipDigest(user, pass string) sipgo.DigestAuth {
	return sipgo.DigestAuth{Username: user, Password: pass}
}
