package sip

import (
	"net/netip"
	"time"
)

// Leg names one side of a relayed call.
type Leg int

const (
	// LegA faces the caller.
	LegA Leg = 0
	// LegB faces the callee.
	LegB Leg = 1
)

func (l Leg) other() Leg { return 1 - l }

func (l Leg) String() string {
	if l == LegA {
		return "caller"
	}
	return "callee"
}

// Relay is the media plane as calls use it: every call's audio is anchored
// in a relay session. A session's media timeout does not run until
// StartTimeout: a call that rings is bounded by the ring timeout, and only
// an answered call is expected to carry media.
type Relay interface {
	Open(callID string) (MediaSession, error)
}

// MediaSession is the relay state of one call.
type MediaSession interface {
	// Addr is the address to advertise in SDP.
	Addr() netip.Addr
	// Port is the relay's RTP port for leg (RTCP is Port+1).
	Port(leg Leg) int
	// SetRemote tells where leg's peer wants its RTP (from its SDP); rtcp
	// may be invalid to mean RTP port + 1.
	SetRemote(leg Leg, rtp, rtcp netip.AddrPort)
	// Stats reports the counters of leg.
	Stats(leg Leg) MediaStats
	// Done is closed when the session is closed or media timed out.
	Done() <-chan struct{}
	// TimedOut reports whether media stopped both ways for the timeout.
	TimedOut() bool
	// StartTimeout makes the media timeout apply from now on (the call
	// was answered).
	StartTimeout()
	// Close releases the ports; it is idempotent.
	Close() error
}

// MediaStats are one leg's counters.
type MediaStats struct {
	PacketsIn, PacketsOut uint64
	BytesIn, BytesOut     uint64
	Lost                  uint64
	JitterMS              float64
	LastPacket            time.Time
	Latched               netip.AddrPort
}
