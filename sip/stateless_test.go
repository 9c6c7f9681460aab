package sip

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/icholy/digest"
)

// udpPeer is a raw UDP socket that sends datagrams to the server and reads
// its answers, so a test can retransmit a request byte for byte.
type udpPeer struct {
	t    *testing.T
	conn net.PacketConn
	to   net.Addr
}

func newUDPPeer(t *testing.T, server string) *udpPeer {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	to, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		t.Fatal(err)
	}
	return &udpPeer{t: t, conn: c, to: to}
}

func (p *udpPeer) send(msg string) {
	p.t.Helper()
	if _, err := p.conn.WriteTo([]byte(msg), p.to); err != nil {
		p.t.Fatal(err)
	}
}

// read returns the next response, or nil when none comes within wait.
func (p *udpPeer) read(wait time.Duration) *sip.Response {
	p.t.Helper()
	_ = p.conn.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 65535)
	n, _, err := p.conn.ReadFrom(buf)
	if err != nil {
		return nil
	}
	msg, err := sip.NewParser().ParseSIP(buf[:n])
	if err != nil {
		p.t.Fatalf("unparseable answer: %v\n%s", err, buf[:n])
	}
	res, ok := msg.(*sip.Response)
	if !ok {
		p.t.Fatalf("not a response:\n%s", buf[:n])
	}
	return res
}

func (p *udpPeer) register(branch string, cseq int, auth string) string {
	local := p.conn.LocalAddr().String()
	msg := "REGISTER sip:" + testDomain + " SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + local + ";branch=z9hG4bK" + branch + ";rport\r\n" +
		"From: <sip:1001@" + testDomain + ">;tag=st1\r\nTo: <sip:1001@" + testDomain + ">\r\n" +
		"Call-ID: stateless-1\r\nCSeq: " + fmt.Sprint(cseq) + " REGISTER\r\nUser-Agent: SIPp\r\n" +
		"Contact: <sip:1001@" + local + ">\r\nExpires: 300\r\n"
	if auth != "" {
		msg += "Authorization: " + auth + "\r\n"
	}
	return msg + "Content-Length: 0\r\n\r\n"
}

// A REGISTER over UDP is answered without a server transaction; a
// retransmission of it, whether it arrives while the first copy is handled
// or after the answer, gets the same answer and leaves one binding.
func TestStatelessRegisterRetransmissions(t *testing.T) {
	e := newEnv(t)
	p := newUDPPeer(t, e.udp)

	first := p.register("st-a", 1, "")
	p.send(first)
	res := p.read(5 * time.Second)
	if res == nil || res.StatusCode != 401 {
		t.Fatalf("first REGISTER: %v", res)
	}
	// The retransmitted unauthenticated REGISTER is challenged again.
	p.send(first)
	if again := p.read(5 * time.Second); again == nil || again.StatusCode != 401 {
		t.Fatalf("retransmitted first REGISTER: %v", again)
	}
	if v := res.Via(); v == nil || !v.Params.Has("received") {
		t.Fatalf("answer's Via lacks received/rport: %v", res.Via())
	}
	chal, err := digest.ParseChallenge(res.GetHeader("WWW-Authenticate").Value())
	if err != nil {
		t.Fatal(err)
	}
	cred, err := digest.Digest(chal, digest.Options{Method: "REGISTER", URI: "sip:" + testDomain,
		Username: "1001", Password: "pw-1001", Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	second := p.register("st-b", 2, cred.String())
	// Sent three times back to back: each copy is absorbed (while the first
	// is being committed) or answered 200 OK again.
	for range 3 {
		p.send(second)
	}
	got := 0
	for {
		r := p.read(2 * time.Second)
		if r == nil {
			break
		}
		if r.StatusCode != 200 {
			t.Fatalf("authenticated REGISTER: %d %s", r.StatusCode, r.Reason)
		}
		if ce := contactExpires(r); len(ce) != 1 {
			t.Fatalf("200 OK contacts %v", ce)
		}
		got++
	}
	if got < 1 || got > 3 {
		t.Fatalf("%d answers to 3 copies of one REGISTER", got)
	}
	bs := e.srv.UserBindings("1001")
	if len(bs) != 1 || bs[0].CSeq != 2 || bs[0].CallID != "stateless-1" || bs[0].Transport != "UDP" {
		t.Fatalf("bindings after retransmissions: %+v", bs)
	}
	stored, err := e.st.UserBindings(context.Background(), "1001")
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 1 || !stored[0].Expires.Equal(bs[0].Expires.Truncate(time.Millisecond)) {
		t.Fatalf("stored bindings %+v, in memory %+v", stored, bs)
	}
	// Metrics count every answer sent, as without transactions.
	m := e.srv.Metrics()
	if n := m.Responses[MethodClass{Method: "REGISTER", Class: "4xx"}]; n != 2 {
		t.Fatalf("REGISTER 4xx counted %d, want 2 (%v)", n, m.Responses)
	}
	if n := m.Responses[MethodClass{Method: "REGISTER", Class: "2xx"}]; n != uint64(got) {
		t.Fatalf("REGISTER 2xx counted %d, want %d", n, got)
	}
}
