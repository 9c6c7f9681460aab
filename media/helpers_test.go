package media

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/pion/rtp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(readerModes{m})
}

// readerModes runs the package's tests once per way of reading sockets:
// the reader pool (Linux) and a goroutine per socket. MEDIA_READERS=pool or
// MEDIA_READERS=goroutines picks one; benchmarks run once, in the default
// mode unless MEDIA_READERS says otherwise.
type readerModes struct{ m *testing.M }

func (r readerModes) Run() int {
	flag.Parse()
	modes := []bool{pooledReaders}
	switch os.Getenv("MEDIA_READERS") {
	case "pool":
		modes = []bool{true}
	case "goroutines":
		modes = []bool{false}
	case "":
		if f := flag.Lookup("test.bench"); havePool && (f == nil || f.Value.String() == "") {
			modes = []bool{true, false}
		}
	default:
		fmt.Fprintln(os.Stderr, "MEDIA_READERS: want pool or goroutines")
		return 2
	}
	defer func(saved bool) { pooledReaders = saved }(pooledReaders)
	code := 0
	for _, pooled := range modes {
		pooledReaders = pooled && havePool
		fmt.Printf("media: sockets read by %s\n", readerModeName())
		if c := r.m.Run(); c != 0 {
			code = c
		}
	}
	return code
}

// readerModeName names the mode relays created now will use.
func readerModeName() string {
	if pooledReaders {
		return "the reader pool"
	}
	return "a goroutine per socket"
}

// goroutinesPerSession is how many goroutines a session of a relay created
// now starts.
func goroutinesPerSession() int {
	if pooledReaders {
		return 0
	}
	return 4
}

// leakCheck verifies, after every other cleanup of t has run, that t left no
// goroutine behind. Call it first in a test.
func leakCheck(t *testing.T) {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

var loopback = netip.MustParseAddr("127.0.0.1")

// freeRange finds pairs RTP/RTCP port pairs on 127.0.0.1 that are free right
// now, at a random place below the kernel's ephemeral range so that sockets
// bound to port 0 by concurrently running tests rarely land in it.
func freeRange(tb testing.TB, pairs int) (min, max int) {
	tb.Helper()
	n := 2 * pairs
	for range 100 {
		base := 10000 + 2*rand.IntN((32000-10000-n)/2)
		var conns []*net.UDPConn
		ok := true
		for p := base; p < base+n; p++ {
			c, err := listenUDP(loopback, p)
			if err != nil {
				ok = false
				break
			}
			conns = append(conns, c)
		}
		for _, c := range conns {
			_ = c.Close()
		}
		if ok {
			return base, base + n - 1
		}
	}
	tb.Fatalf("no %d free ports found", n)
	return 0, 0
}

// testLogger logs to the test's output, shown with -v or on failure.
func testLogger(tb testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// newTestRelay returns a relay on 127.0.0.1 with pairs port pairs, closed at
// the end of the test.
func newTestRelay(tb testing.TB, pairs int, timeout time.Duration) *Relay {
	tb.Helper()
	min, max := freeRange(tb, pairs)
	r, err := New(Config{Address: loopback, PortMin: min, PortMax: max, Timeout: timeout}, testLogger(tb))
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() {
		if err := r.Close(); err != nil {
			tb.Errorf("Relay.Close: %v", err)
		}
	})
	return r
}

// newTestSession returns a session closed at the end of the test.
func newTestSession(tb testing.TB, r *Relay, callID string) *Session {
	tb.Helper()
	s, err := r.NewSession(callID)
	if err != nil {
		tb.Fatalf("NewSession: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// phone is a test peer with an RTP and an RTCP socket on 127.0.0.1.
type phone struct {
	tb         testing.TB
	rtp, rtcp  *net.UDPConn
	rtpAddr    netip.AddrPort
	rtcpAddr   netip.AddrPort
	ssrc       uint32
	seq        uint16
	timestamp  uint32
	readBuffer []byte
}

// newPhone binds a phone on two ephemeral ports.
func newPhone(tb testing.TB) *phone {
	tb.Helper()
	return newPhoneOn(tb, 0, 0)
}

// newPhoneOn binds a phone on the given ports (0 = ephemeral).
func newPhoneOn(tb testing.TB, rtpPort, rtcpPort int) *phone {
	tb.Helper()
	rtpConn, err := listenUDP(loopback, rtpPort)
	if err != nil {
		tb.Fatalf("phone rtp socket: %v", err)
	}
	rtcpConn, err := listenUDP(loopback, rtcpPort)
	if err != nil {
		_ = rtpConn.Close()
		tb.Fatalf("phone rtcp socket: %v", err)
	}
	tb.Cleanup(func() {
		_ = rtpConn.Close()
		_ = rtcpConn.Close()
	})
	return &phone{
		tb:         tb,
		rtp:        rtpConn,
		rtcp:       rtcpConn,
		rtpAddr:    rtpConn.LocalAddr().(*net.UDPAddr).AddrPort(),
		rtcpAddr:   rtcpConn.LocalAddr().(*net.UDPAddr).AddrPort(),
		ssrc:       rand.Uint32(),
		seq:        uint16(rand.Uint32()),
		timestamp:  rand.Uint32(),
		readBuffer: make([]byte, 4096),
	}
}

// nextRTP returns the phone's next PCMU packet: payload type 0, 160 bytes of
// payload (20 ms at 8 kHz), payload bytes derived from the sequence number.
func (p *phone) nextRTP() []byte {
	payload := make([]byte, 160)
	for i := range payload {
		payload[i] = byte(int(p.seq) + i)
	}
	pkt := rtpPacket(p.tb, 0, p.seq, p.timestamp, p.ssrc, payload)
	p.seq++
	p.timestamp += 160
	return pkt
}

// rtpPacket marshals an RTP packet with pion/rtp.
func rtpPacket(tb testing.TB, pt uint8, seq uint16, ts, ssrc uint32, payload []byte) []byte {
	tb.Helper()
	pkt := &rtp.Packet{
		Header:  rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: seq, Timestamp: ts, SSRC: ssrc},
		Payload: payload,
	}
	b, err := pkt.Marshal()
	if err != nil {
		tb.Fatalf("marshal rtp: %v", err)
	}
	return b
}

// rtcpReceiverReport returns an RTCP receiver report without report blocks
// (RFC 3550 §6.4.2), tagged with n in its SSRC.
func rtcpReceiverReport(n uint32) []byte {
	return []byte{0x80, 201, 0, 1, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
}

// send writes pkt from the socket to dst.
func send(tb testing.TB, c *net.UDPConn, dst netip.AddrPort, pkt []byte) {
	tb.Helper()
	if _, err := c.WriteToUDPAddrPort(pkt, dst); err != nil {
		tb.Fatalf("send to %s: %v", dst, err)
	}
}

// recv reads one datagram with a deadline. It returns a copy.
func recv(tb testing.TB, c *net.UDPConn, buf []byte, wait time.Duration) ([]byte, netip.AddrPort, error) {
	tb.Helper()
	if err := c.SetReadDeadline(time.Now().Add(wait)); err != nil {
		tb.Fatalf("set deadline: %v", err)
	}
	n, src, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		return nil, src, err
	}
	return bytes.Clone(buf[:n]), src, nil
}

// mustRecv reads one datagram and fails the test if none arrives.
func mustRecv(tb testing.TB, c *net.UDPConn, buf []byte) ([]byte, netip.AddrPort) {
	tb.Helper()
	b, src, err := recv(tb, c, buf, 2*time.Second)
	if err != nil {
		tb.Fatalf("receive on %s: %v", c.LocalAddr(), err)
	}
	return b, src
}

// expectNothing fails if a datagram arrives within wait.
func expectNothing(tb testing.TB, c *net.UDPConn, buf []byte, wait time.Duration) {
	tb.Helper()
	b, src, err := recv(tb, c, buf, wait)
	if err == nil {
		tb.Fatalf("unexpected %d-byte datagram from %s on %s", len(b), src, c.LocalAddr())
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		tb.Fatalf("receive: %v", err)
	}
}

// eventually polls cond until it holds or a few seconds pass.
func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// legAddr returns the relay address of a leg's RTP socket.
func legAddr(l *Leg) netip.AddrPort { return netip.AddrPortFrom(loopback, uint16(l.Port())) }

// legRTCPAddr returns the relay address of a leg's RTCP socket.
func legRTCPAddr(l *Leg) netip.AddrPort { return netip.AddrPortFrom(loopback, uint16(l.Port()+1)) }

// connect points both legs at their phones' sockets from "SDP".
func connect(s *Session, a, b *phone) {
	s.A().SetRemote(a.rtpAddr)
	s.A().SetRemoteRTCP(a.rtcpAddr)
	s.B().SetRemote(b.rtpAddr)
	s.B().SetRemoteRTCP(b.rtcpAddr)
}
