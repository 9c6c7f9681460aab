package main

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/switchboard/switchboard/internal/browsertest"
)

// sipgoPhone is a desk phone made with sipgo on UDP: it registers, answers
// an INVITE with its media port, and sends requests within the call.
type sipgoPhone struct {
	t      *testing.T
	ua     *sipgo.UserAgent
	dsc    *sipgo.DialogServerCache
	calls  chan *sipgo.DialogServerSession // answered and ACKed
	offers chan string                     // the offer of each INVITE
	byes   chan struct{}
}

// newSipgoPhone registers user on the server and answers calls with an SDP
// pointing at the RTP port answerPort.
func newSipgoPhone(t *testing.T, sipAddr, user, pass string, answerPort int) *sipgoPhone {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("sipgo-desk-phone"))
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := sipgo.NewServer(ua)
	cli, _ := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := udp.LocalAddr().(*net.UDPAddr).Port
	contact := sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: "127.0.0.1", Port: port}}
	p := &sipgoPhone{t: t, ua: ua, dsc: sipgo.NewDialogServerCache(cli, contact),
		calls: make(chan *sipgo.DialogServerSession, 1), offers: make(chan string, 1), byes: make(chan struct{}, 1)}
	srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		d, err := p.dsc.ReadInvite(req, tx)
		if err != nil {
			_ = tx.Respond(sip.NewResponseFromRequest(req, 500, "Server Internal Error", nil))
			return
		}
		p.offers <- string(req.Body())
		_, event := plainTargetErrEvent(string(req.Body()))
		if err := d.RespondSDP([]byte(phoneSDP(answerPort, event))); err != nil {
			return
		}
		p.calls <- d
	})
	srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) { _ = p.dsc.ReadAck(req, tx) })
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		if p.dsc.ReadBye(req, tx) == nil {
			p.byes <- struct{}{}
		}
	})
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.ServeUDP(udp)
	}()
	t.Cleanup(func() {
		udp.Close()
		ua.Close()
		<-served
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := register(ctx, cli, "UDP", sipAddr, user, pass, contact.Address.String()); err != nil {
		t.Fatalf("sipgo phone REGISTER: %v", err)
	}
	return p
}

// plainTargetErrEvent is the telephone-event payload type an SDP offers, 0
// if none.
func plainTargetErrEvent(body string) (*net.UDPAddr, int) {
	dst, _ := plainTargetErr(body)
	ev := 0
	if e := sdpEvent.FindStringSubmatch(body); e != nil {
		fmt.Sscan(e[1], &ev)
	}
	return dst, ev
}

// reinvite sends a re-INVITE with sdp in the call and ACKs a 2xx; it
// returns the status and the answer.
func (p *sipgoPhone) reinvite(d *sipgo.DialogServerSession, sdp string) (int, string) {
	p.t.Helper()
	target := d.InviteRequest.Contact().Address
	req := sip.NewRequest(sip.INVITE, target)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody([]byte(sdp))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	res, err := d.Do(ctx, req)
	if err != nil {
		p.t.Fatalf("re-INVITE: %v", err)
	}
	if res.IsSuccess() {
		if err := d.WriteRequest(sip.NewRequest(sip.ACK, target)); err != nil {
			p.t.Fatalf("ACK: %v", err)
		}
	}
	return res.StatusCode, string(res.Body())
}

var (
	sdpDirection = regexp.MustCompile(`(?m)^a=(sendrecv|sendonly|recvonly|inactive)\r?$`)
	sdpOrigin    = regexp.MustCompile(`(?m)^o=\S+ \d+ (\d+) `)
)

// answerOf checks a re-INVITE's 200: plain PCMU at the relay port the
// phone already sends to, in direction want; it returns the o= version.
func answerOf(t *testing.T, what, body string, relay *net.UDPAddr, want string) string {
	t.Helper()
	dst, _ := plainTarget(t, body)
	if dst.Port != relay.Port || !dst.IP.Equal(relay.IP) {
		t.Fatalf("%s: answer points at %s, want the relay's %s:\n%s", what, dst, relay, body)
	}
	if m := sdpDirection.FindStringSubmatch(body); m == nil || m[1] != want {
		t.Fatalf("%s: answer direction %v, want %s:\n%s", what, m, want, body)
	}
	v := sdpOrigin.FindStringSubmatch(body)
	if v == nil {
		t.Fatalf("%s: answer without o= line:\n%s", what, body)
	}
	return v[1]
}

// holdSDP is phoneSDP with another direction.
func holdSDP(port, event int, direction string) string {
	return strings.Replace(phoneSDP(port, event), "a=sendrecv", "a="+direction, 1)
}

// A desk phone (sipgo) in a call with the browser puts it on hold and
// resumes with re-INVITEs the browser's bridge answers: while held the
// phone gets nothing from the browser; after resuming audio flows both ways.
// A session refresh keeps the SDP version, a new RTP port is followed,
// and a codec change the browser cannot follow is refused with 488 while
// the call goes on.
func TestPhoneHoldsBrowser(t *testing.T) {
	e := startBrowserEnv(t, map[string]string{"1001": "alice-1001", "1003": "carol-1003"})
	media := newRTPPhone(t)
	phone := newSipgoPhone(t, fmt.Sprintf("127.0.0.1:%d", e.sipPort), "1001", "alice-1001", media.port())
	page := e.signIn(t, "1003", "carol-1003")

	page.Fill("dial-number", "1001")
	page.Click("call-button")
	var offer string
	select {
	case offer = <-phone.offers:
	case <-time.After(15 * time.Second):
		t.Fatal("the phone got no INVITE")
	}
	relay, event := plainTarget(t, offer)
	var d *sipgo.DialogServerSession
	select {
	case d = <-phone.calls:
	case <-time.After(15 * time.Second):
		t.Fatal("the phone's 200 was not ACKed")
	}
	media.send(relay)
	page.WaitText("call-state", "In call")
	page.WaitFor(inboundPackets + `.then(n => n > 25)`)
	waitAtLeast(t, "PCMU packets from the browser", 25, func() int { return media.count(0) })

	// Hold: the phone will send only (music on hold), and hears nothing.
	st, ans := phone.reinvite(d, holdSDP(media.port(), event, "sendonly"))
	if st != 200 {
		t.Fatalf("hold re-INVITE: %d, want 200", st)
	}
	heldVer := answerOf(t, "hold", ans, relay, "recvonly")
	time.Sleep(300 * time.Millisecond) // packets in flight
	atHold := media.count(0)
	rxAtHold := browsertest.Eval[int](page, inboundPackets)
	page.WaitFor(inboundPackets + fmt.Sprintf(`.then(n => n > %d)`, rxAtHold+25)) // music on hold reaches the browser
	if n := media.count(0) - atHold; n > 2 {
		t.Fatalf("the phone on hold got %d packets from the browser", n)
	}
	if page.Text("call-state") != "In call" {
		t.Fatalf("the page says %q while the phone holds", page.Text("call-state"))
	}

	// Resume: both ways again.
	st, ans = phone.reinvite(d, phoneSDP(media.port(), event))
	if st != 200 {
		t.Fatalf("resume re-INVITE: %d, want 200", st)
	}
	resumedVer := answerOf(t, "resume", ans, relay, "sendrecv")
	if resumedVer == heldVer {
		t.Fatalf("the answer changed but its o= version stayed %s", heldVer)
	}
	waitAtLeast(t, "PCMU packets from the browser after resuming", media.count(0)+25, func() int { return media.count(0) })
	rx := browsertest.Eval[int](page, inboundPackets)
	page.WaitFor(inboundPackets + fmt.Sprintf(`.then(n => n > %d)`, rx+25))

	// A session refresh (the same offer): the same answer, same version.
	st, ans = phone.reinvite(d, phoneSDP(media.port(), event))
	if st != 200 {
		t.Fatalf("refresh re-INVITE: %d, want 200", st)
	}
	if v := answerOf(t, "refresh", ans, relay, "sendrecv"); v != resumedVer {
		t.Fatalf("a refresh changed the o= version from %s to %s", resumedVer, v)
	}

	// The phone moves its RTP to another port: the browser's audio follows.
	moved := newRTPPhone(t)
	media.close()
	st, ans = phone.reinvite(d, phoneSDP(moved.port(), event))
	if st != 200 {
		t.Fatalf("new-address re-INVITE: %d, want 200", st)
	}
	answerOf(t, "new address", ans, relay, "sendrecv")
	moved.send(relay)
	waitAtLeast(t, "PCMU packets from the browser at the new port", 25, func() int { return moved.count(0) })
	rx = browsertest.Eval[int](page, inboundPackets)
	page.WaitFor(inboundPackets + fmt.Sprintf(`.then(n => n > %d)`, rx+25))

	// PCMA only: the browser's leg cannot follow without renegotiating.
	pcma := strings.NewReplacer("RTP/AVP 0", "RTP/AVP 8", "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000").Replace(phoneSDP(moved.port(), event))
	if st, _ := phone.reinvite(d, pcma); st != 488 {
		t.Fatalf("codec-change re-INVITE: %d, want 488", st)
	}
	waitAtLeast(t, "PCMU packets from the browser after the refused change", moved.count(0)+25, func() int { return moved.count(0) })

	page.Click("hangup-button")
	select {
	case <-phone.byes:
	case <-time.After(15 * time.Second):
		t.Fatal("the phone got no BYE")
	}
	page.WaitText("call-state", "Call ended")
}

// sipgoCaller is a desk phone made with sipgo that calls: it answers the
// server's challenge, and takes the server's BYE.
type sipgoCaller struct {
	t       *testing.T
	cli     *sipgo.Client
	dcc     *sipgo.DialogClientCache
	contact sip.ContactHeader
	sipAddr string
	byes    chan struct{}
}

func newSipgoCaller(t *testing.T, sipAddr, user string) *sipgoCaller {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("sipgo-desk-phone"))
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := sipgo.NewServer(ua)
	cli, _ := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	contact := sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: "127.0.0.1", Port: udp.LocalAddr().(*net.UDPAddr).Port}}
	p := &sipgoCaller{t: t, cli: cli, dcc: sipgo.NewDialogClientCache(cli, contact), contact: contact, sipAddr: sipAddr, byes: make(chan struct{}, 1)}
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		if p.dcc.ReadBye(req, tx) == nil {
			p.byes <- struct{}{}
		}
	})
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.ServeUDP(udp)
	}()
	t.Cleanup(func() {
		udp.Close()
		ua.Close()
		<-served
	})
	return p
}

// call sends an INVITE with sdp to callee as user and returns the dialog
// and a channel that gets the result of waiting for the answer.
func (p *sipgoCaller) call(user, pass, callee, sdp string) (*sipgo.DialogClientSession, <-chan error) {
	p.t.Helper()
	req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: callee, Host: "switchboard.local"})
	req.AppendHeader(&sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: "switchboard.local"}, Params: tagParams()})
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: callee, Host: "switchboard.local"}, Params: sip.NewParams()})
	req.AppendHeader(sip.HeaderClone(&p.contact))
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody([]byte(sdp))
	req.SetDestination(p.sipAddr)
	req.SetTransport("UDP")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	d, err := p.dcc.WriteInvite(ctx, req)
	if err != nil {
		cancel()
		p.t.Fatalf("INVITE: %v", err)
	}
	answered := make(chan error, 1)
	go func() {
		defer cancel()
		err := d.WaitAnswer(ctx, sipgo.AnswerOptions{Username: user, Password: pass})
		if err == nil {
			err = d.Ack(ctx)
		}
		answered <- err
	}()
	return d, answered
}

// inDialog sends a request of method with body (none when "") in the call,
// ACKs a 2xx to an INVITE with ackBody, and returns the status and body
// of the response.
func inDialog(t *testing.T, d *sipgo.DialogClientSession, method sip.RequestMethod, body, ackBody string) (int, string) {
	t.Helper()
	target := d.InviteResponse.Contact().Address
	req := sip.NewRequest(method, target)
	if body != "" {
		req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		req.SetBody([]byte(body))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	res, err := d.Do(ctx, req)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	if method == sip.INVITE && res.IsSuccess() {
		ack := sip.NewRequest(sip.ACK, target)
		if ackBody != "" {
			ack.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
			ack.SetBody([]byte(ackBody))
		}
		if err := d.WriteRequest(ack); err != nil {
			t.Fatalf("ACK: %v", err)
		}
	}
	return res.StatusCode, string(res.Body())
}

// A desk phone (sipgo) that called the browser refreshes the session the
// three ways phones do — the same offer again, an UPDATE without SDP, a
// re-INVITE without SDP — and holds through the last one (its answer in
// the ACK); then it resumes and audio flows both ways.
func TestCallingPhoneRefreshesAndHoldsBrowser(t *testing.T) {
	e := startBrowserEnv(t, map[string]string{"1001": "alice-1001", "1003": "carol-1003"})
	media := newRTPPhone(t)
	phone := newSipgoCaller(t, fmt.Sprintf("127.0.0.1:%d", e.sipPort), "1001")
	page := e.signIn(t, "1003", "carol-1003")

	offer := phoneSDP(media.port(), 101)
	d, answered := phone.call("1001", "alice-1001", "1003", offer)
	page.WaitText("incoming-caller", "1001")
	page.Click("answer-button")
	select {
	case err := <-answered:
		if err != nil {
			t.Fatalf("call to the browser: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the call to the browser was not answered")
	}
	first := string(d.InviteResponse.Body())
	relay, _ := plainTarget(t, first)
	firstVer := answerOf(t, "answer", first, relay, "sendrecv")
	media.send(relay)
	page.WaitText("call-state", "In call")
	page.WaitFor(inboundPackets + `.then(n => n > 25)`)
	waitAtLeast(t, "PCMU packets from the browser", 25, func() int { return media.count(0) })

	// The same offer again: the same answer, version and all.
	if st, ans := inDialog(t, d, sip.INVITE, offer, ""); st != 200 || ans != first {
		t.Fatalf("refresh re-INVITE: %d with\n%s\nwant 200 with the first answer (version %s)\n%s", st, ans, firstVer, first)
	}
	// UPDATE without SDP (RFC 4028 session timers).
	if st, ans := inDialog(t, d, sip.UPDATE, "", ""); st != 200 || ans != "" {
		t.Fatalf("UPDATE without SDP: %d %q, want 200 without a body", st, ans)
	}
	// A re-INVITE without SDP: our offer in the 200, the phone's answer,
	// which holds (sendonly), in the ACK.
	st, ourOffer := inDialog(t, d, sip.INVITE, "", holdSDP(media.port(), 101, "sendonly"))
	if st != 200 {
		t.Fatalf("re-INVITE without SDP: %d, want 200", st)
	}
	answerOf(t, "offer in the 200", ourOffer, relay, "sendrecv")
	waitFor(t, "the hold from the ACK applied", func() bool {
		n := media.count(0)
		time.Sleep(500 * time.Millisecond)
		return media.count(0)-n <= 1
	})
	held := media.count(0)
	time.Sleep(time.Second)
	if n := media.count(0) - held; n > 1 {
		t.Fatalf("the phone on hold got %d packets from the browser in a second", n)
	}

	// Resume.
	st, ans := inDialog(t, d, sip.INVITE, offer, "")
	if st != 200 {
		t.Fatalf("resume re-INVITE: %d, want 200", st)
	}
	answerOf(t, "resume", ans, relay, "sendrecv")
	waitAtLeast(t, "PCMU packets from the browser after resuming", media.count(0)+25, func() int { return media.count(0) })
	rx := browsertest.Eval[int](page, inboundPackets)
	page.WaitFor(inboundPackets + fmt.Sprintf(`.then(n => n > %d)`, rx+25))

	page.Click("hangup-button")
	select {
	case <-phone.byes:
	case <-time.After(15 * time.Second):
		t.Fatal("the phone got no BYE")
	}
}
