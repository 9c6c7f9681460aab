package media

import (
	"math"
	"net/netip"
	"sync/atomic"
	"time"
)

// LegStats is a snapshot of one leg's counters, returned by [Leg.Stats].
type LegStats struct {
	// PacketsIn and BytesIn count RTP packets (and their UDP payload bytes)
	// accepted from this leg's peer.
	PacketsIn, BytesIn uint64
	// PacketsOut and BytesOut count RTP packets (and bytes) sent to this leg's
	// peer.
	PacketsOut, BytesOut uint64
	// RTCPPacketsIn and RTCPPacketsOut count RTCP packets received from and
	// sent to this leg's peer, on the RTCP port or multiplexed on the RTP port
	// (RFC 5761).
	RTCPPacketsIn, RTCPPacketsOut uint64
	// Dropped counts datagrams that arrived on this leg's ports and were not
	// forwarded: not RTP/RTCP version 2, oversized, from a source other than
	// the latched one (which stops RTP injection), no destination known yet
	// on the other leg, or a failed send, or SRTP that failed to decrypt.
	Dropped uint64
	// SRTPFailed counts SRTP and SRTCP packets from the peer that failed
	// authentication or replay checks (see [Leg.SetSRTP]); they are also in
	// Dropped.
	SRTPFailed uint64
	// Lost is the cumulative number of RTP packets lost from the peer, computed
	// from sequence numbers as in RFC 3550 §A.3 (expected minus received,
	// sequence wrap handled, never negative). It adds up across SSRC changes
	// and sequence restarts.
	Lost uint64
	// Jitter is the interarrival jitter of the peer's RTP stream in
	// milliseconds (RFC 3550 §6.4.1, computed as in §A.8). The RTP clock rate
	// comes from [Leg.SetClockRate], the static payload types of RFC 3551, or
	// 8000 Hz.
	Jitter float64
	// LastPacket is when the last RTP or RTCP packet was accepted from the peer;
	// zero if none has been.
	LastPacket time.Time
	// Latched is where RTP is sent to now: the source of the peer's packets once
	// one arrived, otherwise the SDP address given to [Leg.SetRemote]; zero if
	// neither is known.
	Latched netip.AddrPort
	// LatchedFromPeer reports whether Latched was learned from a received
	// packet (true) or comes from SDP (false).
	LatchedFromPeer bool
	// LatchedRTCP is where RTCP is sent to now, chosen like Latched.
	LatchedRTCP netip.AddrPort
}

// RFC 3550 §A.1 constants.
const (
	seqMod      = 1 << 16
	maxDropout  = 3000
	maxMisorder = 100
)

// rxStats keeps receiver statistics for one RTP stream: sequence number
// tracking (RFC 3550 §A.1), loss (§A.3) and interarrival jitter (§6.4.1,
// §A.8). update must be called from one goroutine only; the published values
// (lost, jitter) may be read concurrently.
//
// Unlike §A.1 there is no probation period: the first packet initialises the
// state, since a relay has no use for delaying statistics.
type rxStats struct {
	started    bool
	ssrc       uint32
	baseSeq    uint16
	maxSeq     uint16
	badSeq     uint32 // seqMod+1 when unset, so that it never equals a uint16
	cycles     uint64 // wraps of the sequence number, times seqMod
	received   uint64
	lostBefore uint64 // loss carried over from earlier SSRCs or restarts

	haveTransit bool
	transit     uint32  // arrival minus RTP timestamp, in timestamp units
	clock       uint32  // clock rate transit was measured with
	jitter      float64 // milliseconds

	lost     atomic.Uint64
	jitterMS atomic.Uint64 // math.Float64bits of jitter
}

// restart begins a new sequence at seq (RFC 3550 §A.1 init_seq), keeping the
// loss counted so far.
func (s *rxStats) restart(seq uint16, ssrc uint32) {
	s.lostBefore += s.runLost()
	s.started = true
	s.ssrc = ssrc
	s.baseSeq = seq
	s.maxSeq = seq
	s.badSeq = seqMod + 1
	s.cycles = 0
	s.received = 0
	s.haveTransit = false
}

// runLost returns the loss since the last restart: expected minus received,
// clamped at zero because duplicates can make it negative (RFC 3550 §A.3).
func (s *rxStats) runLost() uint64 {
	if !s.started {
		return 0
	}
	expected := s.cycles + uint64(s.maxSeq) + 1 - uint64(s.baseSeq)
	if s.received >= expected {
		return 0
	}
	return expected - s.received
}

// update accounts for one RTP packet that arrived at arrival (on any
// monotonic time base) with a clock rate of clock Hz.
func (s *rxStats) update(h rtpHeader, arrival time.Duration, clock uint32) {
	if !s.started || h.ssrc != s.ssrc {
		s.restart(h.seq, h.ssrc)
	} else if ok := s.updateSeq(h.seq); !ok {
		return
	}
	s.received++
	s.lost.Store(s.lostBefore + s.runLost())
	s.updateJitter(h.timestamp, arrival, clock)
}

// updateSeq is RFC 3550 §A.1 update_seq after the first packet. It reports
// whether the packet counts as received.
func (s *rxStats) updateSeq(seq uint16) bool {
	udelta := seq - s.maxSeq
	switch {
	case udelta < maxDropout:
		// In order, with a permissible gap.
		if seq < s.maxSeq {
			s.cycles += seqMod
		}
		s.maxSeq = seq
	case udelta <= seqMod-maxMisorder:
		// A very large jump. Two sequential packets mean the sender
		// restarted its sequence without telling us: re-sync.
		if uint32(seq) != s.badSeq {
			s.badSeq = uint32(seq+1) & (seqMod - 1)
			return false
		}
		s.restart(seq, s.ssrc)
	default:
		// A duplicate or reordered packet.
	}
	return true
}

// updateJitter is RFC 3550 §A.8: J += (|D(i-1,i)| - J) / 16, with D the
// difference in transit time of consecutive packets.
func (s *rxStats) updateJitter(ts uint32, arrival time.Duration, clock uint32) {
	if clock == 0 {
		clock = defaultClockRate
	}
	transit := rtpUnits(arrival, clock) - ts
	if s.haveTransit && s.clock == clock {
		d := int64(int32(transit - s.transit))
		if d < 0 {
			d = -d
		}
		dMS := float64(d) * 1000 / float64(clock)
		s.jitter += (dMS - s.jitter) / 16
		s.jitterMS.Store(math.Float64bits(s.jitter))
	}
	s.transit = transit
	s.clock = clock
	s.haveTransit = true
}

// rtpUnits converts a duration to RTP timestamp units at clock Hz, modulo
// 2^32 like RTP timestamps, without overflowing for long uptimes.
func rtpUnits(d time.Duration, clock uint32) uint32 {
	ns := uint64(d)
	sec, frac := ns/uint64(time.Second), ns%uint64(time.Second)
	return uint32(sec*uint64(clock) + frac*uint64(clock)/uint64(time.Second))
}

// lostPackets returns the published loss.
func (s *rxStats) lostPackets() uint64 { return s.lost.Load() }

// jitterMillis returns the published jitter in milliseconds.
func (s *rxStats) jitterMillis() float64 { return math.Float64frombits(s.jitterMS.Load()) }
