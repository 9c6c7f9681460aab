package sip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// attacker sends raw SIP over UDP from its own loopback address, so that a
// ban on it leaves the phones on 127.0.0.1 alone.
type attacker struct {
	t    *testing.T
	conn *net.UDPConn
	dst  *net.UDPAddr
	n    int
}

func newAttacker(t *testing.T, from, server string) *attacker {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(from)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	dst, err := net.ResolveUDPAddr("udp4", server)
	if err != nil {
		t.Fatal(err)
	}
	return &attacker{t: t, conn: c, dst: dst}
}

// send sends a request built from method, extra headers and body, and
// returns the first response within wait ("" when none came).
func (a *attacker) send(method, ruri, user, ua string, extra []string, wait time.Duration) string {
	a.t.Helper()
	a.n++
	local := a.conn.LocalAddr().String()
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-atk-%d-%d;rport\r\n", method, ruri, local, time.Now().UnixNano(), a.n)
	fmt.Fprintf(&b, "From: <sip:%s@%s>;tag=atk%d\r\nTo: <sip:%s@%s>\r\nCall-ID: atk-%d-%d\r\nCSeq: %d %s\r\nMax-Forwards: 70\r\n",
		user, testDomain, a.n, user, testDomain, time.Now().UnixNano(), a.n, a.n, method)
	fmt.Fprintf(&b, "Contact: <sip:%s@%s>\r\n", user, local)
	if ua != "" {
		fmt.Fprintf(&b, "User-Agent: %s\r\n", ua)
	}
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	if _, err := a.conn.WriteToUDP([]byte(b.String()), a.dst); err != nil {
		a.t.Fatal(err)
	}
	if wait == 0 {
		return ""
	}
	buf := make([]byte, 65535)
	deadline := time.Now().Add(wait)
	for {
		_ = a.conn.SetReadDeadline(deadline)
		n, _, err := a.conn.ReadFromUDP(buf)
		if err != nil {
			return ""
		}
		res := string(buf[:n])
		if strings.Contains(res, fmt.Sprintf("CSeq: %d %s", a.n, method)) {
			return res
		}
	}
}

var atkNonceRe = regexp.MustCompile(`nonce="([^"]+)"`)

// badPassword sends a REGISTER for user with a digest answer that is wrong,
// after fetching a fresh nonce, and returns the final response.
func (a *attacker) badPassword(user string) string {
	a.t.Helper()
	ruri := "sip:" + testDomain
	res := a.send("REGISTER", ruri, user, "SIPp", nil, 2*time.Second)
	m := atkNonceRe.FindStringSubmatch(res)
	if m == nil {
		return res
	}
	auth := fmt.Sprintf(`Authorization: Digest username="%s", realm="%s", nonce="%s", uri="%s", response="0123456789abcdef0123456789abcdef", algorithm=MD5`,
		user, testDomain, m[1], ruri)
	return a.send("REGISTER", ruri, user, "SIPp", []string{auth}, 2*time.Second)
}

func (a *attacker) answered() bool {
	return strings.HasPrefix(a.send("OPTIONS", "sip:"+testDomain, "probe", "probe", nil, 700*time.Millisecond), "SIP/2.0 ")
}

func withLimits(l Limits) envOption { return func(c *Config) { c.Limits = l } }

func banOf(t *testing.T, e *env, addr string) (BanInfo, bool) {
	t.Helper()
	for _, b := range e.srv.Bans() {
		if b.Addr == netip.MustParseAddr(addr) {
			return b, true
		}
	}
	return BanInfo{}, false
}

// TestBanAfterBadPasswords bans a source after N wrong passwords, lets the
// ban expire, and bans it twice as long the next time; the real user on
// another address registers throughout.
func TestBanAfterBadPasswords(t *testing.T) {
	e := newEnv(t, withLimits(Limits{AuthFailures: 3, AuthFailureWindow: time.Minute, BanTime: time.Minute, MaxBanTime: time.Hour}))
	atk := newAttacker(t, "127.0.0.2", e.udp)
	alice := e.phone("1001", "pw-1001", "UDP")
	// A phone with a mistyped password answering each new challenge at
	// once: the burst counts as one failure.
	for i := range 6 {
		if res := atk.badPassword("1001"); !strings.HasPrefix(res, "SIP/2.0 401") {
			t.Fatalf("bad password %d: %q", i+1, res)
		}
	}
	if b, ok := banOf(t, e, "127.0.0.2"); ok {
		t.Fatalf("banned for one burst of retries: %+v", b)
	}
	for range 2 {
		e.clock.advance(time.Second)
		atk.badPassword("1001")
	}
	b, ok := banOf(t, e, "127.0.0.2")
	if !ok || b.Reason != BanAuthFailures || b.Until.Sub(b.Since) != time.Minute || b.Offences != 1 {
		t.Fatalf("ban after 3 bad passwords: %+v %v (bans %+v)", b, ok, e.srv.Bans())
	}
	if atk.answered() {
		t.Fatal("a banned source is still answered")
	}
	if res := alice.register([]string{"<sip:1001@127.0.0.1:5999>"}); res.StatusCode != 200 {
		t.Fatalf("the real user, not banned, got %d", res.StatusCode)
	}
	// The ban expires.
	e.clock.advance(61 * time.Second)
	if !atk.answered() {
		t.Fatal("the source is still dropped after its ban expired")
	}
	if _, ok := banOf(t, e, "127.0.0.2"); ok {
		t.Fatal("an expired ban is still listed")
	}
	// A second offence: twice as long.
	for range 3 {
		e.clock.advance(time.Second)
		atk.badPassword("1001")
	}
	b, ok = banOf(t, e, "127.0.0.2")
	if !ok || b.Until.Sub(b.Since) != 2*time.Minute || b.Offences != 2 {
		t.Fatalf("second ban: %+v %v", b, ok)
	}
	// The operator lifts it.
	if !e.srv.Unban(netip.MustParseAddr("127.0.0.2")) || !atk.answered() {
		t.Fatal("unban did not lift the ban")
	}
	st := e.srv.ProtectionStats()
	if st.Bans != 2 || st.AuthFailures < 6 || st.Dropped[DropBanned] == 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestScannerFloodBannedWhileUsersCall floods the server with a scanner's
// requests from one address while two real users call: the scanner is
// never answered and is banned; the call connects with audio.
func TestScannerFloodBannedWhileUsersCall(t *testing.T) {
	e := newCallEnv(t, 0, withLimits(Limits{
		RequestsPerSecond: 20, RequestBurst: 20, BanTime: time.Minute,
		ScannerAgents: []string{"friendly-scanner", "sipvicious"},
	}))
	a, b := callPair(e, "UDP", "UDP")
	scanner := newAttacker(t, "127.0.0.3", e.udp)
	if res := scanner.send("OPTIONS", "sip:100@"+testDomain, "100", "friendly-scanner", nil, time.Second); res != "" {
		t.Fatalf("scanner answered: %q", res)
	}
	if bi, ok := banOf(t, e.env, "127.0.0.3"); !ok || bi.Reason != BanScanner {
		t.Fatalf("scanner not banned: %+v", e.srv.Bans())
	}
	// A flood of guesses from a second address without a scanner's name
	// is rate limited and banned.
	flood := newAttacker(t, "127.0.0.4", e.udp)
	stop := make(chan struct{})
	flooded := make(chan int, 1)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				flooded <- n
				return
			default:
			}
			flood.send("INVITE", fmt.Sprintf("sip:%d@%s", 1000+n%9000, testDomain), "guess", "", nil, 0)
			n++
			if n%50 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	oc := answeredCall(t, a, b)
	audio(t, e, a, b, 20, 1)
	audio(t, e, b, a, 20, 1)
	oc.hangup()
	close(stop)
	n := <-flooded
	if bi, ok := banOf(t, e.env, "127.0.0.4"); !ok || bi.Reason != BanRequestRate {
		t.Fatalf("flood of %d requests not banned: %+v", n, e.srv.Bans())
	}
	st := e.srv.ProtectionStats()
	if st.Dropped[DropScanner] == 0 || st.Dropped[DropRate] == 0 {
		t.Errorf("stats %+v", st)
	}
	b.expect(sip.BYE, 2*time.Second)
}

// TestTollFraud: nobody places a call without a password, and no call
// leaves for a number outside without a trunk that allows it.
func TestTollFraud(t *testing.T) {
	e := newCallEnv(t, 0, withLimits(Limits{AuthFailures: 5}))
	atk := newAttacker(t, "127.0.0.5", e.udp)
	sdp := []string{"Content-Type: application/sdp"}
	res := atk.send("INVITE", "sip:+15551234567@"+testDomain, "1001", "", sdp, 2*time.Second)
	if !strings.HasPrefix(res, "SIP/2.0 407") {
		t.Fatalf("unauthenticated INVITE to an outside number: %q", res)
	}
	res = atk.send("INVITE", "sip:+15551234567@provider.example.net", "1001", "", sdp, 2*time.Second)
	if !strings.HasPrefix(res, "SIP/2.0 403") {
		t.Fatalf("INVITE to relay elsewhere: %q", res)
	}
	// A real user dialling an outside number with no trunk gets 404.
	a := e.newPhone("1001", "pw-1001", phoneOpts{})
	a.register()
	if oc := a.call("+15551234567", callOpts{}); oc.status != 404 {
		t.Fatalf("outside number without a trunk: %d", oc.status)
	}
	if n := e.srv.ActiveCalls(); n != 0 {
		t.Fatalf("%d calls in progress", n)
	}
}

// TestCallLimits refuses calls past the per-user and total limits: a
// user in as many calls as the limit may place no more (403) and is busy
// to callers (486).
func TestCallLimits(t *testing.T) {
	e := newCallEnv(t, 0, withLimits(Limits{MaxCalls: 2, MaxCallsPerUser: 1}))
	a, b := callPair(e, "UDP", "UDP")
	c := e.newPhone("1003", "pw-1003", phoneOpts{})
	c.register()
	if err := e.st.CreateUser(context.Background(), testUser("1004", "pw-1004")); err != nil {
		t.Fatal(err)
	}
	d := e.newPhone("1004", "pw-1004", phoneOpts{})
	d.register()
	answeredCall(t, a, b)
	if oc := a.call("1003", callOpts{}); oc.status != 403 {
		t.Fatalf("second call of 1001: %d", oc.status)
	}
	if oc := c.call("1002", callOpts{}); oc.status != 486 {
		t.Fatalf("call to 1002, in a call already: %d %v", oc.status, oc.codes)
	}
	if r := b.next(sip.INVITE, 200*time.Millisecond); r != nil {
		t.Error("a user at the call limit was rung")
	}
	oc2 := c.call("1004", callOpts{})
	if oc2.status != 200 {
		t.Fatalf("call of 1003: %d %v", oc2.status, oc2.codes)
	}
	// Two calls up: the total limit sheds the next with 503.
	var codes []int
	oc3 := b.call("1001", callOpts{onStatus: func(code int) { codes = append(codes, code) }})
	if oc3.status != 503 {
		t.Fatalf("third call: %d", oc3.status)
	}
	st := e.srv.ProtectionStats()
	if st.CallsRefused[RefusedUserCalls] != 2 || st.CallsRefused[RefusedMaxCalls] != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestMessageLimits answers 513 to a request with too many headers and
// drops an oversized datagram.
func TestMessageLimits(t *testing.T) {
	e := newEnv(t, withLimits(Limits{MaxHeaders: 20, MaxMessageSize: 2000, Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.7/32")}}))
	atk := newAttacker(t, "127.0.0.6", e.udp)
	var many []string
	for i := range 20 {
		many = append(many, fmt.Sprintf("X-Pad-%d: %d", i, i))
	}
	if res := atk.send("OPTIONS", "sip:"+testDomain, "p", "probe", many, 2*time.Second); !strings.HasPrefix(res, "SIP/2.0 513") {
		t.Fatalf("too many headers: %q", res)
	}
	big := []string{"X-Pad: " + strings.Repeat("a", 2500)}
	if res := atk.send("OPTIONS", "sip:"+testDomain, "p", "probe", big, time.Second); res != "" {
		t.Fatalf("oversized datagram answered: %q", res)
	}
	// The size limit holds for a trusted source too, however large the
	// datagram.
	huge := []string{"X-Pad: " + strings.Repeat("a", 40000)}
	if res := newAttacker(t, "127.0.0.7", e.udp).send("OPTIONS", "sip:"+testDomain, "p", "probe", huge, time.Second); res != "" {
		t.Fatalf("oversized datagram from a trusted source answered: %q", res)
	}
	// With the default limit, which is the read buffer's size, too: such
	// a datagram arrives cut to the buffer, and is not taken as whole.
	e2 := newEnv(t, withLimits(Limits{MaxHeaders: 100, MaxMessageSize: 32768, Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.7/32")}}))
	for _, pad := range []int{33000, 40000, 60000} {
		big := []string{"X-Pad: " + strings.Repeat("a", pad)}
		if res := newAttacker(t, "127.0.0.7", e2.udp).send("OPTIONS", "sip:"+testDomain, "p", "probe", big, time.Second); res != "" {
			t.Fatalf("%d-byte datagram from a trusted source answered: %q", pad, res)
		}
	}
	if !atk.answered() {
		t.Fatal("a normal request is not answered")
	}

	// On TCP a message over the limit closes the connection; one under it
	// on a new connection is answered.
	tcpOptions := func(pad int) (string, error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.6")}, Timeout: 2 * time.Second}
		c, err := d.Dial("tcp", e.tcp)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c.Close()
		req := fmt.Sprintf("OPTIONS sip:%s SIP/2.0\r\nVia: SIP/2.0/TCP %s;branch=z9hG4bK-big%d\r\n"+
			"From: <sip:p@%s>;tag=1\r\nTo: <sip:%s>\r\nCall-ID: big%d\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"+
			"User-Agent: probe\r\nX-Pad: %s\r\nContent-Length: 0\r\n\r\n",
			testDomain, c.LocalAddr(), pad, testDomain, testDomain, pad, strings.Repeat("a", pad))
		if _, err := c.Write([]byte(req)); err != nil {
			return "", err
		}
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		buf := make([]byte, 4096)
		n, err := c.Read(buf)
		return string(buf[:n]), err
	}
	if res, err := tcpOptions(1000); !strings.HasPrefix(res, "SIP/2.0 200") {
		t.Fatalf("TCP request under the limit: %q, %v", res, err)
	}
	if res, err := tcpOptions(5000); res != "" || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("TCP request over the limit: got %q, %v; want the connection closed", res, err)
	}
}

// TestBanFastGuesser: a burst is folded into one failure only up to
// failBurstMax wrong answers, so a source guessing fast, all within one
// burst window, is still banned.
func TestBanFastGuesser(t *testing.T) {
	e := newEnv(t, withLimits(Limits{AuthFailures: 3, AuthFailureWindow: time.Minute, BanTime: time.Minute, MaxBanTime: time.Hour}))
	atk := newAttacker(t, "127.0.0.3", e.udp)
	// Counted at the 1st, 18th and 35th wrong answer.
	for i := range 2*(failBurstMax+1) + 1 {
		if _, ok := banOf(t, e, "127.0.0.3"); ok {
			t.Fatalf("banned after %d wrong answers, before the third counted one", i)
		}
		atk.badPassword("1001")
	}
	if b, ok := banOf(t, e, "127.0.0.3"); !ok || b.Reason != BanAuthFailures {
		t.Fatalf("a fast guesser is not banned: %+v %v", b, ok)
	}
}
