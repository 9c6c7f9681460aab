package main

import (
	"net/netip"
	"sync"

	"github.com/switchboard/switchboard/media"
	"github.com/switchboard/switchboard/sip"
)

// relayAdapter lets the signalling plane use the media relay through the
// small interface it declares (sip.Relay), keeping the packages apart. With
// a WebRTC bridge its sessions also carry browsers' media (sip.BrowserMedia).
type relayAdapter struct {
	r *media.Relay
	w *media.WebRTC // nil: no browser calls
}

var _ sip.Relay = relayAdapter{}

func (a relayAdapter) Open(callID string) (sip.MediaSession, error) {
	s, err := a.r.NewSession(callID)
	if err != nil {
		return nil, err
	}
	// The media timeout waits for the answer (sip.Relay).
	s.HoldTimeout()
	sa := &sessionAdapter{s: s, addr: a.r.AdvertisedAddr()}
	if a.w == nil {
		return sa, nil
	}
	return &browserSession{sessionAdapter: sa, w: a.w}, nil
}

type sessionAdapter struct {
	s    *media.Session
	addr netip.Addr

	mu      sync.Mutex
	closers []func() error // run by Close before the ports are released
}

func (a *sessionAdapter) leg(l sip.Leg) *media.Leg {
	if l == sip.LegA {
		return a.s.A()
	}
	return a.s.B()
}

func (a *sessionAdapter) Addr() netip.Addr      { return a.addr }
func (a *sessionAdapter) Port(l sip.Leg) int    { return a.leg(l).Port() }
func (a *sessionAdapter) Done() <-chan struct{} { return a.s.Done() }
func (a *sessionAdapter) TimedOut() bool        { return a.s.TimedOut() }
func (a *sessionAdapter) StartTimeout()         { a.s.StartTimeout() }

func (a *sessionAdapter) Close() error {
	a.mu.Lock()
	closers := a.closers
	a.closers = nil
	a.mu.Unlock()
	for _, c := range closers {
		_ = c()
	}
	return a.s.Close()
}

func (a *sessionAdapter) onClose(f func() error) {
	a.mu.Lock()
	a.closers = append(a.closers, f)
	a.mu.Unlock()
}

func (a *sessionAdapter) SetRemote(l sip.Leg, rtp, rtcp netip.AddrPort) {
	leg := a.leg(l)
	if rtp.IsValid() {
		leg.SetRemote(rtp)
	}
	if rtcp.IsValid() {
		leg.SetRemoteRTCP(rtcp)
	}
}

// SetSRTP makes leg terminate SRTP (see media.Leg.SetSRTP).
func (a *sessionAdapter) SetSRTP(l sip.Leg, suite string, remoteKey, localKey []byte) error {
	return a.leg(l).SetSRTP(suite, remoteKey, localKey)
}

func (a *sessionAdapter) Stats(l sip.Leg) sip.MediaStats {
	st := a.leg(l).Stats()
	return sip.MediaStats{
		PacketsIn: st.PacketsIn, PacketsOut: st.PacketsOut, BytesIn: st.BytesIn, BytesOut: st.BytesOut,
		Lost: st.Lost, JitterMS: st.Jitter, LastPacket: st.LastPacket, Latched: st.Latched,
	}
}
