package sip

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard/switchboard/media"
	"github.com/switchboard/switchboard/sip/trunk"
)

// natBox plays a NAT in front of the server for the provider: datagrams
// sent to its public address (on 127.0.0.9) go on to the server from its
// inside socket, and the server's answers to that socket go back to whoever
// last sent to the public address.
type natBox struct {
	public    netip.AddrPort
	outside   *net.UDPConn
	inside    *net.UDPConn
	forwarded atomic.Int64 // datagrams from the outside to the server
	peer      atomic.Pointer[netip.AddrPort]
	wg        sync.WaitGroup
}

func newNATBox(t *testing.T, server string) *natBox {
	t.Helper()
	srv := netip.MustParseAddrPort(server)
	out, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.9:0")))
	if err != nil {
		t.Fatal(err)
	}
	in, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	n := &natBox{public: out.LocalAddr().(*net.UDPAddr).AddrPort(), outside: out, inside: in}
	n.wg.Go(func() {
		buf := make([]byte, 65536)
		for {
			k, from, err := out.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			n.peer.Store(&from)
			n.forwarded.Add(1)
			_, _ = in.WriteToUDPAddrPort(buf[:k], srv)
		}
	})
	n.wg.Go(func() {
		buf := make([]byte, 65536)
		for {
			k, _, err := in.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if p := n.peer.Load(); p != nil {
				_, _ = out.WriteToUDPAddrPort(buf[:k], *p)
			}
		}
	})
	t.Cleanup(func() {
		out.Close()
		in.Close()
		n.wg.Wait()
	})
	return n
}

// natEnv is a server with a trunk to a provider that reaches it through a
// natBox: the provider reports the box's public address in its answers to
// REGISTER (Via received and rport), as it would with a real NAT between.
// The relay advertises media.public_address 127.0.0.9.
type natEnv struct {
	*callEnv
	pr               *testProvider
	nat              *natBox
	mediaPublic      netip.Addr
	portMin, portMax int
}

func newNATEnv(t *testing.T) *natEnv {
	t.Helper()
	n := &natEnv{mediaPublic: netip.MustParseAddr("127.0.0.9")}
	n.portMin, n.portMax = freePortWindow(t, 50)
	relay, err := media.New(media.Config{Address: netip.MustParseAddr("127.0.0.1"), PublicAddress: n.mediaPublic,
		PortMin: n.portMin, PortMax: n.portMax}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })
	addr := reserveAddr(t, "127.0.0.2")
	tr, err := trunk.New(trunkConfig("prov", addr, true), nil)
	if err != nil {
		t.Fatal(err)
	}
	n.callEnv = newCallEnvDeps(t, 0, func(d *Deps) { d.Relay = relayAdapter{relay} })
	n.nat = newNATBox(t, n.udp)
	n.pr = newProvider(n.callEnv, addr)
	n.pr.nat.Store(&n.nat.public)
	n.srv.SetTrunks([]trunk.Trunk{tr})
	waitFor(t, 10*time.Second, "a registration of the public address", func() bool {
		rs := n.pr.registrations()
		return len(rs) >= 2 && rs[len(rs)-1].contact == "sip:"+provUser+"@"+n.nat.public.String()
	})
	waitState(t, tr, 5*time.Second, trunk.StateRegistered)
	return n
}

// isPublic reports whether ct names the NAT's public address.
func (n *natEnv) isPublic(ct *sip.ContactHeader) bool {
	return ct != nil && ct.Address.Host == n.nat.public.Addr().String() && ct.Address.Port == int(n.nat.public.Port())
}

// TestTrunkOutboundCallBehindNAT: once the provider has reported a public
// address, outbound INVITEs name it in Contact, as the REGISTER does, and
// their SDP names media.public_address; a re-INVITE keeps that Contact
// (it would change the dialog's remote target), and the provider's BYE,
// sent to it, comes through the NAT and ends the call.
func TestTrunkOutboundCallBehindNAT(t *testing.T) {
	n := newNATEnv(t)
	a := n.newPhone("1001", "pw-1001", phoneOpts{})
	a.register()
	oc := a.call(farNumber, callOpts{})
	if oc.status != 200 {
		t.Fatalf("call to %s: status %d (responses %v)", farNumber, oc.status, oc.codes)
	}
	inv := n.pr.expect(sip.INVITE, 2*time.Second)
	if !n.isPublic(inv.Contact()) {
		t.Errorf("INVITE Contact %v, want the public address %s", inv.Contact(), n.nat.public)
	}
	if inv.Source() != n.udp {
		t.Errorf("INVITE came from %s, want the server's socket %s", inv.Source(), n.udp)
	}
	dst, _ := sdpTarget(t, inv.Body())
	if dst.Addr() != n.mediaPublic || int(dst.Port()) < n.portMin || int(dst.Port()) > n.portMax {
		t.Errorf("offer to the provider names %s, want media.public_address %s and a relay port in %d-%d", dst, n.mediaPublic, n.portMin, n.portMax)
	}
	// The phone is not behind the trunk's NAT: its answer names our own
	// address.
	if ct := oc.d.InviteResponse.Contact(); ct == nil || n.isPublic(ct) {
		t.Errorf("the phone's 200 Contact %v names the trunk's public address", ct)
	}

	hold := sip.NewRequest(sip.INVITE, oc.d.InviteResponse.Contact().Address)
	hold.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	hold.SetBody(a.offer("sendonly"))
	if res := oc.do(hold); res.StatusCode != 200 {
		t.Fatalf("re-INVITE: %d", res.StatusCode)
	}
	re := n.pr.expect(sip.INVITE, 2*time.Second)
	if !n.isPublic(re.Contact()) {
		t.Errorf("re-INVITE Contact %v, want the public address %s", re.Contact(), n.nat.public)
	}
	if dst, _ := sdpTarget(t, re.Body()); dst.Addr() != n.mediaPublic {
		t.Errorf("re-INVITE offer names %s, want %s", dst, n.mediaPublic)
	}

	before := n.nat.forwarded.Load()
	if res := n.pr.uasDo(sip.NewRequest(sip.BYE, inv.Contact().Address)); res.StatusCode != 200 {
		t.Fatalf("the provider's BYE: %d", res.StatusCode)
	}
	a.expect(sip.BYE, 2*time.Second)
	if n.nat.forwarded.Load() == before {
		t.Error("the provider's BYE did not come through the NAT")
	}
	n.waitIdle(t)
}

// TestTrunkInboundCallBehindNAT: the answer to the provider's call names
// the public address in Contact, so that its ACK and BYE come through the
// NAT.
func TestTrunkInboundCallBehindNAT(t *testing.T) {
	n := newNATEnv(t)
	b := n.newPhone("1002", "pw-1002", phoneOpts{})
	b.register()
	oc := n.pr.call(ourDID, callOpts{fromUser: "+15550001111"})
	if oc.status != 200 {
		t.Fatalf("call to the DID: status %d (responses %v)", oc.status, oc.codes)
	}
	b.expect(sip.INVITE, 2*time.Second)
	if ct := oc.d.InviteResponse.Contact(); !n.isPublic(ct) {
		t.Errorf("200 Contact %v, want the public address %s", ct, n.nat.public)
	}
	if dst, _ := sdpTarget(t, oc.answer); dst.Addr() != n.mediaPublic {
		t.Errorf("answer to the provider names %s, want media.public_address %s", dst, n.mediaPublic)
	}
	waitFor(t, 2*time.Second, "the provider's ACK through the NAT", func() bool { return n.nat.forwarded.Load() >= 1 })
	oc.hangup()
	b.expect(sip.BYE, 2*time.Second)
	if n.nat.forwarded.Load() < 2 {
		t.Errorf("%d requests came through the NAT, want the ACK and the BYE", n.nat.forwarded.Load())
	}
	n.waitIdle(t)
}
