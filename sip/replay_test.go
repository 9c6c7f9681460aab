package sip

import (
	"strings"
	"testing"
	"time"
)

func TestNonceUses(t *testing.T) {
	n := newNonceUses(time.Minute)
	now := time.Unix(1_800_000_000, 0)
	steps := []struct {
		nonce, nc string
		after     time.Duration
		want      bool
	}{
		{"a", "00000001", 0, true},
		{"a", "00000001", 0, false}, // the same count again: a replay
		{"a", "00000002", 0, true},  // a client counting up
		{"a", "00000001", 0, false},
		{"b", "", 0, true}, // no qop: one use
		{"b", "", 0, false},
		{"c", "zz", 0, false},                      // not a count
		{"a", "00000002", 90 * time.Second, false}, // one period later: still known
		{"a", "00000002", 5 * time.Minute, true},   // long gone (the nonce too)
	}
	for i, st := range steps {
		now = now.Add(st.after)
		if got := n.fresh(st.nonce, st.nc, now); got != st.want {
			t.Errorf("step %d: fresh(%q, %q) = %v, want %v", i, st.nonce, st.nc, got, st.want)
		}
	}
}

// A call request whose credentials are copied from an earlier one, with
// the same nonce and count, is challenged again instead of placing a call.
func TestReplayedCallCredentialsRefused(t *testing.T) {
	e := newCallEnv(t, 0)
	p := newUDPPeer(t, e.udp)
	local := p.conn.LocalAddr().String()
	invite := func(branch, callID, auth string) string {
		m := "INVITE sip:1002@" + testDomain + " SIP/2.0\r\n" +
			"Via: SIP/2.0/UDP " + local + ";branch=z9hG4bK" + branch + ";rport\r\n" +
			"Max-Forwards: 70\r\nFrom: <sip:1001@" + testDomain + ">;tag=rp1\r\nTo: <sip:1002@" + testDomain + ">\r\n" +
			"Call-ID: " + callID + "\r\nCSeq: 1 INVITE\r\nContact: <sip:1001@" + local + ">\r\nUser-Agent: SIPp\r\n"
		if auth != "" {
			m += "Proxy-Authorization: " + auth + "\r\n"
		}
		return m + "Content-Length: 0\r\n\r\n"
	}
	// answer reads responses until a final one.
	answer := func(what string) (int, string) {
		t.Helper()
		for range 5 {
			r := p.read(5 * time.Second)
			if r == nil {
				t.Fatalf("%s: no answer", what)
			}
			if r.StatusCode >= 200 {
				h := r.GetHeader("Proxy-Authenticate")
				if h == nil {
					return r.StatusCode, ""
				}
				return r.StatusCode, h.Value()
			}
		}
		t.Fatalf("%s: no final answer", what)
		return 0, ""
	}
	ack := func(branch, callID string) {
		p.send(strings.Replace(strings.Replace(invite(branch, callID, ""), "INVITE sip:", "ACK sip:", 1), "CSeq: 1 INVITE", "CSeq: 1 ACK", 1))
	}
	p.send(invite("rp-1", "replay-1", ""))
	code, chalHdr := answer("first INVITE")
	ack("rp-1", "replay-1")
	if code != 407 {
		t.Fatalf("first INVITE: %d", code)
	}
	cred := answerChallenge(t, chalHdr, "INVITE", "sip:1002@"+testDomain, "1001", "pw-1001")
	p.send(invite("rp-2", "replay-1", cred))
	code, _ = answer("authenticated INVITE")
	ack("rp-2", "replay-1")
	if code == 407 {
		t.Fatal("the authenticated INVITE was challenged")
	}
	// The copy: another call, the same credentials.
	p.send(invite("rp-3", "replay-2", cred))
	code, chalHdr = answer("replayed INVITE")
	ack("rp-3", "replay-2")
	if code != 407 || !strings.Contains(strings.ToLower(chalHdr), "stale=true") {
		t.Fatalf("replayed INVITE: %d %q, want 407 with stale=true", code, chalHdr)
	}
}
