package media

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// phoneCall is a session whose leg B faces a plain RTP phone.
type phoneCall struct {
	s     *Session
	phone *phone
	buf   []byte
}

func newPhoneCall(t *testing.T, relay *Relay, callID string) *phoneCall {
	t.Helper()
	s := newTestSession(t, relay, callID)
	ph := newPhone(t)
	s.B().SetRemote(ph.rtpAddr)
	s.B().SetRemoteRTCP(ph.rtcpAddr)
	return &phoneCall{s: s, phone: ph, buf: make([]byte, 4096)}
}

// phoneRecv reads one RTP packet at the phone.
func (c *phoneCall) phoneRecv(t *testing.T) *rtp.Packet {
	t.Helper()
	b, _ := mustRecv(t, c.phone.rtp, c.buf)
	var p rtp.Packet
	if err := p.Unmarshal(b); err != nil {
		t.Fatalf("phone got a bad RTP packet: %v", err)
	}
	return &p
}

// phoneSend sends one RTP packet from the phone to its relay leg.
func (c *phoneCall) phoneSend(t *testing.T, pt uint8, marker bool, seq uint16, ts uint32, payload []byte) {
	t.Helper()
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, Marker: marker, SequenceNumber: seq, Timestamp: ts, SSRC: 0xfeed}, Payload: payload}
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	send(t, c.phone.rtp, legAddr(c.s.B()), b)
}

// checkAudioAndDTMF sends audio and DTMF both ways between a connected
// browser (on leg A) and the phone (on leg B) and checks every packet.
// browserPT/phonePT are PCMU's (or the audio codec's) numbers on each side;
// browserDTMF/phoneDTMF telephone-event's.
func checkAudioAndDTMF(t *testing.T, c *phoneCall, br *testBrowser, browserPT, phonePT, browserDTMF, phoneDTMF uint8) {
	t.Helper()
	const n = 50
	// Browser to phone: 50 audio packets, payload and order intact.
	for i := range n {
		br.send(browserPT, i == 0, uint32(i*160), audioPayload(i))
	}
	var lastSeq uint16
	for i := range n {
		p := c.phoneRecv(t)
		if p.PayloadType != phonePT || !bytes.Equal(p.Payload, audioPayload(i)) {
			t.Fatalf("phone packet %d: PT %d payload %x..., want PT %d payload %x...", i, p.PayloadType, p.Payload[:4], phonePT, audioPayload(i)[:4])
		}
		if p.SSRC != br.ssrc() || (i > 0 && p.SequenceNumber != lastSeq+1) {
			t.Fatalf("phone packet %d: SSRC %x seq %d, want the browser's SSRC %x and seq %d", i, p.SSRC, p.SequenceNumber, br.ssrc(), lastSeq+1)
		}
		lastSeq = p.SequenceNumber
	}
	// DTMF from the browser: the phone's telephone-event payload type.
	for i, end := range []bool{false, false, true} {
		br.send(browserDTMF, i == 0, n*160, dtmfPayload(5, end, uint16(160*(i+1))))
	}
	for i, end := range []bool{false, false, true} {
		p := c.phoneRecv(t)
		if want := dtmfPayload(5, end, uint16(160*(i+1))); p.PayloadType != phoneDTMF || !bytes.Equal(p.Payload, want) || p.Marker != (i == 0) {
			t.Fatalf("phone DTMF packet %d: PT %d marker %v payload %x, want PT %d marker %v payload %x", i, p.PayloadType, p.Marker, p.Payload, phoneDTMF, i == 0, want)
		}
	}

	// Phone to browser: 50 audio packets.
	for i := range n {
		c.phoneSend(t, phonePT, i == 0, uint16(7000+i), uint32(i*160), audioPayload(100+i))
	}
	for i := range n {
		p := br.recv()
		if p.PayloadType != browserPT || !bytes.Equal(p.Payload, audioPayload(100+i)) || p.SequenceNumber != uint16(7000+i) {
			t.Fatalf("browser packet %d: PT %d seq %d payload %x..., want PT %d seq %d payload %x...", i, p.PayloadType, p.SequenceNumber, p.Payload[:4], browserPT, 7000+i, audioPayload(100 + i)[:4])
		}
	}
	// DTMF from the phone: the browser's telephone-event payload type.
	c.phoneSend(t, phoneDTMF, true, 7000+n, n*160, dtmfPayload(11, true, 800))
	if p := br.recv(); p.PayloadType != browserDTMF || !bytes.Equal(p.Payload, dtmfPayload(11, true, 800)) {
		t.Fatalf("browser DTMF: PT %d payload %x, want PT %d", p.PayloadType, p.Payload, browserDTMF)
	}
}

// TestWebRTCAnswerToPhone: a browser calls a phone. The browser's offer
// (Chromium's codecs, non-trickle) is answered with only the phone's codecs,
// then audio and DTMF flow both ways with payload types translated. It runs
// with per-leg ICE ports and with one shared UDP port.
func TestWebRTCAnswerToPhone(t *testing.T) {
	tests := map[string]func(t *testing.T) WebRTCConfig{
		"port range": func(t *testing.T) WebRTCConfig {
			min, max := freeRange(t, 4)
			return WebRTCConfig{PortMin: min, PortMax: max}
		},
		"udp mux": func(t *testing.T) WebRTCConfig {
			min, _ := freeRange(t, 1)
			return WebRTCConfig{MuxPort: min}
		},
	}
	for name, config := range tests {
		t.Run(name, func(t *testing.T) {
			leakCheck(t)
			cfg := config(t)
			relay := newTestRelay(t, 2, 0)
			w := newTestWebRTC(t, cfg)
			c := newPhoneCall(t, relay, "call-answer")
			br := newTestBrowser(t, chromeCodecs)

			offer := br.offer(false)
			plain := mustParseCodecs(t, phoneSDP(c.phone.rtpAddr, "0 101", "rtpmap:101 telephone-event/8000", "fmtp:101 0-16"))
			b, answer, err := w.Answer(testCtx(t), offer, c.s.A(), plain)
			if err != nil {
				t.Fatalf("Answer: %v", err)
			}
			t.Cleanup(func() { _ = b.Close() })

			// Only the phone's codecs, with the browser's numbers.
			got := mustParseCodecs(t, answer)
			want := []Codec{{PayloadType: 0, Name: "PCMU", ClockRate: 8000}, {PayloadType: 126, Name: "telephone-event", ClockRate: 8000, Fmtp: "0-15"}}
			if !equalCodecs(got, want) {
				t.Fatalf("answer codecs = %v, want %v\n%s", got, want, answer)
			}
			for _, attr := range []string{"a=candidate:", "UDP/TLS/RTP/SAVPF", "a=fingerprint:", "a=rtcp-mux", "a=setup:active", "a=sendrecv"} {
				if !strings.Contains(answer, attr) {
					t.Errorf("answer lacks %q:\n%s", attr, answer)
				}
			}
			for _, line := range candidateLines(answer) {
				if !strings.Contains(line, " 127.0.0.1 ") {
					t.Errorf("candidate not on 127.0.0.1: %s", line)
				}
				if cfg.MuxPort != 0 && !strings.Contains(line, " "+strconv.Itoa(cfg.MuxPort)+" ") {
					t.Errorf("candidate not on the mux port %d: %s", cfg.MuxPort, line)
				}
			}
			if want := []Codec{plain[0], plain[1]}; !equalCodecs(b.Codecs(), want) {
				t.Errorf("Codecs() = %v, want %v", b.Codecs(), want)
			}

			br.accept(answer)
			waitConnected(t, br, b)
			checkAudioAndDTMF(t, c, br, 0, 0, 126, 101)

			// The browser's RTCP reaches the phone's RTCP port.
			br.sendRTCP()
			rtcpPkt, _ := mustRecv(t, c.phone.rtcp, c.buf)
			if !isRTCP(rtcpPkt) || rtcpPkt[1] != 200 {
				t.Errorf("phone RTCP = %x, want a sender report", rtcpPkt)
			}

			// The phone's reception report on the browser's stream reaches
			// the browser, from the SSRC the browser receives; the phone's
			// report on another stream does not.
			about := func(ssrc uint32) rtcp.ReceptionReport {
				return rtcp.ReceptionReport{SSRC: ssrc, FractionLost: 3, TotalLost: 7, LastSequenceNumber: 1234, Jitter: 56, LastSenderReport: 0x01000000, Delay: 9}
			}
			rr, err := rtcp.Marshal([]rtcp.Packet{
				&rtcp.ReceiverReport{SSRC: 0xfeed, Reports: []rtcp.ReceptionReport{about(br.ssrc()), about(0xbad)}},
				&rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{{Source: 0xfeed, Items: []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: "phone"}}}}},
			})
			if err != nil {
				t.Fatal(err)
			}
			send(t, c.phone.rtcp, legRTCPAddr(c.s.B()), rr)
			select {
			case pkts := <-br.rtcpRx:
				got, ok := pkts[0].(*rtcp.ReceiverReport)
				if !ok || len(pkts) != 1 || len(got.Reports) != 1 || got.Reports[0] != about(br.ssrc()) || got.SSRC != br.remoteSSRC() {
					t.Fatalf("browser RTCP = %v, want one receiver report from %x with the phone's block on %x", pkts, br.remoteSSRC(), br.ssrc())
				}
			case <-time.After(5 * time.Second):
				t.Fatal("browser got no RTCP")
			}

			// Counters are updated after the send the peer saw: poll.
			var st BridgeStats
			deadline := time.Now().Add(2 * time.Second)
			for {
				st = b.Stats()
				legA := c.s.A().Stats()
				if st.FromBrowser == 53 && st.ToBrowser == 51 && st.Dropped == 0 && st.RTCPFromBrowser == 1 && st.RTCPFromLeg == 1 && st.RTCPToBrowser == 1 &&
					legA.PacketsIn == 53 && legA.PacketsOut == 51 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("bridge stats = %+v, want 53 from and 51 to the browser, 1 RTCP each way, none dropped", st)
				}
				time.Sleep(5 * time.Millisecond)
			}
			if st.ICEState != "connected" && st.ICEState != "completed" {
				t.Errorf("ICE state %q", st.ICEState)
			}
			legA := c.s.A().Stats()
			if legA.PacketsIn != 53 || legA.PacketsOut != 51 || legA.Dropped != 0 || legA.Latched != st.Local || !legA.LatchedFromPeer {
				t.Errorf("leg A stats = %+v, want 53 in, 51 out, latched to the bridge at %s", legA, st.Local)
			}
		})
	}
}

// TestWebRTCOfferToBrowser: a phone calls a browser. The bridge offers the
// phone's codecs (in the phone's order and numbering), the browser answers,
// and audio and DTMF flow both ways.
func TestWebRTCOfferToBrowser(t *testing.T) {
	leakCheck(t)
	relay := newTestRelay(t, 2, 0)
	w := newTestWebRTC(t, WebRTCConfig{})
	c := newPhoneCall(t, relay, "call-offer")
	br := newTestBrowser(t, firefoxCodecs)

	// G729 cannot reach a browser; the rest is offered as the phone listed it.
	plain := mustParseCodecs(t, phoneSDP(c.phone.rtpAddr, "18 8 0 96", "rtpmap:96 telephone-event/8000", "fmtp:96 0-15"))
	b, offer, err := w.Offer(testCtx(t), c.s.A(), plain)
	if err != nil {
		t.Fatalf("Offer: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if got, want := mustParseCodecs(t, offer), plain[1:]; !equalCodecs(got, want) {
		t.Fatalf("offer codecs = %v, want %v\n%s", got, want, offer)
	}
	if !strings.Contains(offer, "a=candidate:") || !strings.Contains(offer, "a=setup:actpass") {
		t.Fatalf("offer lacks candidates or DTLS setup:\n%s", offer)
	}
	if b.Codecs() != nil {
		t.Errorf("Codecs() before Accept = %v, want nil", b.Codecs())
	}
	if err := b.Accept(br.answer(offer)); err != nil {
		t.Fatalf("Accept: %v", err)
	}
	if got, want := b.Codecs(), plain[1:]; !equalCodecs(got, want) {
		t.Errorf("Codecs() = %v, want %v", got, want)
	}
	waitConnected(t, br, b)
	checkAudioAndDTMF(t, c, br, 8, 8, 96, 96)

	// Another source on the phone side (a transfer): the browser keeps
	// seeing one stream, sequence numbers following on.
	last := uint16(7000 + 50) // the DTMF packet of checkAudioAndDTMF
	for i := range 3 {
		p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 8, SequenceNumber: uint16(30000 + i), Timestamp: uint32(9999 + 160*i), SSRC: 0xbeef}, Payload: audioPayload(i)}
		raw, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		send(t, c.phone.rtp, legAddr(c.s.B()), raw)
	}
	for i := range 3 {
		p := br.recv()
		if p.SSRC != br.remoteSSRC() || p.SequenceNumber != last+1+uint16(i) || p.Marker != (i == 0) || !bytes.Equal(p.Payload, audioPayload(i)) {
			t.Fatalf("browser packet %d from a new source: SSRC %x seq %d marker %v, want SSRC %x seq %d", i, p.SSRC, p.SequenceNumber, p.Marker, br.remoteSSRC(), last+1+uint16(i))
		}
	}

	// A session that is over cannot be bridged.
	_ = c.s.Close()
	if _, _, err := w.Offer(testCtx(t), c.s.B(), plain); !errors.Is(err, ErrClosed) {
		t.Errorf("Offer on a closed session: %v, want ErrClosed", err)
	}
}

// TestWebRTCOpusBetweenBrowsers: a Chromium-like browser calls a
// Firefox-like one through two bridges on one session. Opus passes through
// untouched both ways, and so does DTMF.
func TestWebRTCOpusBetweenBrowsers(t *testing.T) {
	leakCheck(t)
	relay := newTestRelay(t, 2, 0)
	w := newTestWebRTC(t, WebRTCConfig{})
	s := newTestSession(t, relay, "call-b2b")
	caller, callee := newTestBrowser(t, chromeCodecs), newTestBrowser(t, firefoxCodecs)

	// What the SIP layer does: offer the callee what the caller offered,
	// then answer the caller with what the callee accepted.
	offer1 := caller.offer(false)
	toCallee := w.Bridgeable(mustParseCodecs(t, offer1))
	b2, offer2, err := w.Offer(testCtx(t), s.B(), toCallee)
	if err != nil {
		t.Fatalf("Offer: %v", err)
	}
	t.Cleanup(func() { _ = b2.Close() })
	if err := b2.Accept(callee.answer(offer2)); err != nil {
		t.Fatalf("Accept: %v", err)
	}
	accepted := b2.Codecs()
	if len(accepted) == 0 || accepted[0].Name != "opus" || accepted[0].PayloadType != 111 {
		t.Fatalf("callee accepted %v, want opus/111 first", accepted)
	}
	b1, answer1, err := w.Answer(testCtx(t), offer1, s.A(), accepted)
	if err != nil {
		t.Fatalf("Answer: %v", err)
	}
	t.Cleanup(func() { _ = b1.Close() })
	if got := mustParseCodecs(t, answer1); len(got) == 0 || got[0].Name != "opus" {
		t.Fatalf("caller answer codecs = %v, want opus first", got)
	}
	caller.accept(answer1)
	waitConnected(t, caller, b1)
	waitConnected(t, callee, b2)

	opus := func(i int) []byte { return bytes.Repeat([]byte{byte(i), 0xfc}, 40+i%20) }
	for i := range 50 {
		caller.send(111, false, uint32(i*960), opus(i))
	}
	for i := range 50 {
		p := callee.recv()
		if p.PayloadType != 111 || !bytes.Equal(p.Payload, opus(i)) {
			t.Fatalf("callee packet %d: PT %d payload %x, want opus %x", i, p.PayloadType, p.Payload, opus(i))
		}
	}
	for i := range 50 {
		callee.send(111, false, uint32(i*960), opus(200+i))
	}
	for i := range 50 {
		p := caller.recv()
		if p.PayloadType != 111 || !bytes.Equal(p.Payload, opus(200+i)) {
			t.Fatalf("caller packet %d: PT %d payload %x, want opus %x", i, p.PayloadType, p.Payload, opus(200+i))
		}
	}
	caller.send(126, true, 50*960, dtmfPayload(1, true, 400))
	if p := callee.recv(); p.PayloadType != 126 || !bytes.Equal(p.Payload, dtmfPayload(1, true, 400)) {
		t.Fatalf("callee DTMF: PT %d payload %x", p.PayloadType, p.Payload)
	}
}

// TestWebRTCTrickleOffer: an offer without candidates, whose candidates
// come later through AddRemoteCandidate, connects.
func TestWebRTCTrickleOffer(t *testing.T) {
	leakCheck(t)
	relay := newTestRelay(t, 2, 0)
	w := newTestWebRTC(t, WebRTCConfig{})
	c := newPhoneCall(t, relay, "call-trickle")
	br := newTestBrowser(t, chromeCodecs)

	offer := br.offer(true)
	if strings.Contains(offer, "a=candidate:") {
		t.Fatal("trickle offer already has candidates")
	}
	b, answer, err := w.Answer(testCtx(t), offer, c.s.A(), mustParseCodecs(t, phoneSDP(c.phone.rtpAddr, "8")))
	if err != nil {
		t.Fatalf("Answer: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	br.accept(answer)
	eventually(t, "browser candidates", func() bool { return len(br.gatheredCandidates()) > 0 })
	for _, cand := range br.gatheredCandidates() {
		if err := b.AddRemoteCandidate(cand); err != nil {
			t.Fatalf("AddRemoteCandidate(%q): %v", cand, err)
		}
	}
	if err := b.AddRemoteCandidate(""); err != nil {
		t.Fatalf("end of candidates: %v", err)
	}
	waitConnected(t, br, b)
	br.send(8, true, 0, audioPayload(1))
	if p := c.phoneRecv(t); p.PayloadType != 8 || !bytes.Equal(p.Payload, audioPayload(1)) {
		t.Fatalf("phone got PT %d", p.PayloadType)
	}
}

// TestWebRTCDoneWhenBrowserCloses: closing the browser's peer connection
// closes Done; Close then releases the bridge and frees the leg.
func TestWebRTCDoneWhenBrowserCloses(t *testing.T) {
	leakCheck(t)
	relay := newTestRelay(t, 2, 0)
	w := newTestWebRTC(t, WebRTCConfig{})
	c := newPhoneCall(t, relay, "call-done")
	br := newTestBrowser(t, chromeCodecs)
	b, answer, err := w.Answer(testCtx(t), br.offer(false), c.s.A(), mustParseCodecs(t, phoneSDP(c.phone.rtpAddr, "0")))
	if err != nil {
		t.Fatalf("Answer: %v", err)
	}
	br.accept(answer)
	waitConnected(t, br, b)
	select {
	case <-b.Done():
		t.Fatal("Done closed while connected")
	default:
	}

	br.close()
	select {
	case <-b.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("Done not closed after the browser left; state %s", b.Stats().ConnectionState)
	}
	if w.Bridges() != 1 {
		t.Errorf("Bridges() = %d before Close, want 1", w.Bridges())
	}
	local := b.Stats().Local
	for range 2 { // idempotent
		if err := b.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	if w.Bridges() != 0 {
		t.Errorf("Bridges() = %d after Close, want 0", w.Bridges())
	}
	if st := c.s.A().Stats(); st.Latched.IsValid() {
		t.Errorf("leg A still latched to %s after Close", st.Latched)
	}
	// The bridge socket is released.
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(local))
	if err != nil {
		t.Fatalf("bridge port %s still bound: %v", local, err)
	}
	_ = conn.Close()
	if err := b.Accept("v=0"); err == nil {
		t.Error("Accept on an answering bridge succeeded")
	}
	if err := b.AddRemoteCandidate(""); !errors.Is(err, ErrBridgeClosed) {
		t.Errorf("AddRemoteCandidate after Close: %v, want ErrBridgeClosed", err)
	}
}

// TestWebRTCCloseClosesBridges: closing the WebRTC closes its open bridges
// and refuses new ones.
func TestWebRTCCloseClosesBridges(t *testing.T) {
	leakCheck(t)
	relay := newTestRelay(t, 2, 0)
	w, err := NewWebRTC(WebRTCConfig{Address: loopback}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	c := newPhoneCall(t, relay, "call-close")
	b, _, err := w.Offer(testCtx(t), c.s.A(), mustParseCodecs(t, phoneSDP(c.phone.rtpAddr, "0")))
	if err != nil {
		t.Fatalf("Offer: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-b.Done():
	default:
		t.Error("bridge Done not closed by WebRTC.Close")
	}
	if _, _, err := w.Offer(testCtx(t), c.s.A(), mustParseCodecs(t, phoneSDP(c.phone.rtpAddr, "0"))); !errors.Is(err, ErrBridgeClosed) {
		t.Errorf("Offer after Close: %v, want ErrBridgeClosed", err)
	}
}

// TestWebRTCNoCommonCodec: calls that would need transcoding are refused
// before any resource is taken.
func TestWebRTCNoCommonCodec(t *testing.T) {
	leakCheck(t)
	relay := newTestRelay(t, 2, 0)
	w := newTestWebRTC(t, WebRTCConfig{})
	c := newPhoneCall(t, relay, "call-488")
	opusOnly := newTestBrowser(t, []webrtc.RTPCodecParameters{chromeCodecs[0], chromeCodecs[5]}) // opus, telephone-event/48000
	offer := opusOnly.offer(false)
	tests := map[string]func() error{
		"answer: browser opus, phone PCMU": func() error {
			_, _, err := w.Answer(testCtx(t), offer, c.s.A(), mustParseCodecs(t, phoneSDP(c.phone.rtpAddr, "0 101", "rtpmap:101 telephone-event/8000")))
			return err
		},
		"answer: DTMF only in common": func() error {
			_, _, err := w.Answer(testCtx(t), offer, c.s.A(), []Codec{{PayloadType: 101, Name: "telephone-event", ClockRate: 48000}})
			return err
		},
		"offer: phone G.729 only": func() error {
			_, _, err := w.Offer(testCtx(t), c.s.A(), mustParseCodecs(t, phoneSDP(c.phone.rtpAddr, "18")))
			return err
		},
	}
	for name, call := range tests {
		t.Run(name, func(t *testing.T) {
			if err := call(); !errors.Is(err, ErrNoCommonCodec) {
				t.Fatalf("err = %v, want ErrNoCommonCodec", err)
			}
			if w.Bridges() != 0 {
				t.Fatalf("Bridges() = %d, want 0", w.Bridges())
			}
		})
	}
	if _, _, err := w.Answer(testCtx(t), "not sdp", c.s.A(), nil); !errors.Is(err, ErrInvalidSDP) {
		t.Errorf("Answer(garbage) = %v, want ErrInvalidSDP", err)
	}
}

// TestWebRTCPublicAddress: with a public address, the SDP carries a host
// candidate for it next to media.address's. Without a mux, pion binds one
// socket per advertised address on media.address (a 1:1 NAT keeps ports);
// with the mux, both name the mux port.
func TestWebRTCPublicAddress(t *testing.T) {
	leakCheck(t)
	public := netip.MustParseAddr("127.0.0.2")
	muxPort, _ := freeRange(t, 1)
	for name, cfg := range map[string]WebRTCConfig{
		"port range": {PublicAddress: public},
		"udp mux":    {PublicAddress: public, MuxPort: muxPort},
	} {
		t.Run(name, func(t *testing.T) {
			relay := newTestRelay(t, 2, 0)
			w := newTestWebRTC(t, cfg)
			c := newPhoneCall(t, relay, "call-nat")
			br := newTestBrowser(t, chromeCodecs)
			b, answer, err := w.Answer(testCtx(t), br.offer(false), c.s.A(), mustParseCodecs(t, phoneSDP(c.phone.rtpAddr, "0")))
			if err != nil {
				t.Fatalf("Answer: %v", err)
			}
			t.Cleanup(func() { _ = b.Close() })
			ports := map[string]string{}
			for _, line := range candidateLines(answer) {
				f := strings.Fields(line)
				ports[f[4]] = f[5]
			}
			if len(ports) != 2 || ports["127.0.0.1"] == "" || ports["127.0.0.2"] == "" {
				t.Fatalf("candidates by address = %v, want 127.0.0.1 and 127.0.0.2\n%s", ports, answer)
			}
			if cfg.MuxPort != 0 && (ports["127.0.0.1"] != strconv.Itoa(muxPort) || ports["127.0.0.2"] != strconv.Itoa(muxPort)) {
				t.Fatalf("candidates by address = %v, want both on the mux port %d", ports, muxPort)
			}
			br.accept(answer)
			waitConnected(t, br, b)
		})
	}
}

// candidateLines returns the a=candidate lines of an SDP body.
func candidateLines(body string) []string {
	var out []string
	for line := range strings.Lines(body) {
		if strings.HasPrefix(line, "a=candidate:") {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return out
}

func equalCodecs(a, b []Codec) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].PayloadType != b[i].PayloadType || !strings.EqualFold(a[i].Name, b[i].Name) ||
			a[i].ClockRate != b[i].ClockRate || a[i].channels() != b[i].channels() || a[i].Fmtp != b[i].Fmtp {
			return false
		}
	}
	return true
}

// TestWebRTCDeclinesVideo: a video stream in a browser's offer (a video
// call from JsSIP) is declined with port 0, and the audio is answered.
func TestWebRTCDeclinesVideo(t *testing.T) {
	leakCheck(t)
	relay := newTestRelay(t, 2, 0)
	w := newTestWebRTC(t, WebRTCConfig{})
	c := newPhoneCall(t, relay, "call-video")
	br := newTestBrowser(t, chromeCodecs)
	offer := br.offer(false)
	// Add a bundled VP8 stream with the audio stream's ICE and DTLS lines.
	var transport []string
	for line := range strings.Lines(offer[strings.Index(offer, "m=audio"):]) {
		for _, prefix := range []string{"c=", "a=ice-ufrag", "a=ice-pwd", "a=fingerprint", "a=setup"} {
			if strings.HasPrefix(line, prefix) {
				transport = append(transport, line)
			}
		}
	}
	offer = strings.Replace(offer, "a=group:BUNDLE 0", "a=group:BUNDLE 0 1", 1) +
		"m=video 9 UDP/TLS/RTP/SAVPF 96\r\n" + strings.Join(transport, "") +
		"a=mid:1\r\na=rtcp-mux\r\na=rtpmap:96 VP8/90000\r\na=sendrecv\r\n"
	b, answer, err := w.Answer(testCtx(t), offer, c.s.A(), mustParseCodecs(t, phoneSDP(c.phone.rtpAddr, "0")))
	if err != nil {
		t.Fatalf("Answer: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if !strings.Contains(answer, "m=video 0 ") || !strings.Contains(answer, "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\n") {
		t.Fatalf("answer does not decline video and accept PCMU:\n%s", answer)
	}
}
