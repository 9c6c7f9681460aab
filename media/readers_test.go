package media

import (
	"bytes"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// The tests of this file check what the way sockets are read must
// guarantee, whichever it is (TestMain runs the package's tests in each
// mode): a session closed while packets flow stops at once and leaves
// nothing behind, and no socket of the process is read by the relay once
// the socket it had was closed, even when the kernel hands its descriptor
// number to a new socket.

// TestReaderMode checks that the relay uses the mode the test run asked
// for: the reader pool where the system has it.
func TestReaderMode(t *testing.T) {
	leakCheck(t)
	r := newTestRelay(t, 2, 0)
	if got, want := r.pool != nil, pooledReaders && havePool; got != want {
		t.Fatalf("relay reads with the pool = %v, want %v", got, want)
	}
}

// flood sends pkt from c to dst until stop is closed or max packets are
// sent, yielding between packets.
func flood(wg *sync.WaitGroup, stop <-chan struct{}, c *net.UDPConn, dst netip.AddrPort, pkt []byte, max int) {
	wg.Go(func() {
		for range max {
			select {
			case <-stop:
				return
			default:
			}
			_, _ = c.WriteToUDPAddrPort(pkt, dst) // errors are expected once the port is closed
			time.Sleep(20 * time.Microsecond)
		}
	})
}

// floodSession makes both phones send RTP and RTCP to all four sockets of
// s.
func floodSession(wg *sync.WaitGroup, stop <-chan struct{}, s *Session, alice, bob *phone, max int) {
	flood(wg, stop, alice.rtp, legAddr(s.A()), alice.nextRTP(), max)
	flood(wg, stop, alice.rtcp, legRTCPAddr(s.A()), rtcpReceiverReport(1), max)
	flood(wg, stop, bob.rtp, legAddr(s.B()), bob.nextRTP(), max)
	flood(wg, stop, bob.rtcp, legRTCPAddr(s.B()), rtcpReceiverReport(2), max)
}

// checkNotStolen binds fresh sockets, which the kernel gives the lowest
// free descriptor numbers (those of sockets just closed), and checks that
// every datagram sent to them arrives: a relay reading by a stale number
// would take some.
func checkNotStolen(t *testing.T, sockets, datagrams int) {
	t.Helper()
	from, err := listenUDP(loopback, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer from.Close()
	var victims []*net.UDPConn
	defer func() {
		for _, v := range victims {
			_ = v.Close()
		}
	}()
	for range sockets {
		v, err := listenUDP(loopback, 0)
		if err != nil {
			t.Fatal(err)
		}
		victims = append(victims, v)
	}
	buf := make([]byte, 64)
	for i, v := range victims {
		dst := v.LocalAddr().(*net.UDPAddr).AddrPort()
		for j := range datagrams {
			want := []byte{byte(i), byte(j)}
			send(t, from, dst, want)
			// Give a stray reader time to run between send and receive.
			time.Sleep(100 * time.Microsecond)
			got, _, err := recv(t, v, buf, 2*time.Second)
			if err != nil {
				t.Fatalf("socket %d lost datagram %d: %v", i, j, err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("socket %d got %x, want %x", i, got, want)
			}
		}
	}
}

// TestCloseWhileForwarding closes sessions while both phones send RTP and
// RTCP to all four sockets, many times (bounded in count and time), while
// another session keeps relaying beside them. Run it with -race.
func TestCloseWhileForwarding(t *testing.T) {
	leakCheck(t)
	r := newTestRelay(t, 8, 0)
	keep := newTestSession(t, r, "call-keep")
	carol, dave := newPhone(t), newPhone(t)
	connect(keep, carol, dave)
	alice, bob := newPhone(t), newPhone(t)
	buf := make([]byte, 2048)

	deadline := time.Now().Add(15 * time.Second)
	iterations := 0
	for ; iterations < 60 && time.Now().Before(deadline); iterations++ {
		s, err := r.NewSession("call-churn")
		if err != nil {
			t.Fatalf("iteration %d: NewSession: %v", iterations, err)
		}
		connect(s, alice, bob)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		floodSession(&wg, stop, s, alice, bob, 2000)
		// The kept session relays throughout.
		flood(&wg, stop, carol.rtp, legAddr(keep.A()), carol.nextRTP(), 2000)
		eventually(t, "packets relayed both ways", func() bool {
			return s.A().Stats().PacketsOut > 0 && s.B().Stats().PacketsOut > 0
		})
		closed := make(chan error, 1)
		go func() { closed <- s.Close() }()
		select {
		case err := <-closed:
			if err != nil {
				t.Fatalf("iteration %d: Close: %v", iterations, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("iteration %d: Close did not return while packets flowed", iterations)
		}
		// Once Close has returned nothing of the session runs: its
		// counters no longer move although the phones still send.
		a, b := s.A().Stats(), s.B().Stats()
		if r.PortsInUse() != 4 || r.Sessions() != 1 {
			t.Fatalf("iteration %d: after Close PortsInUse() = %d, Sessions() = %d, want 4, 1", iterations, r.PortsInUse(), r.Sessions())
		}
		if iterations%10 == 0 {
			checkNotStolen(t, 4, 5)
		}
		time.Sleep(time.Millisecond)
		if a2, b2 := s.A().Stats(), s.B().Stats(); a2 != a || b2 != b {
			t.Fatalf("iteration %d: counters moved after Close:\n%+v\n%+v\nthen\n%+v\n%+v", iterations, a, b, a2, b2)
		}
		close(stop)
		wg.Wait()
	}
	t.Logf("%d sessions closed while forwarding (%s)", iterations, readerModeName())

	// The kept session was not disturbed.
	drain(dave.rtp, buf)
	pkt := carol.nextRTP()
	send(t, carol.rtp, legAddr(keep.A()), pkt)
	got, _ := mustRecv(t, dave.rtp, buf)
	if !bytes.Equal(got, pkt) {
		t.Fatalf("kept session relayed %x, want %x", got, pkt)
	}
}

// drain reads what is queued on c.
func drain(c *net.UDPConn, buf []byte) {
	for range 100000 {
		if err := c.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
			return
		}
		if _, _, err := c.ReadFromUDPAddrPort(buf); err != nil {
			return
		}
	}
}

// TestRelayCloseWhileForwarding closes a relay with many sessions while
// packets flow to all of them.
func TestRelayCloseWhileForwarding(t *testing.T) {
	leakCheck(t)
	const sessions = 100
	r := newTestRelay(t, 2*sessions, 0)
	alice, bob := newPhone(t), newPhone(t)
	all := make([]*Session, sessions)
	for i := range all {
		s, err := r.NewSession("call")
		if err != nil {
			t.Fatal(err)
		}
		connect(s, alice, bob)
		all[i] = s
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	pkt := alice.nextRTP()
	for w := range 4 {
		wg.Go(func() {
			for i := 0; i < 20000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				s := all[(i*4+w)%sessions]
				_, _ = alice.rtp.WriteToUDPAddrPort(pkt, legAddr(s.A()))
				_, _ = bob.rtcp.WriteToUDPAddrPort(rtcpReceiverReport(3), legRTCPAddr(s.B()))
				time.Sleep(20 * time.Microsecond)
			}
		})
	}
	eventually(t, "packets relayed", func() bool {
		n := 0
		for _, s := range all {
			if s.B().Stats().PacketsOut > 0 {
				n++
			}
		}
		return n >= sessions/2
	})
	closed := make(chan error, 1)
	go func() { closed <- r.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Relay.Close: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Relay.Close did not return while packets flowed")
	}
	for i, s := range all {
		select {
		case <-s.Done():
		default:
			t.Fatalf("session %d not closed by Relay.Close", i)
		}
	}
	if r.Sessions() != 0 || r.PortsInUse() != 0 {
		t.Fatalf("after Close: Sessions() = %d, PortsInUse() = %d", r.Sessions(), r.PortsInUse())
	}
	checkNotStolen(t, 8, 3)
	close(stop)
	wg.Wait()
}

// TestForwardIPv6 relays between phones on ::1 through a relay bound to
// ::1: RTP and RTCP both ways, from the relay's ports.
func TestForwardIPv6(t *testing.T) {
	leakCheck(t)
	lo6 := netip.IPv6Loopback()
	probe, err := listenUDP(lo6, 0)
	if err != nil {
		t.Skipf("no IPv6 loopback on this host: %v", err)
	}
	_ = probe.Close()
	min, max := freeRange(t, 8)
	r, err := New(Config{Address: lo6, PortMin: min, PortMax: max}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	s := newTestSession(t, r, "call-v6")
	peer := func() (rtp, rtcp *net.UDPConn) {
		rtp, err := listenUDP(lo6, 0)
		if err != nil {
			t.Fatal(err)
		}
		rtcp, err = listenUDP(lo6, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = rtp.Close(); _ = rtcp.Close() })
		return rtp, rtcp
	}
	addr := func(c *net.UDPConn) netip.AddrPort { return c.LocalAddr().(*net.UDPAddr).AddrPort() }
	aRTP, aRTCP := peer()
	bRTP, bRTCP := peer()
	s.A().SetRemote(addr(aRTP))
	s.A().SetRemoteRTCP(addr(aRTCP))
	s.B().SetRemote(addr(bRTP))
	s.B().SetRemoteRTCP(addr(bRTCP))
	relayAddr := func(l *Leg, rtcp int) netip.AddrPort { return netip.AddrPortFrom(lo6, uint16(l.Port()+rtcp)) }
	buf := make([]byte, 2048)
	for _, d := range []struct {
		from, to *net.UDPConn
		in, out  *Leg
		rtcp     int
		pkt      []byte
	}{
		{aRTP, bRTP, s.A(), s.B(), 0, rtpPacket(t, 0, 1, 160, 7, make([]byte, 160))},
		{bRTP, aRTP, s.B(), s.A(), 0, rtpPacket(t, 0, 9, 320, 8, make([]byte, 160))},
		{aRTCP, bRTCP, s.A(), s.B(), 1, rtcpReceiverReport(4)},
		{bRTCP, aRTCP, s.B(), s.A(), 1, rtcpReceiverReport(5)},
	} {
		send(t, d.from, relayAddr(d.in, d.rtcp), d.pkt)
		got, src := mustRecv(t, d.to, buf)
		if !bytes.Equal(got, d.pkt) {
			t.Fatalf("got %x, want %x", got, d.pkt)
		}
		if want := relayAddr(d.out, d.rtcp); src != want {
			t.Fatalf("came from %s, want %s", src, want)
		}
	}
	if st := s.A().Stats(); st.Latched != addr(aRTP) || !st.LatchedFromPeer {
		t.Fatalf("A latched %s (from peer %v), want %s", st.Latched, st.LatchedFromPeer, addr(aRTP))
	}
}
