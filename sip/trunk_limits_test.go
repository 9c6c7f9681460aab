package sip

import (
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard/switchboard/sip/trunk"
)

// TestTrunkInboundLimits holds calls from a trunk's DID to the same limits
// as calls from phones: a user in as many calls as limits.max_calls_per_user
// is busy (486) to the provider as to a phone, although the provider's
// address is trusted; past limits.max_calls and while the server drains the
// provider gets 503 with Retry-After; and no phone rings for any of them.
func TestTrunkInboundLimits(t *testing.T) {
	const did2 = "+15551230001"
	addr := reserveAddr(t, "127.0.0.2")
	cfg := trunkConfig("prov", addr, false)
	cfg.Inbound = map[string]string{ourDID: "1002", did2: "1003"}
	tr, err := trunk.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := newCallEnvDeps(t, 0, func(d *Deps) { d.Trunks = []trunk.Trunk{tr} },
		withLimits(Limits{MaxCalls: 2, MaxCallsPerUser: 1}))
	pr := newProvider(e, addr)
	waitState(t, tr, 10*time.Second, trunk.StateUp)
	a, b := callPair(e, "UDP", "UDP")
	c := e.newPhone("1003", "pw-1003", phoneOpts{})
	c.register()
	fromPSTN := callOpts{fromUser: "+15550001111"}
	noRing := func(p *testPhone, what string) {
		t.Helper()
		if r := p.next(sip.INVITE, 200*time.Millisecond); r != nil {
			t.Errorf("%s rang %s", what, p.user)
		}
	}

	// 1002 is in a call: at its limit of one.
	internal := answeredCall(t, a, b)
	if oc := pr.call(ourDID, fromPSTN); oc.status != 486 {
		t.Errorf("DID call to a user at the limit: status %d (responses %v), want 486", oc.status, oc.codes)
	}
	noRing(b, "the DID call to a user at the limit")
	if oc := c.call("1002", callOpts{}); oc.status != 486 {
		t.Errorf("phone call to a user at the limit: status %d, want 486 as for the DID", oc.status)
	}
	noRing(b, "the phone call to a user at the limit")

	// A DID call to a free user goes through and counts towards max_calls.
	inbound := pr.call(did2, fromPSTN)
	if inbound.status != 200 {
		t.Fatalf("DID call to a free user: status %d (responses %v)", inbound.status, inbound.codes)
	}
	c.expect(sip.INVITE, 2*time.Second)
	c.expect(sip.ACK, 2*time.Second)
	if n := e.srv.ActiveCalls(); n != 2 {
		t.Fatalf("%d calls in progress, want 2", n)
	}
	oc := pr.call(ourDID, fromPSTN)
	if oc.status != 503 || oc.final == nil || oc.final.GetHeader("Retry-After") == nil {
		t.Errorf("DID call past max_calls: status %d, final %v; want 503 with Retry-After", oc.status, oc.final)
	}
	noRing(b, "the DID call past max_calls")

	internal.hangup()
	inbound.hangup()
	e.waitIdle(t)
	// Below the limits again: the DID rings its user.
	oc = pr.call(ourDID, fromPSTN)
	if oc.status != 200 {
		t.Fatalf("DID call below the limits: status %d (responses %v)", oc.status, oc.codes)
	}
	b.expect(sip.INVITE, 2*time.Second)
	oc.hangup()
	e.waitIdle(t)

	// Draining (a graceful stop): the provider is told to go elsewhere.
	e.srv.RefuseNew()
	oc = pr.call(ourDID, fromPSTN)
	if oc.status != 503 || oc.final == nil || oc.final.GetHeader("Retry-After") == nil {
		t.Errorf("DID call while draining: status %d, final %v; want 503 with Retry-After", oc.status, oc.final)
	}
	noRing(b, "the DID call while draining")

	st := e.srv.ProtectionStats()
	if st.CallsRefused[RefusedUserCalls] != 2 || st.CallsRefused[RefusedMaxCalls] != 1 || st.CallsRefused[RefusedDraining] != 1 {
		t.Errorf("calls refused %v, want 2 per user, 1 max_calls, 1 draining", st.CallsRefused)
	}
}
