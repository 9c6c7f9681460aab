package media

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// Bridge connects one browser's peer connection to one relay [Leg]. To the
// leg it looks like a phone: it owns a UDP socket on the relay's address
// that the leg sends to and receives from, so the relay's counters, latching
// and media timeout work as for any call. Packets are forwarded one for one,
// unchanged but for payload type numbers (the two sides may number the same
// codec differently, RFC 3264 §6.1) and, towards the browser, the SSRC
// negotiated with it. Its methods are safe for concurrent use.
type Bridge struct {
	w    *WebRTC
	log  *slog.Logger
	pc   *webrtc.PeerConnection
	leg  *Leg
	conn *net.UDPConn // faces the relay leg
	// legRTP and legRTCP are the leg's sockets, where the bridge sends the
	// browser's RTP and RTCP and the only sources it accepts.
	legRTP, legRTCP netip.AddrPort
	local           netip.AddrPort // conn's address
	pinned          *target        // what the leg was latched to, to undo on Close
	pinnedRTCP      *target
	track           *bridgeTrack
	plain           []Codec // the plain side's codecs, filtered

	offerer      bool // created by Offer; waits for Accept
	maps         atomic.Pointer[ptMaps]
	negotiatedMu sync.Mutex
	negotiatedCs []Codec
	// browserSSRC is 1<<32 | the SSRC of the browser's stream once its
	// first packet arrived, 0 before.
	browserSSRC atomic.Uint64

	// held is the directions in which RTP is withheld (holdToLeg,
	// holdToBrowser) while the plain side is on hold; see
	// SetPlainDirection.
	held atomic.Uint32

	// Owned by the goroutine reading conn.
	hdr    rtp.Header
	rebase ssrcRebase

	fromBrowser, fromBrowserBytes atomic.Uint64
	toBrowser, toBrowserBytes     atomic.Uint64
	rtcpFromBrowser, rtcpFromLeg  atomic.Uint64
	rtcpToBrowser                 atomic.Uint64
	dropped, withheld             atomic.Uint64
	// toLegSeqShift is how many of the browser's packets were held back
	// from the leg: later ones are renumbered down by as many (mod 2^16).
	toLegSeqShift  atomic.Uint32
	writeErrLogged atomic.Bool

	mu        sync.Mutex // guards closed and wg.Add
	closed    bool
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
	done      chan struct{}
	doneOnce  sync.Once
}

// BridgeStats is a snapshot of a bridge's counters and state, returned by
// [Bridge.Stats].
type BridgeStats struct {
	// FromBrowser and FromBrowserBytes count RTP packets (and bytes)
	// received from the browser and sent on to the relay leg.
	FromBrowser, FromBrowserBytes uint64
	// ToBrowser and ToBrowserBytes count RTP packets (and payload bytes)
	// received from the relay leg and sent on to the browser.
	ToBrowser, ToBrowserBytes uint64
	// RTCPFromBrowser counts the browser's RTCP packets, forwarded to the
	// leg's RTCP port.
	RTCPFromBrowser uint64
	// RTCPFromLeg counts RTCP packets from the relay leg, and
	// RTCPToBrowser the receiver reports made of them for the browser
	// (those of their reception reports that are about the browser's
	// stream).
	RTCPFromLeg, RTCPToBrowser uint64
	// Dropped counts packets not forwarded: a payload type not negotiated,
	// malformed, from an unexpected source, before the browser leg is up,
	// or a failed send.
	Dropped uint64
	// Withheld counts RTP packets not forwarded because the plain side's
	// direction does not let them through (hold; see SetPlainDirection).
	Withheld uint64
	// ICEState is the ICE connection state as in the W3C API: new,
	// checking, connected, completed, disconnected, failed or closed.
	ICEState string
	// ConnectionState is the peer connection state (ICE and DTLS together):
	// new, connecting, connected, disconnected, failed or closed.
	ConnectionState string
	// Local is the bridge's socket facing the relay leg.
	Local netip.AddrPort
}

// newBridge binds the bridge's socket, attaches it to leg and starts reading
// what the leg sends.
func newBridge(w *WebRTC, pc *webrtc.PeerConnection, leg *Leg, plain []Codec) (*Bridge, error) {
	// The bridge talks to the leg on the address the relay binds, which
	// keeps the hop on this host; loopback when that is every address.
	relayAddr := leg.sess.relay.cfg.Address
	switch {
	case relayAddr.IsUnspecified() && relayAddr.Is4():
		relayAddr = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	case relayAddr.IsUnspecified():
		relayAddr = netip.IPv6Loopback()
	}
	conn, err := listenUDP(relayAddr, 0)
	if err != nil {
		return nil, fmt.Errorf("webrtc: bind bridge socket: %w", err)
	}
	local := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	b := &Bridge{
		w:       w,
		log:     w.log.With("call_id", leg.sess.callID, "leg", leg.name),
		pc:      pc,
		leg:     leg,
		conn:    conn,
		local:   local,
		legRTP:  netip.AddrPortFrom(relayAddr, uint16(leg.port)),
		legRTCP: netip.AddrPortFrom(relayAddr, uint16(leg.port+1)),
		plain:   plain,
		track:   &bridgeTrack{},
		done:    make(chan struct{}),
	}
	pc.OnTrack(b.onTrack)
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		b.log.Debug("webrtc connection state", "state", s.String())
		if s == webrtc.PeerConnectionStateFailed || s == webrtc.PeerConnectionStateClosed {
			b.signalDone()
		}
	})
	b.attach()
	b.goTracked(b.readLeg)
	return b, nil
}

// attach latches both of the leg's sockets to the bridge socket, as if the
// bridge were a phone that had already sent: the relay then accepts packets
// from the bridge only, so no third party can take over the leg before the
// browser's first packet. It also tells the leg the clock rates of the
// plain side's dynamic payload types, for its jitter statistics.
func (b *Bridge) attach() {
	b.pinned = &target{addr: b.local, latched: true}
	b.pinnedRTCP = &target{addr: b.local, latched: true}
	b.leg.rtp.dst.Store(b.pinned)
	b.leg.rtcp.dst.Store(b.pinnedRTCP)
	for _, c := range b.plain {
		if c.PayloadType >= 96 {
			b.leg.SetClockRate(c.PayloadType, c.ClockRate)
		}
	}
	b.log.Debug("webrtc bridge attached", "local", b.local.String(), "relay_port", b.leg.port)
}

// Attach makes the bridge its leg's peer again, after another bridge was
// created on the same leg: a call to a user with several browsers rings
// each through a bridge of its own, and the one that answers takes the
// leg. The other bridges' Close then leaves the leg alone.
func (b *Bridge) Attach() {
	// Under mu, so Close (which sets closed under mu before it detaches)
	// sees the targets set here.
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.attach()
	}
}

// detach leaves the leg without a destination, unless it has been pointed
// elsewhere meanwhile (SetRemote, or another bridge).
func (b *Bridge) detach() {
	b.leg.rtp.dst.CompareAndSwap(b.pinned, nil)
	b.leg.rtcp.dst.CompareAndSwap(b.pinnedRTCP, nil)
}

// goTracked runs f in a goroutine that Close waits for, unless the bridge
// is closing.
func (b *Bridge) goTracked(f func()) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.wg.Go(f)
	return true
}

// setLocal applies a local description and waits for ICE gathering to
// complete, so the description lists every candidate (non-trickle).
func (b *Bridge) setLocal(ctx context.Context, desc webrtc.SessionDescription) error {
	gathered := webrtc.GatheringCompletePromise(b.pc)
	if err := b.pc.SetLocalDescription(desc); err != nil {
		return fmt.Errorf("webrtc: set local description: %w", err)
	}
	select {
	case <-gathered:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("webrtc: gather candidates: %w", context.Cause(ctx))
	}
}

// negotiated builds the payload type maps once both descriptions are known.
func (b *Bridge) negotiated(answerSDP, offerSDP string) error {
	answer, err := ParseCodecs(answerSDP)
	if err != nil {
		return fmt.Errorf("answer: %w", err)
	}
	offer, err := ParseCodecs(offerSDP)
	if err != nil {
		return fmt.Errorf("offer: %w", err)
	}
	maps, cs := negotiate(b.plain, answer, offer)
	if !hasAudio(cs) {
		return ErrNoCommonCodec
	}
	b.negotiatedMu.Lock()
	b.negotiatedCs = cs
	b.negotiatedMu.Unlock()
	b.maps.Store(maps)
	b.log.Debug("webrtc codecs negotiated", "codecs", fmt.Sprint(cs))
	return nil
}

// Accept applies the browser's SDP answer to the offer of [WebRTC.Offer].
// It returns [ErrNoCommonCodec] when the browser accepted no audio codec,
// and an error wrapping [ErrInvalidSDP] when the answer cannot be applied.
// Candidates of the answer that arrive later (trickle ICE) go to
// [Bridge.AddRemoteCandidate].
func (b *Bridge) Accept(answerSDP string) error {
	if !b.offerer {
		return errors.New("webrtc: accept: the bridge did not make an offer")
	}
	if b.isClosed() {
		return ErrBridgeClosed
	}
	if err := b.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answerSDP}); err != nil {
		return fmt.Errorf("%w: apply answer: %v", ErrInvalidSDP, err)
	}
	return b.negotiated(answerSDP, b.pc.LocalDescription().SDP)
}

// Renegotiate answers a new offer from the browser within the call (hold,
// resume, an ICE restart; RFC 3264 §8) and returns the SDP answer. The leg
// and the other side are not involved: the bridge keeps forwarding with
// the payload types negotiated anew.
func (b *Bridge) Renegotiate(ctx context.Context, offerSDP string) (string, error) {
	if b.isClosed() {
		return "", ErrBridgeClosed
	}
	if err := b.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offerSDP}); err != nil {
		return "", fmt.Errorf("%w: apply offer: %v", ErrInvalidSDP, err)
	}
	answer, err := b.pc.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("%w: create answer: %v", ErrInvalidSDP, err)
	}
	if err := b.setLocal(ctx, answer); err != nil {
		return "", err
	}
	local := b.pc.LocalDescription().SDP
	if err := b.negotiated(local, offerSDP); err != nil {
		return "", err
	}
	return local, nil
}

// AddRemoteCandidate adds a browser's ICE candidate that came after its
// description (trickle ICE, RFC 8838), as the candidate attribute's value
// with or without its "candidate:" prefix. An empty candidate means the
// browser has no more. Non-trickle browsers (JsSIP, SIP.js) put every
// candidate in the SDP and never need it.
func (b *Bridge) AddRemoteCandidate(candidate string) error {
	if b.isClosed() {
		return ErrBridgeClosed
	}
	if err := b.pc.AddICECandidate(webrtc.ICECandidateInit{Candidate: candidate}); err != nil {
		return fmt.Errorf("webrtc: add candidate: %w", err)
	}
	return nil
}

// Codecs returns the negotiated codecs with the plain side's payload types,
// in the order of the SDP answer; nil before negotiation completes. After
// [Bridge.Accept] it is what to answer the phone with.
func (b *Bridge) Codecs() []Codec {
	b.negotiatedMu.Lock()
	defer b.negotiatedMu.Unlock()
	return append([]Codec(nil), b.negotiatedCs...)
}

// Done returns a channel that is closed when the browser leg ends: its peer
// connection failed (ICE or DTLS) or was closed, by the browser or by
// [Bridge.Close]. Close the bridge when it is.
func (b *Bridge) Done() <-chan struct{} { return b.done }

func (b *Bridge) signalDone() { b.doneOnce.Do(func() { close(b.done) }) }

func (b *Bridge) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// Stats returns a snapshot of the bridge's counters and state.
func (b *Bridge) Stats() BridgeStats {
	return BridgeStats{
		FromBrowser:      b.fromBrowser.Load(),
		FromBrowserBytes: b.fromBrowserBytes.Load(),
		ToBrowser:        b.toBrowser.Load(),
		ToBrowserBytes:   b.toBrowserBytes.Load(),
		RTCPFromBrowser:  b.rtcpFromBrowser.Load(),
		RTCPFromLeg:      b.rtcpFromLeg.Load(),
		RTCPToBrowser:    b.rtcpToBrowser.Load(),
		Dropped:          b.dropped.Load(),
		Withheld:         b.withheld.Load(),
		ICEState:         b.pc.ICEConnectionState().String(),
		ConnectionState:  b.pc.ConnectionState().String(),
		Local:            b.local,
	}
}

// Close closes the peer connection and the bridge socket, waits for the
// bridge's goroutines and leaves the leg without a destination. It is
// idempotent and safe for concurrent use, but must not be called from a
// pion callback.
func (b *Bridge) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
		var errs []error
		// Stopping the transceivers ends the track and RTCP readers;
		// GracefulClose also waits for pion's own goroutines.
		if err := b.pc.GracefulClose(); err != nil {
			errs = append(errs, fmt.Errorf("close peer connection: %w", err))
		}
		if err := b.conn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
		b.wg.Wait()
		b.detach()
		b.w.forget(b)
		b.signalDone()
		st := b.Stats()
		b.log.Info("webrtc bridge closed",
			"from_browser", st.FromBrowser, "to_browser", st.ToBrowser, "dropped", st.Dropped)
		if err := errors.Join(errs...); err != nil {
			b.closeErr = fmt.Errorf("webrtc: close bridge: %w", err)
		}
	})
	return b.closeErr
}

// onTrack starts forwarding a browser track and its receiver's RTCP. pion
// calls it in a goroutine of its own once the track's first packet arrives.
func (b *Bridge) onTrack(track *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
	if track.Kind() != webrtc.RTPCodecTypeAudio {
		return
	}
	b.log.Debug("webrtc browser track", "ssrc", uint32(track.SSRC()))
	b.browserSSRC.Store(1<<32 | uint64(track.SSRC()))
	b.goTracked(func() { b.readBrowser(track) })
	b.goTracked(func() { b.readBrowserRTCP(receiver) })
}

// readBrowser forwards the browser's RTP to the leg until the track ends.
func (b *Bridge) readBrowser(track *webrtc.TrackRemote) {
	buf := make([]byte, readBufferSize)
	for {
		n, _, err := track.Read(buf)
		if n > 0 {
			// pion returns an error with the packet when its payload type
			// was not negotiated; forwardToLeg drops those.
			b.forwardToLeg(buf[:n])
		}
		if err != nil && n == 0 {
			if !errors.Is(err, io.EOF) {
				b.log.Debug("webrtc track read ended", "error", err)
			}
			return
		}
	}
}

// forwardToLeg sends one of the browser's RTP packets to the leg with the
// plain side's payload type. It allocates nothing.
func (b *Bridge) forwardToLeg(pkt []byte) {
	maps := b.maps.Load()
	if maps == nil || len(pkt) < rtpFixedHeaderLen || pkt[0]>>6 != rtpVersion {
		b.dropped.Add(1)
		return
	}
	e := maps.toPlain[pkt[1]&0x7f]
	if !e.ok {
		b.dropped.Add(1)
		return
	}
	if b.held.Load()&holdToLeg != 0 {
		b.withheld.Add(1)
		// The stream the phone gets goes on without a gap: what was held
		// back is not loss.
		b.toLegSeqShift.Add(1)
		return
	}
	pkt[1] = pkt[1]&0x80 | e.pt
	if shift := uint16(b.toLegSeqShift.Load()); shift != 0 {
		binary.BigEndian.PutUint16(pkt[2:4], binary.BigEndian.Uint16(pkt[2:4])-shift)
	}
	if !b.send(pkt, b.legRTP) {
		return
	}
	b.fromBrowser.Add(1)
	b.fromBrowserBytes.Add(uint64(len(pkt)))
}

// readBrowserRTCP forwards the browser's RTCP (decrypted) to the leg's RTCP
// port, so the phone sees the browser's sender reports. The browser's
// SSRC reaches the phone unchanged, so they describe a stream it receives.
func (b *Bridge) readBrowserRTCP(receiver *webrtc.RTPReceiver) {
	buf := make([]byte, readBufferSize)
	for {
		n, _, err := receiver.Read(buf)
		if err != nil {
			return
		}
		if isRTCP(buf[:n]) && b.send(buf[:n], b.legRTCP) {
			b.rtcpFromBrowser.Add(1)
		}
	}
}

// drainRTCP reads the RTCP addressed to the bridge's own sender (receiver
// reports on what it sends), which runs pion's report interceptor, until
// the sender stops.
func (b *Bridge) drainRTCP(sender *webrtc.RTPSender) {
	b.goTracked(func() {
		buf := make([]byte, readBufferSize)
		for {
			if _, _, err := sender.Read(buf); err != nil {
				return
			}
		}
	})
}

// send writes pkt to the leg. A failed write counts as dropped.
func (b *Bridge) send(pkt []byte, dst netip.AddrPort) bool {
	if _, err := b.conn.WriteToUDPAddrPort(pkt, dst); err != nil {
		b.dropped.Add(1)
		if !errors.Is(err, net.ErrClosed) && b.writeErrLogged.CompareAndSwap(false, true) {
			b.log.Warn("webrtc bridge send failed", "remote", dst.String(), "error", err)
		}
		return false
	}
	return true
}

// readLeg forwards what the relay leg sends to the browser until the bridge
// socket is closed.
func (b *Bridge) readLeg() {
	buf := make([]byte, readBufferSize)
	failures := 0
	for {
		n, src, err := b.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Transient, as in Leg.serve: back off so it cannot spin.
			if failures++; failures > 3 {
				time.Sleep(10 * time.Millisecond)
			}
			continue
		}
		failures = 0
		if n >= len(buf) {
			b.dropped.Add(1)
			continue
		}
		b.forwardToBrowser(buf[:n], src, time.Now())
	}
}

// forwardToBrowser sends one packet from the leg to the browser: RTP with
// the browser's payload type and the negotiated SSRC, through pion's SRTP;
// RTCP goes to forwardReports. Only readLeg calls it.
func (b *Bridge) forwardToBrowser(pkt []byte, src netip.AddrPort, now time.Time) {
	src = normalize(src)
	if src != b.legRTP && src != b.legRTCP {
		b.dropped.Add(1)
		return
	}
	h, kind := classifyRTP(pkt)
	switch kind {
	case kindInvalid:
		b.dropped.Add(1)
		return
	case kindRTCP:
		b.rtcpFromLeg.Add(1)
		b.forwardReports(pkt)
		return
	}
	if b.held.Load()&holdToBrowser != 0 {
		b.withheld.Add(1)
		return
	}
	bound := b.track.binding.Load()
	maps := b.maps.Load()
	if bound == nil || maps == nil {
		b.dropped.Add(1) // not negotiated or not connected yet
		return
	}
	e := maps.toBrowser[h.payloadType]
	if !e.ok {
		b.dropped.Add(1)
		return
	}
	hdr := &b.hdr
	off, err := hdr.Unmarshal(pkt)
	if err != nil {
		b.dropped.Add(1)
		return
	}
	payload := pkt[off:]
	hdr.PaddingSize = 0
	if hdr.Padding {
		// classifyRTP checked that the padding fits; pion writes it back
		// from PaddingSize.
		hdr.PaddingSize = pkt[len(pkt)-1]
		payload = pkt[off : len(pkt)-int(hdr.PaddingSize)]
	}
	// Header extensions were not negotiated with the browser.
	hdr.Extension = false
	hdr.Extensions = hdr.Extensions[:0]
	hdr.PayloadType = e.pt
	b.rebase.apply(hdr, e.clock, now)
	hdr.SSRC = bound.ssrc
	if _, err := bound.writer.WriteRTP(hdr, payload); err != nil {
		b.dropped.Add(1)
		if b.writeErrLogged.CompareAndSwap(false, true) {
			b.log.Warn("webrtc write to browser failed", "error", err)
		}
		return
	}
	b.toBrowser.Add(1)
	b.toBrowserBytes.Add(uint64(len(payload)))
}

// forwardReports passes on to the browser the phone's reception reports
// (RFC 3550 §6.4) on the browser's stream, which reaches the phone with its
// SSRC unchanged: loss and jitter end to end, and the round-trip time,
// since the browser's sender reports reach the phone unchanged too and the
// phone echoes their timestamps. They go in a receiver report from the
// SSRC the browser knows. The phone's own sender reports are not passed
// on: its SSRC and timeline are not the ones the browser sees; pion reports
// on the stream it sends. RTCP comes every few seconds, so this path may
// allocate.
func (b *Bridge) forwardReports(pkt []byte) {
	browser := b.browserSSRC.Load()
	bound := b.track.binding.Load()
	if browser == 0 || bound == nil {
		return
	}
	pkts, err := rtcp.Unmarshal(pkt)
	if err != nil {
		b.dropped.Add(1)
		return
	}
	var blocks []rtcp.ReceptionReport
	for _, p := range pkts {
		var reports []rtcp.ReceptionReport
		switch p := p.(type) {
		case *rtcp.SenderReport:
			reports = p.Reports
		case *rtcp.ReceiverReport:
			reports = p.Reports
		}
		for _, r := range reports {
			if r.SSRC == uint32(browser) {
				blocks = append(blocks, r)
			}
		}
	}
	if len(blocks) == 0 {
		return
	}
	if err := b.pc.WriteRTCP([]rtcp.Packet{&rtcp.ReceiverReport{SSRC: bound.ssrc, Reports: blocks}}); err != nil {
		b.dropped.Add(1)
		return
	}
	b.rtcpToBrowser.Add(1)
}

// ssrcRebase keeps the browser's view of the stream continuous when the
// leg's source changes (another phone after a transfer, music on hold):
// the browser knows one SSRC from SDP, so a new source's sequence numbers
// and timestamps are shifted to follow on from the old one's
// (RFC 7667 §3.2.1.3, what a media translator does).
type ssrcRebase struct {
	started  bool
	ssrc     uint32 // the current source's
	seqDelta uint16
	tsDelta  uint32
	lastSeq  uint16 // highest sent, after rebasing
	lastTS   uint32
	lastAt   time.Time
}

// apply rewrites h's sequence number and timestamp.
func (r *ssrcRebase) apply(h *rtp.Header, clock uint32, now time.Time) {
	switch {
	case !r.started:
		r.started = true
		r.ssrc = h.SSRC
		r.lastSeq = h.SequenceNumber - 1
	case h.SSRC != r.ssrc:
		elapsed := max(rtpUnits(now.Sub(r.lastAt), clock), 1)
		r.seqDelta = r.lastSeq + 1 - h.SequenceNumber
		r.tsDelta = r.lastTS + elapsed - h.Timestamp
		r.ssrc = h.SSRC
		h.Marker = true // a new talkspurt for the browser's jitter buffer
	}
	h.SequenceNumber += r.seqDelta
	h.Timestamp += r.tsDelta
	if int16(h.SequenceNumber-r.lastSeq) > 0 {
		r.lastSeq, r.lastTS, r.lastAt = h.SequenceNumber, h.Timestamp, now
	}
}
