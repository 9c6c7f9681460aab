package media

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
	"time"
)

func TestNewRejectsBadConfig(t *testing.T) {
	leakCheck(t)
	min, max := freeRange(t, 2)
	valid := Config{Address: loopback, PortMin: min, PortMax: max}
	tests := map[string]func(*Config){
		"no address":                   func(c *Config) { c.Address = netip.Addr{} },
		"multicast address":            func(c *Config) { c.Address = netip.MustParseAddr("239.1.1.1") },
		"unspecified without public":   func(c *Config) { c.Address = netip.IPv4Unspecified() },
		"unspecified public address":   func(c *Config) { c.PublicAddress = netip.IPv4Unspecified() },
		"address not on this host":     func(c *Config) { c.Address = netip.MustParseAddr("192.0.2.1") },
		"port_min zero":                func(c *Config) { c.PortMin = 0 },
		"port_max above 65535":         func(c *Config) { c.PortMax = 70000 },
		"port_min above port_max":      func(c *Config) { c.PortMin, c.PortMax = max, min },
		"range below two pairs":        func(c *Config) { c.PortMax = c.PortMin + 2 },
		"odd start leaves one pair":    func(c *Config) { c.PortMin, c.PortMax = min+1, min+4 },
		"negative timeout":             func(c *Config) { c.Timeout = -time.Second },
		"port_min negative":            func(c *Config) { c.PortMin = -4 },
		"public address multicast":     func(c *Config) { c.PublicAddress = netip.MustParseAddr("ff02::1") },
		"port_max zero":                func(c *Config) { c.PortMax = 0 },
		"unspecified ipv6 w/o public":  func(c *Config) { c.Address = netip.IPv6Unspecified() },
		"range of exactly one session": nil, // valid, checked below
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := valid
			if mutate == nil {
				r, err := New(cfg, nil)
				if err != nil {
					t.Fatalf("New(%+v) = %v, want success", cfg, err)
				}
				_ = r.Close()
				return
			}
			mutate(&cfg)
			if r, err := New(cfg, nil); err == nil {
				_ = r.Close()
				t.Fatalf("New(%+v) succeeded, want error", cfg)
			}
		})
	}
}

func TestAdvertisedAddr(t *testing.T) {
	leakCheck(t)
	min, max := freeRange(t, 2)
	public := netip.MustParseAddr("203.0.113.7")
	tests := map[string]struct {
		public netip.Addr
		want   netip.Addr
	}{
		"address":        {want: loopback},
		"public address": {public: public, want: public},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r, err := New(Config{Address: loopback, PublicAddress: tc.public, PortMin: min, PortMax: max}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if got := r.AdvertisedAddr(); got != tc.want {
				t.Errorf("AdvertisedAddr() = %s, want %s", got, tc.want)
			}
			s := newTestSession(t, r, "call")
			if got, want := s.A().Addr(), netip.AddrPortFrom(tc.want, uint16(s.A().Port())); got != want {
				t.Errorf("A().Addr() = %s, want %s", got, want)
			}
		})
	}
}

// TestForwardBothWays plays two phones through a session: RTP and RTCP in
// both directions arrive byte for byte, from the relay's ports.
func TestForwardBothWays(t *testing.T) {
	leakCheck(t)
	r := newTestRelay(t, 4, 0)
	s := newTestSession(t, r, "call-forward")
	alice, bob := newPhone(t), newPhone(t)
	connect(s, alice, bob)
	buf := make([]byte, 4096)

	if p := s.A().Port(); p%2 != 0 || s.B().Port()%2 != 0 {
		t.Fatalf("RTP ports %d/%d are not even", p, s.B().Port())
	}
	type direction struct {
		name     string
		from, to *phone
		in, out  *Leg
	}
	for _, d := range []direction{
		{"caller to callee", alice, bob, s.A(), s.B()},
		{"callee to caller", bob, alice, s.B(), s.A()},
	} {
		t.Run(d.name, func(t *testing.T) {
			for range 50 {
				pkt := d.from.nextRTP()
				send(t, d.from.rtp, legAddr(d.in), pkt)
				got, src := mustRecv(t, d.to.rtp, buf)
				if !bytes.Equal(got, pkt) {
					t.Fatalf("RTP changed in transit:\n got %x\nwant %x", got, pkt)
				}
				if src != legAddr(d.out) {
					t.Fatalf("RTP came from %s, want relay RTP port %s", src, legAddr(d.out))
				}
			}
			for i := range uint32(5) {
				pkt := rtcpReceiverReport(i)
				send(t, d.from.rtcp, legRTCPAddr(d.in), pkt)
				got, src := mustRecv(t, d.to.rtcp, buf)
				if !bytes.Equal(got, pkt) {
					t.Fatalf("RTCP changed in transit:\n got %x\nwant %x", got, pkt)
				}
				if src != legRTCPAddr(d.out) {
					t.Fatalf("RTCP came from %s, want relay RTCP port %s", src, legRTCPAddr(d.out))
				}
			}
		})
	}
}

// TestRTCPDefaultsToNextPort checks that without SetRemoteRTCP, RTCP goes to
// the port after the SDP RTP port.
func TestRTCPDefaultsToNextPort(t *testing.T) {
	leakCheck(t)
	r := newTestRelay(t, 2, 0)
	min, _ := freeRange(t, 1)
	bob := newPhoneOn(t, min, min+1)
	alice := newPhone(t)
	s := newTestSession(t, r, "call-rtcp")
	s.A().SetRemote(alice.rtpAddr)
	s.A().SetRemoteRTCP(alice.rtcpAddr)
	s.B().SetRemote(bob.rtpAddr) // RTCP implied at min+1

	if got := s.B().Stats().LatchedRTCP; got != bob.rtcpAddr {
		t.Fatalf("B LatchedRTCP = %s, want %s", got, bob.rtcpAddr)
	}
	pkt := rtcpReceiverReport(7)
	send(t, alice.rtcp, legRTCPAddr(s.A()), pkt)
	got, _ := mustRecv(t, bob.rtcp, make([]byte, 1500))
	if !bytes.Equal(got, pkt) {
		t.Fatalf("got %x, want %x", got, pkt)
	}
}

// TestRTCPMuxOnRTPPort checks that RTCP multiplexed on the RTP port (RFC
// 5761) is forwarded on the RTP port and not counted as RTP.
func TestRTCPMuxOnRTPPort(t *testing.T) {
	leakCheck(t)
	r := newTestRelay(t, 2, 0)
	s := newTestSession(t, r, "call-mux")
	alice, bob := newPhone(t), newPhone(t)
	connect(s, alice, bob)
	pkt := rtcpReceiverReport(9)
	send(t, alice.rtp, legAddr(s.A()), pkt)
	got, _ := mustRecv(t, bob.rtp, make([]byte, 1500))
	if !bytes.Equal(got, pkt) {
		t.Fatalf("got %x, want %x", got, pkt)
	}
	st := s.A().Stats()
	if st.RTCPPacketsIn != 1 || st.PacketsIn != 0 || st.Lost != 0 {
		t.Fatalf("A stats = %+v, want 1 RTCP packet and no RTP", st)
	}
}

func TestSessionClose(t *testing.T) {
	leakCheck(t)
	r := newTestRelay(t, 2, 0)
	s, err := r.NewSession("call-close")
	if err != nil {
		t.Fatal(err)
	}
	if r.Sessions() != 1 || r.PortsInUse() != 4 {
		t.Fatalf("Sessions() = %d, PortsInUse() = %d, want 1, 4", r.Sessions(), r.PortsInUse())
	}
	alice := newPhone(t)
	for range 3 {
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	select {
	case <-s.Done():
	default:
		t.Fatal("Done not closed after Close")
	}
	if s.TimedOut() {
		t.Error("TimedOut() after Close, want false")
	}
	if r.Sessions() != 0 || r.PortsInUse() != 0 {
		t.Fatalf("after Close: Sessions() = %d, PortsInUse() = %d, want 0, 0", r.Sessions(), r.PortsInUse())
	}
	// The ports are really closed: nothing relays any more and they can be
	// bound again.
	send(t, alice.rtp, legAddr(s.A()), alice.nextRTP())
	for _, p := range []int{s.A().Port(), s.A().Port() + 1, s.B().Port(), s.B().Port() + 1} {
		c, err := listenUDP(loopback, p)
		if err != nil {
			t.Fatalf("port %d still bound after Close: %v", p, err)
		}
		_ = c.Close()
	}
}

func TestRelayClose(t *testing.T) {
	leakCheck(t)
	min, max := freeRange(t, 6)
	r, err := New(Config{Address: loopback, PortMin: min, PortMax: max, Timeout: time.Minute}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	var sessions []*Session
	for range 3 {
		s, err := r.NewSession("call")
		if err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, s)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for i, s := range sessions {
		select {
		case <-s.Done():
		default:
			t.Errorf("session %d not closed by Relay.Close", i)
		}
	}
	if r.Sessions() != 0 || r.PortsInUse() != 0 {
		t.Fatalf("after Close: Sessions() = %d, PortsInUse() = %d", r.Sessions(), r.PortsInUse())
	}
	if _, err := r.NewSession("late"); !errors.Is(err, ErrClosed) {
		t.Fatalf("NewSession after Close = %v, want ErrClosed", err)
	}
}
