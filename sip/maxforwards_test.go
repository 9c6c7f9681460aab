package sip

import (
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard/switchboard/sip/trunk"
)

func maxForwardsHdr(n uint32) sip.Header {
	h := sip.MaxForwardsHeader(n)
	return &h
}

// TestCallMaxForwards: an INVITE whose Max-Forwards is spent is refused
// with 483 and rings nobody (RFC 3261 §16.3); otherwise the callee's
// INVITE carries the caller's Max-Forwards less one (RFC 7332 §3.3).
func TestCallMaxForwards(t *testing.T) {
	e := newCallEnv(t, 0)
	a, b := callPair(e, "UDP", "UDP")

	oc := a.call("1002", callOpts{hdrs: []sip.Header{maxForwardsHdr(0)}})
	if oc.status != 483 {
		t.Fatalf("Max-Forwards 0: status %d (responses %v), want 483", oc.status, oc.codes)
	}
	if n := b.count(sip.INVITE); n != 0 {
		t.Errorf("the callee got %d INVITEs for a request out of hops", n)
	}

	oc = a.call("1002", callOpts{hdrs: []sip.Header{maxForwardsHdr(5)}})
	if oc.status != 200 {
		t.Fatalf("Max-Forwards 5: status %d (responses %v)", oc.status, oc.codes)
	}
	inv := b.expect(sip.INVITE, time.Second)
	if mf := inv.MaxForwards(); mf == nil || *mf != 4 {
		t.Errorf("callee's INVITE has Max-Forwards %v, want 4", mf)
	}
	b.expect(sip.ACK, 2*time.Second)
	oc.hangup()
	b.expect(sip.BYE, 2*time.Second)
	e.waitIdle(t)
}

// TestTrunkMaxForwards: a call out through a trunk carries the caller's
// Max-Forwards less one, so a loop through providers ends.
func TestTrunkMaxForwards(t *testing.T) {
	addr := reserveAddr(t, "127.0.0.2")
	e, ps := newTrunkEnv(t, trunkConfig("prov", addr, true))
	pr := newProvider(e, addr)
	waitState(t, ps[0], 10*time.Second, trunk.StateRegistered)
	a := e.newPhone("1001", "pw-1001", phoneOpts{})
	a.register()

	oc := a.call(farNumber, callOpts{hdrs: []sip.Header{maxForwardsHdr(1)}})
	if oc.status != 200 {
		t.Fatalf("status %d (responses %v)", oc.status, oc.codes)
	}
	inv := pr.expect(sip.INVITE, 2*time.Second)
	if mf := inv.MaxForwards(); mf == nil || *mf != 0 {
		t.Errorf("provider's INVITE has Max-Forwards %v, want 0", mf)
	}
	pr.expect(sip.ACK, 2*time.Second)
	oc.hangup()
	pr.expect(sip.BYE, 2*time.Second)
	e.waitIdle(t)
}
