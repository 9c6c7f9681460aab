package media

import (
	"encoding/binary"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// fakeWriter stands in for pion's SRTP writer: it keeps the last packet.
type fakeWriter struct {
	n       int
	hdr     rtp.Header
	payload []byte
}

func (w *fakeWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	w.n++
	w.hdr = *h
	w.payload = payload
	return len(payload), nil
}

func (w *fakeWriter) Write(b []byte) (int, error) { return len(b), nil }

// newBenchBridge returns a bridge without a peer connection, negotiated
// for PCMU and telephone-event (101 on the plain side, 126 in the browser),
// writing to a fakeWriter.
func newBenchBridge(tb testing.TB) (*Bridge, *fakeWriter) {
	tb.Helper()
	b := &Bridge{
		log:     slog.New(slog.DiscardHandler),
		legRTP:  netip.MustParseAddrPort("127.0.0.1:20000"),
		legRTCP: netip.MustParseAddrPort("127.0.0.1:20001"),
		track:   &bridgeTrack{},
	}
	w := &fakeWriter{}
	b.track.binding.Store(&trackBinding{ssrc: 0x1234, writer: w})
	plain := []Codec{{PayloadType: 0, Name: "PCMU", ClockRate: 8000}, {PayloadType: 101, Name: "telephone-event", ClockRate: 8000}}
	browser := []Codec{{PayloadType: 0, Name: "PCMU", ClockRate: 8000}, {PayloadType: 126, Name: "telephone-event", ClockRate: 8000}}
	maps, _ := negotiate(plain, browser, browser)
	b.maps.Store(maps)
	return b, w
}

// BenchmarkBridgeForwardToBrowser measures the bridge's own work on a packet
// from the relay leg: source check, header parse, payload type and SSRC
// rewrite, sequence rebasing. pion's SRTP write is replaced by a fake.
func BenchmarkBridgeForwardToBrowser(b *testing.B) {
	br, w := newBenchBridge(b)
	pkt := rtpPacket(b, 101, 1, 160, 0xabc, make([]byte, 160))
	now := time.Now()
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		br.forwardToBrowser(pkt, br.legRTP, now)
	}
	if w.n != b.N || w.hdr.PayloadType != 126 || w.hdr.SSRC != 0x1234 {
		b.Fatalf("%d written, last %+v", w.n, w.hdr)
	}
}

// BenchmarkBridgeForwardToLeg measures the bridge's work on a packet from
// the browser: payload type rewrite and the write syscall to the leg.
func BenchmarkBridgeForwardToLeg(b *testing.B) {
	br, _ := newBenchBridge(b)
	sink := newPhone(b)
	conn, err := listenUDP(loopback, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	br.conn, br.legRTP = conn, sink.rtpAddr
	pkt := rtpPacket(b, 126, 1, 160, 0xabc, make([]byte, 160))
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		pkt[1] = 126
		br.forwardToLeg(pkt)
	}
	if br.fromBrowser.Load() != uint64(b.N) {
		b.Fatalf("%d forwarded, %d dropped", br.fromBrowser.Load(), br.dropped.Load())
	}
}

// BenchmarkBridgeEndToEnd sends PCMU packets through everything a browser
// call's media crosses: pion's SRTP on both peers, the bridge, the relay and
// a plain phone socket, both ways. One op is one packet; the allocation
// count covers every goroutine (pion's and the test browser's included), in
// windows of 16 packets.
func BenchmarkBridgeEndToEnd(b *testing.B) {
	const window = 16
	relay := newTestRelay(b, 2, 0)
	w, err := NewWebRTC(WebRTCConfig{Address: loopback}, testLogger(b))
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	s, err := relay.NewSession("bench")
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ph := newPhone(b)
	s.B().SetRemote(ph.rtpAddr)
	s.B().SetRemoteRTCP(ph.rtcpAddr)
	br := newTestBrowser(b, chromeCodecs)
	br.raw.Store(true)
	bridge, answer, err := w.Answer(b.Context(), br.offer(false), s.A(), mustParseCodecs(b, phoneSDP(ph.rtpAddr, "0")))
	if err != nil {
		b.Fatal(err)
	}
	defer bridge.Close()
	br.accept(answer)
	waitConnected(b, br, bridge)
	if err := ph.rtp.SetReadDeadline(time.Now().Add(time.Hour)); err != nil {
		b.Fatal(err)
	}
	payload := audioPayload(1)
	buf := make([]byte, 2048)

	b.Run("browser_to_phone", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(payload)))
		for done := 0; done < b.N; done += window {
			n := min(window, b.N-done)
			for range n {
				br.send(0, false, 0, payload)
			}
			for range n {
				if _, _, err := ph.rtp.ReadFromUDPAddrPort(buf); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	pkt := ph.nextRTP()
	seq := binary.BigEndian.Uint16(pkt[2:]) // kept across runs of the sub-benchmark
	b.Run("phone_to_browser", func(b *testing.B) {
		to := legAddr(s.B())
		lost := time.NewTimer(time.Hour)
		defer lost.Stop()
		b.ReportAllocs()
		b.SetBytes(int64(len(payload)))
		for done := 0; done < b.N; done += window {
			n := min(window, b.N-done)
			for range n {
				// A new sequence number each time, or SRTP replay
				// protection would drop the packet.
				seq++
				binary.BigEndian.PutUint16(pkt[2:], seq)
				if _, err := ph.rtp.WriteToUDPAddrPort(pkt, to); err != nil {
					b.Fatal(err)
				}
			}
			lost.Reset(5 * time.Second)
			for range n {
				select {
				case <-br.rawRx:
				case <-lost.C:
					b.Fatalf("packet lost: bridge %+v", bridge.Stats())
				}
			}
		}
	})
}
