package media

import (
	"bytes"
	"net/netip"
	"testing"
	"time"
)

// unusedAddr returns a loopback address nobody listens on.
func unusedAddr(t *testing.T) netip.AddrPort {
	t.Helper()
	min, _ := freeRange(t, 1)
	return netip.AddrPortFrom(loopback, uint16(min))
}

// TestLatchToSourceNotSDP: a phone behind NAT announces a port it does not
// send from; once it sends, audio flows back to where it sends from.
func TestLatchToSourceNotSDP(t *testing.T) {
	leakCheck(t)
	r := newTestRelay(t, 2, 0)
	s := newTestSession(t, r, "call-nat")
	alice, bob := newPhone(t), newPhone(t)
	wrong := unusedAddr(t)
	s.A().SetRemote(wrong) // alice's SDP lies
	s.B().SetRemote(bob.rtpAddr)
	s.B().SetRemoteRTCP(bob.rtcpAddr)
	buf := make([]byte, 4096)

	if st := s.A().Stats(); st.Latched != wrong || st.LatchedFromPeer {
		t.Fatalf("before any packet: Latched = %s (from peer %v), want SDP %s", st.Latched, st.LatchedFromPeer, wrong)
	}
	// Before alice sends, bob's audio goes to the SDP address: she gets none.
	send(t, bob.rtp, legAddr(s.B()), bob.nextRTP())
	expectNothing(t, alice.rtp, buf, 100*time.Millisecond)

	send(t, alice.rtp, legAddr(s.A()), alice.nextRTP())
	mustRecv(t, bob.rtp, buf)
	if st := s.A().Stats(); st.Latched != alice.rtpAddr || !st.LatchedFromPeer {
		t.Fatalf("after alice sent: Latched = %s (from peer %v), want %s", st.Latched, st.LatchedFromPeer, alice.rtpAddr)
	}
	pkt := bob.nextRTP()
	send(t, bob.rtp, legAddr(s.B()), pkt)
	got, _ := mustRecv(t, alice.rtp, buf)
	if !bytes.Equal(got, pkt) {
		t.Fatalf("alice got %x, want %x", got, pkt)
	}

	// RTCP latches on its own socket.
	send(t, alice.rtcp, legRTCPAddr(s.A()), rtcpReceiverReport(1))
	mustRecv(t, bob.rtcp, buf)
	rr := rtcpReceiverReport(2)
	send(t, bob.rtcp, legRTCPAddr(s.B()), rr)
	if got, _ := mustRecv(t, alice.rtcp, buf); !bytes.Equal(got, rr) {
		t.Fatalf("alice RTCP got %x, want %x", got, rr)
	}
}

// TestLatchBlocksInjection: once latched, packets from another source are
// dropped, counted, and never reach the other side, on RTP and RTCP.
func TestLatchBlocksInjection(t *testing.T) {
	leakCheck(t)
	r := newTestRelay(t, 2, 0)
	s := newTestSession(t, r, "call-inject")
	alice, bob, mallory := newPhone(t), newPhone(t), newPhone(t)
	connect(s, alice, bob)
	buf := make([]byte, 4096)

	send(t, alice.rtp, legAddr(s.A()), alice.nextRTP())
	mustRecv(t, bob.rtp, buf)
	send(t, alice.rtcp, legRTCPAddr(s.A()), rtcpReceiverReport(1))
	mustRecv(t, bob.rtcp, buf)
	before := s.A().Stats()

	const injected = 10
	for range injected {
		send(t, mallory.rtp, legAddr(s.A()), mallory.nextRTP())
		send(t, mallory.rtcp, legRTCPAddr(s.A()), rtcpReceiverReport(666))
	}
	// Loopback keeps the order of datagrams to one socket, so the next
	// thing bob gets must be alice's marker, not mallory's packets.
	marker := alice.nextRTP()
	send(t, alice.rtp, legAddr(s.A()), marker)
	if got, src := mustRecv(t, bob.rtp, buf); !bytes.Equal(got, marker) {
		t.Fatalf("bob got an injected packet via %s: %x", src, got)
	}
	rr := rtcpReceiverReport(2)
	send(t, alice.rtcp, legRTCPAddr(s.A()), rr)
	if got, _ := mustRecv(t, bob.rtcp, buf); !bytes.Equal(got, rr) {
		t.Fatalf("bob got an injected RTCP packet: %x", got)
	}

	after := s.A().Stats()
	if got := after.Dropped - before.Dropped; got != 2*injected {
		t.Errorf("Dropped grew by %d, want %d", got, 2*injected)
	}
	if got := after.PacketsIn - before.PacketsIn; got != 1 {
		t.Errorf("PacketsIn grew by %d, want 1 (only alice's marker)", got)
	}
	if after.Latched != alice.rtpAddr || after.LatchedRTCP != alice.rtcpAddr {
		t.Errorf("latch moved to %s/%s, want alice %s/%s", after.Latched, after.LatchedRTCP, alice.rtpAddr, alice.rtcpAddr)
	}
}

// TestGarbageDoesNotLatch: datagrams that are not RTP/RTCP version 2 are
// dropped and do not take the latch.
func TestGarbageDoesNotLatch(t *testing.T) {
	leakCheck(t)
	r := newTestRelay(t, 2, 0)
	s := newTestSession(t, r, "call-garbage")
	alice, bob, mallory := newPhone(t), newPhone(t), newPhone(t)
	connect(s, alice, bob)
	buf := make([]byte, 4096)

	garbage := [][]byte{
		{0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, // STUN binding request
		{0x80, 0x00, 0x01},                         // truncated RTP
		make([]byte, 200),                          // version 0
		append([]byte{0x40}, make([]byte, 20)...),  // version 1
		{0x8f, 0x00, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1}, // 15 CSRCs announced, none present
	}
	for _, g := range garbage {
		send(t, mallory.rtp, legAddr(s.A()), g)
		send(t, mallory.rtcp, legRTCPAddr(s.A()), g)
	}
	marker := alice.nextRTP()
	send(t, alice.rtp, legAddr(s.A()), marker)
	if got, _ := mustRecv(t, bob.rtp, buf); !bytes.Equal(got, marker) {
		t.Fatalf("bob got garbage: %x", got)
	}
	rr := rtcpReceiverReport(3)
	send(t, alice.rtcp, legRTCPAddr(s.A()), rr)
	if got, _ := mustRecv(t, bob.rtcp, buf); !bytes.Equal(got, rr) {
		t.Fatalf("bob got garbage RTCP: %x", got)
	}
	st := s.A().Stats()
	if st.Dropped != uint64(2*len(garbage)) {
		t.Errorf("Dropped = %d, want %d", st.Dropped, 2*len(garbage))
	}
	if st.Latched != alice.rtpAddr || st.LatchedRTCP != alice.rtcpAddr {
		t.Errorf("latched to %s/%s, want alice %s/%s", st.Latched, st.LatchedRTCP, alice.rtpAddr, alice.rtcpAddr)
	}
}

// TestSetRemoteReopensLatch: a re-INVITE moving the peer re-opens latching:
// media goes to the new SDP address, the next sender is latched, and the old
// address is locked out again.
func TestSetRemoteReopensLatch(t *testing.T) {
	leakCheck(t)
	r := newTestRelay(t, 2, 0)
	s := newTestSession(t, r, "call-reinvite")
	alice, bob := newPhone(t), newPhone(t)
	connect(s, alice, bob)
	buf := make([]byte, 4096)

	send(t, alice.rtp, legAddr(s.A()), alice.nextRTP())
	mustRecv(t, bob.rtp, buf)

	// Alice moves (re-INVITE with a new c=/m=).
	alice2 := newPhone(t)
	s.A().SetRemote(alice2.rtpAddr)
	if st := s.A().Stats(); st.Latched != alice2.rtpAddr || st.LatchedFromPeer {
		t.Fatalf("after SetRemote: Latched = %s (from peer %v), want SDP %s", st.Latched, st.LatchedFromPeer, alice2.rtpAddr)
	}
	pkt := bob.nextRTP()
	send(t, bob.rtp, legAddr(s.B()), pkt)
	if got, _ := mustRecv(t, alice2.rtp, buf); !bytes.Equal(got, pkt) {
		t.Fatalf("alice2 got %x, want %x", got, pkt)
	}

	// She actually sends from yet another address (NAT): that one latches.
	alice3 := newPhone(t)
	send(t, alice3.rtp, legAddr(s.A()), alice3.nextRTP())
	mustRecv(t, bob.rtp, buf)
	pkt = bob.nextRTP()
	send(t, bob.rtp, legAddr(s.B()), pkt)
	if got, _ := mustRecv(t, alice3.rtp, buf); !bytes.Equal(got, pkt) {
		t.Fatalf("alice3 got %x, want %x", got, pkt)
	}

	// The old address is now a stranger.
	dropped := s.A().Stats().Dropped
	send(t, alice.rtp, legAddr(s.A()), alice.nextRTP())
	marker := alice3.nextRTP()
	send(t, alice3.rtp, legAddr(s.A()), marker)
	if got, _ := mustRecv(t, bob.rtp, buf); !bytes.Equal(got, marker) {
		t.Fatalf("bob got the old address's packet: %x", got)
	}
	if got := s.A().Stats().Dropped - dropped; got != 1 {
		t.Errorf("Dropped grew by %d, want 1", got)
	}
}

// TestEarlyMediaLatchesWithoutSDP: a peer whose SDP is not known yet is
// latched from its first packet and receives media from then on.
func TestEarlyMediaLatchesWithoutSDP(t *testing.T) {
	leakCheck(t)
	r := newTestRelay(t, 2, 0)
	s := newTestSession(t, r, "call-early")
	alice, bob := newPhone(t), newPhone(t)
	s.A().SetRemote(alice.rtpAddr)
	buf := make([]byte, 4096)

	send(t, bob.rtp, legAddr(s.B()), bob.nextRTP()) // early media, no SDP for B yet
	mustRecv(t, alice.rtp, buf)
	pkt := alice.nextRTP()
	send(t, alice.rtp, legAddr(s.A()), pkt)
	if got, _ := mustRecv(t, bob.rtp, buf); !bytes.Equal(got, pkt) {
		t.Fatalf("bob got %x, want %x", got, pkt)
	}
	// No RTCP address known for bob: RTCP goes to the port after his
	// latched RTP source.
	if got, want := s.B().Stats().LatchedRTCP, netip.AddrPortFrom(loopback, bob.rtpAddr.Port()+1); got != want {
		t.Errorf("B LatchedRTCP = %s, want %s", got, want)
	}
}

// TestNoDestinationDrops: with no SDP and nothing latched on the far leg,
// packets are dropped; once SetRemote is called they flow.
func TestNoDestinationDrops(t *testing.T) {
	leakCheck(t)
	r := newTestRelay(t, 2, 0)
	s := newTestSession(t, r, "call-nodest")
	alice, bob := newPhone(t), newPhone(t)
	buf := make([]byte, 4096)

	send(t, alice.rtp, legAddr(s.A()), alice.nextRTP())
	send(t, alice.rtcp, legRTCPAddr(s.A()), rtcpReceiverReport(1))
	eventually(t, "two drops", func() bool { return s.A().Stats().Dropped == 2 })
	if st := s.A().Stats(); st.PacketsIn != 1 || st.RTCPPacketsIn != 1 {
		t.Errorf("A stats = %+v, want the packets counted as received", st)
	}
	if st := s.B().Stats(); st.PacketsOut != 0 || st.Latched.IsValid() {
		t.Errorf("B stats = %+v, want nothing sent and no destination", st)
	}

	s.B().SetRemote(bob.rtpAddr)
	pkt := alice.nextRTP()
	send(t, alice.rtp, legAddr(s.A()), pkt)
	if got, _ := mustRecv(t, bob.rtp, buf); !bytes.Equal(got, pkt) {
		t.Fatalf("bob got %x, want %x", got, pkt)
	}
}

// TestSetRemoteUnusable: port 0 (rejected stream) or 0.0.0.0 (hold) leave
// the leg without a destination.
func TestSetRemoteUnusable(t *testing.T) {
	leakCheck(t)
	r := newTestRelay(t, 2, 0)
	s := newTestSession(t, r, "call-hold")
	bob := newPhone(t)
	tests := map[string]netip.AddrPort{
		"port zero":   netip.AddrPortFrom(loopback, 0),
		"unspecified": netip.AddrPortFrom(netip.IPv4Unspecified(), 4000),
		"zero value":  {},
	}
	for name, addr := range tests {
		t.Run(name, func(t *testing.T) {
			s.B().SetRemote(bob.rtpAddr)
			s.B().SetRemote(addr)
			if st := s.B().Stats(); st.Latched.IsValid() || st.LatchedRTCP.IsValid() {
				t.Fatalf("after SetRemote(%s): Latched = %s, LatchedRTCP = %s, want none", addr, st.Latched, st.LatchedRTCP)
			}
		})
	}
	// IPv4-mapped addresses are unmapped so they match IPv4 sources.
	mapped := netip.AddrPortFrom(netip.AddrFrom16(bob.rtpAddr.Addr().As16()), bob.rtpAddr.Port())
	s.B().SetRemote(mapped)
	if got := s.B().Stats().Latched; got != bob.rtpAddr {
		t.Fatalf("SetRemote(%s): Latched = %s, want %s", mapped, got, bob.rtpAddr)
	}
}
