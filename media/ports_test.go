package media

import (
	"errors"
	"net"
	"net/netip"
	"testing"
)

func TestPortPoolReusesLeastRecentlyReleased(t *testing.T) {
	p := newPortPool(1001, 1010) // odd start: pairs 1002, 1004, 1006, 1008 (1010 has no 1011)
	if p.free() != 4 {
		t.Fatalf("free() = %d, want 4", p.free())
	}
	var got []int
	for range 4 {
		port, ok := p.take()
		if !ok {
			t.Fatal("take failed with free pairs")
		}
		got = append(got, port)
	}
	// The first pair is a random one; the others follow it round the range.
	all := []int{1002, 1004, 1006, 1008}
	rotated := false
	for i := range all {
		rotated = rotated || equalInts(got, append(append([]int{}, all[i:]...), all[:i]...))
	}
	if !rotated {
		t.Fatalf("took %v, want %v in order from any of them", got, all)
	}
	if _, ok := p.take(); ok {
		t.Fatal("take succeeded on an empty pool")
	}
	if p.portsInUse() != 8 {
		t.Fatalf("portsInUse() = %d, want 8", p.portsInUse())
	}
	p.put(1006)
	p.put(1002)
	p.put(1008)
	port, _ := p.take()
	if port != 1006 {
		t.Fatalf("took %d, want 1006, the first released", port)
	}
	p.put(1006)
	p.put(1004)
	got = got[:0]
	for range 4 {
		port, _ := p.take()
		got = append(got, port)
	}
	if want := []int{1002, 1008, 1006, 1004}; !equalInts(got, want) {
		t.Fatalf("took %v, want %v (release order)", got, want)
	}
}

// TestPortPoolStartsAnywhere: a new pool (a restarted server) does not
// hand out the range's first pair first.
func TestPortPoolStartsAnywhere(t *testing.T) {
	first := map[int]bool{}
	for range 50 {
		port, _ := newPortPool(20000, 20999).take()
		first[port] = true
	}
	if len(first) < 2 {
		t.Fatalf("50 pools all started at %v", first)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestCountPairs(t *testing.T) {
	tests := map[string]struct{ min, max, want int }{
		"even to odd":   {20000, 20999, 500},
		"even to even":  {20000, 20004, 2},
		"odd to odd":    {20001, 20005, 2},
		"odd to even":   {20001, 20004, 1},
		"one port":      {20000, 20000, 0},
		"one pair":      {20000, 20001, 1},
		"top of range":  {65534, 65535, 1},
		"whole range":   {1, 65535, 32767},
		"odd singleton": {20001, 20002, 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := countPairs(tc.min, tc.max); got != tc.want {
				t.Errorf("countPairs(%d, %d) = %d, want %d", tc.min, tc.max, got, tc.want)
			}
		})
	}
}

// TestPortExhaustion fills the range, checks ErrNoPorts, and checks that
// closed sessions give their ports back for reuse.
func TestPortExhaustion(t *testing.T) {
	leakCheck(t)
	r := newTestRelay(t, 4, 0) // two sessions
	used := map[int]bool{}
	open := func() *Session {
		t.Helper()
		s, err := r.NewSession("call")
		if err != nil {
			t.Fatalf("NewSession: %v", err)
		}
		for _, l := range []*Leg{s.A(), s.B()} {
			if l.Port()%2 != 0 || l.Port() < r.cfg.PortMin || l.Port()+1 > r.cfg.PortMax {
				t.Fatalf("leg port %d is not an even port with its pair in %d-%d", l.Port(), r.cfg.PortMin, r.cfg.PortMax)
			}
			used[l.Port()] = true
		}
		return s
	}
	s1, s2 := open(), open()
	if len(used) != 4 {
		t.Fatalf("two sessions share ports: %v", used)
	}
	if r.PortsInUse() != 8 {
		t.Fatalf("PortsInUse() = %d, want 8", r.PortsInUse())
	}
	if _, err := r.NewSession("one too many"); !errors.Is(err, ErrNoPorts) {
		t.Fatalf("NewSession on a full range = %v, want ErrNoPorts", err)
	}
	if r.PortsInUse() != 8 || r.Sessions() != 2 {
		t.Fatalf("failed NewSession leaked: PortsInUse() = %d, Sessions() = %d", r.PortsInUse(), r.Sessions())
	}

	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	s3 := open()
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s3.Close(); err != nil {
		t.Fatal(err)
	}
	if r.PortsInUse() != 0 || r.Sessions() != 0 {
		t.Fatalf("after closing all: PortsInUse() = %d, Sessions() = %d, want 0, 0", r.PortsInUse(), r.Sessions())
	}
	// Everything is reusable, and it relays.
	s4, s5 := open(), open()
	alice, bob := newPhone(t), newPhone(t)
	connect(s5, alice, bob)
	send(t, alice.rtp, legAddr(s5.A()), alice.nextRTP())
	mustRecv(t, bob.rtp, make([]byte, 1500))
	_ = s4.Close()
	_ = s5.Close()
}

// TestPortTakenIsSkipped: a port of the range bound by someone else is
// skipped, for its RTP or its RTCP half.
func TestPortTakenIsSkipped(t *testing.T) {
	for name, offset := range map[string]int{"rtp port taken": 2, "rtcp port taken": 3} {
		t.Run(name, func(t *testing.T) {
			leakCheck(t)
			min, max := freeRange(t, 4) // two sessions, when all pairs are free
			squatter, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, uint16(min+offset))))
			if err != nil {
				t.Fatal(err)
			}
			defer squatter.Close()
			r, err := New(Config{Address: loopback, PortMin: min, PortMax: max}, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()

			s, err := r.NewSession("call")
			if err != nil {
				t.Fatalf("NewSession with one pair taken: %v", err)
			}
			if a, b := s.A().Port(), s.B().Port(); a == min+2 || b == min+2 || a == b {
				t.Fatalf("legs got ports %d and %d, but %d is taken", a, b, min+offset)
			}
			if r.PortsInUse() != 4 {
				t.Fatalf("PortsInUse() = %d, want 4", r.PortsInUse())
			}
			if _, err := r.NewSession("call 2"); !errors.Is(err, ErrNoPorts) {
				t.Fatalf("second NewSession = %v, want ErrNoPorts", err)
			}
			if r.PortsInUse() != 4 {
				t.Fatalf("PortsInUse() = %d after a failed NewSession, want 4", r.PortsInUse())
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			// Once the squatter leaves, its pair is usable again.
			_ = squatter.Close()
			s1, err := r.NewSession("call 3")
			if err != nil {
				t.Fatal(err)
			}
			defer s1.Close()
			s2, err := r.NewSession("call 4")
			if err != nil {
				t.Fatalf("NewSession after the squatter left: %v", err)
			}
			defer s2.Close()
		})
	}
}
