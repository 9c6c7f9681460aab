package sip

import (
	"net/netip"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard/switchboard/media"
	"github.com/switchboard/switchboard/sip/trunk"
)

// TestTrunkOutboundCallBehindNAT has the provider report, in its answers to
// REGISTER, another address than the server's (Via received and rport, as
// a NAT between would make it): outbound INVITEs then name that public
// address in Contact, as the REGISTER does, and their SDP names
// media.public_address; requests later in the dialog keep the Contact.
func TestTrunkOutboundCallBehindNAT(t *testing.T) {
	// The "public" addresses are loopback addresses nothing listens on:
	// the test only looks at what the server advertises.
	public := netip.MustParseAddrPort("127.0.0.9:41234")
	mediaPublic := netip.MustParseAddr("127.0.0.9")
	lo, hi := freePortWindow(t, 50)
	relay, err := media.New(media.Config{Address: netip.MustParseAddr("127.0.0.1"), PublicAddress: mediaPublic,
		PortMin: lo, PortMax: hi}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })
	addr := reserveAddr(t, "127.0.0.2")
	tr, err := trunk.New(trunkConfig("prov", addr, true), nil)
	if err != nil {
		t.Fatal(err)
	}
	e := newCallEnvDeps(t, 0, func(d *Deps) { d.Relay = relayAdapter{relay} })
	pr := newProvider(e, addr)
	pr.nat.Store(&public)
	e.srv.SetTrunks([]trunk.Trunk{tr})
	waitFor(t, 10*time.Second, "a registration of the public address", func() bool {
		rs := pr.registrations()
		return len(rs) >= 2 && rs[len(rs)-1].contact == "sip:"+provUser+"@"+public.String()
	})
	waitState(t, tr, 5*time.Second, trunk.StateRegistered)

	a := e.newPhone("1001", "pw-1001", phoneOpts{})
	a.register()
	oc := a.call(farNumber, callOpts{})
	if oc.status != 200 {
		t.Fatalf("call to %s: status %d (responses %v)", farNumber, oc.status, oc.codes)
	}
	inv := pr.expect(sip.INVITE, 2*time.Second)
	if ct := inv.Contact(); ct == nil || ct.Address.Host != public.Addr().String() || ct.Address.Port != int(public.Port()) {
		t.Errorf("INVITE Contact %v, want the public address %s", ct, public)
	}
	if inv.Source() != e.udp {
		t.Errorf("INVITE came from %s, want the server's socket %s", inv.Source(), e.udp)
	}
	dst, _ := sdpTarget(t, inv.Body())
	if dst.Addr() != mediaPublic || int(dst.Port()) < lo || int(dst.Port()) > hi {
		t.Errorf("offer to the provider names %s, want media.public_address %s and a relay port in %d-%d", dst, mediaPublic, lo, hi)
	}
	// The phone's leg is not behind the trunk's NAT: its answer names our
	// own address.
	if ct := oc.d.InviteResponse.Contact(); ct == nil || ct.Address.Host == public.Addr().String() {
		t.Errorf("the phone's 200 Contact %v names the trunk's public address", ct)
	}
	// Hold: the re-INVITE to the provider keeps the public Contact (a
	// re-INVITE's Contact changes the dialog's remote target).
	hold := sip.NewRequest(sip.INVITE, oc.d.InviteResponse.Contact().Address)
	hold.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	hold.SetBody(a.offer("sendonly"))
	if res := oc.do(hold); res.StatusCode != 200 {
		t.Fatalf("re-INVITE: %d", res.StatusCode)
	}
	re := pr.expect(sip.INVITE, 2*time.Second)
	if ct := re.Contact(); ct == nil || ct.Address.Host != public.Addr().String() || ct.Address.Port != int(public.Port()) {
		t.Errorf("re-INVITE Contact %v, want the public address %s", ct, public)
	}
	if dst, _ := sdpTarget(t, re.Body()); dst.Addr() != mediaPublic {
		t.Errorf("re-INVITE offer names %s, want %s", dst, mediaPublic)
	}
	oc.hangup()
	bye := pr.expect(sip.BYE, 2*time.Second)
	if bye.Source() != e.udp {
		t.Errorf("BYE came from %s, want %s", bye.Source(), e.udp)
	}
	e.waitIdle(t)
}
