package media

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
)

// portPool hands out RTP/RTCP port pairs (an even port and the next odd one,
// RFC 3550 §11) from a fixed range.
//
// Free pairs wait in a FIFO ring: allocation takes from the head and release
// appends to the tail, so both are O(1) and a port that was just released is
// the last to be reused. That keeps late packets of an ended call from
// reaching the next call that would otherwise get the same port.
type portPool struct {
	mu    sync.Mutex
	ring  []uint16 // even base ports of free pairs; ring[head:head+size] modulo len
	head  int
	size  int
	inUse int // ports (not pairs) handed out
}

// firstPair returns the lowest even port not below min.
func firstPair(min int) int {
	return min + min%2
}

// countPairs returns how many even/odd pairs fit in [min, max].
func countPairs(min, max int) int {
	first := firstPair(min)
	if first+1 > max {
		return 0
	}
	return (max - first + 1) / 2
}

// newPortPool returns a pool of every pair in [min, max]; the range must have
// been validated.
//
// The first pair handed out is a random one of the range, and the others
// follow it in order: a server that restarts does not give its first calls
// the ports the calls before the restart had, which phones of those calls
// may still be sending to (they would be latched as the new call's peer).
func newPortPool(min, max int) *portPool {
	n := countPairs(min, max)
	p := &portPool{ring: make([]uint16, n), size: n}
	for i, port := 0, firstPair(min); i < n; i, port = i+1, port+2 {
		p.ring[i] = uint16(port)
	}
	if n > 0 {
		p.head = rand.IntN(n)
	}
	return p
}

// take removes the least recently released pair from the pool.
func (p *portPool) take() (int, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.size == 0 {
		return 0, false
	}
	port := int(p.ring[p.head])
	p.head = (p.head + 1) % len(p.ring)
	p.size--
	p.inUse += 2
	return port, true
}

// put returns a pair taken with take to the tail of the pool.
func (p *portPool) put(port int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ring[(p.head+p.size)%len(p.ring)] = uint16(port)
	p.size++
	p.inUse -= 2
}

// free returns the number of pairs in the pool.
func (p *portPool) free() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.size
}

// portsInUse returns the number of ports handed out.
func (p *portPool) portsInUse() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inUse
}

// bindPair takes a pair from the pool and binds its RTP and RTCP sockets on
// addr. A pair that cannot be bound (typically because another process holds
// one of its ports) goes back to the tail of the pool and the next pair is
// tried, at most once per pair that was free when the call started.
func (p *portPool) bindPair(addr netip.Addr) (rtp, rtcp *net.UDPConn, port int, err error) {
	var lastErr error
	for attempts := p.free(); attempts > 0; attempts-- {
		port, ok := p.take()
		if !ok {
			break
		}
		rtp, rtcp, err := bindUDPPair(addr, port)
		if err == nil {
			return rtp, rtcp, port, nil
		}
		lastErr = err
		p.put(port)
	}
	if lastErr != nil {
		return nil, nil, 0, fmt.Errorf("%w (last bind error: %v)", ErrNoPorts, lastErr)
	}
	return nil, nil, 0, ErrNoPorts
}

// bindUDPPair binds port (RTP) and port+1 (RTCP) on addr.
func bindUDPPair(addr netip.Addr, port int) (rtp, rtcp *net.UDPConn, err error) {
	rtp, err = listenUDP(addr, port)
	if err != nil {
		return nil, nil, err
	}
	rtcp, err = listenUDP(addr, port+1)
	if err != nil {
		_ = rtp.Close()
		return nil, nil, err
	}
	return rtp, rtcp, nil
}

// listenUDP binds one UDP socket. The network is chosen from the address
// family so that an IPv4 address never yields a dual-stack IPv6 socket.
func listenUDP(addr netip.Addr, port int) (*net.UDPConn, error) {
	network := "udp6"
	if addr.Is4() {
		network = "udp4"
	}
	return net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, uint16(port))))
}
