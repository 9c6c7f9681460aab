package media

// The WebRTC bridge terminates a browser's media (ICE, DTLS-SRTP, rtcp-mux,
// UDP/TLS/RTP/SAVPF; RFC 8829, RFC 8834) in a pion peer connection and
// attaches it to one leg of a relay [Session] as if the browser were a plain
// RTP phone: the relay keeps forwarding, counting and latching as for any
// other call, and a bridged leg costs one extra hop on loopback.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/webrtc/v4"
)

// ErrNoCommonCodec is returned when a browser and the other side of a call
// have no audio codec in common, so the call cannot be bridged without
// transcoding. SIP answers it with 488 Not Acceptable Here (RFC 3261
// §21.4.26).
var ErrNoCommonCodec = errors.New("media: no audio codec in common")

// ErrInvalidSDP is returned for an SDP offer or answer that cannot be parsed
// or applied.
var ErrInvalidSDP = errors.New("media: invalid sdp")

// ErrBridgeClosed is returned by the methods of a closed [Bridge] or
// [WebRTC].
var ErrBridgeClosed = errors.New("media: webrtc bridge closed")

// dtlsRetransmit is the first DTLS retransmission timeout of a bridge.
const dtlsRetransmit = 100 * time.Millisecond

// WebRTCConfig configures a [WebRTC]. Address is required; the zero value of
// every other field selects its default.
type WebRTCConfig struct {
	// Address is the local address ICE binds to and offers as a host
	// candidate, normally the same as media.address. An unspecified address
	// (0.0.0.0 or ::) gathers on every interface; a loopback address makes
	// the bridge reachable from browsers on the same host only.
	Address netip.Addr `yaml:"address"`
	// PublicAddress, when set, is offered as an extra host candidate with the
	// same port, for a host behind a 1:1 NAT (media.public_address).
	PublicAddress netip.Addr `yaml:"public_address"`
	// PortMin and PortMax bound the UDP ports of ICE candidates, one per
	// browser leg. Both zero lets the system choose.
	PortMin int `yaml:"port_min"`
	PortMax int `yaml:"port_max"`
	// MuxPort, when non-zero, makes every browser leg share one UDP socket on
	// Address:MuxPort (ICE demultiplexes by username fragment), which needs a
	// single firewall rule. It excludes PortMin and PortMax.
	MuxPort int `yaml:"mux_port"`
	// Codecs are the encoding names the bridge negotiates with browsers,
	// among opus, PCMU, PCMA, G722, telephone-event and CN. Empty means
	// opus, PCMU, PCMA, G722 and telephone-event. At least one must carry
	// audio.
	Codecs []string `yaml:"codecs"`
}

// Validate reports whether the configuration can run a [WebRTC].
func (c WebRTCConfig) Validate() error {
	var errs []error
	switch {
	case !c.Address.IsValid():
		errs = append(errs, errors.New("address is not set"))
	case c.Address.IsMulticast():
		errs = append(errs, fmt.Errorf("address %s is a multicast address", c.Address))
	}
	if c.PublicAddress.IsValid() && (c.PublicAddress.IsUnspecified() || c.PublicAddress.IsMulticast()) {
		errs = append(errs, fmt.Errorf("public_address %s cannot be advertised", c.PublicAddress))
	}
	switch {
	case c.MuxPort < 0 || c.MuxPort > 65535:
		errs = append(errs, fmt.Errorf("mux_port %d is outside 0-65535", c.MuxPort))
	case c.MuxPort != 0 && (c.PortMin != 0 || c.PortMax != 0):
		errs = append(errs, errors.New("mux_port excludes port_min and port_max"))
	case c.PortMin == 0 && c.PortMax == 0:
	case c.PortMin < 1 || c.PortMax > 65535 || c.PortMin > c.PortMax:
		errs = append(errs, fmt.Errorf("port range %d-%d is not within 1-65535", c.PortMin, c.PortMax))
	}
	audio := false
	for _, name := range c.Codecs {
		k, ok := lookupKnown(name)
		if !ok {
			errs = append(errs, fmt.Errorf("codec %q cannot be bridged to browsers", name))
			continue
		}
		audio = audio || Codec{Name: k.name}.isAudio()
	}
	if len(c.Codecs) > 0 && !audio {
		errs = append(errs, errors.New("codecs list no audio codec"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("webrtc config: %w", err)
	}
	return nil
}

// codecSet returns the configured codecs.
func (c WebRTCConfig) codecSet() codecSet {
	names := c.Codecs
	if len(names) == 0 {
		names = defaultWebRTCCodecs
	}
	var set codecSet
	for _, name := range names {
		if k, ok := lookupKnown(name); ok {
			set = append(set, k)
		}
	}
	return set
}

// WebRTC creates [Bridge]s between browsers and relay legs. It holds what
// all its bridges share: ICE settings and, with [WebRTCConfig.MuxPort], the
// shared UDP socket. Its methods are safe for concurrent use.
type WebRTC struct {
	cfg    WebRTCConfig
	log    *slog.Logger
	codecs codecSet
	se     webrtc.SettingEngine
	mux    ice.UDPMux // nil without MuxPort

	mu      sync.Mutex
	bridges map[*Bridge]struct{}
	closed  bool

	closeOnce sync.Once
	closeErr  error
}

// NewWebRTC validates cfg and returns a WebRTC. With [WebRTCConfig.MuxPort]
// it binds the shared ICE socket. A nil logger discards logs.
func NewWebRTC(cfg WebRTCConfig, log *slog.Logger) (*WebRTC, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.Address = cfg.Address.Unmap()
	cfg.PublicAddress = cfg.PublicAddress.Unmap()
	w := &WebRTC{
		cfg:     cfg,
		log:     log,
		codecs:  cfg.codecSet(),
		bridges: make(map[*Bridge]struct{}),
	}
	w.se.LoggerFactory = pionLoggers{log: log}
	// Candidates are exactly the configured address (and its public
	// alias): no mDNS names, no other interfaces, no STUN.
	w.se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if cfg.Address.Is4() {
		w.se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	} else {
		w.se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP6})
	}
	if !cfg.Address.IsUnspecified() {
		addr := net.IP(cfg.Address.AsSlice())
		w.se.SetIPFilter(func(ip net.IP) bool { return ip.Equal(addr) })
	}
	w.se.SetIncludeLoopbackCandidate(cfg.Address.IsLoopback())
	// A lost DTLS flight is sent again after 100 ms, doubling, rather
	// than pion's 1 s: under load a dropped handshake datagram otherwise
	// adds whole seconds to call setup (RFC 6347 §4.2.4.1 allows any
	// initial timer; browsers use short ones too).
	w.se.SetDTLSRetransmissionInterval(dtlsRetransmit)
	if cfg.PublicAddress.IsValid() && cfg.PublicAddress != cfg.Address {
		rule := webrtc.ICEAddressRewriteRule{
			External:        []string{cfg.PublicAddress.String()},
			AsCandidateType: webrtc.ICECandidateTypeHost,
			Mode:            webrtc.ICEAddressRewriteAppend,
		}
		if !cfg.Address.IsUnspecified() {
			rule.Local = cfg.Address.String()
		}
		if err := w.se.SetICEAddressRewriteRules(rule); err != nil {
			return nil, fmt.Errorf("webrtc: public address: %w", err)
		}
	}
	switch {
	case cfg.MuxPort != 0:
		conn, err := listenUDP(cfg.Address, cfg.MuxPort)
		if err != nil {
			return nil, fmt.Errorf("webrtc: bind mux port: %w", err)
		}
		w.mux = webrtc.NewICEUDPMux(pionLoggers{log: log}.NewLogger("udpmux"), conn)
		w.se.SetICEUDPMux(w.mux)
	case cfg.PortMin != 0:
		if err := w.se.SetEphemeralUDPPortRange(uint16(cfg.PortMin), uint16(cfg.PortMax)); err != nil {
			return nil, fmt.Errorf("webrtc: port range: %w", err)
		}
	}
	return w, nil
}

// Bridgeable returns the codecs of cs that a bridge can carry to and from a
// browser (the configured codecs), in order. The SIP layer uses it to build
// the offer to a phone from a browser's offer: pass it
// ParseCodecs(browserOffer).
func (w *WebRTC) Bridgeable(cs []Codec) []Codec { return w.codecs.filter(cs) }

// Answer terminates a browser's SDP offer and bridges it to leg, which must
// be a leg of a live [Session] that nothing else sends to (do not call
// [Leg.SetRemote] on it while it is bridged). plain lists the codecs of the
// leg's other side with the payload types it uses, normally
// ParseCodecs(phoneSDP); only those the browser also offered are
// negotiated, and packets are forwarded unchanged except for their payload
// type number. It waits until every local ICE candidate is gathered (no
// trickle), so answerSDP is complete. It returns [ErrNoCommonCodec] when the
// browser offered no audio codec of plain, and an error wrapping
// [ErrInvalidSDP] when the offer cannot be applied.
func (w *WebRTC) Answer(ctx context.Context, offerSDP string, leg *Leg, plain []Codec) (b *Bridge, answerSDP string, err error) {
	offered, err := ParseCodecs(offerSDP)
	if err != nil {
		return nil, "", err
	}
	plain = w.codecs.filter(plain)
	var common []Codec
	for _, c := range offered {
		if _, ok := find(plain, c); ok {
			common = append(common, c)
		}
	}
	if !hasAudio(common) {
		return nil, "", ErrNoCommonCodec
	}
	// Empty format parameters match any of the browser's (pion prefers
	// exact matches and would drop a codec that matched only partially);
	// the answer repeats the browser's own parameters.
	register := make([]Codec, len(plain))
	for i, c := range plain {
		c.Fmtp = ""
		register[i] = c
	}
	b, err = w.newBridge(leg, plain, register)
	if err != nil {
		return nil, "", err
	}
	defer func() {
		if err != nil {
			_ = b.Close()
			b = nil
		}
	}()
	if err := b.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offerSDP}); err != nil {
		return nil, "", fmt.Errorf("%w: apply offer: %v", ErrInvalidSDP, err)
	}
	sender, err := b.pc.AddTrack(b.track)
	if err != nil {
		return nil, "", fmt.Errorf("webrtc: add track: %w", err)
	}
	b.drainRTCP(sender)
	answer, err := b.pc.CreateAnswer(nil)
	if err != nil {
		return nil, "", fmt.Errorf("%w: create answer: %v", ErrInvalidSDP, err)
	}
	if err := b.setLocal(ctx, answer); err != nil {
		return nil, "", err
	}
	local := b.pc.LocalDescription().SDP
	if err := b.negotiated(local, offerSDP); err != nil {
		return nil, "", err
	}
	return b, local, nil
}

// Offer creates an SDP offer towards a browser (a call to a browser) bridged
// to leg; apply the browser's answer with [Bridge.Accept]. plain lists the
// codecs of the leg's other side with its payload types, normally
// ParseCodecs(phoneOffer); the offer carries those the bridge can carry, in
// that order and with those payload types. Like [WebRTC.Answer], it gathers
// every local candidate before it returns.
func (w *WebRTC) Offer(ctx context.Context, leg *Leg, plain []Codec) (b *Bridge, offerSDP string, err error) {
	plain = w.codecs.filter(plain)
	if !hasAudio(plain) {
		return nil, "", ErrNoCommonCodec
	}
	b, err = w.newBridge(leg, plain, plain)
	if err != nil {
		return nil, "", err
	}
	defer func() {
		if err != nil {
			_ = b.Close()
			b = nil
		}
	}()
	tr, err := b.pc.AddTransceiverFromTrack(b.track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv})
	if err != nil {
		return nil, "", fmt.Errorf("webrtc: add transceiver: %w", err)
	}
	b.drainRTCP(tr.Sender())
	offer, err := b.pc.CreateOffer(nil)
	if err != nil {
		return nil, "", fmt.Errorf("webrtc: create offer: %w", err)
	}
	if err := b.setLocal(ctx, offer); err != nil {
		return nil, "", err
	}
	b.offerer = true
	return b, b.pc.LocalDescription().SDP, nil
}

// newBridge creates a bridge's peer connection, registering codecs with
// pion, and attaches it to leg.
func (w *WebRTC) newBridge(leg *Leg, plain, register []Codec) (*Bridge, error) {
	me := &webrtc.MediaEngine{}
	for _, c := range register {
		params := webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{
				MimeType:    "audio/" + c.Name,
				ClockRate:   c.ClockRate,
				SDPFmtpLine: c.Fmtp,
			},
			PayloadType: webrtc.PayloadType(c.PayloadType),
		}
		if c.channels() > 1 {
			params.Channels = c.channels()
		}
		if err := me.RegisterCodec(params, webrtc.RTPCodecTypeAudio); err != nil {
			return nil, fmt.Errorf("webrtc: register codec %s: %w", c, err)
		}
	}
	// pion sends RTCP sender reports on the stream it sends to the browser
	// (RFC 3550 §6.4.1). Reception reports on the browser's stream come
	// from the phone, which receives it (see forwardReports): pion's
	// receiver report interceptor would describe only the browser-to-server
	// hop, and it allocates for every packet it reads. No NACK or
	// congestion control feedback, which audio does not negotiate.
	ir := &interceptor.Registry{}
	senderReports, err := report.NewSenderInterceptor()
	if err != nil {
		return nil, fmt.Errorf("webrtc: rtcp reports: %w", err)
	}
	ir.Add(senderReports)
	se := w.se // a copy, so pion's logs carry the call's attributes
	se.LoggerFactory = pionLoggers{log: w.log.With("call_id", leg.sess.callID, "leg", leg.name)}
	api := webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir))

	select {
	case <-leg.sess.Done():
		return nil, fmt.Errorf("webrtc: attach to leg of session %q: %w", leg.sess.callID, ErrClosed)
	default:
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, ErrBridgeClosed
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{BundlePolicy: webrtc.BundlePolicyMaxBundle})
	if err != nil {
		return nil, fmt.Errorf("webrtc: new peer connection: %w", err)
	}
	b, err := newBridge(w, pc, leg, plain)
	if err != nil {
		_ = pc.Close()
		return nil, err
	}
	w.bridges[b] = struct{}{}
	return b, nil
}

// forget removes a closing bridge.
func (w *WebRTC) forget(b *Bridge) {
	w.mu.Lock()
	delete(w.bridges, b)
	w.mu.Unlock()
}

// Bridges returns the number of open bridges.
func (w *WebRTC) Bridges() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.bridges)
}

// Close closes every bridge and the shared ICE socket. It is idempotent;
// later calls to Answer and Offer fail with [ErrBridgeClosed].
func (w *WebRTC) Close() error {
	w.closeOnce.Do(func() {
		w.mu.Lock()
		w.closed = true
		bridges := make([]*Bridge, 0, len(w.bridges))
		for b := range w.bridges {
			bridges = append(bridges, b)
		}
		w.mu.Unlock()
		var errs []error
		for _, b := range bridges {
			errs = append(errs, b.Close())
		}
		if w.mux != nil {
			if err := w.mux.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				errs = append(errs, err)
			}
		}
		w.closeErr = errors.Join(errs...)
	})
	return w.closeErr
}
