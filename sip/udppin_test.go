package sip

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Requests to phones registered over UDP leave from the listening socket,
// so a phone behind a NAT that admits only the address it registered to
// gets them: the INVITE, and the BYE sipgo sends in the dialog later, to
// the callee and to the caller.
func TestRequestsToUDPPhonesLeaveFromListener(t *testing.T) {
	e := newCallEnv(t, 0)
	a, b := callPair(e, "UDP", "UDP")
	b.setPlan(answerPlan{code: 200})
	from := func(what string, req *sip.Request) {
		t.Helper()
		if got := req.Source(); got != e.udp {
			t.Errorf("%s came from %s, want the server's SIP address %s", what, got, e.udp)
		}
	}

	oc := a.call("1002", callOpts{})
	if oc.status != 200 {
		t.Fatalf("status %d, responses %v", oc.status, oc.codes)
	}
	from("INVITE to the callee", b.expect(sip.INVITE, time.Second))
	b.expect(sip.ACK, 2*time.Second)
	oc.hangup()
	from("BYE to the callee", b.expect(sip.BYE, 5*time.Second))

	oc = a.call("1002", callOpts{})
	if oc.status != 200 {
		t.Fatalf("second call: status %d, responses %v", oc.status, oc.codes)
	}
	b.expect(sip.INVITE, time.Second)
	b.expect(sip.ACK, 2*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.uasDialog().Bye(ctx); err != nil {
		t.Fatalf("callee BYE: %v", err)
	}
	from("BYE to the caller", a.expect(sip.BYE, 5*time.Second))
}

// A pinned address is forgotten with the last binding registered from it,
// so the pool does not keep every address phones ever used.
func TestUDPPinFollowsBindings(t *testing.T) {
	e := newCallEnv(t, 0)
	pool, _, src := pinnedPhone(t, e)
	if err := e.srv.RemoveUserBindings(context.Background(), "1002"); err != nil {
		t.Fatal(err)
	}
	if got := pool.Get(src); got != nil {
		t.Fatalf("pool still holds %s after its binding went", src)
	}
}

// Addresses sipgo's pool learnt from requests are forgotten once idle for
// a whole sweep period, except a registered phone's.
func TestIdleUDPPeersForgotten(t *testing.T) {
	e := newCallEnv(t, 0)
	pool, listener, phoneSrc := pinnedPhone(t, e)
	var probes []string
	for i := range 20 {
		p := newUDPPeer(t, e.udp)
		local := p.conn.LocalAddr().String()
		p.send("OPTIONS sip:" + testDomain + " SIP/2.0\r\nVia: SIP/2.0/UDP " + local + ";branch=z9hG4bKidle" + fmt.Sprint(i) +
			"\r\nMax-Forwards: 70\r\nFrom: <sip:probe@example.com>;tag=1\r\nTo: <sip:" + testDomain + ">\r\nCall-ID: idle-" +
			fmt.Sprint(i) + "\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
		if res := p.read(5 * time.Second); res == nil {
			t.Fatalf("OPTIONS %d not answered", i)
		}
		probes = append(probes, local)
	}
	for _, a := range probes {
		if pool.Get(a) != listener {
			t.Fatalf("sipgo's pool did not learn %s", a)
		}
	}
	e.srv.forgetUDPPeers(e.srv.udpPeers.rotate()) // nothing idle for a whole period yet
	if pool.Get(probes[0]) != listener {
		t.Fatal("an address heard in the current period was forgotten")
	}
	e.srv.forgetUDPPeers(e.srv.udpPeers.rotate())
	for _, a := range probes {
		if pool.Get(a) != nil {
			t.Fatalf("idle address %s still in the pool", a)
		}
	}
	if pool.Get(phoneSrc) != listener {
		t.Fatalf("the registered phone's address %s was forgotten", phoneSrc)
	}
}

// pinnedPhone registers 1002 over UDP and returns sipgo's UDP pool, the
// listening socket's connection in it and the phone's source address,
// which it checks is pinned to that socket.
func pinnedPhone(t *testing.T, e *callEnv) (*sip.ConnectionPool, sip.Connection, string) {
	t.Helper()
	b := e.newPhone("1002", "pw-1002", phoneOpts{transport: "UDP"})
	b.register()
	pool := e.srv.ua.TransportLayer().Pool("udp")
	listener := pool.Get(e.srv.boundAddr("udp"))
	if listener == nil {
		t.Fatal("the listening socket is not in sipgo's pool")
	}
	var src string
	for _, bd := range e.srv.reg.current("1002") {
		src = bd.Source
	}
	if src == "" {
		t.Fatal("no binding for 1002")
	}
	if got := pool.Get(src); got != listener {
		t.Fatalf("pool entry for %s is %v, want the listening socket", src, got)
	}
	return pool, listener, src
}

func TestUDPPoolKey(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:5060":         "127.0.0.1:5060",
		"[::ffff:10.0.0.7]:5062": "10.0.0.7:5062",
		"[2001:db8::1]:5060":     "[2001:db8::1]:5060",
	} {
		if got, ok := udpPoolKey(in); !ok || got != want {
			t.Errorf("udpPoolKey(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	if _, ok := udpPoolKey("phone.example.com:5060"); ok {
		t.Error("a host name is not a pool key")
	}
}
