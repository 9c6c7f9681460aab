package main

import (
	"net/netip"

	"github.com/switchboard/switchboard/media"
	"github.com/switchboard/switchboard/sip"
)

// relayAdapter lets the signalling plane use the media relay through the
// small interface it declares (sip.Relay), keeping the packages apart.
type relayAdapter struct{ r *media.Relay }

var _ sip.Relay = relayAdapter{}

func (a relayAdapter) Open(callID string) (sip.MediaSession, error) {
	s, err := a.r.NewSession(callID)
	if err != nil {
		return nil, err
	}
	return sessionAdapter{s: s, addr: a.r.AdvertisedAddr()}, nil
}

type sessionAdapter struct {
	s    *media.Session
	addr netip.Addr
}

func (a sessionAdapter) leg(l sip.Leg) *media.Leg {
	if l == sip.LegA {
		return a.s.A()
	}
	return a.s.B()
}

func (a sessionAdapter) Addr() netip.Addr      { return a.addr }
func (a sessionAdapter) Port(l sip.Leg) int    { return a.leg(l).Port() }
func (a sessionAdapter) Done() <-chan struct{} { return a.s.Done() }
func (a sessionAdapter) TimedOut() bool        { return a.s.TimedOut() }
func (a sessionAdapter) Close() error          { return a.s.Close() }

func (a sessionAdapter) SetRemote(l sip.Leg, rtp, rtcp netip.AddrPort) {
	leg := a.leg(l)
	if rtp.IsValid() {
		leg.SetRemote(rtp)
	}
	if rtcp.IsValid() {
		leg.SetRemoteRTCP(rtcp)
	}
}

func (a sessionAdapter) Stats(l sip.Leg) sip.MediaStats {
	st := a.leg(l).Stats()
	return sip.MediaStats{
		PacketsIn: st.PacketsIn, PacketsOut: st.PacketsOut, BytesIn: st.BytesIn, BytesOut: st.BytesOut,
		Lost: st.Lost, JitterMS: st.Jitter, LastPacket: st.LastPacket, Latched: st.Latched,
	}
}
