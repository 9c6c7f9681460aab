package trunk

import (
	"crypto/x509"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Config configures one generic SIP provider.
type Config struct {
	// Name identifies the trunk in logs, events and the API.
	Name string
	// Address is the provider's host:port; Transport is udp, tcp or tls.
	Address   string
	Transport string
	// Username is our account at the provider: the user part of the
	// registered address (From, To) and of our Contact.
	Username string
	// AuthUsername is the name digest answers use, when the provider
	// gives one apart from the account; empty means Username.
	AuthUsername string
	// Password answers the provider's digest challenges on REGISTER and
	// INVITE. It is never logged.
	Password string
	// Register keeps a registration at the provider; false for a trunk
	// that authenticates us by IP address.
	Register bool
	// Inbound maps the provider's numbers (DIDs) to users.
	Inbound map[string]string
	// Outbound is a regular expression of the numbers that leave through
	// the trunk; empty means none do.
	Outbound string
	// CallerID is the number presented on outbound calls (From and
	// P-Asserted-Identity); empty means Username.
	CallerID string
	// AllowUsers limits outbound calls to these users; empty means every
	// authenticated user.
	AllowUsers []string
	// CountryCode, when set, normalises dialled numbers to E.164 with it
	// (see Normalize).
	CountryCode string
	// RegisterExpires is the registration lifetime asked for. Default 600s.
	RegisterExpires time.Duration
	// PingInterval is how often OPTIONS checks the provider. Default 30s;
	// negative disables pings.
	PingInterval time.Duration
	// Timeout bounds the wait for the provider's first response to any
	// request. Default 5s.
	Timeout time.Duration
	// FailThreshold is how many failures in a row open the circuit
	// breaker. Default 3.
	FailThreshold int
	// Cooldown is how long an open breaker refuses calls before it lets
	// one through to try the provider again. Default 30s.
	Cooldown time.Duration
	// RetryMin and RetryMax bound the back-off between failed
	// registrations. Default 1s and 60s.
	RetryMin, RetryMax time.Duration
	// UserAgent is our User-Agent header.
	UserAgent string
	// RootCAs, when set, are the certificate authorities that a TLS
	// trunk's provider certificate must chain to, in place of the
	// system's roots: for a provider with a private CA.
	RootCAs *x509.CertPool
}

func (c *Config) applyDefaults() {
	def := func(p *time.Duration, d time.Duration) {
		if *p == 0 {
			*p = d
		}
	}
	def(&c.RegisterExpires, 600*time.Second)
	def(&c.PingInterval, 30*time.Second)
	def(&c.Timeout, 5*time.Second)
	def(&c.Cooldown, 30*time.Second)
	def(&c.RetryMin, time.Second)
	def(&c.RetryMax, 60*time.Second)
	if c.FailThreshold <= 0 {
		c.FailThreshold = 3
	}
	if c.Transport == "" {
		c.Transport = "udp"
	}
	c.Transport = strings.ToLower(c.Transport)
	if c.UserAgent == "" {
		c.UserAgent = "Switchboard"
	}
}

// Provider is the generic SIP provider adapter.
type Provider struct {
	cfg      Config
	host     string
	port     int
	outbound *regexp.Regexp
	allow    map[string]bool
	inbound  map[string]string // digits of the DID → user
	log      *slog.Logger
	now      func() time.Time
	kick     chan struct{} // register again now

	mu     sync.Mutex
	addrs  map[netip.Addr]bool // the provider's addresses
	notify func(string, any)
	h      health
	public netip.AddrPort // our address as the provider sees it, behind a NAT
}

// health is what the provider has heard lately.
type health struct {
	fails      int
	lastErr    string
	lastErrAt  time.Time
	lastOK     time.Time
	registered bool
	regUntil   time.Time
	announced  State // the state the last trunk.up/trunk.down told
	lastState  State
}

var _ Trunk = (*Provider)(nil)

// New builds a provider from cfg. It sends nothing until Run.
func New(cfg Config, log *slog.Logger) (*Provider, error) {
	cfg.applyDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	host, portStr, err := net.SplitHostPort(cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("trunk %q: address %q: %w", cfg.Name, cfg.Address, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 || port > 65535 {
		return nil, fmt.Errorf("trunk %q: address %q: bad port", cfg.Name, cfg.Address)
	}
	p := &Provider{
		cfg: cfg, host: host, port: port,
		allow: map[string]bool{}, inbound: map[string]string{},
		log:   log.With("component", "trunk", "trunk", cfg.Name),
		now:   time.Now,
		kick:  make(chan struct{}, 1),
		addrs: map[netip.Addr]bool{},
	}
	if cfg.Outbound != "" {
		if p.outbound, err = regexp.Compile(cfg.Outbound); err != nil {
			return nil, fmt.Errorf("trunk %q: outbound %q: %w", cfg.Name, cfg.Outbound, err)
		}
	}
	for _, u := range cfg.AllowUsers {
		p.allow[u] = true
	}
	for did, user := range cfg.Inbound {
		p.inbound[didKey(did)] = user
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		p.addrs[ip.Unmap()] = true
	}
	p.h.lastState, p.h.announced = StateStarting, StateStarting
	return p, nil
}

// authUser is the name our digest answers give.
func (p *Provider) authUser() string {
	if p.cfg.AuthUsername != "" {
		return p.cfg.AuthUsername
	}
	return p.cfg.Username
}

// Name is the trunk's name.
func (p *Provider) Name() string { return p.cfg.Name }

// Public is the address the provider sees us at when a NAT between makes
// it differ from ours (RFC 3581, learnt from its answers to REGISTER); the
// zero value otherwise.
func (p *Provider) Public() netip.AddrPort {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.public
}

// TLSPeer reports, for a trunk over TLS, the name its provider's
// certificate must carry (the host of Address) and the roots it must chain
// to (nil: the system's). ok is false for other transports.
func (p *Provider) TLSPeer() (host string, roots *x509.CertPool, ok bool) {
	if p.cfg.Transport != "tls" {
		return "", nil, false
	}
	return p.host, p.cfg.RootCAs, true
}

// Route reports whether user may call number through this trunk.
func (p *Provider) Route(user, number string) (Route, bool) {
	if p.outbound == nil || !p.outbound.MatchString(number) {
		return Route{}, false
	}
	if len(p.allow) > 0 && !p.allow[user] {
		return Route{}, false
	}
	num := Normalize(number, p.cfg.CountryCode)
	r := Route{
		Trunk:       p.cfg.Name,
		Destination: p.cfg.Address,
		Transport:   p.cfg.Transport,
		Number:      num,
		Username:    p.authUser(),
		Password:    p.cfg.Password,
		Timeout:     p.cfg.Timeout,
	}
	r.URI = p.uri(num, true)
	r.Public = p.Public()
	cid := p.cfg.CallerID
	if cid == "" {
		cid = p.cfg.Username
	}
	if cid == "" {
		cid = user
	}
	r.From = p.uri(cid, false)
	if p.cfg.CallerID != "" {
		pai := p.uri(p.cfg.CallerID, false)
		r.AssertedIdentity = "<" + pai.String() + ">"
	}
	return r, true
}

// uri is a SIP URI for user at the provider; withPort adds its port and
// transport, for request URIs.
func (p *Provider) uri(user string, withPort bool) sip.Uri {
	u := sip.Uri{Scheme: "sip", User: user, Host: p.host}
	if withPort {
		u.Port = p.port
		if p.cfg.Transport != "udp" {
			u.UriParams = sip.NewParams()
			u.UriParams.Add("transport", p.cfg.Transport)
		}
	}
	return u
}

// Inbound reports whether source is the provider and maps did to a user.
func (p *Provider) Inbound(source netip.AddrPort, did string) (string, bool) {
	p.mu.Lock()
	ours := p.addrs[source.Addr().Unmap()]
	p.mu.Unlock()
	if !ours {
		return "", false
	}
	user := p.inbound[didKey(did)]
	// Phones can share the provider's address (on its host, behind the
	// same NAT, a gateway on site): a request from another port is the
	// provider's only when it calls one of the trunk's numbers. Other
	// requests from there authenticate like any phone's.
	if source.Port() != 0 && int(source.Port()) != p.port && user == "" {
		return "", false
	}
	return user, true
}

// didKey compares numbers by their digits, so that +15551230000,
// 15551230000 and +1 555 123 0000 are the same DID. Anything that is not a
// telephone number (a user name) is compared as it is.
func didKey(did string) string {
	var b strings.Builder
	for _, r := range did {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case strings.ContainsRune("+-. ()", r):
		default:
			return did
		}
	}
	if b.Len() == 0 {
		return did
	}
	return b.String()
}

// Normalize turns a dialled number into E.164 for country code cc: "+…"
// is kept, "00…" becomes "+…", a national "0…" becomes "+cc…", and other
// numbers get "+cc" unless they already start with cc and have more than
// ten digits. Spaces, dots, dashes and brackets are dropped. With cc
// empty only the separators are dropped.
func Normalize(number, cc string) string {
	n := strings.Map(func(r rune) rune {
		switch r {
		case ' ', '-', '.', '(', ')':
			return -1
		}
		return r
	}, number)
	if cc == "" || n == "" {
		return n
	}
	switch {
	case strings.HasPrefix(n, "+"):
		return n
	case strings.HasPrefix(n, "00"):
		return "+" + n[2:]
	case strings.HasPrefix(n, "0"):
		return "+" + cc + n[1:]
	case strings.HasPrefix(n, cc) && len(n) > 10:
		return "+" + n
	}
	return "+" + cc + n
}

// Ready returns nil when a call may go through the trunk now.
func (p *Provider) Ready() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if p.h.fails >= p.cfg.FailThreshold && now.Sub(p.h.lastErrAt) < p.cfg.Cooldown {
		return fmt.Errorf("%w: %s", ErrDown, p.h.lastErr)
	}
	if p.cfg.Register && !p.registeredLocked(now) {
		why := p.h.lastErr
		if why == "" {
			why = "registration pending"
		}
		return fmt.Errorf("%w: %s", ErrUnregistered, why)
	}
	return nil
}

// CallResult feeds an outbound call attempt's outcome into the trunk's
// health: no response, 408 and 5xx are failures; any other answer shows
// the provider is alive.
func (p *Provider) CallResult(status int, err error) {
	switch {
	case status == 0 && err != nil:
		p.failure("call", err)
	case status == 408 || (status >= 500 && status < 600):
		p.failure("call", fmt.Errorf("provider answered %d", status))
	case status > 0:
		p.success("call")
	}
}

// Status is a snapshot of the trunk.
func (p *Provider) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	st := Status{
		Name: p.cfg.Name, Address: p.cfg.Address, Transport: p.cfg.Transport, Register: p.cfg.Register,
		State: p.stateLocked(now), Registered: p.registeredLocked(now),
		LastError: p.h.lastErr, LastErrorAt: p.h.lastErrAt, LastSuccessAt: p.h.lastOK,
	}
	if st.Registered {
		st.RegisteredUntil = p.h.regUntil
	}
	return st
}

func (p *Provider) registeredLocked(now time.Time) bool {
	return p.h.registered && now.Before(p.h.regUntil)
}

func (p *Provider) stateLocked(now time.Time) State {
	switch {
	case p.h.fails >= p.cfg.FailThreshold:
		return StateDown
	case p.h.fails > 0:
		return StateFailing
	case p.cfg.Register && p.registeredLocked(now):
		return StateRegistered
	case p.cfg.Register && p.h.registered:
		return StateFailing // the registration lapsed
	case p.cfg.Register || p.h.lastOK.IsZero():
		return StateStarting
	}
	return StateUp
}

// success records that the provider answered.
func (p *Provider) success(what string) {
	p.mu.Lock()
	recovered := p.h.fails > 0
	p.h.fails = 0
	p.h.lastOK = p.now()
	p.mu.Unlock()
	if recovered {
		p.log.Info("provider answers again", "via", what)
	}
	p.update()
}

// failure records that the provider did not answer, or refused.
func (p *Provider) failure(what string, err error) {
	p.mu.Lock()
	p.h.fails++
	p.h.lastErr = what + ": " + err.Error()
	p.h.lastErrAt = p.now()
	n := p.h.fails
	p.mu.Unlock()
	// The first failures say what went wrong; a provider that stays down
	// is then reported now and again, not at every ping (its state and
	// last error stay visible in the API and ctl trunks).
	if failureWorthLogging(n) {
		p.log.Warn("trunk request failed", "request", what, "failures", n, "error", err)
	} else {
		p.log.Debug("trunk request failed", "request", what, "failures", n, "error", err)
	}
	p.update()
}

// failureWorthLogging reports the failure counts logged at warning level:
// the first three, then every power of two.
func failureWorthLogging(n int) bool {
	return n <= 3 || n&(n-1) == 0
}

// setRegistered records the registration's state.
func (p *Provider) setRegistered(ok bool, until time.Time) {
	p.mu.Lock()
	p.h.registered, p.h.regUntil = ok, until
	p.mu.Unlock()
	p.update()
}

// update announces trunk.up when the trunk becomes usable and trunk.down
// when its breaker opens, each once per change.
func (p *Provider) update() {
	p.mu.Lock()
	now := p.now()
	st := p.stateLocked(now)
	prev := p.h.lastState
	p.h.lastState = st
	var event string
	switch {
	case (st == StateRegistered || st == StateUp) && p.h.announced != StateUp:
		event, p.h.announced = "trunk.up", StateUp
	case st == StateDown && p.h.announced != StateDown:
		event, p.h.announced = "trunk.down", StateDown
	}
	notify := p.notify
	p.mu.Unlock()
	if st != prev {
		p.log.Info("trunk state", "state", string(st), "was", string(prev))
	}
	if event != "" && notify != nil {
		notify(event, p.Status())
	}
}

// backoff returns d with up to 20% jitter, so that many trunks (or many
// switchboards) do not retry in step.
func jitter(d time.Duration) time.Duration {
	return d - time.Duration(rand.Int64N(int64(d)/5+1))
}
