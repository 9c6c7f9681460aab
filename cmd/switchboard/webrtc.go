package main

import (
	"context"
	"errors"
	"hash/fnv"
	"net/netip"
	"strings"

	"github.com/switchboard/switchboard/media"
	"github.com/switchboard/switchboard/sip"
)

// browserSession is a relay session whose legs can face browsers: it
// implements sip.BrowserMedia over media.WebRTC.
type browserSession struct {
	*sessionAdapter
	w *media.WebRTC
}

var _ sip.BrowserMedia = (*browserSession)(nil)

// sessionID numbers the o= lines of the SDP bodies of one call.
func (b *browserSession) sessionID() uint64 {
	h := fnv.New64a()
	h.Write([]byte(b.s.CallID()))
	return h.Sum64() >> 1 // o= session IDs are decimal and must fit 63 bits
}

// addr is where the far side of leg l sends: the advertised address and
// the leg's port.
func (b *browserSession) addrOf(l sip.Leg) netip.AddrPort {
	return netip.AddrPortFrom(b.addr, uint16(b.leg(l).Port()))
}

// phoneCodecs are the payload formats offered to phones for a browser's
// call: G.711 (and G.722) reach every desk phone without transcoding.
func phoneCodecs(cs []media.Codec) []media.Codec {
	var out []media.Codec
	for _, c := range cs {
		if !strings.EqualFold(c.Name, "opus") {
			out = append(out, c)
		}
	}
	return out
}

func (b *browserSession) PlainOffer(browserOffer []byte, l sip.Leg, version uint64) ([]byte, error) {
	cs, err := media.ParseCodecs(string(browserOffer))
	if err != nil {
		return nil, err
	}
	cs = phoneCodecs(b.w.Bridgeable(cs))
	if !hasAudioCodec(cs) {
		return nil, media.ErrNoCommonCodec
	}
	return []byte(media.PlainAudioSDP(b.addrOf(l), cs, b.sessionID(), version)), nil
}

func hasAudioCodec(cs []media.Codec) bool {
	for _, c := range cs {
		if !strings.EqualFold(c.Name, "telephone-event") && !strings.EqualFold(c.Name, "CN") {
			return true
		}
	}
	return false
}

func (b *browserSession) OfferBrowser(ctx context.Context, l sip.Leg, peerSDP []byte) (sip.BrowserLeg, []byte, error) {
	cs, err := media.ParseCodecs(string(peerSDP))
	if err != nil {
		return nil, nil, err
	}
	br, offer, err := b.w.Offer(ctx, b.leg(l), cs)
	if err != nil {
		return nil, nil, err
	}
	b.onClose(br.Close)
	return &browserLeg{s: b, br: br, other: 1 - l}, []byte(offer), nil
}

func (b *browserSession) AnswerBrowser(ctx context.Context, l sip.Leg, offer, peerSDP []byte) (sip.BrowserLeg, []byte, error) {
	cs, err := media.ParseCodecs(string(peerSDP))
	if err != nil {
		return nil, nil, err
	}
	br, answer, err := b.w.Answer(ctx, string(offer), b.leg(l), cs)
	if err != nil {
		return nil, nil, err
	}
	b.onClose(br.Close)
	return &browserLeg{s: b, br: br, other: 1 - l}, []byte(answer), nil
}

// browserLeg is one bridge, with the leg on the other side of the call.
type browserLeg struct {
	s     *browserSession
	br    *media.Bridge
	other sip.Leg
}

func (l *browserLeg) Accept(answer []byte, version uint64) ([]byte, error) {
	if err := l.br.Accept(string(answer)); err != nil {
		return nil, err
	}
	l.br.Attach()
	cs := l.br.Codecs()
	if len(cs) == 0 {
		return nil, errors.New("webrtc: no codec negotiated")
	}
	return []byte(media.PlainAudioSDP(l.s.addrOf(l.other), cs, l.s.sessionID(), version)), nil
}

func (l *browserLeg) Renegotiate(ctx context.Context, offer []byte) ([]byte, error) {
	answer, err := l.br.Renegotiate(ctx, string(offer))
	return []byte(answer), err
}

func (l *browserLeg) AnswerPeer(offer []byte, direction string, version uint64) ([]byte, error) {
	cs, err := l.br.Reoffered(string(offer))
	if err != nil {
		return nil, err
	}
	d := media.Direction(direction)
	l.br.SetPlainDirection(d)
	return []byte(media.PlainAudioSDPDirection(l.s.addrOf(l.other), cs, l.s.sessionID(), version, d.Answer())), nil
}

func (l *browserLeg) Done() <-chan struct{} { return l.br.Done() }
func (l *browserLeg) Close() error          { return l.br.Close() }

// webrtcConfig is the browser bridge's configuration: ICE candidates on
// the media address (and the public one behind NAT), on one shared port
// when media.webrtc_port is set.
func webrtcConfig(m media.Config, muxPort int) media.WebRTCConfig {
	return media.WebRTCConfig{Address: m.Address, PublicAddress: m.PublicAddress, MuxPort: muxPort}
}
