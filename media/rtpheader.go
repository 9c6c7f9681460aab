package media

import "encoding/binary"

// rtpHeader holds the fixed RTP header fields the relay needs for statistics
// (RFC 3550 §5.1).
type rtpHeader struct {
	payloadType uint8
	seq         uint16
	timestamp   uint32
	ssrc        uint32
}

// Header sizes and flags from RFC 3550 §5.1 and §6.4.1.
const (
	rtpVersion        = 2
	rtpFixedHeaderLen = 12
	rtcpHeaderLen     = 4
)

// packetKind classifies a datagram that arrived on an RTP port.
type packetKind uint8

const (
	kindInvalid packetKind = iota
	kindRTP
	kindRTCP // RTCP multiplexed on the RTP port (RFC 5761 §4)
)

// classifyRTP checks that b is a well-formed RTP packet (version 2, CSRC list,
// header extension and padding all within the datagram, RFC 3550 §5.1 and
// §5.3.1) or an RTCP packet multiplexed onto the RTP port (RFC 5761 §4: the
// second octet is 192-223). It reads only the header and never allocates, so
// it is cheap enough for the forwarding path and rejects STUN, DTLS and junk.
func classifyRTP(b []byte) (rtpHeader, packetKind) {
	if len(b) < rtcpHeaderLen || b[0]>>6 != rtpVersion {
		return rtpHeader{}, kindInvalid
	}
	if b[1] >= 192 && b[1] <= 223 {
		return rtpHeader{}, kindRTCP
	}
	if len(b) < rtpFixedHeaderLen {
		return rtpHeader{}, kindInvalid
	}
	n := rtpFixedHeaderLen + 4*int(b[0]&0x0f) // CSRC list
	if b[0]&0x10 != 0 {
		// Header extension, RFC 3550 §5.3.1.
		if len(b) < n+4 {
			return rtpHeader{}, kindInvalid
		}
		n += 4 + 4*int(binary.BigEndian.Uint16(b[n+2:]))
	}
	if len(b) < n {
		return rtpHeader{}, kindInvalid
	}
	if b[0]&0x20 != 0 { // padding: the last octet counts itself and the padding
		pad := int(b[len(b)-1])
		if pad == 0 || len(b)-n < pad {
			return rtpHeader{}, kindInvalid
		}
	}
	return rtpHeader{
		payloadType: b[1] & 0x7f,
		seq:         binary.BigEndian.Uint16(b[2:]),
		timestamp:   binary.BigEndian.Uint32(b[4:]),
		ssrc:        binary.BigEndian.Uint32(b[8:]),
	}, kindRTP
}

// isRTCP reports whether b starts like an RTCP packet: version 2, a packet
// type in the RTCP range 192-223 (RFC 5761 §4) and at least one header.
func isRTCP(b []byte) bool {
	return len(b) >= rtcpHeaderLen && b[0]>>6 == rtpVersion && b[1] >= 192 && b[1] <= 223
}
