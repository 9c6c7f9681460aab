package media

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// Codec is one RTP payload format of an audio stream as an SDP m= line
// lists it: the payload type with its a=rtpmap and a=fmtp attributes
// (RFC 8866 §6.6, §6.15). A [Bridge] forwards packets unchanged, so the
// codecs of its two sides are matched by encoding name, clock rate and
// channel count, and only the payload type numbers are translated.
type Codec struct {
	// PayloadType is the RTP payload type number, 0-127.
	PayloadType uint8
	// Name is the encoding name as in a=rtpmap, for example "PCMU", "opus"
	// or "telephone-event". It is compared case-insensitively.
	Name string
	// ClockRate is the RTP clock rate in Hz.
	ClockRate uint32
	// Channels is the channel count; 0 means the default of one, except for
	// Opus, which is always two in SDP (RFC 7587 §7).
	Channels uint16
	// Fmtp holds the format parameters of a=fmtp, for example "0-16" for
	// telephone-event; empty when there are none.
	Fmtp string
}

// String returns the codec as in a=rtpmap after the payload type, for example
// "PCMU/8000" or "opus/48000/2".
func (c Codec) String() string {
	s := c.Name + "/" + strconv.FormatUint(uint64(c.ClockRate), 10)
	if c.Channels > 1 {
		s += "/" + strconv.FormatUint(uint64(c.Channels), 10)
	}
	return s
}

// channels returns the channel count with the SDP defaults applied.
func (c Codec) channels() uint16 {
	switch {
	case c.Channels != 0:
		return c.Channels
	case strings.EqualFold(c.Name, "opus"):
		return 2
	default:
		return 1
	}
}

// same reports whether c and o are the same payload format, whatever their
// payload type numbers and format parameters.
func (c Codec) same(o Codec) bool {
	return strings.EqualFold(c.Name, o.Name) && c.ClockRate == o.ClockRate && c.channels() == o.channels()
}

// isDTMF reports whether c carries RFC 4733 telephone events.
func (c Codec) isDTMF() bool { return strings.EqualFold(c.Name, "telephone-event") }

// isAudio reports whether c carries audio (not DTMF events or comfort noise),
// that is whether negotiating it alone makes a usable call.
func (c Codec) isAudio() bool { return !c.isDTMF() && !strings.EqualFold(c.Name, "CN") }

// knownCodec is a payload format the bridge can carry between a browser and
// the relay without transcoding.
type knownCodec struct {
	name     string   // canonical spelling, as browsers write it
	rates    []uint32 // accepted clock rates; the first is the SDP default
	channels uint16   // required channel count (after defaults)
}

// knownCodecs are the payload formats browsers implement (RFC 7874 §3:
// Opus and G.711 are mandatory; G.722, CN and telephone-event are common).
var knownCodecs = []knownCodec{
	{name: "opus", rates: []uint32{48000}, channels: 2},
	{name: "PCMU", rates: []uint32{8000}, channels: 1},
	{name: "PCMA", rates: []uint32{8000}, channels: 1},
	{name: "G722", rates: []uint32{8000}, channels: 1},
	{name: "telephone-event", rates: []uint32{8000, 16000, 48000}, channels: 1},
	{name: "CN", rates: []uint32{8000}, channels: 1},
}

// defaultWebRTCCodecs are the codecs a [WebRTC] bridges when
// [WebRTCConfig.Codecs] is empty. It is never modified.
var defaultWebRTCCodecs = []string{"opus", "PCMU", "PCMA", "G722", "telephone-event"}

// lookupKnown returns the known codec named name (case-insensitively).
func lookupKnown(name string) (knownCodec, bool) {
	for _, k := range knownCodecs {
		if strings.EqualFold(k.name, name) {
			return k, true
		}
	}
	return knownCodec{}, false
}

// codecSet is the set of codec names a [WebRTC] is configured to bridge.
type codecSet []knownCodec

// accepts reports whether c is one of the set's codecs with a clock rate
// and channel count the bridge can carry.
func (s codecSet) accepts(c Codec) bool {
	for _, k := range s {
		if !strings.EqualFold(k.name, c.Name) || k.channels != c.channels() {
			continue
		}
		for _, r := range k.rates {
			if r == c.ClockRate {
				return true
			}
		}
	}
	return false
}

// filter returns the codecs of cs the set accepts, in order, with their names
// spelled canonically. A payload type listed twice keeps its first entry.
func (s codecSet) filter(cs []Codec) []Codec {
	var out []Codec
	var seen [128]bool
	for _, c := range cs {
		if c.PayloadType > 127 || seen[c.PayloadType] || !s.accepts(c) {
			continue
		}
		seen[c.PayloadType] = true
		k, _ := lookupKnown(c.Name)
		c.Name = k.name
		out = append(out, c)
	}
	return out
}

// hasAudio reports whether cs holds a codec that carries audio.
func hasAudio(cs []Codec) bool {
	for _, c := range cs {
		if c.isAudio() {
			return true
		}
	}
	return false
}

// find returns the first codec of cs that is the same payload format as c.
func find(cs []Codec, c Codec) (Codec, bool) {
	for _, x := range cs {
		if x.same(c) {
			return x, true
		}
	}
	return Codec{}, false
}

// staticAudioCodecs are the RFC 3551 §6 static audio payload types that may
// appear in an m= line without an a=rtpmap.
var staticAudioCodecs = map[uint8]Codec{
	0:  {PayloadType: 0, Name: "PCMU", ClockRate: 8000},
	3:  {PayloadType: 3, Name: "GSM", ClockRate: 8000},
	4:  {PayloadType: 4, Name: "G723", ClockRate: 8000},
	8:  {PayloadType: 8, Name: "PCMA", ClockRate: 8000},
	9:  {PayloadType: 9, Name: "G722", ClockRate: 8000},
	13: {PayloadType: 13, Name: "CN", ClockRate: 8000},
	18: {PayloadType: 18, Name: "G729", ClockRate: 8000},
}

// ParseCodecs returns the codecs of the first active audio stream (m=audio
// with a non-zero port) of an SDP body, plain RTP or WebRTC alike, in the
// order of its m= line. Static payload types without a=rtpmap get their
// RFC 3551 names; dynamic payload types without a=rtpmap are skipped. It
// returns an error wrapping [ErrInvalidSDP] when the body does not parse or
// has no active audio stream.
func ParseCodecs(sdpBody string) ([]Codec, error) {
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(sdpBody); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidSDP, err)
	}
	for _, m := range sd.MediaDescriptions {
		if m.MediaName.Media == "audio" && m.MediaName.Port.Value != 0 {
			return mediaCodecs(m), nil
		}
	}
	return nil, fmt.Errorf("%w: no active audio stream", ErrInvalidSDP)
}

// mediaCodecs reads the payload formats of one m= section.
func mediaCodecs(m *sdp.MediaDescription) []Codec {
	rtpmap := map[uint8]Codec{}
	fmtp := map[uint8]string{}
	for _, a := range m.Attributes {
		switch a.Key {
		case "rtpmap":
			// a=rtpmap:<payload type> <encoding name>/<clock rate>[/<channels>]
			ptStr, enc, ok := strings.Cut(a.Value, " ")
			pt, err := strconv.ParseUint(ptStr, 10, 7)
			if !ok || err != nil {
				continue
			}
			parts := strings.Split(strings.TrimSpace(enc), "/")
			if len(parts) < 2 || parts[0] == "" {
				continue
			}
			rate, err := strconv.ParseUint(parts[1], 10, 32)
			if err != nil {
				continue
			}
			c := Codec{PayloadType: uint8(pt), Name: parts[0], ClockRate: uint32(rate)}
			if len(parts) > 2 {
				if ch, err := strconv.ParseUint(parts[2], 10, 16); err == nil {
					c.Channels = uint16(ch)
				}
			}
			rtpmap[c.PayloadType] = c
		case "fmtp":
			ptStr, params, ok := strings.Cut(a.Value, " ")
			if pt, err := strconv.ParseUint(ptStr, 10, 7); ok && err == nil {
				fmtp[uint8(pt)] = strings.TrimSpace(params)
			}
		}
	}
	var out []Codec
	for _, f := range m.MediaName.Formats {
		pt, err := strconv.ParseUint(f, 10, 7)
		if err != nil {
			continue
		}
		c, ok := rtpmap[uint8(pt)]
		if !ok {
			if c, ok = staticAudioCodecs[uint8(pt)]; !ok {
				continue
			}
		}
		c.Fmtp = fmtp[c.PayloadType]
		out = append(out, c)
	}
	return out
}

// ptEntry is where packets of one payload type go: the payload type on the
// other side and its clock rate.
type ptEntry struct {
	pt    uint8
	ok    bool
	clock uint32
}

// ptMaps translates payload type numbers between the browser side and the
// plain (relay) side of a bridge. It is built once negotiation is complete
// and not changed afterwards, so the forwarding goroutines read it without
// locking.
type ptMaps struct {
	toPlain   [128]ptEntry // indexed by the browser's payload type
	toBrowser [128]ptEntry // indexed by the plain side's payload type
}

// negotiate matches the browser side's codecs with the plain side's. answer
// holds the codecs of the SDP answer, whichever side wrote it: the payload
// types both ends use (RFC 3264 §6.1). offer holds the offer's codecs, whose
// numbers a browser may also send with. It returns the payload type maps and
// the negotiated codecs in the plain side's numbering, in the answer's order.
func negotiate(plain, answer, offer []Codec) (*ptMaps, []Codec) {
	m := &ptMaps{}
	var negotiated []Codec
	for _, a := range answer {
		p, ok := find(plain, a)
		if !ok || m.toBrowser[p.PayloadType].ok {
			continue
		}
		m.toBrowser[p.PayloadType] = ptEntry{pt: a.PayloadType, ok: true, clock: a.ClockRate}
		negotiated = append(negotiated, p)
	}
	for _, list := range [][]Codec{answer, offer} {
		for _, c := range list {
			p, ok := find(negotiated, c)
			if !ok || m.toPlain[c.PayloadType].ok {
				continue
			}
			m.toPlain[c.PayloadType] = ptEntry{pt: p.PayloadType, ok: true, clock: p.ClockRate}
		}
	}
	return m, negotiated
}

// PlainAudioSDP returns an SDP body for a plain RTP/AVP audio stream at addr
// with codecs (RFC 8866, RFC 3264): what a browser's call looks like to a
// phone, for example the offer built from
// w.Bridgeable(ParseCodecs(browserOffer)) with addr the phone-facing leg's
// [Leg.Addr]. sessionID and version fill the o= line; a re-offer keeps the
// ID and increments the version (RFC 3264 §8).
func PlainAudioSDP(addr netip.AddrPort, codecs []Codec, sessionID, version uint64) string {
	ipv := "IP4"
	if addr.Addr().Is6() && !addr.Addr().Is4In6() {
		ipv = "IP6"
	}
	ip := addr.Addr().Unmap().String()
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\no=switchboard %d %d IN %s %s\r\ns=switchboard\r\nc=IN %s %s\r\nt=0 0\r\n",
		sessionID, version, ipv, ip, ipv, ip)
	fmt.Fprintf(&b, "m=audio %d RTP/AVP", addr.Port())
	for _, c := range codecs {
		fmt.Fprintf(&b, " %d", c.PayloadType)
	}
	b.WriteString("\r\n")
	for _, c := range codecs {
		fmt.Fprintf(&b, "a=rtpmap:%d %s\r\n", c.PayloadType, c)
		if c.Fmtp != "" {
			fmt.Fprintf(&b, "a=fmtp:%d %s\r\n", c.PayloadType, c.Fmtp)
		}
	}
	b.WriteString("a=sendrecv\r\n")
	return b.String()
}
