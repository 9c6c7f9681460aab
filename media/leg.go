package media

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"golang.org/x/sys/cpu"
)

// readBufferSize is the size of each socket reader's buffer. Datagrams that
// fill it completely may have been truncated and are dropped, so the largest
// relayed datagram is readBufferSize-1 bytes, far above an RTP packet on any
// real MTU.
const readBufferSize = 2048

// Leg is one side of a [Session]: a pair of relay sockets (RTP on an even
// port, RTCP on the next odd port) facing one peer. Its methods are safe for
// concurrent use.
type Leg struct {
	sess  *Session
	other *Leg
	name  string // "a" or "b", for logs
	port  int
	log   *slog.Logger

	rtpConn, rtcpConn *net.UDPConn
	rtpFD, rtcpFD     int // their descriptors when the reader pool reads them, else -1
	rtp, rtcp         latch

	clockRates [128]atomic.Uint32 // set by SetClockRate; 0 = default

	srtp atomic.Pointer[srtpLeg] // nil: plain RTP; see SetSRTP

	// Written by this leg's own readers.
	rx         rxStats // RTP reader only
	packetsIn  atomic.Uint64
	bytesIn    atomic.Uint64
	rtcpIn     atomic.Uint64
	dropped    atomic.Uint64
	srtpFailed atomic.Uint64
	lastPacket atomic.Int64 // relay clock, 0 = never
	_          cpu.CacheLinePad
	// Written by the other leg's readers, on another core: kept on another
	// cache line so the two directions do not contend.
	packetsOut    atomic.Uint64
	bytesOut      atomic.Uint64
	rtcpOut       atomic.Uint64
	sendErrLogged atomic.Bool
}

// Port returns the local RTP port, which is even; RTCP uses Port()+1.
func (l *Leg) Port() int { return l.port }

// Addr returns the address and RTP port to advertise in SDP for this leg.
func (l *Leg) Addr() netip.AddrPort {
	return netip.AddrPortFrom(l.sess.relay.AdvertisedAddr(), uint16(l.port))
}

// SetRemote sets the peer's RTP address from its SDP (c= and m= lines) and
// its RTCP address to the next port (RFC 3550 §11); call [Leg.SetRemoteRTCP]
// afterwards when the SDP has an a=rtcp attribute (RFC 3605). It may be
// called again, for a re-INVITE: latching re-opens, so media goes to the new
// address until the next packet from the peer, whose source is latched.
//
// An address that cannot be sent to (port 0 for a rejected stream, the
// unspecified address used for hold) leaves the leg without a destination
// until the peer sends.
func (l *Leg) SetRemote(rtp netip.AddrPort) {
	rtp = normalize(rtp)
	l.rtp.reset(rtp)
	rtcp := netip.AddrPort{}
	if usableRemote(rtp) && rtp.Port() < 65535 {
		rtcp = netip.AddrPortFrom(rtp.Addr(), rtp.Port()+1)
	}
	l.rtcp.reset(rtcp)
	l.log.Debug("media remote set", "leg", l.name, "rtp", rtp.String(), "rtcp", rtcp.String())
}

// SetRemoteRTCP sets the peer's RTCP address, overriding the one derived by
// [Leg.SetRemote], and re-opens RTCP latching.
func (l *Leg) SetRemoteRTCP(rtcp netip.AddrPort) {
	rtcp = normalize(rtcp)
	l.rtcp.reset(rtcp)
	l.log.Debug("media remote rtcp set", "leg", l.name, "rtcp", rtcp.String())
}

// SetClockRate sets the RTP clock rate of a payload type for jitter
// computation, for dynamic payload types from SDP a=rtpmap (for example 48000
// for Opus). A rate of 0 restores the default: the static payload types of
// RFC 3551, otherwise 8000 Hz. Payload types above 127 are ignored.
func (l *Leg) SetClockRate(payloadType uint8, hz uint32) {
	if int(payloadType) < len(l.clockRates) {
		l.clockRates[payloadType].Store(hz)
	}
}

// clockRate returns the RTP clock rate for a payload type (0-127).
func (l *Leg) clockRate(pt uint8) uint32 {
	if hz := l.clockRates[pt&0x7f].Load(); hz != 0 {
		return hz
	}
	if hz := staticClockRates[pt&0x7f]; hz != 0 {
		return hz
	}
	return defaultClockRate
}

// Stats returns a snapshot of the leg's counters. It is safe for concurrent
// use with forwarding.
func (l *Leg) Stats() LegStats {
	st := LegStats{
		PacketsIn:      l.packetsIn.Load(),
		BytesIn:        l.bytesIn.Load(),
		PacketsOut:     l.packetsOut.Load(),
		BytesOut:       l.bytesOut.Load(),
		RTCPPacketsIn:  l.rtcpIn.Load(),
		RTCPPacketsOut: l.rtcpOut.Load(),
		Dropped:        l.dropped.Load(),
		SRTPFailed:     l.srtpFailed.Load(),
		Lost:           l.rx.lostPackets(),
		Jitter:         l.rx.jitterMillis(),
		LatchedRTCP:    l.rtcpTarget(),
	}
	if last := l.lastPacket.Load(); last != 0 {
		st.LastPacket = l.sess.relay.epoch.Add(time.Duration(last))
	}
	t := l.rtp.current()
	st.Latched, st.LatchedFromPeer = t.addr, t.latched
	return st
}

// rtcpTarget returns where RTCP goes: the RTCP latch, or, when neither SDP
// nor an RTCP packet named one, the port after the latched RTP source.
func (l *Leg) rtcpTarget() netip.AddrPort {
	if addr := l.rtcp.addr(); addr.IsValid() {
		return addr
	}
	if t := l.rtp.dst.Load(); t != nil && t.latched && t.addr.Port() < 65535 {
		return netip.AddrPortFrom(t.addr.Addr(), t.addr.Port()+1)
	}
	return netip.AddrPort{}
}

// serve reads one of the leg's sockets until it is closed, forwarding what
// it reads. It is started by the session and runs in its own goroutine.
func (l *Leg) serve(conn *net.UDPConn, handle func(*Leg, *readerScratch, []byte, netip.AddrPort, time.Duration)) {
	defer l.sess.wg.Done()
	buf := make([]byte, readBufferSize)
	var sc readerScratch
	failures := 0
	for {
		n, src, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Reads on an unconnected UDP socket fail only transiently
			// (ICMP errors on some systems); back off so a persistent
			// error cannot spin, and log once per streak.
			failures++
			if failures == 1 {
				l.log.Warn("media read failed", "leg", l.name, "local", conn.LocalAddr().String(), "error", err)
			}
			if failures > 3 {
				time.Sleep(10 * time.Millisecond)
			}
			continue
		}
		failures = 0
		if n >= len(buf) {
			l.dropped.Add(1)
			continue
		}
		handle(l, &sc, buf[:n], src, l.sess.relay.now())
	}
}

// handleRTP processes a datagram read from the RTP socket. On an SRTP leg
// a packet is authenticated before it may latch or count as activity.
func (l *Leg) handleRTP(sc *readerScratch, pkt []byte, src netip.AddrPort, now time.Duration) {
	h, kind := classifyRTP(pkt)
	if kind == kindInvalid {
		l.dropped.Add(1)
		return
	}
	size := len(pkt)
	pkt, ok := l.unprotect(sc, pkt, kind == kindRTCP, true)
	if !ok || !l.acceptFrom(&l.rtp, "rtp", src, now) {
		return
	}
	out := l.other
	if kind == kindRTCP {
		// RTCP multiplexed on the RTP port (RFC 5761) stays multiplexed.
		l.rtcpIn.Add(1)
		if pkt, ok = l.protect(out, sc, pkt, true, true); ok && l.send(out, false, out.rtp.addr(), pkt) {
			out.rtcpOut.Add(1)
		}
		return
	}
	l.packetsIn.Add(1)
	l.bytesIn.Add(uint64(size))
	l.rx.update(h, now, l.clockRate(h.payloadType))
	if pkt, ok = l.protect(out, sc, pkt, false, true); ok && l.send(out, false, out.rtp.addr(), pkt) {
		out.packetsOut.Add(1)
		out.bytesOut.Add(uint64(len(pkt)))
	}
}

// handleRTCP processes a datagram read from the RTCP socket.
func (l *Leg) handleRTCP(sc *readerScratch, pkt []byte, src netip.AddrPort, now time.Duration) {
	if !isRTCP(pkt) {
		l.dropped.Add(1)
		return
	}
	pkt, ok := l.unprotect(sc, pkt, true, false)
	if !ok || !l.acceptFrom(&l.rtcp, "rtcp", src, now) {
		return
	}
	l.rtcpIn.Add(1)
	out := l.other
	if pkt, ok = l.protect(out, sc, pkt, true, false); ok && l.send(out, true, out.rtcpTarget(), pkt) {
		out.rtcpOut.Add(1)
	}
}

// acceptFrom applies symmetric latching to a packet from src and records the
// peer's activity. It counts a rejected packet as dropped.
func (l *Leg) acceptFrom(lt *latch, stream string, src netip.AddrPort, now time.Duration) bool {
	ok, latchedNow := lt.accept(src)
	if !ok {
		l.dropped.Add(1)
		return false
	}
	if latchedNow {
		l.log.Debug("media latched", "leg", l.name, "stream", stream, "remote", src.String())
	}
	l.lastPacket.Store(int64(now))
	return true
}

// send writes pkt to dst out of the RTP or RTCP socket of out, the other
// leg. A packet with no destination (dst is the zero value), or whose write
// fails, is counted as dropped on the receiving leg (l).
func (l *Leg) send(out *Leg, rtcp bool, dst netip.AddrPort, pkt []byte) bool {
	if !dst.IsValid() {
		l.dropped.Add(1)
		return false
	}
	if err := out.write(rtcp, pkt, dst); err != nil {
		l.dropped.Add(1)
		if !errors.Is(err, net.ErrClosed) && l.other.sendErrLogged.CompareAndSwap(false, true) {
			l.log.Warn("media send failed", "leg", l.other.name, "remote", dst.String(), "error", err)
		}
		return false
	}
	return true
}

// write sends pkt to dst out of the leg's RTP or RTCP socket: with a raw
// sendto when the reader pool reads the leg's sockets, else through package
// net.
func (l *Leg) write(rtcp bool, pkt []byte, dst netip.AddrPort) error {
	if p := l.sess.relay.pool; p != nil {
		fd := l.rtpFD
		if rtcp {
			fd = l.rtcpFD
		}
		return p.sendTo(fd, pkt, dst)
	}
	conn := l.rtpConn
	if rtcp {
		conn = l.rtcpConn
	}
	_, err := conn.WriteToUDPAddrPort(pkt, dst)
	return err
}
