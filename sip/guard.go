package sip

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// Limits configures the built-in abuse protection. A zero field disables
// its limit.
type Limits struct {
	// RequestsPerSecond is the sustained rate of datagrams (UDP) or
	// requests (TCP, WebSocket) one source address may send; RequestBurst
	// more may come at once. Past it requests are dropped, and a source
	// that keeps sending past it is banned.
	RequestsPerSecond float64
	RequestBurst      int
	// AuthFailures wrong passwords (or unknown users) from one source
	// within AuthFailureWindow get it banned.
	AuthFailures      int
	AuthFailureWindow time.Duration
	// BanTime is the first ban's length; each repeat within a day doubles
	// it, up to MaxBanTime.
	BanTime    time.Duration
	MaxBanTime time.Duration
	// ScannerAgents are User-Agent substrings (case-insensitive) of
	// known SIP scanners: their requests are dropped and the source banned.
	ScannerAgents []string
	// MaxMessageSize bounds a SIP message in bytes; MaxHeaders its header
	// count. Larger requests get 513.
	MaxMessageSize int
	MaxHeaders     int
	// MaxCalls bounds the calls in progress; MaxCallsPerUser those one
	// user is in, placed or received. New calls past MaxCalls get 503
	// with Retry-After; see admitCall and admitCallee for the per-user
	// limit.
	MaxCalls        int
	MaxCallsPerUser int
	// MaxPending bounds the requests being handled at once; past it new
	// REGISTERs, INVITEs and OPTIONS get 503 with Retry-After (overload)
	// while requests inside calls are still served.
	MaxPending int
	// Trusted sources (such as a trunk's) are never limited or banned.
	Trusted []netip.Prefix
}

// overloadRetryAfter is the Retry-After (seconds) of the 503s that shed
// load.
const overloadRetryAfter = 5

// rateBanWindow is how long request-rate violations are counted: a source
// with more than RequestBurst requests dropped within it is banned.
const rateBanWindow = 10 * time.Second

// offenceMemory is how long a ban counts towards a longer next one.
const offenceMemory = 24 * time.Hour

// maxSources bounds the sources the guard remembers; when a flood from
// very many addresses fills it, sources that are not banned are forgotten.
const maxSources = 200_000

// Ban reasons.
const (
	BanScanner      = "scanner"
	BanAuthFailures = "authentication failures"
	BanRequestRate  = "request rate"
)

// Drop reasons counted in ProtectionStats.Dropped.
const (
	DropBanned  = "banned"
	DropScanner = "scanner"
	DropRate    = "rate"
	DropSize    = "too_large"
	DropPending = "overload"
)

// Rejection reasons of new calls counted in ProtectionStats.CallsRefused.
const (
	RefusedMaxCalls  = "max_calls"
	RefusedUserCalls = "max_calls_per_user"
	RefusedDraining  = "draining"
)

// BanInfo is a source address that is banned now.
type BanInfo struct {
	Addr     netip.Addr
	Reason   string
	Since    time.Time
	Until    time.Time
	Offences int // bans of this source within a day, this one included
}

// ProtectionStats counts what the abuse protection did since start.
type ProtectionStats struct {
	Bans         uint64            // bans imposed
	AuthFailures uint64            // wrong passwords and unknown users
	Dropped      map[string]uint64 // requests dropped or refused, by reason
	CallsRefused map[string]uint64 // new calls refused by a limit, by reason
}

// guard keeps per-source state: a token bucket for the request rate,
// authentication failures, and bans.
type guard struct {
	cfg Limits
	now func() time.Time
	log *slog.Logger
	// alsoTrusted reports sources trusted besides Limits.Trusted: the
	// trunks' providers.
	alsoTrusted func(netip.Addr) bool

	mu   sync.Mutex
	srcs map[netip.Addr]*source

	pending      atomic.Int64
	bans         atomic.Uint64
	authFailures atomic.Uint64
	dropped      sync.Map // reason → *atomic.Uint64
	refused      sync.Map // reason → *atomic.Uint64
}

type source struct {
	seen   time.Time
	tokens float64
	filled time.Time // when tokens was last topped up

	fails     int
	failStart time.Time
	failUser  string    // the user of the last counted failure
	failAt    time.Time // and when it was counted
	failBurst int       // failures folded into that one since
	drops     int
	dropStart time.Time

	bannedAt, bannedUntil time.Time
	reason                string
	offences              int
	lastOffence           time.Time
}

func newGuard(cfg Limits, now func() time.Time, log *slog.Logger) *guard {
	if cfg.RequestBurst <= 0 {
		cfg.RequestBurst = max(1, int(cfg.RequestsPerSecond))
	}
	if cfg.BanTime <= 0 {
		cfg.BanTime = 5 * time.Minute
	}
	if cfg.MaxBanTime < cfg.BanTime {
		cfg.MaxBanTime = max(cfg.BanTime, 24*time.Hour)
	}
	if cfg.AuthFailureWindow <= 0 {
		cfg.AuthFailureWindow = time.Minute
	}
	return &guard{cfg: cfg, now: now, log: log, srcs: map[netip.Addr]*source{}}
}

func (g *guard) count(m *sync.Map, reason string) {
	v, ok := m.Load(reason)
	if !ok {
		v, _ = m.LoadOrStore(reason, new(atomic.Uint64))
	}
	v.(*atomic.Uint64).Add(1)
}

func (g *guard) trusted(a netip.Addr) bool {
	for _, p := range g.cfg.Trusted {
		if p.Contains(a) {
			return true
		}
	}
	return g.alsoTrusted != nil && g.alsoTrusted(a)
}

// fromTrunk reports whether a is one of the trunks' providers.
func (s *Server) fromTrunk(a netip.Addr) bool {
	for _, t := range s.trunks.list() {
		if _, ours := t.Inbound(netip.AddrPortFrom(a, 0), ""); ours {
			return true
		}
	}
	return false
}

// sourceLocked returns a's state, creating it; g.mu is held.
func (g *guard) sourceLocked(a netip.Addr, now time.Time) *source {
	src := g.srcs[a]
	if src == nil {
		if len(g.srcs) >= maxSources {
			g.forgetUnbannedLocked(now)
		}
		src = &source{tokens: float64(g.cfg.RequestBurst), filled: now}
		g.srcs[a] = src
	}
	src.seen = now
	return src
}

func (g *guard) forgetUnbannedLocked(now time.Time) {
	for a, src := range g.srcs {
		if !src.bannedUntil.After(now) {
			delete(g.srcs, a)
		}
	}
}

// isBanned reports whether a is banned now, counting the drop.
func (g *guard) isBanned(a netip.Addr) bool {
	now := g.now()
	g.mu.Lock()
	src := g.srcs[a]
	banned := src != nil && src.bannedUntil.After(now)
	g.mu.Unlock()
	if banned {
		g.count(&g.dropped, DropBanned)
	}
	return banned
}

// allowRate takes one token from a's bucket; false means the request is
// over the rate and is to be dropped. A source that keeps going over the
// rate is banned.
func (g *guard) allowRate(a netip.Addr) bool {
	if g.cfg.RequestsPerSecond <= 0 || g.trusted(a) {
		return true
	}
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	src := g.sourceLocked(a, now)
	if src.bannedUntil.After(now) {
		g.count(&g.dropped, DropBanned)
		return false
	}
	src.tokens = min(float64(g.cfg.RequestBurst), src.tokens+now.Sub(src.filled).Seconds()*g.cfg.RequestsPerSecond)
	src.filled = now
	if src.tokens >= 1 {
		src.tokens--
		return true
	}
	g.count(&g.dropped, DropRate)
	if now.Sub(src.dropStart) > rateBanWindow {
		src.drops, src.dropStart = 0, now
	}
	src.drops++
	if src.drops > g.cfg.RequestBurst {
		g.banLocked(a, src, BanRequestRate, now)
	}
	return false
}

// failBurst is how close together wrong passwords for one user from one
// source count as one: a phone with a mistyped password may answer every
// new challenge at once, a dozen times in a few milliseconds, and must not
// be banned for one typo. A guesser is still counted several times a
// second, and at least once every failBurstMax guesses, besides the
// request rate limit.
const (
	failBurst    = 250 * time.Millisecond
	failBurstMax = 16
)

// authFailed counts a wrong password for user from a, and bans a after
// Limits.AuthFailures within the window.
func (g *guard) authFailed(a netip.Addr, user string) {
	g.authFailures.Add(1)
	if g.cfg.AuthFailures <= 0 || !a.IsValid() || g.trusted(a) {
		return
	}
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	src := g.sourceLocked(a, now)
	if now.Sub(src.failStart) > g.cfg.AuthFailureWindow {
		src.fails, src.failStart = 0, now
	}
	if user == src.failUser && now.Sub(src.failAt) < failBurst && src.failBurst < failBurstMax {
		src.failBurst++
		return
	}
	src.failUser, src.failAt, src.failBurst = user, now, 0
	src.fails++
	if src.fails >= g.cfg.AuthFailures {
		g.banLocked(a, src, BanAuthFailures, now)
	}
}

// scanner reports whether ua is a known scanner's.
func (g *guard) scanner(ua string) bool {
	if ua == "" {
		return false
	}
	ua = strings.ToLower(ua)
	for _, s := range g.cfg.ScannerAgents {
		if s != "" && strings.Contains(ua, strings.ToLower(s)) {
			return true
		}
	}
	return false
}

// banScanner drops a scanner's request and bans its source.
func (g *guard) banScanner(a netip.Addr) {
	g.count(&g.dropped, DropScanner)
	if !a.IsValid() || g.trusted(a) {
		return
	}
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	src := g.sourceLocked(a, now)
	if !src.bannedUntil.After(now) {
		g.banLocked(a, src, BanScanner, now)
	}
}

// banLocked bans a for BanTime doubled per earlier offence within a day.
func (g *guard) banLocked(a netip.Addr, src *source, reason string, now time.Time) {
	if now.Sub(src.lastOffence) > offenceMemory {
		src.offences = 0
	}
	src.offences++
	src.lastOffence = now
	d := g.cfg.BanTime
	for i := 1; i < src.offences && d < g.cfg.MaxBanTime; i++ {
		d *= 2
	}
	d = min(d, g.cfg.MaxBanTime)
	src.bannedAt, src.bannedUntil, src.reason = now, now.Add(d), reason
	src.fails, src.drops = 0, 0
	g.bans.Add(1)
	g.log.Warn("source banned", "source", a.String(), "reason", reason, "ban", d.String(), "offences", src.offences)
}

// sweep forgets sources that are neither banned nor recently active, and
// whose last offence is older than a day.
func (g *guard) sweep() {
	now := g.now()
	idle := max(g.cfg.AuthFailureWindow, rateBanWindow)
	g.mu.Lock()
	defer g.mu.Unlock()
	for a, src := range g.srcs {
		if src.bannedUntil.After(now) || now.Sub(src.seen) < idle {
			continue
		}
		if src.offences > 0 && now.Sub(src.lastOffence) < offenceMemory {
			continue
		}
		delete(g.srcs, a)
	}
}

// run sweeps until ctx ends.
func (g *guard) run(ctx context.Context) error {
	return every(ctx, 30*time.Second, func(time.Time) { g.sweep() })
}

// every calls f with the time every period until ctx ends, and returns nil
// then: the loop of the server's housekeeping goroutines.
func every(ctx context.Context, period time.Duration, f func(now time.Time)) error {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			f(now)
		}
	}
}

func (g *guard) bansNow() []BanInfo {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []BanInfo
	for a, src := range g.srcs {
		if src.bannedUntil.After(now) {
			out = append(out, BanInfo{Addr: a, Reason: src.reason, Since: src.bannedAt, Until: src.bannedUntil, Offences: src.offences})
		}
	}
	slices.SortFunc(out, func(x, y BanInfo) int { return x.Addr.Compare(y.Addr) })
	return out
}

func (g *guard) unban(a netip.Addr) bool {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	src := g.srcs[a]
	if src == nil || !src.bannedUntil.After(now) {
		return false
	}
	src.bannedUntil = time.Time{}
	src.fails, src.drops = 0, 0
	src.tokens = float64(g.cfg.RequestBurst)
	g.log.Info("source unbanned by operator", "source", a.String())
	return true
}

func (g *guard) stats() ProtectionStats {
	st := ProtectionStats{Bans: g.bans.Load(), AuthFailures: g.authFailures.Load(), Dropped: map[string]uint64{}, CallsRefused: map[string]uint64{}}
	g.dropped.Range(func(k, v any) bool { st.Dropped[k.(string)] = v.(*atomic.Uint64).Load(); return true })
	g.refused.Range(func(k, v any) bool { st.CallsRefused[k.(string)] = v.(*atomic.Uint64).Load(); return true })
	return st
}

// Bans lists the source addresses banned now.
func (s *Server) Bans() []BanInfo { return s.guard.bansNow() }

// Unban lifts the ban of addr; false when it is not banned.
func (s *Server) Unban(addr netip.Addr) bool { return s.guard.unban(addr.Unmap()) }

// ProtectionStats returns the abuse protection's counters.
func (s *Server) ProtectionStats() ProtectionStats { return s.guard.stats() }

// sourceAddr is the address a request came from.
func sourceAddr(req *sip.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(req.Source())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

func udpAddr(a net.Addr) netip.Addr {
	if ua, ok := a.(*net.UDPAddr); ok {
		return ua.AddrPort().Addr().Unmap()
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// guarded wraps a request handler with the checks every request passes:
// bans, scanners, rate (for stream transports; UDP is limited per
// datagram before parsing), size and overload.
func (s *Server) guarded(h sipgo.RequestHandler) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		tx = s.counters.track(req, tx)
		g := s.guard
		a := sourceAddr(req)
		if a.IsValid() && !g.trusted(a) {
			if g.scanner(userAgent(req)) {
				g.banScanner(a)
				return
			}
			if !sip.IsReliable(req.Transport()) {
				// Counted per datagram by badRequestConn.
			} else if g.isBanned(a) || !g.allowRate(a) {
				return
			}
		}
		if g.cfg.MaxHeaders > 0 && len(req.Headers()) > g.cfg.MaxHeaders ||
			g.cfg.MaxMessageSize > 0 && len(req.Body()) > g.cfg.MaxMessageSize {
			g.count(&g.dropped, DropSize)
			if !req.IsAck() {
				s.respond(tx, req, 513, "Message Too Large")
			}
			return
		}
		if reason := malformed(req); reason != "" {
			// Parsed, but missing what every request must carry (RFC 3261
			// §8.1.1): 400, with the reason, and nothing else happens.
			if !req.IsAck() && req.Via() != nil {
				s.respond(tx, req, 400, "Bad Request", sip.NewHeader("Warning", `399 switchboard "`+reason+`"`))
			}
			return
		}
		n := g.pending.Add(1)
		defer g.pending.Add(-1)
		if g.cfg.MaxPending > 0 && n > int64(g.cfg.MaxPending) && startsSomething(req) {
			g.count(&g.dropped, DropPending)
			s.respond(tx, req, 503, "Service Unavailable: Overloaded", sip.NewHeader("Retry-After", strconv.Itoa(overloadRetryAfter)))
			return
		}
		h(req, tx)
	}
}

// malformed names what a parsed request lacks of the headers every request
// must carry (RFC 3261 §8.1.1), or a CSeq whose method is not the
// request's; "" when it has them all.
func malformed(req *sip.Request) string {
	switch {
	case req.From() == nil:
		return "missing From"
	case req.To() == nil:
		return "missing To"
	case req.CallID() == nil:
		return "missing Call-ID"
	case req.CSeq() == nil:
		return "missing CSeq"
	case req.CSeq().MethodName != req.Method:
		return "CSeq method " + string(req.CSeq().MethodName) + " is not the request's " + string(req.Method)
	case req.Via() == nil:
		return "missing Via"
	}
	return ""
}

// startsSomething reports whether req starts new work (a registration, a
// call, a query) rather than continuing a call.
func startsSomething(req *sip.Request) bool {
	switch req.Method {
	case sip.REGISTER, sip.OPTIONS:
		return true
	case sip.INVITE:
		if req.To() == nil {
			return true
		}
		_, inDialog := req.To().Params.Get("tag")
		return !inDialog
	}
	return false
}

func userAgent(req *sip.Request) string {
	if h := req.GetHeader("User-Agent"); h != nil {
		return h.Value()
	}
	return ""
}

// admitAnyCall sheds a new call, from a user or a trunk, past
// Limits.MaxCalls with 503 and Retry-After; it reports whether the call
// may go on.
func (s *Server) admitAnyCall(req *sip.Request, tx sip.ServerTransaction) bool {
	g := s.guard
	if g.cfg.MaxCalls > 0 && s.ActiveCalls() >= g.cfg.MaxCalls {
		g.count(&g.refused, RefusedMaxCalls)
		s.respond(tx, req, 503, "Service Unavailable: Call Limit Reached", sip.NewHeader("Retry-After", strconv.Itoa(overloadRetryAfter)))
		return false
	}
	return true
}

// admitCall checks the per-user call limit for a new call from user; it
// answers the request itself (403) and returns false when the limit is
// reached. Calls from trusted sources (a PBX placing calls for its users)
// are not held to it.
func (s *Server) admitCall(req *sip.Request, tx sip.ServerTransaction, user string) bool {
	g := s.guard
	if g.cfg.MaxCallsPerUser > 0 && !g.trusted(sourceAddr(req)) && s.calls.countUser(user) >= g.cfg.MaxCallsPerUser {
		g.count(&g.refused, RefusedUserCalls)
		s.log.Info("call refused: user has too many calls", "user", user, "limit", g.cfg.MaxCallsPerUser)
		s.respond(tx, req, 403, "Forbidden: Too Many Calls")
		return false
	}
	return true
}

// admitCallee checks the per-user call limit for a new call to user,
// whether it comes from a phone or from a trunk's DID: a user already in
// as many calls as the limit is busy, and the caller gets 486 Busy Here
// (RFC 3261 §21.4.24). As for callers, calls from trusted sources (a PBX,
// a load generator) are not held to it, except a trunk's: its provider is
// trusted as an upstream (no rate limit, no ban), but its calls come from
// anyone who dials the DID. It answers the request itself and returns
// false when the limit is reached.
func (s *Server) admitCallee(req *sip.Request, tx sip.ServerTransaction, user string, fromTrunk bool) bool {
	g := s.guard
	if g.cfg.MaxCallsPerUser <= 0 || !fromTrunk && g.trusted(sourceAddr(req)) {
		return true
	}
	if s.calls.countUser(user) >= g.cfg.MaxCallsPerUser {
		g.count(&g.refused, RefusedUserCalls)
		s.log.Info("call refused: callee has too many calls", "user", user, "limit", g.cfg.MaxCallsPerUser, "source", req.Source())
		s.respond(tx, req, 486, "Busy Here")
		return false
	}
	return true
}

// countUser returns how many calls in progress user is in, as caller or
// callee.
func (t *callTable) countUser(user string) int {
	t.mu.Lock()
	calls := make([]*call, 0, len(t.byID))
	for _, c := range t.byID {
		calls = append(calls, c)
	}
	t.mu.Unlock()
	n := 0
	for _, c := range calls {
		c.mu.Lock()
		if c.rec.Caller == user || c.rec.Callee == user {
			n++
		}
		c.mu.Unlock()
	}
	return n
}

// admitDatagram is the first check of a UDP datagram, before it is
// parsed: banned sources, the request rate and the message size.
func (g *guard) admitDatagram(from net.Addr, size int) bool {
	// The size limit holds for trusted sources too: it is about what a
	// SIP message may be, not about who sends it.
	if g.cfg.MaxMessageSize > 0 && size > g.cfg.MaxMessageSize {
		g.count(&g.dropped, DropSize)
		return false
	}
	a := udpAddr(from)
	if !a.IsValid() || g.trusted(a) {
		return true
	}
	return !g.isBanned(a) && g.allowRate(a)
}

// guardListener closes stream connections from banned sources at once.
type guardListener struct {
	net.Listener
	g *guard
}

func (l guardListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if ap, perr := netip.ParseAddrPort(c.RemoteAddr().String()); perr == nil && l.g.isBanned(ap.Addr().Unmap()) {
			c.Close()
			continue
		}
		return c, nil
	}
}
