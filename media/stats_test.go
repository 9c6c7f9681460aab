package media

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// TestStatsCountsExact sends a known number of packets each way and checks
// every counter on both legs.
func TestStatsCountsExact(t *testing.T) {
	leakCheck(t)
	r := newTestRelay(t, 2, 0)
	s := newTestSession(t, r, "call-stats")
	alice, bob := newPhone(t), newPhone(t)
	connect(s, alice, bob)
	buf := make([]byte, 4096)
	if st := s.A().Stats(); !st.LastPacket.IsZero() {
		t.Fatalf("LastPacket = %v before any packet, want zero", st.LastPacket)
	}

	start := time.Now()
	const aToB, bToA, rtcpAToB = 25, 7, 3
	var bytesAToB, bytesBToA uint64
	for range aToB {
		pkt := alice.nextRTP()
		bytesAToB += uint64(len(pkt))
		send(t, alice.rtp, legAddr(s.A()), pkt)
		mustRecv(t, bob.rtp, buf)
	}
	for range bToA {
		pkt := bob.nextRTP()
		bytesBToA += uint64(len(pkt))
		send(t, bob.rtp, legAddr(s.B()), pkt)
		mustRecv(t, alice.rtp, buf)
	}
	for i := range uint32(rtcpAToB) {
		send(t, alice.rtcp, legRTCPAddr(s.A()), rtcpReceiverReport(i))
		mustRecv(t, bob.rtcp, buf)
	}

	if bytesAToB != aToB*(12+160) {
		t.Fatalf("test packets are %d bytes, want 172 each", bytesAToB/aToB)
	}
	// A sender's counters are updated right after its write, so the far
	// phone may see a packet a moment before the count moves.
	var a, b LegStats
	mismatches := func() []string {
		a, b = s.A().Stats(), s.B().Stats()
		want := map[string][2]uint64{
			"A.PacketsIn":      {a.PacketsIn, aToB},
			"A.BytesIn":        {a.BytesIn, bytesAToB},
			"A.PacketsOut":     {a.PacketsOut, bToA},
			"A.BytesOut":       {a.BytesOut, bytesBToA},
			"A.RTCPPacketsIn":  {a.RTCPPacketsIn, rtcpAToB},
			"A.RTCPPacketsOut": {a.RTCPPacketsOut, 0},
			"A.Dropped":        {a.Dropped, 0},
			"A.Lost":           {a.Lost, 0},
			"B.PacketsIn":      {b.PacketsIn, bToA},
			"B.BytesIn":        {b.BytesIn, bytesBToA},
			"B.PacketsOut":     {b.PacketsOut, aToB},
			"B.BytesOut":       {b.BytesOut, bytesAToB},
			"B.RTCPPacketsIn":  {b.RTCPPacketsIn, 0},
			"B.RTCPPacketsOut": {b.RTCPPacketsOut, rtcpAToB},
			"B.Dropped":        {b.Dropped, 0},
			"B.Lost":           {b.Lost, 0},
		}
		var bad []string
		for name, gw := range want {
			if gw[0] != gw[1] {
				bad = append(bad, fmt.Sprintf("%s = %d, want %d", name, gw[0], gw[1]))
			}
		}
		return bad
	}
	deadline := time.Now().Add(2 * time.Second)
	for bad := mismatches(); len(bad) > 0; bad = mismatches() {
		if time.Now().After(deadline) {
			t.Fatalf("wrong counters:\n%s", strings.Join(bad, "\n"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Nothing more arrives: the counts stay exact.
	time.Sleep(50 * time.Millisecond)
	if bad := mismatches(); len(bad) > 0 {
		t.Fatalf("counters moved on:\n%s", strings.Join(bad, "\n"))
	}
	if a.LastPacket.Before(start) || a.LastPacket.After(time.Now()) {
		t.Errorf("A.LastPacket = %v, want between %v and now", a.LastPacket, start)
	}
}

// TestLossOverSockets sends a sequence with gaps across the sequence number
// wrap through real sockets.
func TestLossOverSockets(t *testing.T) {
	leakCheck(t)
	r := newTestRelay(t, 2, 0)
	s := newTestSession(t, r, "call-loss")
	alice, bob := newPhone(t), newPhone(t)
	connect(s, alice, bob)
	buf := make([]byte, 4096)

	// 65530..65535, 0..9 with 65533, 2, 3 and 7 missing: 16 expected, 12 sent.
	seqs := []uint16{65530, 65531, 65532, 65534, 65535, 0, 1, 4, 5, 6, 8, 9}
	for i, seq := range seqs {
		send(t, alice.rtp, legAddr(s.A()), rtpPacket(t, 0, seq, uint32(i)*160, 42, make([]byte, 160)))
		mustRecv(t, bob.rtp, buf)
	}
	if st := s.A().Stats(); st.Lost != 4 || st.PacketsIn != uint64(len(seqs)) {
		t.Fatalf("Lost = %d, PacketsIn = %d, want 4, %d", st.Lost, st.PacketsIn, len(seqs))
	}
}

func TestRxStatsLoss(t *testing.T) {
	seqRange := func(from uint16, n int) []uint16 {
		s := make([]uint16, n)
		for i := range s {
			s[i] = from + uint16(i)
		}
		return s
	}
	type pkt struct {
		seq  uint16
		ssrc uint32
	}
	stream := func(ssrc uint32, seqs ...uint16) []pkt {
		p := make([]pkt, len(seqs))
		for i, s := range seqs {
			p[i] = pkt{s, ssrc}
		}
		return p
	}
	tests := map[string]struct {
		pkts []pkt
		want uint64
	}{
		"in order":                  {stream(1, seqRange(100, 50)...), 0},
		"single packet":             {stream(1, 7), 0},
		"gaps":                      {stream(1, 1, 2, 5, 6, 10), 5},
		"wrap without loss":         {stream(1, seqRange(65500, 100)...), 0},
		"wrap with loss":            {stream(1, 65534, 65535, 1, 2), 1},
		"loss exactly at wrap":      {stream(1, 65533, 65534, 0, 1), 1},
		"two wraps":                 {stream(1, append(seqRange(65000, 1000), append(seqRange(464, 65000), 1000, 1001)...)...), 72 + 1000},
		"reordered":                 {stream(1, 1, 3, 2, 4), 0},
		"reordered across wrap":     {stream(1, 65534, 0, 65535, 1), 0},
		"duplicates not negative":   {stream(1, 1, 1, 1, 2, 2, 3), 0},
		"late packet counts":        {stream(1, 10, 12, 11, 13), 0},
		"ssrc change keeps loss":    {append(stream(1, 1, 3), stream(2, 500, 502, 503)...), 2},
		"restart after big jump":    {stream(1, 1, 2, 4, 40000, 40001, 40002, 40004), 2},
		"single stray jump ignored": {stream(1, 1, 2, 40000, 3, 4, 6), 1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var s rxStats
			for i, p := range tc.pkts {
				s.update(rtpHeader{seq: p.seq, ssrc: p.ssrc, timestamp: uint32(i) * 160}, time.Duration(i)*20*time.Millisecond, 8000)
			}
			if got := s.lostPackets(); got != tc.want {
				t.Errorf("lost = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestRxStatsJitter(t *testing.T) {
	const clock = 8000
	tests := map[string]struct {
		// arrival offset from perfect 20 ms spacing for packet i
		offset func(i int) time.Duration
		want   float64 // ms, after convergence
		tol    float64
	}{
		"perfect spacing": {func(int) time.Duration { return 0 }, 0, 1e-9},
		"constant delay":  {func(int) time.Duration { return 37 * time.Millisecond }, 0, 1e-9},
		// Transit alternates by 2 ms, so |D| is always 2 ms and J tends
		// to 2 ms (RFC 3550 §A.8).
		"alternating 2ms": {func(i int) time.Duration { return time.Duration(i%2) * 2 * time.Millisecond }, 2, 0.01},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var s rxStats
			for i := range 500 {
				arrival := time.Hour + time.Duration(i)*20*time.Millisecond + tc.offset(i)
				s.update(rtpHeader{seq: uint16(i), ssrc: 1, timestamp: 4_000_000_000 + uint32(i)*160}, arrival, clock)
			}
			if got := s.jitterMillis(); math.Abs(got-tc.want) > tc.tol {
				t.Errorf("jitter = %v ms, want %v ± %v", got, tc.want, tc.tol)
			}
		})
	}

	t.Run("one late packet", func(t *testing.T) {
		// A single 16 ms hiccup: J = |D|/16 after it, then decays.
		var s rxStats
		s.update(rtpHeader{seq: 1, ssrc: 1, timestamp: 0}, 0, clock)
		s.update(rtpHeader{seq: 2, ssrc: 1, timestamp: 160}, 36*time.Millisecond, clock)
		if got := s.jitterMillis(); math.Abs(got-1) > 1e-9 {
			t.Fatalf("jitter = %v ms, want 1 ms", got)
		}
	})
}

func TestClockRate(t *testing.T) {
	var l Leg
	for pt, want := range map[uint8]uint32{0: 8000, 8: 8000, 9: 8000, 18: 8000, 34: 90000, 96: 8000, 101: 8000, 127: 8000} {
		if got := l.clockRate(pt); got != want {
			t.Errorf("clockRate(%d) = %d, want %d", pt, got, want)
		}
	}
	l.SetClockRate(111, 48000)
	l.SetClockRate(200, 1) // ignored, out of range
	if got := l.clockRate(111); got != 48000 {
		t.Errorf("clockRate(111) = %d after SetClockRate, want 48000", got)
	}
	l.SetClockRate(111, 0)
	if got := l.clockRate(111); got != 8000 {
		t.Errorf("clockRate(111) = %d after reset, want 8000", got)
	}

	// Opus at 48 kHz, 20 ms frames arriving perfectly: no jitter with the
	// right clock rate, and plenty with the 8 kHz default.
	measure := func(clock uint32) float64 {
		var s rxStats
		for i := range 100 {
			s.update(rtpHeader{seq: uint16(i), ssrc: 1, timestamp: uint32(i) * 960}, time.Duration(i)*20*time.Millisecond, clock)
		}
		return s.jitterMillis()
	}
	if got := measure(48000); got != 0 {
		t.Errorf("jitter with 48 kHz = %v, want 0", got)
	}
	if got := measure(8000); got < 50 {
		t.Errorf("jitter with wrong 8 kHz clock = %v, want large", got)
	}
}

func TestRTPUnits(t *testing.T) {
	tests := map[string]struct {
		d     time.Duration
		clock uint32
		want  uint32
	}{
		"20ms at 8k":    {20 * time.Millisecond, 8000, 160},
		"1s at 48k":     {time.Second, 48000, 48000},
		"wraps":         {536871 * time.Second, 8000, uint32(uint64(536871) * 8000 % (1 << 32))},
		"long uptime":   {1000 * time.Hour, 90000, uint32(uint64(1000*3600) * 90000 % (1 << 32))},
		"sub-tick part": {1500 * time.Microsecond, 8000, 12},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := rtpUnits(tc.d, tc.clock); got != tc.want {
				t.Errorf("rtpUnits(%v, %d) = %d, want %d", tc.d, tc.clock, got, tc.want)
			}
		})
	}
}
