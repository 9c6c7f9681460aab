package sip

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// An answer larger than 1,300 bytes still goes back over UDP: here a 200 OK
// to a REGISTER whose Contact is long, as a phone with many parameters (or a
// user's eighth device, whose 200 lists every binding) produces.
func TestLargeUDPAnswer(t *testing.T) {
	e := newEnv(t)
	p := newUDPPeer(t, e.udp)
	local := p.conn.LocalAddr().String()
	long := strings.Repeat("x", 1500)
	msg := func(branch string, cseq int, auth string) string {
		m := "REGISTER sip:" + testDomain + " SIP/2.0\r\n" +
			"Via: SIP/2.0/UDP " + local + ";branch=z9hG4bK" + branch + ";rport\r\n" +
			"From: <sip:1001@" + testDomain + ">;tag=big1\r\nTo: <sip:1001@" + testDomain + ">\r\n" +
			"Call-ID: big-udp-1\r\nCSeq: " + fmt.Sprint(cseq) + " REGISTER\r\n" +
			"Contact: <sip:1001@" + local + ";x-long=" + long + ">\r\nExpires: 300\r\n"
		if auth != "" {
			m += "Authorization: " + auth + "\r\n"
		}
		return m + "Content-Length: 0\r\n\r\n"
	}
	p.send(msg("big-a", 1, ""))
	res := p.read(5 * time.Second)
	if res == nil || res.StatusCode != 401 {
		t.Fatalf("first REGISTER: %v", res)
	}
	p.send(msg("big-b", 2, answerChallenge(t, res.GetHeader("WWW-Authenticate").Value(), "REGISTER", "sip:"+testDomain, "1001", "pw-1001")))
	res = p.read(5 * time.Second)
	if res == nil {
		t.Fatal("no answer to the authenticated REGISTER with a long Contact")
	}
	if res.StatusCode != 200 {
		t.Fatalf("authenticated REGISTER: %d %s", res.StatusCode, res.Reason)
	}
	if n := len(res.String()); n <= 1300 {
		t.Fatalf("200 OK is %d bytes; the test needs one over 1,300", n)
	}
	if c := res.GetHeader("Contact"); c == nil || !strings.Contains(c.Value(), long) {
		t.Fatalf("200 OK does not list the binding: %v", c)
	}
}

// An INVITE whose offer makes it larger than 1,300 bytes reaches a callee
// registered over UDP, and the call is answered.
func TestLargeUDPInvite(t *testing.T) {
	e := newCallEnv(t, 0)
	a, b := callPair(e, "UDP", "UDP")
	b.setPlan(answerPlan{code: 200})
	var extra strings.Builder
	for i := range 40 {
		fmt.Fprintf(&extra, "a=x-pad-%02d:%s\r\n", i, strings.Repeat("p", 30))
	}
	oc := a.call("1002", callOpts{sdpExtra: extra.String()})
	if oc.status != 200 {
		t.Fatalf("status %d, responses %v", oc.status, oc.codes)
	}
	inv := b.expect(sip.INVITE, time.Second)
	if n := len(inv.String()); n <= 1300 {
		t.Fatalf("forwarded INVITE is %d bytes; the test needs one over 1,300", n)
	}
	if !strings.Contains(string(inv.Body()), "a=x-pad-39:") {
		t.Fatalf("forwarded offer lost its attributes:\n%s", inv.Body())
	}
	b.expect(sip.ACK, 2*time.Second)
	oc.hangup()
}
