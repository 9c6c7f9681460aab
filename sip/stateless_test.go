package sip

import (
	"context"
	"fmt"
	"net"
	"strings"
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
	// The retransmitted unauthenticated REGISTER gets the same challenge:
	// the same nonce and the same To tag.
	p.send(first)
	again := p.read(5 * time.Second)
	if again == nil || again.String() != res.String() {
		t.Fatalf("retransmitted first REGISTER answered\n%v\nwant the first answer\n%v", again, res)
	}
	if v := res.Via(); v == nil || !v.Params.Has("received") {
		t.Fatalf("answer's Via lacks received/rport: %v", res.Via())
	}
	second := p.register("st-b", 2, answerChallenge(t, res.GetHeader("WWW-Authenticate").Value(), "REGISTER", "sip:"+testDomain, "1001", "pw-1001"))
	// Sent three times back to back: each copy is absorbed (while the first
	// is being committed) or answered 200 OK again.
	for range 3 {
		p.send(second)
	}
	got := 0
	var ok200 string
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
		if ok200 != "" && r.String() != ok200 {
			t.Fatalf("a retransmission got another answer:\n%s\nfirst:\n%s", r, ok200)
		}
		ok200 = r.String()
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
	// Metrics count each request answered once, retransmissions not, as
	// with transactions.
	m := e.srv.Metrics()
	if n := m.Responses[MethodClass{Method: "REGISTER", Class: "4xx"}]; n != 1 {
		t.Fatalf("REGISTER 4xx counted %d, want 1 (%v)", n, m.Responses)
	}
	if n := m.Responses[MethodClass{Method: "REGISTER", Class: "2xx"}]; n != 1 {
		t.Fatalf("REGISTER 2xx counted %d, want 1", n)
	}
}

// Each answer is kept for one to two generations, then dropped.
func TestAnswerCacheGenerations(t *testing.T) {
	var c answerCache
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c.put("a", []byte("A"), t0)
	c.put("b", []byte("B"), t0.Add(answerGeneration+time.Second)) // rotates: a is in prev
	if got := c.get("a", t0.Add(answerGeneration+2*time.Second)); string(got) != "A" {
		t.Fatalf("a after one generation: %q", got)
	}
	if got := c.get("a", t0.Add(2*answerGeneration+2*time.Second)); got != nil {
		t.Fatalf("a after two generations: %q", got)
	}
	if got := c.get("b", t0.Add(2*answerGeneration+2*time.Second)); string(got) != "B" {
		t.Fatalf("b after one generation: %q", got)
	}
	if got := c.get("b", t0.Add(5*answerGeneration)); got != nil {
		t.Fatalf("b long after: %q", got)
	}
	c.put("c", []byte("C"), t0.Add(10*answerGeneration))
	c.expire(t0.Add(12 * answerGeneration))
	if c.cur != nil || c.prev != nil {
		t.Fatalf("an idle cache keeps %d + %d answers", len(c.cur), len(c.prev))
	}
}

// authRegister sends a REGISTER for user (1001..1003, password pw-USER),
// answers its challenge and returns the REGISTER with credentials, ready to
// send (branch names both).
func (p *udpPeer) authRegister(user, branch string, cseq int) string {
	p.t.Helper()
	as := func(cseq int, auth string) string {
		msg := strings.ReplaceAll(p.register(branch+"-"+fmt.Sprint(cseq), cseq, ""), "sip:1001@", "sip:"+user+"@")
		if auth != "" {
			msg = strings.Replace(msg, "Content-Length:", "Authorization: "+auth+"\r\nContent-Length:", 1)
		}
		return msg
	}
	p.send(as(cseq, ""))
	res := p.read(5 * time.Second)
	if res == nil || res.StatusCode != 401 {
		p.t.Fatalf("REGISTER without credentials: %v", res)
	}
	return as(cseq+1, answerChallenge(p.t, res.GetHeader("WWW-Authenticate").Value(), "REGISTER", "sip:"+testDomain, user, "pw-"+user))
}

// An authenticated UDP REGISTER that cannot be handled without waiting (its
// user's lock is held by another change, or the user is not in the user
// cache) is handed to a worker: it is answered once the wait is over, its
// binding is stored, and meanwhile other users' REGISTERs are answered.
func TestStatelessRegisterWaits(t *testing.T) {
	e := newEnv(t)
	p := newUDPPeer(t, e.udp)
	other := newUDPPeer(t, e.udp)

	// 1001's lock is held: no answer until it is released, while 1002 is
	// answered.
	msg := p.authRegister("1001", "wait-a", 1)
	msg2 := other.authRegister("1002", "wait-o", 1)
	l := e.srv.reg.lockUser("1001")
	p.send(msg)
	other.send(msg2)
	if res := other.read(5 * time.Second); res == nil || res.StatusCode != 200 {
		l.Unlock()
		t.Fatalf("another user's REGISTER while 1001's lock was held: %v", res)
	}
	if res := p.read(300 * time.Millisecond); res != nil {
		l.Unlock()
		t.Fatalf("answered while the user's lock was held: %d", res.StatusCode)
	}
	l.Unlock()
	res := p.read(5 * time.Second)
	if res == nil || res.StatusCode != 200 {
		t.Fatalf("REGISTER after the lock was released: %v", res)
	}
	if bs := e.srv.UserBindings("1001"); len(bs) != 1 || bs[0].CSeq != 2 {
		t.Fatalf("bindings %+v", bs)
	}

	// The user is not cached: a worker reads it from the store.
	msg = p.authRegister("1001", "wait-b", 3)
	e.srv.users.invalidate("1001")
	p.send(msg)
	res = p.read(5 * time.Second)
	if res == nil || res.StatusCode != 200 {
		t.Fatalf("REGISTER of a user not cached: %v", res)
	}
	if _, _, err := e.srv.users.cached(context.Background(), "1001"); err != nil {
		t.Fatalf("the worker did not cache the user: %v", err)
	}
	stored, err := e.st.UserBindings(context.Background(), "1001")
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 1 || stored[0].CSeq != 4 {
		t.Fatalf("stored bindings %+v", stored)
	}
}

// answerChallenge returns the credentials (nc 1) that answer a digest
// challenge header for a request of method to uri.
func answerChallenge(t *testing.T, challenge, method, uri, user, pass string) string {
	t.Helper()
	chal, err := digest.ParseChallenge(challenge)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := digest.Digest(chal, digest.Options{Method: method, URI: uri, Username: user, Password: pass, Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	return cred.String()
}
