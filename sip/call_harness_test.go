package sip

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"

	"github.com/switchboard/switchboard/internal/store"
	"github.com/switchboard/switchboard/media"
)

// This file holds the call test rig: a server with a real media relay on
// loopback, and testPhone, a sipgo softphone with its own SIP socket and RTP
// socket.

// relayAdapter is a copy of the adapter in cmd/switchboard/wire.go (which a
// test of package sip cannot import): it gives the server a real relay.
type relayAdapter struct{ r *media.Relay }

var _ Relay = relayAdapter{}

func (a relayAdapter) Open(callID string) (MediaSession, error) {
	s, err := a.r.NewSession(callID)
	if err != nil {
		return nil, err
	}
	s.HoldTimeout()
	return sessionAdapter{s: s, addr: a.r.AdvertisedAddr()}, nil
}

type sessionAdapter struct {
	s    *media.Session
	addr netip.Addr
}

func (a sessionAdapter) leg(l Leg) *media.Leg {
	if l == LegA {
		return a.s.A()
	}
	return a.s.B()
}

func (a sessionAdapter) Addr() netip.Addr      { return a.addr }
func (a sessionAdapter) Port(l Leg) int        { return a.leg(l).Port() }
func (a sessionAdapter) Done() <-chan struct{} { return a.s.Done() }
func (a sessionAdapter) TimedOut() bool        { return a.s.TimedOut() }
func (a sessionAdapter) StartTimeout()         { a.s.StartTimeout() }
func (a sessionAdapter) Close() error          { return a.s.Close() }

func (a sessionAdapter) SetRemote(l Leg, rtp, rtcp netip.AddrPort) {
	leg := a.leg(l)
	if rtp.IsValid() {
		leg.SetRemote(rtp)
	}
	if rtcp.IsValid() {
		leg.SetRemoteRTCP(rtcp)
	}
}

// SetSRTP makes leg terminate SRTP (see media.Leg.SetSRTP).
func (a sessionAdapter) SetSRTP(l Leg, suite string, remoteKey, localKey []byte) error {
	return a.leg(l).SetSRTP(suite, remoteKey, localKey)
}

func (a sessionAdapter) Stats(l Leg) MediaStats {
	st := a.leg(l).Stats()
	return MediaStats{
		PacketsIn: st.PacketsIn, PacketsOut: st.PacketsOut, BytesIn: st.BytesIn, BytesOut: st.BytesOut,
		Lost: st.Lost, JitterMS: st.Jitter, LastPacket: st.LastPacket, Latched: st.Latched,
	}
}

// callEnv is a server that routes calls through a real media relay.
type callEnv struct {
	*env
	relay            *media.Relay
	portMin, portMax int
	events           *eventLog
}

// eventLog is a Notifier that remembers event types.
type eventLog struct {
	mu    sync.Mutex
	types []string
	data  []any // each event's data, beside its type
}

func (l *eventLog) Notify(eventType string, data any) {
	l.mu.Lock()
	l.types = append(l.types, eventType)
	l.data = append(l.data, data)
	l.mu.Unlock()
}

// expectCalls waits until the call.* events are want.
func (l *eventLog) expectCalls(t *testing.T, want ...string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		got := l.calls()
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("events %v, want %v", got, want)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// calls returns the call.* events so far.
func (l *eventLog) calls() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, t := range l.types {
		if strings.HasPrefix(t, "call.") {
			out = append(out, t)
		}
	}
	return out
}

// newCallEnv starts a server whose calls are anchored in a relay on
// 127.0.0.1, in a port window of its own. mediaTimeout 0 disables the media
// timeout.
func newCallEnv(t *testing.T, mediaTimeout time.Duration, opts ...envOption) *callEnv {
	t.Helper()
	return newCallEnvDeps(t, mediaTimeout, nil, opts...)
}

// newCallEnvDeps is newCallEnv with a hook that completes the server's
// Deps.
func newCallEnvDeps(t *testing.T, mediaTimeout time.Duration, more func(*Deps), opts ...envOption) *callEnv {
	t.Helper()
	lo, hi := freePortWindow(t, 200)
	relay, err := media.New(media.Config{
		Address: netip.MustParseAddr("127.0.0.1"), PortMin: lo, PortMax: hi, Timeout: mediaTimeout,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs after the server has stopped.
	t.Cleanup(func() { relay.Close() })
	events := &eventLog{}
	e := newEnvDeps(t, func(d *Deps) {
		d.Relay = relayAdapter{relay}
		d.Records = d.Users.(*store.Store)
		d.Events = events
		if more != nil {
			more(d)
		}
	}, opts...)
	t.Cleanup(func() {
		if t.Failed() {
			lines := strings.Split(e.logBuf.String(), "\n")
			if len(lines) > 80 {
				lines = lines[len(lines)-80:]
			}
			t.Logf("server log (last lines):\n%s", strings.Join(lines, "\n"))
		}
	})
	return &callEnv{env: e, relay: relay, portMin: lo, portMax: hi, events: events}
}

// freePortWindow picks n consecutive ports in 30000-60000 that are (nearly
// all) free for UDP on 127.0.0.1 right now; the relay skips the few it
// cannot bind. It prefers 32000 up to the kernel's ephemeral range (32768
// here): sockets bound to port 0 do not take those from under the relay,
// and the media package's tests (10000-32000) and the rtpload tool
// (40000-59999) do not use them.
func freePortWindow(t *testing.T, n int) (int, int) {
	t.Helper()
	lo, hi := 32000, 60000-n
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if eph, err := strconv.Atoi(f[0]); err == nil && eph-n >= lo {
				hi = eph - n
			}
		}
	}
	best, bestFree := 0, 0
	for attempt := range 40 {
		if attempt == 20 {
			lo, hi = 30000, 60000-n // crowded: try the whole range
		}
		base := lo + 2*rand.IntN((hi-lo)/2+1)
		free := 0
		for p := base; p < base+n; p++ {
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p})
			if err == nil {
				c.Close()
				free++
			}
		}
		if free > bestFree {
			best, bestFree = base, free
		}
		if free >= n*95/100 {
			break
		}
	}
	if bestFree < n/2 {
		t.Fatalf("no free port window: at best %d of %d ports free", bestFree, n)
	}
	return best, best + n - 1
}

// lastRecord waits until the newest call record involving user is complete
// (EndedAt set) and returns it.
func (e *callEnv) lastRecord(t *testing.T, user string) store.CallRecord {
	t.Helper()
	var rec store.CallRecord
	waitFor(t, 5*time.Second, "a complete call record for "+user, func() bool {
		recs, err := e.st.Calls(context.Background(), store.CallFilter{User: user, Limit: 1})
		if err != nil || len(recs) == 0 {
			return false
		}
		rec = recs[0]
		return !rec.EndedAt.IsZero()
	})
	return rec
}

// waitIdle waits until the server has no call and the relay no port.
func (e *callEnv) waitIdle(t *testing.T) {
	t.Helper()
	waitFor(t, 5*time.Second, "no active call and no relay port in use", func() bool {
		return e.srv.ActiveCalls() == 0 && e.relay.PortsInUse() == 0
	})
}

// inRelayRange reports whether ap is a relay RTP port of this env.
func (e *callEnv) inRelayRange(ap netip.AddrPort) bool {
	p := int(ap.Port())
	return ap.Addr() == netip.MustParseAddr("127.0.0.1") && p >= e.portMin && p <= e.portMax && p%2 == 0
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// answerPlan is how a phone treats an incoming call.
type answerPlan struct {
	// ring sends 180 Ringing first.
	ring bool
	// early sends 183 Session Progress with SDP first, then earlyRTP
	// packets of early media (PCMU, sequence numbers from 1000).
	early    bool
	earlyRTP int
	// code is the final response: 200 (with SDP), another final status,
	// or 0 to never answer.
	code int
	// delay comes before the final response.
	delay time.Duration
	// gate, when set, holds the final response until it is closed.
	gate <-chan struct{}
}

var (
	planAnswer = answerPlan{ring: true, code: 200}
	planBusy   = answerPlan{code: 486}
	planRing   = answerPlan{ring: true}
)

// phoneOpts change how a phone presents itself.
type phoneOpts struct {
	transport string // "UDP" (default), "TCP", or "TLS" with tls set
	// tls is the certificate a "TLS" phone (a provider) serves.
	tls *tls.Config
	// fakeRTPPort is advertised in SDP instead of the real RTP port, as a
	// phone behind NAT would.
	fakeRTPPort int
	// fakeContact is advertised in Contact instead of the real address.
	fakeContact string
	// bind is the SIP socket's address, default 127.0.0.1:0; its host is
	// also where the phone's RTP socket is bound.
	bind string
	// setup, when set, may replace the phone's request handlers.
	setup func(*sipgo.Server)
	// srtpKey, when set, makes the phone offer and answer RTP/SAVP with
	// this SDES key (AES_CM_128_HMAC_SHA1_80).
	srtpKey []byte
	// plainOnly makes the phone refuse an RTP/SAVP offer with 488, as
	// phones without SRTP do.
	plainOnly bool
}

// testPhone is a softphone: a sipgo user agent with its own SIP socket
// (UDP, or a TCP listener) and a UDP socket for RTP.
type testPhone struct {
	t          *testing.T
	user, pass string
	transport  string
	server     string // server address for the phone's transport
	ua         *sipgo.UserAgent
	client     *sipgo.Client
	dua        *sipgo.DialogUA
	sipAddr    string
	rtpConn    *net.UDPConn
	rtpAddr    netip.AddrPort // where the phone really receives RTP
	sdpPort    int            // the RTP port it advertises
	srtpKey    []byte         // see phoneOpts
	plainOnly  bool           // see phoneOpts
	rtpIn      chan rtpPacket

	closed    chan struct{}
	closeOnce sync.Once
	closeSIP  func()
	wg        sync.WaitGroup

	mu   sync.Mutex
	plan answerPlan
	// reinviteDelay holds the answer to a re-INVITE.
	reinviteDelay time.Duration
	// stray are responses that matched no transaction, such as
	// retransmissions of a 2xx.
	stray    []*sip.Response
	reqs     []*sip.Request
	consumed map[sip.RequestMethod]int
	changed  chan struct{}
	uas      map[string]*sipgo.DialogServerSession // by Call-ID
	lastUAS  *sipgo.DialogServerSession            // the call answered last
	uac      map[string]*sipgo.DialogClientSession
	remote   netip.AddrPort // RTP address from the last SDP received
	sdpVer   int
}

type rtpPacket struct {
	pkt  rtp.Packet
	from netip.AddrPort
}

// newPhone starts a phone for user; it is closed when the test ends.
func (e *callEnv) newPhone(user, pass string, o phoneOpts) *testPhone {
	t := e.t
	t.Helper()
	if o.transport == "" {
		o.transport = "UDP"
	}
	p := &testPhone{
		t: t, user: user, pass: pass, transport: o.transport, srtpKey: o.srtpKey, plainOnly: o.plainOnly,
		closed: make(chan struct{}), changed: make(chan struct{}),
		consumed: map[sip.RequestMethod]int{}, plan: planAnswer,
		uas: map[string]*sipgo.DialogServerSession{}, uac: map[string]*sipgo.DialogClientSession{},
		rtpIn: make(chan rtpPacket, 4096),
	}
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("test-phone/"+user),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerUnhandledResponseHandler(p.onStray)))
	if err != nil {
		t.Fatal(err)
	}
	p.ua = ua
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	srv.OnInvite(p.onInvite)
	srv.OnAck(p.onAck)
	srv.OnBye(p.onBye)
	srv.OnInfo(p.onInfo)
	srv.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	if o.bind == "" {
		o.bind = "127.0.0.1:0"
	}
	ip, _, _ := net.SplitHostPort(o.bind)
	if o.setup != nil {
		o.setup(srv)
	}

	if o.transport == "TCP" || o.transport == "TLS" {
		l, err := net.Listen("tcp", o.bind)
		if err != nil {
			t.Fatal(err)
		}
		p.sipAddr, p.server = l.Addr().String(), e.tcp
		p.client, err = sipgo.NewClient(ua, sipgo.WithClientHostname(ip))
		if err != nil {
			t.Fatal(err)
		}
		p.wg.Add(1)
		if o.transport == "TLS" {
			tl := tls.NewListener(l, o.tls)
			go func() { defer p.wg.Done(); _ = srv.ServeTLS(tl) }()
		} else {
			go func() { defer p.wg.Done(); _ = srv.ServeTCP(l) }()
		}
		p.closeSIP = func() { l.Close() }
	} else {
		c, err := net.ListenPacket("udp", o.bind)
		if err != nil {
			t.Fatal(err)
		}
		p.sipAddr, p.server = c.LocalAddr().String(), e.udp
		// Requests leave from the listening socket, as with a real phone,
		// so that the server sees one address for everything.
		p.client, err = sipgo.NewClient(ua, sipgo.WithClientHostname(ip), sipgo.WithClientConnectionAddr(p.sipAddr))
		if err != nil {
			t.Fatal(err)
		}
		p.wg.Add(1)
		go func() { defer p.wg.Done(); _ = srv.ServeUDP(c) }()
		p.closeSIP = func() { c.Close() }
		waitFor(t, 2*time.Second, "phone UDP listener", func() bool {
			conn, err := ua.TransportLayer().GetConnection("udp", p.sipAddr)
			if err != nil {
				return false
			}
			conn.TryClose()
			return true
		})
	}
	contact := "sip:" + user + "@" + p.sipAddr
	if o.transport == "TCP" || o.transport == "TLS" {
		contact += ";transport=" + strings.ToLower(o.transport)
	}
	if o.fakeContact != "" {
		contact = o.fakeContact
	}
	var cu sip.Uri
	if err := sip.ParseUri(contact, &cu); err != nil {
		t.Fatal(err)
	}
	p.dua = &sipgo.DialogUA{Client: p.client, ContactHDR: sip.ContactHeader{Address: cu}}

	rc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatal(err)
	}
	p.rtpConn = rc
	p.rtpAddr = rc.LocalAddr().(*net.UDPAddr).AddrPort()
	p.sdpPort = int(p.rtpAddr.Port())
	if o.fakeRTPPort != 0 {
		p.sdpPort = o.fakeRTPPort
	}
	p.wg.Add(1)
	go p.readRTP()

	t.Cleanup(p.close)
	return p
}

// close turns the phone off, as if it crashed: it answers nothing more.
func (p *testPhone) close() {
	p.closeOnce.Do(func() {
		close(p.closed)
		p.rtpConn.Close()
		p.closeSIP()
		p.ua.Close()
		p.wg.Wait()
	})
}

func (p *testPhone) setPlan(pl answerPlan) {
	p.mu.Lock()
	p.plan = pl
	p.mu.Unlock()
}

// register binds the phone's contact with digest authentication.
func (p *testPhone) register() {
	p.t.Helper()
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: testDomain})
	aor := sip.Uri{Scheme: "sip", User: p.user, Host: testDomain}
	fp := sip.NewParams()
	fp.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(&sip.FromHeader{Address: aor, Params: fp})
	req.AppendHeader(&sip.ToHeader{Address: aor, Params: sip.NewParams()})
	req.AppendHeader(sip.HeaderClone(&p.dua.ContactHDR))
	req.AppendHeader(sip.NewHeader("Expires", "600"))
	req.SetDestination(p.server)
	req.SetTransport(p.transport)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := p.client.Do(ctx, req)
	if err == nil && res.StatusCode == 401 {
		res, err = p.client.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: p.user, Password: p.pass})
	}
	if err != nil {
		p.t.Fatalf("REGISTER %s: %v", p.user, err)
	}
	if res.StatusCode != 200 {
		p.t.Fatalf("REGISTER %s: %d %s", p.user, res.StatusCode, res.Reason)
	}
}

// offer is the phone's SDP with direction dir.
func (p *testPhone) offer(dir string) []byte {
	p.mu.Lock()
	p.sdpVer++
	v := p.sdpVer
	p.mu.Unlock()
	ip := p.rtpAddr.Addr()
	profile, crypto := "RTP/AVP", ""
	if p.srtpKey != nil {
		profile = "RTP/SAVP"
		crypto = "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + base64.StdEncoding.EncodeToString(p.srtpKey) + "\r\n"
	}
	return []byte(fmt.Sprintf("v=0\r\no=%s 1000 %d IN IP4 %s\r\ns=test\r\nc=IN IP4 %s\r\nt=0 0\r\n"+
		"m=audio %d %s 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"+
		"a=fmtp:101 0-16\r\na=ptime:20\r\na=%s\r\n%s", p.user, v, ip, ip, p.sdpPort, profile, dir, crypto))
}

// learnSDP remembers where the far side (the relay) wants RTP.
func (p *testPhone) learnSDP(body []byte) (netip.AddrPort, mediaInfo) {
	_, _, info, err := parseSDPSecure(body)
	if err != nil {
		p.t.Errorf("phone %s got unusable SDP: %v\n%s", p.user, err, body)
		return netip.AddrPort{}, info
	}
	if info.RTP.IsValid() {
		p.mu.Lock()
		p.remote = info.RTP
		p.mu.Unlock()
	}
	return info.RTP, info
}

func (p *testPhone) mediaDst() netip.AddrPort {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.remote
}

func (p *testPhone) onStray(r *sip.Response) {
	p.mu.Lock()
	p.stray = append(p.stray, r)
	p.mu.Unlock()
}

// strays counts stray responses with status code to a request with cseq.
func (p *testPhone) strays(code int, cseq uint32) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, r := range p.stray {
		if r.StatusCode == code && r.CSeq() != nil && r.CSeq().SeqNo == cseq {
			n++
		}
	}
	return n
}

func (p *testPhone) record(r *sip.Request) {
	p.mu.Lock()
	p.reqs = append(p.reqs, r)
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

// next returns the next request of method the phone received that no
// earlier call of next returned, waiting up to d; nil when none came.
func (p *testPhone) next(method sip.RequestMethod, d time.Duration) *sip.Request {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		n := 0
		for _, r := range p.reqs {
			if r.Method != method {
				continue
			}
			if n == p.consumed[method] {
				p.consumed[method]++
				p.mu.Unlock()
				return r
			}
			n++
		}
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			return nil
		}
	}
}

// expect is next that fails the test when nothing comes.
func (p *testPhone) expect(method sip.RequestMethod, d time.Duration) *sip.Request {
	p.t.Helper()
	r := p.next(method, d)
	if r == nil {
		p.t.Fatalf("phone %s (%s) received no %s within %s", p.user, p.sipAddr, method, d)
	}
	return r
}

// count returns how many requests of method the phone received.
func (p *testPhone) count(method sip.RequestMethod) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, r := range p.reqs {
		if r.Method == method {
			n++
		}
	}
	return n
}

func (p *testPhone) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if _, ok := req.To().Params.Get("tag"); ok {
		p.onReinvite(req, tx)
		return
	}
	p.record(req)
	tx.OnCancel(func(r *sip.Request) { p.record(r) })
	p.mu.Lock()
	plan := p.plan
	p.mu.Unlock()
	d, err := p.dua.ReadInvite(req, tx)
	if err != nil {
		return
	}
	if p.plainOnly && bytes.Contains(req.Body(), []byte("RTP/SAVP")) {
		_ = d.Respond(488, "Not Acceptable Here", nil)
		return
	}
	p.learnSDP(req.Body())
	// wait sleeps for dur, or for ever when the plan never answers; false
	// means the call was cancelled or the phone closed meanwhile.
	wait := func(dur time.Duration) bool {
		var timer <-chan time.Time
		if plan.code != 0 {
			timer = time.After(dur)
		}
		select {
		case <-timer:
			return true
		case <-d.Context().Done():
		case <-p.closed:
		}
		return false
	}
	if plan.ring {
		_ = d.Respond(180, "Ringing", nil)
	}
	if plan.early {
		_ = d.Respond(183, "Session Progress", p.offer("sendrecv"), sip.NewHeader("Content-Type", "application/sdp"))
		for i := range plan.earlyRTP {
			seq := uint16(1000 + i)
			p.sendRTPTo(p.mediaDst(), 0, seq, pcmu('e', seq))
		}
	}
	if !wait(plan.delay) {
		return
	}
	if plan.gate != nil {
		select {
		case <-plan.gate:
		case <-d.Context().Done():
			return
		case <-p.closed:
			return
		}
	}
	if plan.code != 200 {
		_ = d.Respond(plan.code, "Nope", nil)
		return
	}
	p.mu.Lock()
	p.uas[req.CallID().Value()] = d
	p.lastUAS = d
	p.mu.Unlock()
	_ = d.WriteResponse(sip.NewSDPResponseFromRequest(d.InviteRequest, p.offer("sendrecv")))
}

// onReinvite answers an offer inside a call, mirroring its direction; a
// re-INVITE without an offer gets one.
func (p *testPhone) onReinvite(req *sip.Request, tx sip.ServerTransaction) {
	p.record(req)
	p.mu.Lock()
	delay := p.reinviteDelay
	p.mu.Unlock()
	select {
	case <-time.After(delay):
	case <-p.closed:
		return
	}
	if len(req.Body()) == 0 {
		res := sip.NewSDPResponseFromRequest(req, p.offer("sendrecv"))
		res.AppendHeader(sip.HeaderClone(&p.dua.ContactHDR))
		_ = tx.Respond(res)
		return
	}
	_, info := p.learnSDP(req.Body())
	dir := map[string]string{"sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive"}[info.Direction]
	if dir == "" {
		dir = "sendrecv"
	}
	res := sip.NewSDPResponseFromRequest(req, p.offer(dir))
	res.AppendHeader(sip.HeaderClone(&p.dua.ContactHDR))
	_ = tx.Respond(res)
}

func (p *testPhone) onAck(req *sip.Request, tx sip.ServerTransaction) {
	p.record(req)
	if len(req.Body()) > 0 {
		p.learnSDP(req.Body())
	}
	p.mu.Lock()
	d := p.uas[req.CallID().Value()]
	p.mu.Unlock()
	if d != nil {
		_ = d.ReadAck(req, tx)
	}
}

func (p *testPhone) onBye(req *sip.Request, tx sip.ServerTransaction) {
	p.record(req)
	cid := req.CallID().Value()
	p.mu.Lock()
	uas, uac := p.uas[cid], p.uac[cid]
	p.mu.Unlock()
	switch {
	case uas != nil:
		_ = uas.ReadBye(req, tx)
	case uac != nil:
		_ = uac.ReadBye(req, tx)
	default:
		_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
	}
}

func (p *testPhone) onInfo(req *sip.Request, tx sip.ServerTransaction) {
	p.record(req)
	_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
}

// outCall is a call the phone placed.
type outCall struct {
	p      *testPhone
	d      *sipgo.DialogClientSession
	status int   // final status
	codes  []int // every status received, in order
	answer []byte
	early  []byte        // SDP of a 183
	final  *sip.Response // the final response when it was a failure
}

// callOpts change an outgoing INVITE.
type callOpts struct {
	fromUser string          // From user, default the phone's user
	pass     string          // password, default the phone's
	onStatus func(code int)  // called on each response
	ctx      context.Context // cancelling it sends CANCEL
	hdrs     []sip.Header    // extra headers of the INVITE
	sdpExtra string          // lines appended to the offer
}

// call places a call to callee and waits for the final response; a 2xx is
// ACKed.
func (p *testPhone) call(callee string, o callOpts) *outCall {
	p.t.Helper()
	oc, err := p.place(callee, o)
	if err != nil {
		p.t.Fatal(err)
	}
	return oc
}

// place is call for use off the test goroutine: it reports errors instead
// of failing the test.
func (p *testPhone) place(callee string, o callOpts) (*outCall, error) {
	ctx := o.ctx
	if ctx == nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
	}
	from := o.fromUser
	if from == "" {
		from = p.user
	}
	pass := o.pass
	if pass == "" {
		pass = p.pass
	}
	// The request URI names the server itself, as phones configured with
	// a server address do: sipgo sends CANCEL to the request URI.
	var ruri sip.Uri
	if err := sip.ParseUri("sip:"+callee+"@"+p.server, &ruri); err != nil {
		return nil, err
	}
	if p.transport == "TCP" {
		ruri.UriParams = sip.NewParams()
		ruri.UriParams.Add("transport", "tcp")
	}
	req := sip.NewRequest(sip.INVITE, ruri)
	fp := sip.NewParams()
	fp.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(&sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: from, Host: testDomain}, Params: fp})
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: callee, Host: testDomain}, Params: sip.NewParams()})
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.AppendHeader(sip.NewHeader("User-Agent", "test-phone/"+p.user))
	for _, h := range o.hdrs {
		req.AppendHeader(h)
	}
	req.SetBody(append(p.offer("sendrecv"), o.sdpExtra...))
	req.SetDestination(p.server)
	req.SetTransport(p.transport)
	oc := &outCall{p: p}
	d, err := p.dua.WriteInvite(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("INVITE: %w", err)
	}
	oc.d = d
	// The dialog is known before the answer so that a BYE racing the ACK
	// finds it.
	p.mu.Lock()
	p.uac[req.CallID().Value()] = d
	p.mu.Unlock()
	err = d.WaitAnswer(ctx, sipgo.AnswerOptions{Username: p.user, Password: pass, OnResponse: func(res *sip.Response) error {
		oc.codes = append(oc.codes, res.StatusCode)
		if res.StatusCode == 183 && len(res.Body()) > 0 {
			oc.early = res.Body()
		}
		if o.onStatus != nil {
			o.onStatus(res.StatusCode)
		}
		return nil
	}})
	var de *sipgo.ErrDialogResponse
	switch {
	case err == nil:
		oc.status = 200
		oc.answer = d.InviteResponse.Body()
		p.learnSDP(oc.answer)
		if err := d.Ack(context.Background()); err != nil {
			return nil, fmt.Errorf("ACK: %w", err)
		}
	case errors.As(err, &de):
		oc.status = de.Res.StatusCode
		oc.final = de.Res
	case ctx.Err() != nil && d.InviteResponse != nil:
		oc.status = d.InviteResponse.StatusCode
	default:
		return nil, fmt.Errorf("INVITE to %s: %w", callee, err)
	}
	return oc, nil
}

// ackWithCSeq ACKs a 2xx to a re-INVITE on the caller's dialog with the
// given CSeq, which the test phone keeps right even when another request
// was sent in the dialog meanwhile (sipgo would number the ACK after it).
func (c *outCall) ackWithCSeq(cseq uint32) error {
	d := c.d
	ack := sip.NewRequest(sip.ACK, d.InviteResponse.Contact().Address)
	ack.AppendHeader(sip.HeaderClone(d.InviteRequest.From()))
	ack.AppendHeader(sip.HeaderClone(d.InviteResponse.To()))
	ack.AppendHeader(sip.HeaderClone(d.InviteRequest.CallID()))
	ack.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: sip.ACK})
	ack.SetTransport(c.p.transport)
	ack.SetDestination(c.p.server)
	return c.p.client.WriteRequest(ack)
}

// hangup sends BYE and checks that it is answered with 200.
func (c *outCall) hangup() {
	c.p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.d.Bye(ctx); err != nil {
		c.p.t.Fatalf("BYE: %v", err)
	}
}

// do sends an in-dialog request (INFO, re-INVITE) on the caller's dialog
// and returns the final response; a 2xx to an INVITE is ACKed, with ackSDP
// as the answer when the re-INVITE had no offer.
func (c *outCall) do(req *sip.Request, ackSDP ...[]byte) *sip.Response {
	c.p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := c.d.Do(ctx, req)
	if err != nil {
		c.p.t.Fatalf("%s: %v", req.Method, err)
	}
	if req.Method == sip.INVITE && res.IsSuccess() {
		ack := sip.NewRequest(sip.ACK, req.Recipient)
		if len(ackSDP) > 0 {
			ack.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
			ack.SetBody(ackSDP[0])
		}
		if err := c.d.WriteRequest(ack); err != nil {
			c.p.t.Fatalf("ACK: %v", err)
		}
	}
	return res
}

// uasDo sends an in-dialog request on the dialog of the call the phone
// answered, and ACKs a 2xx to an INVITE.
func (p *testPhone) uasDo(req *sip.Request) *sip.Response {
	p.t.Helper()
	d := p.uasDialog()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := d.Do(ctx, req)
	if err != nil {
		p.t.Fatalf("%s: %v", req.Method, err)
	}
	if req.Method == sip.INVITE && res.IsSuccess() {
		if err := d.WriteRequest(sip.NewRequest(sip.ACK, req.Recipient)); err != nil {
			p.t.Fatalf("ACK: %v", err)
		}
	}
	return res
}

// uasDialog returns the dialog of the call the phone answered last.
func (p *testPhone) uasDialog() *sipgo.DialogServerSession {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lastUAS == nil {
		p.t.Fatalf("phone %s has answered no call", p.user)
	}
	return p.lastUAS
}

func (p *testPhone) readRTP() {
	defer p.wg.Done()
	for {
		buf := make([]byte, 1500)
		n, from, err := p.rtpConn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		var pkt rtp.Packet
		if err := pkt.Unmarshal(buf[:n]); err != nil {
			continue
		}
		select {
		case p.rtpIn <- rtpPacket{pkt: pkt, from: from}:
		default:
		}
	}
}

// sendRTP sends one packet from the phone's RTP socket.
func (p *testPhone) sendRTP(dst netip.AddrPort, pt uint8, seq uint16, payload []byte) {
	p.t.Helper()
	if err := p.sendRTPTo(dst, pt, seq, payload); err != nil {
		p.t.Fatalf("send RTP: %v", err)
	}
}

// sendRTPTo is sendRTP for use off the test goroutine.
func (p *testPhone) sendRTPTo(dst netip.AddrPort, pt uint8, seq uint16, payload []byte) error {
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: seq,
		Timestamp: uint32(seq) * 160, SSRC: ssrcOf(p.user)}, Payload: payload}
	b, err := pkt.Marshal()
	if err != nil {
		return err
	}
	_, err = p.rtpConn.WriteToUDPAddrPort(b, dst)
	return err
}

func ssrcOf(user string) uint32 {
	var h uint32 = 2166136261
	for _, c := range []byte(user) {
		h = (h ^ uint32(c)) * 16777619
	}
	return h
}

// drainRTP drops packets received so far.
func (p *testPhone) drainRTP() {
	for {
		select {
		case <-p.rtpIn:
		default:
			return
		}
	}
}

// recvRTP waits up to d for a packet.
func (p *testPhone) recvRTP(d time.Duration) (rtpPacket, bool) {
	select {
	case r := <-p.rtpIn:
		return r, true
	case <-time.After(d):
		return rtpPacket{}, false
	}
}

// pcmu is a 20 ms G.711 µ-law payload whose bytes identify sender and
// sequence number.
func pcmu(tag byte, seq uint16) []byte {
	b := make([]byte, 160)
	for i := range b {
		b[i] = tag ^ byte(seq) ^ byte(i)
	}
	return b
}

// audio sends n PCMU packets from one phone to where its SDP says, and
// checks that the other phone receives every one intact, from the relay.
func audio(t *testing.T, e *callEnv, from, to *testPhone, n int, seq0 uint16) {
	t.Helper()
	dst := from.mediaDst()
	if !e.inRelayRange(dst) {
		t.Fatalf("phone %s would send RTP to %v, not to the relay (ports %d-%d)", from.user, dst, e.portMin, e.portMax)
	}
	to.drainRTP()
	tag := from.user[len(from.user)-1]
	got := map[uint16]bool{}
	for i := range n {
		seq := seq0 + uint16(i)
		from.sendRTP(dst, 0, seq, pcmu(tag, seq))
		if i%10 == 9 {
			time.Sleep(time.Millisecond)
		}
	}
	deadline := time.Now().Add(3 * time.Second)
	for len(got) < n && time.Now().Before(deadline) {
		r, ok := to.recvRTP(time.Until(deadline))
		if !ok {
			break
		}
		if !e.inRelayRange(r.from) {
			t.Fatalf("phone %s received RTP from %v, not from a relay port", to.user, r.from)
		}
		seq := r.pkt.SequenceNumber
		if r.pkt.PayloadType != 0 || r.pkt.SSRC != ssrcOf(from.user) || string(r.pkt.Payload) != string(pcmu(tag, seq)) {
			t.Fatalf("phone %s received a damaged or foreign packet: PT %d SSRC %x seq %d len %d",
				to.user, r.pkt.PayloadType, r.pkt.SSRC, seq, len(r.pkt.Payload))
		}
		got[seq] = true
	}
	if len(got) < n {
		t.Fatalf("audio %s→%s: %d of %d packets arrived", from.user, to.user, len(got), n)
	}
}

// sdpTarget returns the RTP address an SDP body names.
func sdpTarget(t *testing.T, body []byte) (netip.AddrPort, mediaInfo) {
	t.Helper()
	_, _, info, err := parseSDP(body)
	if err != nil {
		t.Fatalf("unusable SDP: %v\n%s", err, body)
	}
	return info.RTP, info
}

func hasLine(body []byte, line string) bool {
	for _, l := range strings.Split(string(body), "\n") {
		if strings.TrimSpace(l) == line {
			return true
		}
	}
	return false
}
