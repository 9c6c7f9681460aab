package media

import (
	"net/netip"
	"sync/atomic"
)

// target is where one socket of a leg sends to. Targets are immutable once
// published, so the forwarding path reads them with one atomic load and
// allocates nothing; a new target is allocated only when latching state
// changes (SDP from signalling, or the first packet after it).
type target struct {
	addr netip.AddrPort
	// latched is true when addr is the source of a packet received from the
	// peer, false when it comes from SDP.
	latched bool
}

// latch implements symmetric latching for one socket (RTP or RTCP) of a leg:
// send to the SDP address until the peer's first packet, then to that
// packet's source, and accept packets only from there.
type latch struct {
	dst atomic.Pointer[target] // nil: nothing known, packets have nowhere to go
}

// accept decides whether a packet from src is the peer's. The first packet
// after the latch was (re)opened is accepted and its source becomes the
// target; later packets are accepted only from that source. latchedNow
// reports that this packet set the latch.
func (l *latch) accept(src netip.AddrPort) (ok, latchedNow bool) {
	for {
		t := l.dst.Load()
		if t != nil && t.latched {
			return t.addr == src, false
		}
		if l.dst.CompareAndSwap(t, &target{addr: src, latched: true}) {
			return true, true
		}
		// Signalling replaced the target meanwhile; decide again.
	}
}

// reset re-opens the latch with addr from SDP, or with no address when addr
// is not usable as a destination.
func (l *latch) reset(addr netip.AddrPort) {
	if !usableRemote(addr) {
		l.dst.Store(nil)
		return
	}
	l.dst.Store(&target{addr: addr})
}

// current returns the target, the zero value when there is none.
func (l *latch) current() target {
	if t := l.dst.Load(); t != nil {
		return *t
	}
	return target{}
}

// addr returns the target address, the zero value when there is none.
func (l *latch) addr() netip.AddrPort {
	if t := l.dst.Load(); t != nil {
		return t.addr
	}
	return netip.AddrPort{}
}

// usableRemote reports whether addr can be sent to. SDP uses port 0 for a
// rejected stream (RFC 3264 §6) and older phones put the unspecified address
// on hold (RFC 3264 §8.4); neither names a destination.
func usableRemote(addr netip.AddrPort) bool {
	return addr.IsValid() && addr.Port() != 0 && !addr.Addr().IsUnspecified() && !addr.Addr().IsMulticast()
}

// normalize unmaps IPv4-mapped IPv6 addresses, so that addresses from SDP
// compare equal to packet sources on IPv4 sockets.
func normalize(addr netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
}
