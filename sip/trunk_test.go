package sip

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/switchboard/switchboard/internal/digest"
	"github.com/switchboard/switchboard/internal/store"
	"github.com/switchboard/switchboard/sip/trunk"
)

// This file tests trunks against testProvider: a separate SIP endpoint
// (a sipgo user agent on its own loopback address, 127.0.0.2 and up) that
// challenges REGISTER (401) and INVITE (407) with digest authentication,
// answers calls with real RTP, and places calls to a DID.

const (
	provRealm = "provider.test"
	provUser  = "acct-77"
	provPass  = "trunk-secret"
	ourDID    = "+15551230000"
	farNumber = "+15557654321"
)

// testProvider is an external SIP provider for the tests.
type testProvider struct {
	*testPhone
	addr   string
	nonces *digest.Nonces
	ha1    string

	// blackhole drops every request unanswered.
	blackhole atomic.Bool
	// inviteCode, when not 0, is the answer to every INVITE.
	inviteCode atomic.Int32
	// grant is the registration lifetime granted, in seconds (0: as asked).
	grant atomic.Int32
	// nat, when set, is the address the provider claims REGISTERs come
	// from (Via received and rport), as a NAT in between would make it.
	nat atomic.Pointer[netip.AddrPort]

	mu         sync.Mutex
	regs       []provReg // accepted REGISTERs
	challenges map[sip.RequestMethod]int
	options    int
}

type provReg struct {
	at      time.Time
	aor     string // the To user
	contact string
	expires int
	source  string
}

// reserveAddr picks a free UDP address on ip for a provider that starts
// later (the trunk config needs it first).
func reserveAddr(t *testing.T, ip string) string {
	t.Helper()
	c, err := net.ListenPacket("udp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

// reserveTCPAddr is reserveAddr for TCP.
func reserveTCPAddr(t *testing.T, ip string) string {
	t.Helper()
	l, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// newProvider starts a provider listening on addr, over UDP unless a
// transport is given.
func newProvider(e *callEnv, addr string, transport ...string) *testProvider {
	o := phoneOpts{transport: "UDP"}
	if len(transport) > 0 {
		o.transport = transport[0]
	}
	return newProviderOpts(e, addr, o)
}

// newProviderOpts starts a provider listening on addr with o's transport
// (and, for TLS, certificate).
func newProviderOpts(e *callEnv, addr string, o phoneOpts) *testProvider {
	pr := &testProvider{addr: addr, nonces: digest.NewNonces(time.Minute, time.Now),
		ha1: digest.HA1(digest.MD5, provUser, provRealm, provPass), challenges: map[sip.RequestMethod]int{}}
	var phone atomic.Pointer[testPhone]
	o.bind = addr
	o.setup = func(srv *sipgo.Server) {
		srv.OnRegister(pr.onRegister)
		srv.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
			if pr.blackhole.Load() {
				return
			}
			pr.mu.Lock()
			pr.options++
			pr.mu.Unlock()
			_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		})
		srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
			if pr.blackhole.Load() {
				return
			}
			if _, ok := req.To().Params.Get("tag"); !ok {
				if code := int(pr.inviteCode.Load()); code != 0 {
					_ = tx.Respond(sip.NewResponseFromRequest(req, code, "Provider Trouble", nil))
					return
				}
				if !pr.authorized(req, tx, "Proxy-Authorization") {
					return
				}
			}
			if p := phone.Load(); p != nil {
				p.onInvite(req, tx)
			}
		})
	}
	pr.testPhone = e.newPhone("provider", "", o)
	phone.Store(pr.testPhone)
	return pr
}

// authorized checks req's digest credentials and challenges it when they
// are missing or wrong.
func (pr *testProvider) authorized(req *sip.Request, tx sip.ServerTransaction, hdr string) bool {
	if h := req.GetHeader(hdr); h != nil {
		if c, err := digest.Parse(h.Value()); err == nil && c.Username == provUser && c.Realm == provRealm &&
			c.Verify(string(req.Method), pr.ha1) && pr.nonces.Check(c.Nonce) == digest.NonceValid {
			return true
		}
	}
	pr.mu.Lock()
	pr.challenges[req.Method]++
	pr.mu.Unlock()
	code, reason, name := 401, "Unauthorized", "WWW-Authenticate"
	if hdr == "Proxy-Authorization" {
		code, reason, name = 407, "Proxy Authentication Required", "Proxy-Authenticate"
	}
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	res.AppendHeader(sip.NewHeader(name, digest.Challenge(provRealm, pr.nonces.Issue(), digest.MD5, false)))
	_ = tx.Respond(res)
	return false
}

func (pr *testProvider) onRegister(req *sip.Request, tx sip.ServerTransaction) {
	if pr.blackhole.Load() || !pr.authorized(req, tx, "Authorization") {
		return
	}
	expires := 3600
	if h := req.GetHeader("Expires"); h != nil {
		expires, _ = strconv.Atoi(h.Value())
	}
	if g := int(pr.grant.Load()); g > 0 && expires > g {
		expires = g
	}
	ct := req.Contact()
	pr.mu.Lock()
	pr.regs = append(pr.regs, provReg{at: time.Now(), aor: req.To().Address.User, contact: ct.Address.String(), expires: expires, source: req.Source()})
	pr.mu.Unlock()
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	if nat := pr.nat.Load(); nat != nil {
		res.Via().Params.Add("received", nat.Addr().String())
		res.Via().Params.Add("rport", strconv.Itoa(int(nat.Port())))
	}
	c := sip.ContactHeader{Address: ct.Address, Params: sip.NewParams()}
	c.Params.Add("expires", strconv.Itoa(expires))
	res.AppendHeader(&c)
	_ = tx.Respond(res)
}

func (pr *testProvider) registrations() []provReg {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return slices.Clone(pr.regs)
}

func (pr *testProvider) challenged(m sip.RequestMethod) int {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return pr.challenges[m]
}

// trunkConfig is a trunk to a provider at addr, quick to notice trouble.
func trunkConfig(name, addr string, register bool) trunk.Config {
	return trunk.Config{
		Name: name, Address: addr, Transport: "udp",
		Username: provUser, Password: provPass, Register: register,
		Inbound:         map[string]string{ourDID: "1002"},
		Outbound:        `^\+?[0-9]{7,15}$`,
		CallerID:        ourDID,
		RegisterExpires: 60 * time.Second,
		PingInterval:    200 * time.Millisecond,
		Timeout:         time.Second,
		FailThreshold:   3,
		Cooldown:        time.Minute,
		RetryMin:        100 * time.Millisecond,
		RetryMax:        500 * time.Millisecond,
		UserAgent:       "Switchboard-test",
	}
}

// newTrunkEnv starts a call server with the given trunks.
func newTrunkEnv(t *testing.T, cfgs ...trunk.Config) (*callEnv, []*trunk.Provider) {
	t.Helper()
	var ps []*trunk.Provider
	var ts []trunk.Trunk
	for _, c := range cfgs {
		p, err := trunk.New(c, nil)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
		ts = append(ts, p)
	}
	e := newCallEnvDeps(t, 0, func(d *Deps) { d.Trunks = ts })
	return e, ps
}

func waitState(t *testing.T, p *trunk.Provider, d time.Duration, want ...trunk.State) {
	t.Helper()
	waitFor(t, d, "trunk state "+fmtStates(want), func() bool {
		return slices.Contains(want, p.Status().State)
	})
}

func fmtStates(s []trunk.State) string {
	var out []string
	for _, x := range s {
		out = append(out, string(x))
	}
	return strings.Join(out, " or ")
}

func (l *eventLog) count(eventType string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, t := range l.types {
		if t == eventType {
			n++
		}
	}
	return n
}

// callEvents returns the data of the call events of type eventType for
// the call id, in order.
func (l *eventLog) callEvents(eventType, id string) []CallEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []CallEvent
	for i, t := range l.types {
		if ev, ok := l.data[i].(CallEvent); ok && t == eventType && ev.ID == id {
			out = append(out, ev)
		}
	}
	return out
}

// checkTrunkEvents checks that the call.* events of call rec name trunk
// and did (the outbound call's call.started names none: no trunk is
// chosen yet).
func checkTrunkEvents(t *testing.T, e *callEnv, rec store.CallRecord, trunkName, did string) {
	t.Helper()
	// The record is committed before the events are handed on: wait for
	// the last of them.
	waitFor(t, 5*time.Second, "call.ended of "+rec.ID, func() bool { return len(e.events.callEvents(EventCallEnded, rec.ID)) > 0 })
	for _, typ := range []string{EventCallStarted, EventCallRinging, EventCallAnswered, EventCallEnded} {
		evs := e.events.callEvents(typ, rec.ID)
		if typ == EventCallRinging && len(evs) == 0 {
			continue // the provider answered without ringing
		}
		if len(evs) != 1 {
			t.Errorf("%d %s events for call %s, want 1", len(evs), typ, rec.ID)
			continue
		}
		want := trunkName
		if typ == EventCallStarted && rec.Direction == "outbound" {
			want = ""
		}
		if evs[0].Trunk != want || evs[0].DID != did {
			t.Errorf("%s names trunk %q and DID %q, want %q and %q", typ, evs[0].Trunk, evs[0].DID, want, did)
		}
	}
}

func TestTrunkRegistration(t *testing.T) {
	addr := reserveAddr(t, "127.0.0.2")
	e, ps := newTrunkEnv(t, trunkConfig("prov", addr, true))
	tr := ps[0]
	pr := newProvider(e, addr)

	// Registers with digest authentication, from the server's own socket,
	// with a Contact that names it.
	waitFor(t, 10*time.Second, "a registration at the provider", func() bool { return len(pr.registrations()) > 0 })
	reg := pr.registrations()[0]
	if pr.challenged(sip.REGISTER) == 0 {
		t.Error("the provider never challenged the REGISTER")
	}
	if reg.source != e.udp {
		t.Errorf("REGISTER came from %s, want the server's socket %s", reg.source, e.udp)
	}
	if want := "sip:" + provUser + "@" + e.udp; reg.contact != want {
		t.Errorf("Contact %s, want %s", reg.contact, want)
	}
	if reg.expires != 60 {
		t.Errorf("asked for %d s, want 60", reg.expires)
	}
	waitState(t, tr, 5*time.Second, trunk.StateRegistered)
	if strings.Contains(e.logBuf.String(), "address already in use") {
		t.Error("a trunk request tried to bind the listening address again (sent before the listener was served)")
	}
	if st := tr.Status(); !st.Registered || st.LastSuccessAt.IsZero() {
		t.Errorf("status %+v", st)
	}
	waitFor(t, 2*time.Second, "trunk.up", func() bool { return e.events.count("trunk.up") == 1 })
	if got := e.srv.Trunks(); len(got) != 1 || got[0].Name != "prov" || got[0].State != trunk.StateRegistered {
		t.Errorf("Trunks() = %+v", got)
	}

	// A short grant is refreshed before it lapses.
	pr.grant.Store(5)
	pr.mu.Lock()
	pr.regs = nil
	pr.mu.Unlock()
	// Provider restart: it stops answering, then comes back without our
	// registration; the trunk notices (failed pings) and registers again
	// at once, long before its 60 s registration would be refreshed.
	pr.close()
	waitState(t, tr, 10*time.Second, trunk.StateDown)
	waitFor(t, 2*time.Second, "trunk.down", func() bool { return e.events.count("trunk.down") == 1 })
	if err := tr.Ready(); err == nil {
		t.Error("a trunk that is down is ready for calls")
	}
	restarted := time.Now()
	pr2 := newProvider(e, addr)
	pr2.grant.Store(5)
	waitFor(t, 10*time.Second, "registration at the restarted provider", func() bool { return len(pr2.registrations()) > 0 })
	t.Logf("registered again %s after the provider restarted", time.Since(restarted).Round(time.Millisecond))
	waitState(t, tr, 5*time.Second, trunk.StateRegistered)
	waitFor(t, 2*time.Second, "second trunk.up", func() bool { return e.events.count("trunk.up") == 2 })

	// Granted 5 s: refreshed about every 4 s, each before the last lapsed.
	waitFor(t, 20*time.Second, "three registrations", func() bool { return len(pr2.registrations()) >= 3 })
	rs := pr2.registrations()
	for i := 1; i < len(rs); i++ {
		if gap := rs[i].at.Sub(rs[i-1].at); gap >= 5*time.Second {
			t.Errorf("refresh %d came %s after the last, which was granted 5 s", i, gap)
		}
	}
	if err := tr.Ready(); err != nil {
		t.Errorf("registered trunk not ready: %v", err)
	}

	// Stopping the server removes the registration (Expires: 0).
	n := len(pr2.registrations())
	e.stop()
	rs = pr2.registrations()
	if len(rs) <= n || rs[len(rs)-1].expires != 0 {
		t.Errorf("no unregistration on stop: %+v", rs[n:])
	}
}

// A provider whose authentication name differs from the account: the
// REGISTER names the account, the digest answer the authentication name.
func TestTrunkRegistrationAuthUsername(t *testing.T) {
	addr := reserveAddr(t, "127.0.0.2")
	cfg := trunkConfig("prov", addr, true)
	cfg.Username, cfg.AuthUsername = "7001234", provUser
	e, ps := newTrunkEnv(t, cfg)
	pr := newProvider(e, addr)
	waitState(t, ps[0], 10*time.Second, trunk.StateRegistered)
	reg := pr.registrations()[0]
	if reg.aor != "7001234" || !strings.HasPrefix(reg.contact, "sip:7001234@") {
		t.Errorf("registered %s with contact %s, want the account 7001234", reg.aor, reg.contact)
	}
}

// Behind a NAT the provider sees REGISTERs come from another address
// (RFC 3581 received and rport): the trunk registers that address at once.
func TestTrunkRegistrationBehindNAT(t *testing.T) {
	addr := reserveAddr(t, "127.0.0.2")
	e, _ := newTrunkEnv(t)
	pr := newProvider(e, addr)
	public := netip.MustParseAddrPort("192.0.2.1:5999")
	pr.nat.Store(&public)
	tr, err := trunk.New(trunkConfig("prov", addr, true), nil)
	if err != nil {
		t.Fatal(err)
	}
	e.srv.SetTrunks([]trunk.Trunk{tr}) // the provider is behind the NAT from the first REGISTER on
	ps := []*trunk.Provider{tr}
	waitFor(t, 10*time.Second, "two registrations", func() bool { return len(pr.registrations()) >= 2 })
	rs := pr.registrations()
	if want := "sip:" + provUser + "@" + e.udp; rs[0].contact != want {
		t.Errorf("first Contact %s, want %s", rs[0].contact, want)
	}
	if want := "sip:" + provUser + "@192.0.2.1:5999"; rs[1].contact != want {
		t.Errorf("second Contact %s, want the public address %s", rs[1].contact, want)
	}
	waitState(t, ps[0], 5*time.Second, trunk.StateRegistered)
	// Once registered with it, the trunk keeps it: no REGISTER storm.
	time.Sleep(time.Second)
	if n := len(pr.registrations()); n != 2 {
		t.Errorf("%d REGISTERs, want 2", n)
	}
}

func TestTrunkRegistrationRefused(t *testing.T) {
	addr := reserveAddr(t, "127.0.0.2")
	cfg := trunkConfig("prov", addr, true)
	cfg.Password = "wrong"
	cfg.PingInterval = -1
	e, ps := newTrunkEnv(t, cfg)
	pr := newProvider(e, addr)
	waitFor(t, 10*time.Second, "failed registrations", func() bool { return pr.challenged(sip.REGISTER) >= 4 })
	st := ps[0].Status()
	if st.Registered || !strings.Contains(st.LastError, "credentials refused") {
		t.Errorf("status %+v", st)
	}
	if strings.Contains(st.LastError, "wrong") || strings.Contains(e.logBuf.String(), "wrong") {
		t.Error("the password appears in the status or the log")
	}
	if len(pr.registrations()) != 0 {
		t.Error("the provider accepted a wrong password")
	}
}

func TestTrunkOutboundCall(t *testing.T) {
	for _, tp := range []string{"UDP", "TCP"} {
		t.Run(tp, func(t *testing.T) { testTrunkOutboundCall(t, tp) })
	}
}

func testTrunkOutboundCall(t *testing.T, transport string) {
	addr := reserveAddr(t, "127.0.0.2")
	cfg := trunkConfig("prov", addr, true)
	if transport == "TCP" {
		addr = reserveTCPAddr(t, "127.0.0.2")
		cfg = trunkConfig("prov", addr, true)
		cfg.Transport = "tcp"
	}
	e, ps := newTrunkEnv(t, cfg)
	pr := newProvider(e, addr, transport)
	waitState(t, ps[0], 10*time.Second, trunk.StateRegistered)
	a := e.newPhone("1001", "pw-1001", phoneOpts{})
	a.register()

	oc := a.call(farNumber, callOpts{})
	if oc.status != 200 {
		t.Fatalf("call to %s: status %d (responses %v)", farNumber, oc.status, oc.codes)
	}
	inv := pr.expect(sip.INVITE, 2*time.Second)
	pr.expect(sip.ACK, 2*time.Second)
	if pr.challenged(sip.INVITE) != 1 {
		t.Errorf("INVITE challenged %d times, want 1", pr.challenged(sip.INVITE))
	}
	if inv.GetHeader("Proxy-Authorization") == nil {
		t.Error("the INVITE the provider accepted has no credentials")
	}
	if inv.Recipient.User != farNumber || inv.Recipient.Host != "127.0.0.2" {
		t.Errorf("request URI %s", inv.Recipient.String())
	}
	if u := inv.From().Address.User; u != ourDID {
		t.Errorf("From user %q, want the caller ID %q", u, ourDID)
	}
	if h := inv.GetHeader("P-Asserted-Identity"); h == nil || !strings.Contains(h.Value(), ourDID) {
		t.Errorf("P-Asserted-Identity %v", h)
	}
	if transport == "UDP" && inv.Source() != e.udp {
		t.Errorf("INVITE came from %s, want %s", inv.Source(), e.udp)
	}
	if !strings.EqualFold(inv.Transport(), transport) {
		t.Errorf("INVITE over %s, want %s", inv.Transport(), transport)
	}
	if dst, _ := sdpTarget(t, inv.Body()); !e.inRelayRange(dst) {
		t.Errorf("offer to the provider names %v, not the relay", dst)
	}
	audio(t, e, a, pr.testPhone, 20, 100)
	audio(t, e, pr.testPhone, a, 20, 200)
	checkLiveTrunk(t, e, "prov", "")
	oc.hangup()
	pr.expect(sip.BYE, 2*time.Second)
	rec := e.lastRecord(t, "1001")
	if rec.Direction != "outbound" || rec.Callee != farNumber || rec.Result != "answered" {
		t.Errorf("record %+v", rec)
	}
	if rec.Trunk != "prov" || rec.DID != "" {
		t.Errorf("record names trunk %q and DID %q, want prov and none", rec.Trunk, rec.DID)
	}
	checkTrunkEvents(t, e, rec, "prov", "")
	e.waitIdle(t)

	// A number no trunk takes is still 404.
	if oc := a.call("12", callOpts{}); oc.status != 404 {
		t.Errorf("short number: status %d, want 404", oc.status)
	}
}

// checkLiveTrunk: the one call in progress names the trunk and DID.
func checkLiveTrunk(t *testing.T, e *callEnv, trunkName, did string) {
	t.Helper()
	cs := e.srv.Calls()
	if len(cs) != 1 || cs[0].Trunk != trunkName || cs[0].DID != did {
		t.Errorf("calls in progress %+v, want one through trunk %q with DID %q", cs, trunkName, did)
	}
}

func TestTrunkInboundCall(t *testing.T) {
	addr := reserveAddr(t, "127.0.0.2")
	e, ps := newTrunkEnv(t, trunkConfig("prov", addr, true))
	pr := newProvider(e, addr)
	waitState(t, ps[0], 10*time.Second, trunk.StateRegistered)
	b := e.newPhone("1002", "pw-1002", phoneOpts{})
	b.register()

	// The DID rings its user, with audio both ways through the relay.
	b.setPlan(answerPlan{ring: true, code: 200, delay: 50 * time.Millisecond})
	oc := pr.call(ourDID, callOpts{fromUser: "+15550001111"})
	if oc.status != 200 {
		t.Fatalf("call to the DID: status %d (responses %v)", oc.status, oc.codes)
	}
	inv := b.expect(sip.INVITE, 2*time.Second)
	b.expect(sip.ACK, 2*time.Second)
	if u := inv.From().Address.User; u != "+15550001111" {
		t.Errorf("the user sees the caller as %q", u)
	}
	audio(t, e, pr.testPhone, b, 20, 300)
	audio(t, e, b, pr.testPhone, 20, 400)
	checkLiveTrunk(t, e, "prov", ourDID)
	oc.hangup()
	b.expect(sip.BYE, 2*time.Second)
	rec := e.lastRecord(t, "1002")
	if rec.Direction != "inbound" || rec.Callee != "1002" || rec.Result != "answered" {
		t.Errorf("record %+v", rec)
	}
	if rec.Trunk != "prov" || rec.DID != ourDID {
		t.Errorf("record names trunk %q and DID %q, want prov and %s", rec.Trunk, rec.DID, ourDID)
	}
	checkTrunkEvents(t, e, rec, "prov", ourDID)

	// A number that is not one of the trunk's: 404, nobody rings.
	if oc := pr.call("+15559999999", callOpts{}); oc.status != 404 {
		t.Errorf("unmapped number: status %d, want 404", oc.status)
	}
	// Users are not reachable directly from the provider either.
	if oc := pr.call("1002", callOpts{}); oc.status != 404 {
		t.Errorf("user name from the provider: status %d, want 404", oc.status)
	}
	// The same INVITE from an address that is not the provider's is
	// refused (it must authenticate as a user, and cannot), and no phone
	// rings; so is an attempt to call out through us.
	intruder := e.newPhone("+15550001111", "guess", phoneOpts{})
	for _, to := range []string{ourDID, farNumber} {
		oc := intruder.call(to, callOpts{})
		if oc.status != 403 && oc.status != 407 {
			t.Errorf("INVITE to %s from an unknown address: status %d, want 403 or 407", to, oc.status)
		}
	}
	if r := b.next(sip.INVITE, 300*time.Millisecond); r != nil {
		t.Error("an INVITE from an unknown address rang the user")
	}
	if n := pr.count(sip.INVITE); n != 0 {
		t.Errorf("the provider received %d INVITEs from the intruder's attempt", n)
	}
}

// TestPhoneOnProviderAddress: a phone on the provider's address (its host,
// the same NAT) but another port calls a user and a number: it is asked to
// authenticate like any phone, and both calls go through; the provider's
// own calls from that address still reach its DID.
func TestPhoneOnProviderAddress(t *testing.T) {
	addr := reserveAddr(t, "127.0.0.2")
	e, ps := newTrunkEnv(t, trunkConfig("prov", addr, true))
	pr := newProvider(e, addr)
	waitState(t, ps[0], 10*time.Second, trunk.StateRegistered)
	a := e.newPhone("1001", "pw-1001", phoneOpts{bind: "127.0.0.2:0"})
	b := e.newPhone("1002", "pw-1002", phoneOpts{})
	a.register()
	b.register()

	oc := a.call("1002", callOpts{})
	if oc.status != 200 || !slices.Contains(oc.codes, 407) {
		t.Fatalf("call to a user from the provider's address: status %d (responses %v), want 407 then 200", oc.status, oc.codes)
	}
	b.expect(sip.INVITE, 2*time.Second)
	b.expect(sip.ACK, 2*time.Second)
	audio(t, e, a, b, 10, 1)
	oc.hangup()
	b.expect(sip.BYE, 2*time.Second)

	pr.setPlan(planAnswer)
	out := a.call(farNumber, callOpts{})
	if out.status != 200 {
		t.Fatalf("call out from the provider's address: status %d (responses %v)", out.status, out.codes)
	}
	pr.expect(sip.INVITE, 2*time.Second)
	out.hangup()
	pr.expect(sip.BYE, 2*time.Second)

	// The provider itself still reaches the DID.
	b.setPlan(answerPlan{ring: true, code: 200, delay: 50 * time.Millisecond})
	in := pr.call(ourDID, callOpts{fromUser: "+15550001111"})
	if in.status != 200 {
		t.Fatalf("provider's call to the DID: status %d (responses %v)", in.status, in.codes)
	}
	in.hangup()
	b.expect(sip.BYE, 2*time.Second)
	e.waitIdle(t)
}

func TestTrunkFailover(t *testing.T) {
	addr1, addr2 := reserveAddr(t, "127.0.0.2"), reserveAddr(t, "127.0.0.3")
	e, ps := newTrunkEnv(t, trunkConfig("first", addr1, false), trunkConfig("second", addr2, false))
	p1, p2 := newProvider(e, addr1), newProvider(e, addr2)
	waitState(t, ps[0], 10*time.Second, trunk.StateUp)
	waitState(t, ps[1], 10*time.Second, trunk.StateUp)
	p1.inviteCode.Store(503)
	a := e.newPhone("1001", "pw-1001", phoneOpts{})
	a.register()

	oc := a.call(farNumber, callOpts{})
	if oc.status != 200 {
		t.Fatalf("status %d (responses %v)", oc.status, oc.codes)
	}
	p2.expect(sip.INVITE, 2*time.Second)
	if p1.count(sip.INVITE) != 0 || p1.challenged(sip.INVITE) != 0 {
		// p1 answers before any challenge, and its handler records nothing.
		t.Errorf("first provider: %d INVITEs recorded", p1.count(sip.INVITE))
	}
	audio(t, e, a, p2.testPhone, 10, 500)
	oc.hangup()
	if rec := e.lastRecord(t, "1001"); rec.Trunk != "second" {
		t.Errorf("the record of the call the second trunk carried names trunk %q", rec.Trunk)
	}
	// The 503 counted against the first trunk (its OPTIONS pings, which it
	// still answers, may have set it up again since).
	if st := ps[0].Status(); !strings.Contains(st.LastError, "call: provider answered 503") || st.LastErrorAt.IsZero() {
		t.Errorf("first trunk after its 503: %+v", st)
	}

	// Both fail: 503 with a Reason that names them.
	p2.inviteCode.Store(500)
	oc = a.call(farNumber, callOpts{})
	if oc.status != 503 || oc.final == nil {
		t.Fatalf("both trunks failing: status %d", oc.status)
	}
	if r := oc.final.GetHeader("Reason"); r == nil || !strings.Contains(r.Value(), "first") || !strings.Contains(r.Value(), "second") {
		t.Errorf("Reason %v", r)
	}
	if rec := e.lastRecord(t, "1001"); rec.Status != 503 || rec.Trunk != "" || !strings.Contains(rec.Reason, "second") {
		t.Errorf("record of a call no trunk carried: %+v", rec)
	}
}

func TestTrunkFailFastWhenBlackholed(t *testing.T) {
	addr := reserveAddr(t, "127.0.0.2")
	e, ps := newTrunkEnv(t, trunkConfig("prov", addr, false))
	pr := newProvider(e, addr)
	waitState(t, ps[0], 10*time.Second, trunk.StateUp)
	a := e.newPhone("1001", "pw-1001", phoneOpts{})
	c := e.newPhone("1003", "pw-1003", phoneOpts{})
	a.register()
	c.register()

	pr.blackhole.Store(true)
	// Internal calls run all along, and are never slowed.
	stop := make(chan struct{})
	type result struct {
		status int
		took   time.Duration
		err    error
	}
	results := make(chan result, 1000)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; i < cap(results); i++ {
			select {
			case <-stop:
				return
			default:
			}
			start := time.Now()
			oc, err := a.place("1003", callOpts{})
			r := result{err: err, took: time.Since(start)}
			if err == nil {
				r.status = oc.status
				if oc.status == 200 {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					_ = oc.d.Bye(ctx)
					cancel()
				}
			}
			results <- r
		}
	})

	// The pings go unanswered: the breaker opens.
	waitState(t, ps[0], 10*time.Second, trunk.StateDown)
	waitFor(t, 2*time.Second, "trunk.down", func() bool { return e.events.count("trunk.down") == 1 })
	b := e.newPhone("1002", "pw-1002", phoneOpts{})
	b.register()
	start := time.Now()
	oc := b.call(farNumber, callOpts{})
	took := time.Since(start)
	if oc.status != 503 || oc.final == nil || oc.final.GetHeader("Reason") == nil {
		t.Fatalf("call through a black-holed trunk: status %d, final %v", oc.status, oc.final)
	}
	if took > 2*time.Second {
		t.Errorf("the call took %s to fail; want well under 2 s", took)
	}
	t.Logf("call through the dead trunk failed in %s: %s", took.Round(time.Millisecond), oc.final.GetHeader("Reason").Value())
	close(stop)
	wg.Wait()
	close(results)
	var n int
	var worst time.Duration
	for r := range results {
		if r.err != nil || r.status != 200 {
			t.Errorf("internal call while the trunk was down: status %d, error %v", r.status, r.err)
		}
		n++
		worst = max(worst, r.took)
	}
	if n == 0 {
		t.Fatal("no internal call ran")
	}
	t.Logf("%d internal calls while the trunk was black-holed, slowest setup %s", n, worst.Round(time.Millisecond))
	if worst > 2*time.Second {
		t.Errorf("an internal call took %s to set up", worst)
	}
}

// A provider that never answers an INVITE costs the caller the trunk's
// timeout, then the call goes out through the next trunk.
func TestTrunkNoAnswerFailsOver(t *testing.T) {
	addr1, addr2 := reserveAddr(t, "127.0.0.2"), reserveAddr(t, "127.0.0.3")
	quiet := trunkConfig("quiet", addr1, false)
	quiet.PingInterval = -1 // no checks: only the call finds out
	e, ps := newTrunkEnv(t, quiet, trunkConfig("second", addr2, false))
	p1, p2 := newProvider(e, addr1), newProvider(e, addr2)
	waitState(t, ps[1], 10*time.Second, trunk.StateUp)
	p1.blackhole.Store(true)
	a := e.newPhone("1001", "pw-1001", phoneOpts{})
	a.register()

	start := time.Now()
	oc := a.call(farNumber, callOpts{})
	took := time.Since(start)
	if oc.status != 200 {
		t.Fatalf("status %d (responses %v)", oc.status, oc.codes)
	}
	p2.expect(sip.INVITE, 2*time.Second)
	if took < time.Second {
		t.Errorf("connected after %s: the silent trunk was not tried for its 1 s timeout", took)
	}
	t.Logf("connected through the second trunk after %s", took.Round(time.Millisecond))
	if st := ps[0].Status(); st.State != trunk.StateFailing || !strings.Contains(st.LastError, "no answer within 1s") {
		t.Errorf("silent trunk: %+v", st)
	}
	oc.hangup()
	p1.close() // its INVITE transaction is gone; nothing is left running
	e.waitIdle(t)
}

// Replacing the trunks (a configuration reload) unregisters the old ones
// and registers the new ones, with no restart.
func TestTrunkReplace(t *testing.T) {
	addrA, addrB := reserveAddr(t, "127.0.0.2"), reserveAddr(t, "127.0.0.3")
	e, ps := newTrunkEnv(t, trunkConfig("a", addrA, true))
	prA, prB := newProvider(e, addrA), newProvider(e, addrB)
	waitState(t, ps[0], 10*time.Second, trunk.StateRegistered)

	b, err := trunk.New(trunkConfig("b", addrB, true), nil)
	if err != nil {
		t.Fatal(err)
	}
	e.srv.SetTrunks([]trunk.Trunk{b})
	rs := prA.registrations()
	if last := rs[len(rs)-1]; last.expires != 0 {
		t.Errorf("the replaced trunk did not unregister: last REGISTER asked for %d s", last.expires)
	}
	waitState(t, b, 10*time.Second, trunk.StateRegistered)
	if got := e.srv.Trunks(); len(got) != 1 || got[0].Name != "b" {
		t.Errorf("Trunks() = %+v", got)
	}
	if len(prB.registrations()) == 0 {
		t.Error("the new trunk's provider has no registration")
	}
	// Calls use the new trunk.
	a := e.newPhone("1001", "pw-1001", phoneOpts{})
	a.register()
	oc := a.call(farNumber, callOpts{})
	if oc.status != 200 {
		t.Fatalf("call after the replacement: %d", oc.status)
	}
	prB.expect(sip.INVITE, 2*time.Second)
	oc.hangup()
	if n := prA.count(sip.INVITE); n != 0 {
		t.Errorf("the replaced trunk's provider got %d INVITEs", n)
	}
}
