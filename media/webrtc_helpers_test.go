package media

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// audioCodec returns a pion codec registration.
func audioCodec(pt uint8, mime string, rate uint32, channels uint16, fmtp string) webrtc.RTPCodecParameters {
	return webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: mime, ClockRate: rate, Channels: channels, SDPFmtpLine: fmtp},
		PayloadType:        webrtc.PayloadType(pt),
	}
}

// chromeCodecs are the audio codecs Chromium offers, with its payload types
// (telephone-event at 126 for 8 kHz).
var chromeCodecs = []webrtc.RTPCodecParameters{
	audioCodec(111, "audio/opus", 48000, 2, "minptime=10;useinbandfec=1"),
	audioCodec(9, "audio/G722", 8000, 0, ""),
	audioCodec(0, "audio/PCMU", 8000, 0, ""),
	audioCodec(8, "audio/PCMA", 8000, 0, ""),
	audioCodec(13, "audio/CN", 8000, 0, ""),
	audioCodec(110, "audio/telephone-event", 48000, 0, "0-15"),
	audioCodec(126, "audio/telephone-event", 8000, 0, "0-15"),
}

// firefoxCodecs are the audio codecs Firefox offers, with its payload types.
var firefoxCodecs = []webrtc.RTPCodecParameters{
	audioCodec(109, "audio/opus", 48000, 2, "maxplaybackrate=48000;stereo=1;useinbandfec=1"),
	audioCodec(9, "audio/G722", 8000, 0, ""),
	audioCodec(0, "audio/PCMU", 8000, 0, ""),
	audioCodec(8, "audio/PCMA", 8000, 0, ""),
	audioCodec(101, "audio/telephone-event", 8000, 0, "0-15"),
}

// rawTrack is the test browser's outgoing track: it writes packets with the
// payload type the test chooses, like a browser's RTCDTMFSender does.
type rawTrack struct {
	binding atomic.Pointer[trackBinding]
}

func (r *rawTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	r.binding.Store(&trackBinding{id: ctx.ID(), ssrc: uint32(ctx.SSRC()), writer: ctx.WriteStream()})
	return ctx.CodecParameters()[0], nil
}
func (r *rawTrack) Unbind(webrtc.TrackLocalContext) error { return nil }
func (r *rawTrack) ID() string                            { return "mic" }
func (r *rawTrack) RID() string                           { return "" }
func (r *rawTrack) StreamID() string                      { return "browser" }
func (r *rawTrack) Kind() webrtc.RTPCodecType             { return webrtc.RTPCodecTypeAudio }

// testBrowser is a WebRTC endpoint built with pion on 127.0.0.1, standing
// in for a browser.
type testBrowser struct {
	tb        testing.TB
	pc        *webrtc.PeerConnection
	track     *rawTrack
	rx        chan *rtp.Packet
	rtcpRx    chan []rtcp.Packet // RTCP about what the browser sends
	connected chan struct{}
	closed    chan struct{}
	wg        sync.WaitGroup

	candMu     sync.Mutex
	candidates []string // gathered, for trickle

	seq uint16
	ts  uint32
	hdr rtp.Header // reused by send, so the harness allocates little

	// raw makes the track reader count packets on rawRx instead of parsing
	// them onto rx (benchmarks).
	raw   atomic.Bool
	rawRx chan struct{}

	remote atomic.Uint32 // SSRC of the track received
}

// remoteSSRC returns the SSRC of the stream the browser receives.
func (br *testBrowser) remoteSSRC() uint32 { return br.remote.Load() }

// newTestBrowser returns a browser with the given codecs, closed at the end
// of the test.
func newTestBrowser(tb testing.TB, codecs []webrtc.RTPCodecParameters) *testBrowser {
	tb.Helper()
	me := &webrtc.MediaEngine{}
	for _, c := range codecs {
		if err := me.RegisterCodec(c, webrtc.RTPCodecTypeAudio); err != nil {
			tb.Fatalf("register %s: %v", c.MimeType, err)
		}
	}
	var se webrtc.SettingEngine
	se.LoggerFactory = pionLoggers{log: testLogger(tb)}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	// No interceptors: the browser sends only the RTCP a test writes.
	api := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(&interceptor.Registry{}))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		tb.Fatalf("browser peer connection: %v", err)
	}
	br := &testBrowser{
		tb:        tb,
		pc:        pc,
		track:     &rawTrack{},
		rx:        make(chan *rtp.Packet, 4096),
		rawRx:     make(chan struct{}, 4096),
		rtcpRx:    make(chan []rtcp.Packet, 64),
		connected: make(chan struct{}),
		closed:    make(chan struct{}),
		seq:       1000,
		ts:        5000,
	}
	var once sync.Once
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			once.Do(func() { close(br.connected) })
		}
	})
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil {
			br.candMu.Lock()
			br.candidates = append(br.candidates, c.ToJSON().Candidate)
			br.candMu.Unlock()
		}
	})
	pc.OnTrack(func(track *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		br.remote.Store(uint32(track.SSRC()))
		br.wg.Go(func() {
			buf := make([]byte, 1500)
			for br.raw.Load() {
				if _, _, err := track.Read(buf); err != nil {
					return
				}
				select {
				case br.rawRx <- struct{}{}:
				case <-br.closed:
					return
				}
			}
			for {
				p, _, err := track.ReadRTP()
				if err != nil {
					return
				}
				select {
				case br.rx <- p:
				case <-br.closed:
					return
				}
			}
		})
	})
	tb.Cleanup(br.close)
	return br
}

// close closes the peer connection and waits for the track reader.
func (br *testBrowser) close() {
	select {
	case <-br.closed:
		return
	default:
	}
	close(br.closed)
	if err := br.pc.GracefulClose(); err != nil {
		br.tb.Errorf("browser close: %v", err)
	}
	br.wg.Wait()
}

// setLocal applies desc and, unless trickle, waits for gathering.
func (br *testBrowser) setLocal(desc webrtc.SessionDescription, trickle bool) string {
	br.tb.Helper()
	gathered := webrtc.GatheringCompletePromise(br.pc)
	if err := br.pc.SetLocalDescription(desc); err != nil {
		br.tb.Fatalf("browser set local: %v", err)
	}
	if trickle {
		return desc.SDP
	}
	select {
	case <-gathered:
	case <-time.After(5 * time.Second):
		br.tb.Fatal("browser gathering timed out")
	}
	return br.pc.LocalDescription().SDP
}

// offer returns the browser's offer for one sendrecv audio stream; without
// trickle it has every candidate, like JsSIP's and SIP.js's.
func (br *testBrowser) offer(trickle bool) string {
	br.tb.Helper()
	tr, err := br.pc.AddTransceiverFromTrack(br.track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv})
	if err != nil {
		br.tb.Fatalf("browser add transceiver: %v", err)
	}
	br.readRTCP(tr.Sender())
	offer, err := br.pc.CreateOffer(nil)
	if err != nil {
		br.tb.Fatalf("browser create offer: %v", err)
	}
	return br.setLocal(offer, trickle)
}

// readRTCP reads the RTCP addressed to the browser's sender onto rtcpRx.
func (br *testBrowser) readRTCP(sender *webrtc.RTPSender) {
	br.wg.Go(func() {
		for {
			pkts, _, err := sender.ReadRTCP()
			if err != nil {
				return
			}
			select {
			case br.rtcpRx <- pkts:
			case <-br.closed:
				return
			}
		}
	})
}

// accept applies the server's answer.
func (br *testBrowser) accept(answer string) {
	br.tb.Helper()
	if err := br.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		br.tb.Fatalf("browser apply answer: %v", err)
	}
}

// answer answers the server's offer.
func (br *testBrowser) answer(offer string) string {
	br.tb.Helper()
	if err := br.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		br.tb.Fatalf("browser apply offer: %v", err)
	}
	sender, err := br.pc.AddTrack(br.track)
	if err != nil {
		br.tb.Fatalf("browser add track: %v", err)
	}
	br.readRTCP(sender)
	answer, err := br.pc.CreateAnswer(nil)
	if err != nil {
		br.tb.Fatalf("browser create answer: %v", err)
	}
	return br.setLocal(answer, false)
}

// gatheredCandidates returns the candidates gathered so far.
func (br *testBrowser) gatheredCandidates() []string {
	br.candMu.Lock()
	defer br.candMu.Unlock()
	return append([]string(nil), br.candidates...)
}

// ssrc returns the SSRC the browser sends with.
func (br *testBrowser) ssrc() uint32 {
	if b := br.track.binding.Load(); b != nil {
		return b.ssrc
	}
	return 0
}

// send writes one RTP packet with the browser's SSRC and next sequence
// number; audio packets advance the timestamp by 20 ms at 8 kHz.
func (br *testBrowser) send(pt uint8, marker bool, ts uint32, payload []byte) {
	br.tb.Helper()
	b := br.track.binding.Load()
	if b == nil {
		br.tb.Fatal("browser track not bound")
	}
	br.hdr = rtp.Header{Version: 2, PayloadType: pt, Marker: marker, SequenceNumber: br.seq, Timestamp: ts, SSRC: b.ssrc}
	br.seq++
	if _, err := b.writer.WriteRTP(&br.hdr, payload); err != nil {
		br.tb.Fatalf("browser write: %v", err)
	}
}

// sendRTCP writes a sender report for the browser's stream.
func (br *testBrowser) sendRTCP() {
	br.tb.Helper()
	sr := &rtcp.SenderReport{SSRC: br.ssrc(), NTPTime: 1 << 40, RTPTime: br.ts, PacketCount: 1, OctetCount: 160}
	if err := br.pc.WriteRTCP([]rtcp.Packet{sr}); err != nil {
		br.tb.Fatalf("browser write rtcp: %v", err)
	}
}

// recv returns the next packet the browser received.
func (br *testBrowser) recv() *rtp.Packet {
	br.tb.Helper()
	select {
	case p := <-br.rx:
		return p
	case <-time.After(5 * time.Second):
		br.tb.Fatal("browser received nothing")
		return nil
	}
}

// waitConnected waits until the browser and the bridge are both connected
// and the bridge can send.
func waitConnected(tb testing.TB, br *testBrowser, b *Bridge) {
	tb.Helper()
	select {
	case <-br.connected:
	case <-time.After(10 * time.Second):
		tb.Fatalf("browser not connected: %s", br.pc.ConnectionState())
	}
	eventually(tb, "bridge connected", func() bool {
		return b.Stats().ConnectionState == "connected" && b.track.binding.Load() != nil
	})
}

// newTestWebRTC returns a WebRTC on 127.0.0.1, closed at the end of the
// test.
func newTestWebRTC(tb testing.TB, cfg WebRTCConfig) *WebRTC {
	tb.Helper()
	if !cfg.Address.IsValid() {
		cfg.Address = loopback
	}
	w, err := NewWebRTC(cfg, testLogger(tb))
	if err != nil {
		tb.Fatalf("NewWebRTC: %v", err)
	}
	tb.Cleanup(func() {
		if err := w.Close(); err != nil {
			tb.Errorf("WebRTC.Close: %v", err)
		}
	})
	return w
}

// testCtx returns a context that ends with the test or after 10 s.
func testCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

// phoneSDP returns a plain RTP SDP body as a phone sends it.
func phoneSDP(addr netip.AddrPort, formats string, attrs ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\no=phone 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\n", addr.Addr(), addr.Addr())
	fmt.Fprintf(&b, "m=audio %d RTP/AVP %s\r\n", addr.Port(), formats)
	for _, a := range attrs {
		b.WriteString("a=" + a + "\r\n")
	}
	b.WriteString("a=sendrecv\r\n")
	return b.String()
}

// mustParseCodecs parses an SDP body's codecs.
func mustParseCodecs(tb testing.TB, body string) []Codec {
	tb.Helper()
	cs, err := ParseCodecs(body)
	if err != nil {
		tb.Fatalf("ParseCodecs: %v", err)
	}
	return cs
}

// dtmfPayload returns an RFC 4733 §2.3 event payload.
func dtmfPayload(event uint8, end bool, duration uint16) []byte {
	e := byte(10) // volume
	if end {
		e |= 0x80
	}
	return []byte{event, e, byte(duration >> 8), byte(duration)}
}

// audioPayload returns 160 bytes (20 ms of G.711) derived from n.
func audioPayload(n int) []byte {
	p := make([]byte, 160)
	for i := range p {
		p[i] = byte(n*7 + i)
	}
	return p
}
