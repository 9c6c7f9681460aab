package media

import (
	"fmt"
	"net/netip"
	"strings"
)

// The plain side of a bridge (a phone) may change its session within the
// call: hold, resume, a session refresh, a new address (RFC 3264 §8). The
// bridge answers for the browser, which is not asked: its peer connection
// stays sendrecv, and the bridge forwards only what the phone's direction
// lets through.

// Direction is an SDP stream direction attribute (RFC 3264 §5.1):
// "sendrecv", "sendonly", "recvonly" or "inactive".
type Direction string

// The stream directions.
const (
	SendRecv Direction = "sendrecv"
	SendOnly Direction = "sendonly"
	RecvOnly Direction = "recvonly"
	Inactive Direction = "inactive"
)

// Answer returns the direction that answers an offer in direction d
// (RFC 3264 §6.1): sendonly is answered recvonly and recvonly sendonly.
// Anything unknown is taken as sendrecv.
func (d Direction) Answer() Direction {
	switch d {
	case SendOnly:
		return RecvOnly
	case RecvOnly:
		return SendOnly
	case Inactive:
		return Inactive
	}
	return SendRecv
}

// sends reports whether the side that wrote d sends media, and receives
// whether it wants to receive it.
func (d Direction) sends() bool    { return d != RecvOnly && d != Inactive }
func (d Direction) receives() bool { return d != SendOnly && d != Inactive }

// Reoffered checks a new offer from the plain side within the call against
// the codecs in use ([Bridge.Codecs]) and returns those it still lists
// with the same payload types: what to answer it with. It returns
// [ErrNoCommonCodec] when the offer drops every audio codec in use, a
// change the browser's side would have to renegotiate.
func (b *Bridge) Reoffered(offerSDP string) ([]Codec, error) {
	offered, err := ParseCodecs(offerSDP)
	if err != nil {
		return nil, err
	}
	var keep []Codec
	for _, n := range b.Codecs() {
		for _, o := range offered {
			if o.PayloadType == n.PayloadType && o.same(n) {
				keep = append(keep, n)
				break
			}
		}
	}
	if !hasAudio(keep) {
		return nil, fmt.Errorf("%w: the offer no longer lists the codec in use with the browser", ErrNoCommonCodec)
	}
	return keep, nil
}

// SetPlainDirection applies the direction of the plain side's latest
// offer or answer: RTP goes to the leg only while the plain side wants to
// receive and to the browser only while it sends (a phone on hold may
// play music). RTCP keeps flowing both ways (RFC 3264 §5.1), which also
// keeps the relay's media timeout from ending a held call.
func (b *Bridge) SetPlainDirection(d Direction) {
	var held uint32
	if !d.receives() {
		held |= holdToLeg
	}
	if !d.sends() {
		held |= holdToBrowser
	}
	if b.held.Swap(held) != held {
		b.log.Info("webrtc bridge direction", "plain_side", string(d))
	}
}

// Bits of Bridge.held: the directions in which RTP is withheld.
const (
	holdToLeg     = 1 << iota // the browser's RTP to the phone
	holdToBrowser             // the phone's RTP to the browser
)

// PlainAudioSDPDirection is [PlainAudioSDP] with direction d instead of
// sendrecv.
func PlainAudioSDPDirection(addr netip.AddrPort, codecs []Codec, sessionID, version uint64, d Direction) string {
	body := PlainAudioSDP(addr, codecs, sessionID, version)
	if d == SendRecv || d == "" {
		return body
	}
	return strings.Replace(body, "a=sendrecv\r\n", "a="+string(d)+"\r\n", 1)
}
