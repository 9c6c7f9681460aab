package media

import (
	"net/netip"
	"testing"
	"time"
)

// BenchmarkRelayForward relays RTP packets from one phone to another through
// a real session on loopback sockets. One op is one packet relayed (read,
// checked, latched, counted, written) and received by the far phone; the
// allocation count covers every goroutine, so 0 allocs/op shows the relay's
// forwarding path allocates nothing.
func BenchmarkRelayForward(b *testing.B) {
	for _, window := range []int{1, 32} {
		b.Run(map[int]string{1: "window=1", 32: "window=32"}[window], func(b *testing.B) {
			r := newTestRelay(b, 2, 0)
			s := newTestSession(b, r, "bench")
			alice, bob := newPhone(b), newPhone(b)
			connect(s, alice, bob)
			to := legAddr(s.A())
			buf := make([]byte, 2048)
			pkts := make([][]byte, window)
			for i := range pkts {
				pkts[i] = alice.nextRTP()
			}
			// Latch both legs before measuring.
			send(b, alice.rtp, to, pkts[0])
			mustRecv(b, bob.rtp, buf)
			if err := bob.rtp.SetReadDeadline(time.Now().Add(time.Minute)); err != nil {
				b.Fatal(err)
			}

			b.SetBytes(int64(len(pkts[0])))
			b.ReportAllocs()
			b.ResetTimer()
			for done := 0; done < b.N; done += window {
				n := min(window, b.N-done)
				for _, p := range pkts[:n] {
					if _, err := alice.rtp.WriteToUDPAddrPort(p, to); err != nil {
						b.Fatal(err)
					}
				}
				for range n {
					if _, _, err := bob.rtp.ReadFromUDPAddrPort(buf); err != nil {
						b.Fatalf("relayed packet lost: %v", err)
					}
				}
			}
			b.StopTimer()
			if st := s.A().Stats(); st.Dropped != 0 {
				b.Fatalf("%d packets dropped", st.Dropped)
			}
		})
	}
}

// BenchmarkLegHandleRTP measures the forwarding path without the read: parse,
// latch check, counters, receiver statistics and the write syscall.
func BenchmarkLegHandleRTP(b *testing.B) {
	r := newTestRelay(b, 2, 0)
	s := newTestSession(b, r, "bench")
	alice, bob := newPhone(b), newPhone(b)
	connect(s, alice, bob)
	pkt := alice.nextRTP()
	src := alice.rtpAddr
	leg := s.A()
	var sc readerScratch
	leg.handleRTP(&sc, pkt, src, r.now()) // latch
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	for b.Loop() {
		leg.handleRTP(&sc, pkt, src, r.now())
	}
	if st := leg.Stats(); st.Dropped != 0 {
		b.Fatalf("%d packets dropped", st.Dropped)
	}
}

// BenchmarkStatsUpdate measures the per-packet receiver statistics: sequence
// tracking, loss and jitter (RFC 3550 §A.1, §A.3, §A.8).
func BenchmarkStatsUpdate(b *testing.B) {
	var s rxStats
	h := rtpHeader{ssrc: 1}
	arrival := time.Hour
	b.ReportAllocs()
	for b.Loop() {
		h.seq++
		h.timestamp += 160
		arrival += 20*time.Millisecond + time.Duration(h.seq%7)*time.Microsecond
		s.update(h, arrival, 8000)
	}
}

// BenchmarkCounters measures the atomic counter updates of one forwarded
// packet on both legs.
func BenchmarkCounters(b *testing.B) {
	var in, out Leg
	b.ReportAllocs()
	for b.Loop() {
		in.packetsIn.Add(1)
		in.bytesIn.Add(172)
		in.lastPacket.Store(1)
		out.packetsOut.Add(1)
		out.bytesOut.Add(172)
	}
}

// BenchmarkClassifyRTP measures the RTP header check.
func BenchmarkClassifyRTP(b *testing.B) {
	pkt := rtpPacket(b, 0, 1, 2, 3, make([]byte, 160))
	b.ReportAllocs()
	for b.Loop() {
		if _, kind := classifyRTP(pkt); kind != kindRTP {
			b.Fatal("not RTP")
		}
	}
}

// BenchmarkStats measures a concurrent Stats snapshot.
func BenchmarkStats(b *testing.B) {
	r := newTestRelay(b, 2, 0)
	s := newTestSession(b, r, "bench")
	s.A().SetRemote(netip.MustParseAddrPort("127.0.0.1:9"))
	b.ReportAllocs()
	for b.Loop() {
		_ = s.A().Stats()
	}
}
