package sip

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/switchboard/switchboard/internal/digest"
	"github.com/switchboard/switchboard/internal/store"
	"github.com/switchboard/switchboard/sip/trunk"
)

// Config is what the signalling plane needs from the configuration file.
type Config struct {
	Listen         netip.AddrPort
	Domain         string
	Aliases        []string
	MinExpires     time.Duration
	MaxExpires     time.Duration
	DefaultExpires time.Duration
	MaxContacts    int
	NonceLifetime  time.Duration
	AuthAlgorithms []string
	// LegacyDigestAgents are User-Agent prefixes of clients that cannot
	// cope with a SHA-256 challenge; they are offered MD5 alone.
	LegacyDigestAgents []string
	RingTimeout        time.Duration
	UserAgent          string
	// Limits configures the abuse protection; zero disables each limit.
	Limits Limits
	// TLS, when set, serves SIP over TLS on TLSListen.
	TLS       *tls.Config
	TLSListen netip.AddrPort
}

// Users is how the signalling plane finds accounts.
type Users interface {
	User(ctx context.Context, name string) (store.User, error)
}

// BindingStore persists registrar bindings.
type BindingStore interface {
	ApplyBindings(ctx context.Context, put []store.Binding, del []string) error
	Bindings(ctx context.Context) ([]store.Binding, error)
}

// Notifier receives registration and call events. Notify must not block.
type Notifier interface {
	Notify(eventType string, data any)
}

// Deps are the services the signalling plane uses.
type Deps struct {
	Users    Users
	Bindings BindingStore
	Events   Notifier // optional
	// Relay anchors call media; without one, calls get 503.
	Relay Relay
	// Records keeps call records; required with Relay.
	Records CallRecords
	Log     *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Trunks are the external providers, in routing order (optional).
	Trunks []trunk.Trunk
}

// Server is the SIP signalling plane.
type Server struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	users  *userCache
	store  BindingStore
	events Notifier
	nonces *digest.Nonces
	// udpPeers are the addresses sipgo's UDP pool learnt (udppin.go).
	udpPeers *udpPeers
	// nonceUses refuses call credentials used before (replay.go).
	nonceUses *nonceUses

	ua     *sipgo.UserAgent
	srv    *sipgo.Server
	client *sipgo.Client
	dua    *sipgo.DialogUA

	reg     *registrar
	calls   *callTable
	orig    *origTable // click-to-calls
	relay   Relay
	records CallRecords
	trunks  *trunkRunner

	counters *counters // for Metrics

	ws      *wsListener                    // connections taken over by WebSocketHandler
	wsLocal atomic.Pointer[netip.AddrPort] // the HTTP listener, as WebSocket clients reach it

	guard *guard // abuse protection: rate limits, bans, call limits

	regInflight registerInflight // UDP REGISTERs being handled (stateless.go)
	regAnswers  answerCache      // and their final answers, for retransmissions
	regWorkers  chan func()      // idle REGISTER workers take their next job here (stateless.go)

	// draining is set by Drain: new calls are refused.
	draining atomic.Bool

	readyMu sync.Mutex
	ready   chan struct{}
	addrs   map[string]string // network → bound address
	udpConn net.PacketConn    // the UDP socket, once ready
}

// NewServer builds the signalling plane and loads stored bindings. It opens
// no socket until Run.
func NewServer(ctx context.Context, cfg Config, deps Deps) (*Server, error) {
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Events == nil {
		deps.Events = nopNotifier{}
	}
	s := &Server{
		cfg:       cfg,
		log:       deps.Log.With("component", "sip"),
		now:       deps.Now,
		users:     newUserCache(deps.Users, deps.Now),
		store:     deps.Bindings,
		events:    deps.Events,
		nonces:    digest.NewNonces(cfg.NonceLifetime, deps.Now),
		nonceUses: newNonceUses(cfg.NonceLifetime),
		udpPeers:  newUDPPeers(),
		ready:     make(chan struct{}),
		addrs:     map[string]string{},
		calls:     newCallTable(),
		orig:      newOrigTable(),
		relay:     deps.Relay,
		records:   deps.Records,
		ws:        newWSListener(net.TCPAddrFromAddrPort(cfg.Listen)),
		trunks:    newTrunkRunner(deps.Trunks),
	}
	s.regWorkers = make(chan func())
	s.counters = newCounters()
	s.guard = newGuard(cfg.Limits, deps.Now, s.log)
	s.guard.alsoTrusted = s.fromTrunk
	// sipgo's own logging is noisy at info and logs whole packets on parse
	// errors; only its warnings and errors about our own operation pass.
	libLog := slog.New(quietHandler{deps.Log.Handler()}).With("component", "sipgo")
	// The parser bounds messages on stream transports (TCP, TLS,
	// WebSocket): a peer that sends more than the limit in one message has
	// its connection closed. UDP datagrams are bounded by the guard first.
	parser := sip.NewParser()
	if cfg.Limits.MaxMessageSize > 0 {
		parser.MaxMessageLength = cfg.Limits.MaxMessageSize
	}
	ua, err := sipgo.NewUA(
		sipgo.WithUserAgent(cfg.UserAgent),
		sipgo.WithUserAgentParser(parser),
		sipgo.WithUserAgentHostname(cfg.Listen.Addr().String()),
		sipgo.WithUserAgenTLSConfig(s.clientTLS()),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(libLog)),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(libLog)),
	)
	if err != nil {
		return nil, fmt.Errorf("sip: user agent: %w", err)
	}
	s.ua = ua
	s.srv, err = sipgo.NewServer(ua, sipgo.WithServerLogger(libLog))
	if err != nil {
		ua.Close()
		return nil, fmt.Errorf("sip: server: %w", err)
	}
	s.client, err = sipgo.NewClient(ua, sipgo.WithClientLogger(libLog),
		sipgo.WithClientHostname(cfg.Listen.Addr().String()), sipgo.WithClientPort(int(cfg.Listen.Port())))
	if err != nil {
		ua.Close()
		return nil, fmt.Errorf("sip: client: %w", err)
	}
	s.dua = &sipgo.DialogUA{Client: s.client, ContactHDR: *s.contactFor("udp"), RewriteContact: true}
	s.reg = newRegistrar(s)
	if err := s.reg.load(ctx); err != nil {
		ua.Close()
		return nil, err
	}
	if n, err := s.users.warm(ctx); err != nil {
		s.log.Warn("user cache not warmed", "error", err)
	} else if n > 0 {
		s.log.Debug("user cache warmed", "users", n)
	}
	s.srv.OnRegister(s.guarded(s.handleRegister))
	s.srv.OnOptions(s.guarded(s.handleOptions))
	s.srv.OnNoRoute(s.guarded(s.handleNoRoute))
	if s.relay != nil {
		s.srv.OnInvite(s.guarded(s.handleInvite))
		s.srv.OnAck(s.guarded(s.handleInDialogOnly))
		s.srv.OnBye(s.guarded(s.handleInDialogOnly))
		s.srv.OnInfo(s.guarded(s.handleInDialogOnly))
		s.srv.OnUpdate(s.guarded(s.handleInDialogOnly))
	} else {
		s.srv.OnInvite(s.guarded(func(req *sip.Request, tx sip.ServerTransaction) {
			s.respond(tx, req, 503, "Calls Disabled")
		}))
	}
	return s, nil
}

// Run serves UDP and TCP on the listen address until ctx ends, then closes
// every socket and waits for its goroutines.
func (s *Server) Run(ctx context.Context) error {
	defer s.ua.Close()
	addr := s.cfg.Listen.String()
	udp, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("sip.listen %s: %w", addr, err)
	}
	// A burst of requests must not overflow the kernel's default receive
	// buffer (about 200 KiB): every dropped datagram costs a retransmission
	// 500 ms later. The kernel caps the size at net.core.rmem_max.
	if uc, ok := udp.(*net.UDPConn); ok {
		_ = uc.SetReadBuffer(sipSocketBuffer)
		_ = uc.SetWriteBuffer(sipSocketBuffer)
	}
	tcpAddr := addr
	if s.cfg.Listen.Port() == 0 {
		// Tests ask for any port: use the same number for TCP.
		tcpAddr = udp.LocalAddr().String()
	}
	tcp, err := net.Listen("tcp", tcpAddr)
	if err != nil {
		udp.Close()
		return fmt.Errorf("sip.listen %s: %w", tcpAddr, err)
	}
	tlsLn, err := s.listenTLS()
	if err != nil {
		udp.Close()
		tcp.Close()
		return err
	}
	s.readyMu.Lock()
	s.addrs["udp"] = udp.LocalAddr().String()
	s.addrs["tcp"] = tcp.Addr().String()
	s.udpConn = udp
	if tlsLn != nil {
		s.addrs["tls"] = tlsLn.Addr().String()
		s.log.Info("sip listening", "tls", tlsLn.Addr().String())
	}
	close(s.ready)
	s.readyMu.Unlock()
	s.log.Info("sip listening", "udp", udp.LocalAddr().String(), "tcp", tcp.Addr().String(), "domain", s.cfg.Domain)

	var wg sync.WaitGroup
	errc := make(chan error, 10)
	wg.Add(5)
	bc := newBadRequestConn(udp, s.log)
	bc.guard = s.guard
	bc.register = s.statelessRegister(ctx, bc)
	bc.peers = s.udpPeers
	go func() { defer wg.Done(); errc <- s.srv.ServeUDP(bc) }()
	go func() { defer wg.Done(); errc <- s.srv.ServeTCP(s.framed(guardListener{tcp, s.guard})) }()
	go func() { defer wg.Done(); errc <- s.srv.ServeWS(s.ws) }()
	go func() { defer wg.Done(); errc <- s.reg.run(ctx) }()
	go func() { defer wg.Done(); errc <- s.guard.run(ctx) }()
	wg.Add(1)
	go func() { defer wg.Done(); errc <- s.expireAnswers(ctx) }()
	wg.Add(1)
	go func() { defer wg.Done(); errc <- s.sweepUDPPeers(ctx) }()
	if tlsLn != nil {
		wg.Add(1)
		go func() { defer wg.Done(); errc <- s.srv.ServeTLS(tlsLn) }()
	}
	stopTrunks := s.runTrunks(ctx)

	var first error
	select {
	case <-ctx.Done():
	case first = <-errc:
	}
	// End calls while the sockets can still carry their BYEs.
	s.calls.closeAndEnd("shutdown", s.ua.TransactionLayer().Close)
	s.orig.closeAndEnd()
	stopTrunks() // their unregistrations leave before the sockets close
	udp.Close()
	tcp.Close()
	if tlsLn != nil {
		tlsLn.Close()
	}
	s.ws.Close()
	s.reg.stop()
	s.srv.Close()
	wg.Wait()
	s.regInflight.wg.Wait()
	close(errc)
	for err := range errc {
		if first == nil {
			first = err
		}
	}
	if first != nil && (errors.Is(first, net.ErrClosed) || errors.Is(first, context.Canceled)) {
		first = nil
	}
	return first
}

// Addr waits until Run has bound its sockets and returns the address of
// network ("udp" or "tcp").
func (s *Server) Addr(ctx context.Context, network string) (string, error) {
	select {
	case <-s.ready:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	s.readyMu.Lock()
	defer s.readyMu.Unlock()
	return s.addrs[network], nil
}

// boundAddr is the address Run bound for network, or "" before Run.
func (s *Server) boundAddr(network string) string {
	select {
	case <-s.ready:
	default:
		return ""
	}
	s.readyMu.Lock()
	defer s.readyMu.Unlock()
	return s.addrs[network]
}

// InvalidateUser drops a cached account after it changed.
func (s *Server) InvalidateUser(name string) { s.users.invalidate(name) }

// RemoveUserBindings drops every binding of a deleted user.
func (s *Server) RemoveUserBindings(ctx context.Context, user string) error {
	return s.reg.removeUser(ctx, user)
}

// Registrations returns a snapshot of every live binding.
func (s *Server) Registrations() []store.Binding { return s.reg.snapshot("") }

// UserBindings returns the live bindings of one user.
func (s *Server) UserBindings(user string) []store.Binding { return s.reg.snapshot(user) }

// isOurHost reports whether host names this server: the domain, an alias,
// or the address we listen on.
func (s *Server) isOurHost(host string) bool {
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, s.cfg.Domain) {
		return true
	}
	for _, a := range s.cfg.Aliases {
		if strings.EqualFold(host, a) {
			return true
		}
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return strings.EqualFold(host, "localhost") && s.cfg.Listen.Addr().IsLoopback()
	}
	l := s.cfg.Listen.Addr()
	return ip == l || l.IsUnspecified()
}

func (s *Server) respond(tx sip.ServerTransaction, req *sip.Request, code int, reason string, hdrs ...sip.Header) {
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	res.AppendHeader(sip.NewHeader("Server", s.cfg.UserAgent))
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	if err := tx.Respond(res); err != nil {
		s.log.Debug("respond failed", "call_id", callID(req), "code", code, "error", err)
	}
}

func (s *Server) respondErr(tx sip.ServerTransaction, req *sip.Request, err error) {
	var se *StatusError
	if !errors.As(err, &se) {
		s.log.Error("request failed", "method", string(req.Method), "call_id", callID(req), "error", err)
		s.respond(tx, req, 500, "Server Internal Error")
		return
	}
	var hdrs []sip.Header
	if se.Header[0] != "" {
		hdrs = append(hdrs, sip.NewHeader(se.Header[0], se.Header[1]))
	}
	s.respond(tx, req, se.Code, se.Reason, hdrs...)
}

const sipSocketBuffer = 4 << 20

const allowMethods = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, UPDATE"

// handleOptions answers capability queries to the server (RFC 3261 §11).
func (s *Server) handleOptions(req *sip.Request, tx sip.ServerTransaction) {
	if s.refuseWhileDraining(req, tx) {
		return
	}
	s.respond(tx, req, 200, "OK",
		sip.NewHeader("Allow", allowMethods),
		sip.NewHeader("Accept", "application/sdp"),
		sip.NewHeader("Accept-Encoding", "identity"),
		sip.NewHeader("Accept-Language", "en"),
		sip.NewHeader("Supported", "path, outbound"),
	)
}

func (s *Server) handleNoRoute(req *sip.Request, tx sip.ServerTransaction) {
	if req.IsAck() {
		return
	}
	s.respond(tx, req, 405, "Method Not Allowed", sip.NewHeader("Allow", allowMethods))
}

func callID(req *sip.Request) string {
	if h := req.CallID(); h != nil {
		return h.Value()
	}
	return ""
}

type nopNotifier struct{}

func (nopNotifier) Notify(string, any) {}
