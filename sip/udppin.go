package sip

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// A request sipgo sends over UDP leaves from the socket its connection pool
// holds for the destination address. The pool learns an address when the
// listening socket reads a datagram from it; for any other address sipgo
// binds a new socket on an ephemeral port of every interface. REGISTERs are
// read by the server itself (stateless.go), and a restart empties the pool,
// so requests to registered phones left from such sockets: a phone behind a
// NAT that only lets in what comes from the address it registered to never
// got its INVITE, and each of those sockets answered SIP on every interface
// for as long as sipgo kept it. Pinning a phone's address to the listening
// socket makes every request to it, the INVITE and whatever sipgo sends in
// the dialog afterwards (BYE, re-INVITE, CANCEL), leave from sip.listen.

// pinUDP makes requests to dest ("ip:port") over UDP leave from the
// listening socket. It does nothing before the socket is served.
func (s *Server) pinUDP(dest string) {
	if pool, key, l := s.udpPool(dest); l != nil && pool.Get(key) != l {
		pool.Add(key, l)
	}
}

// unpinUDP forgets dest once no binding uses it, so that the pool does not
// grow with every address a phone ever registered from. A connection sipgo
// made for the address itself is left alone.
func (s *Server) unpinUDP(dest string) {
	if pool, key, l := s.udpPool(dest); l != nil && pool.Get(key) == l {
		pool.Delete(key)
	}
}

// udpPool returns sipgo's UDP connection pool, dest as its key, and the
// listening socket's connection in it (nil when dest is not an address or
// the socket is not served yet).
func (s *Server) udpPool(dest string) (*sip.ConnectionPool, string, sip.Connection) {
	key, ok := udpPoolKey(dest)
	pool := s.ua.TransportLayer().Pool("udp")
	if !ok || pool == nil {
		return nil, "", nil
	}
	return pool, key, pool.Get(s.boundAddr("udp"))
}

// udpPoolKey is dest as the pool's keys are written (net.JoinHostPort of
// the IP and port; an IPv4 peer of an IPv6 socket in its IPv4 form).
func udpPoolKey(dest string) (string, bool) {
	ap, err := netip.ParseAddrPort(dest)
	if err != nil {
		return "", false
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String(), true
}

// isUDP reports whether a binding's transport is UDP.
func isUDP(transport string) bool { return strings.EqualFold(transport, "udp") }

// sipgo's pool also gains an entry for every address its reader takes a
// request or response from, pointing at the listening socket, and keeps it
// until the socket closes: a server that answers OPTIONS from anyone grew
// by one entry per source address it ever heard from. udpPeers notes when
// each such address was last heard, and sweepUDPPeers forgets, every
// udpPeerIdle, the addresses not heard since the previous sweep that no
// binding or call in progress needs, taking them out of sipgo's pool.
// (Requests to a trunk's provider name their local address themselves,
// fromListener.)
const udpPeerIdle = 5 * time.Minute

type udpPeers struct {
	mu   sync.Mutex
	seen map[netip.AddrPort]struct{} // heard since the last sweep
	old  map[netip.AddrPort]struct{} // heard before it, not since
}

func newUDPPeers() *udpPeers {
	return &udpPeers{seen: map[netip.AddrPort]struct{}{}, old: map[netip.AddrPort]struct{}{}}
}

// heard notes a datagram from addr handed to sipgo.
func (p *udpPeers) heard(addr net.Addr) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return
	}
	ap := ua.AddrPort()
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	p.mu.Lock()
	p.seen[ap] = struct{}{}
	delete(p.old, ap)
	p.mu.Unlock()
}

// rotate returns the addresses not heard for a whole period and starts the
// next one.
func (p *udpPeers) rotate() map[netip.AddrPort]struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	idle := p.old
	p.old, p.seen = p.seen, map[netip.AddrPort]struct{}{}
	return idle
}

// sweepUDPPeers runs until ctx ends.
func (s *Server) sweepUDPPeers(ctx context.Context) error {
	return every(ctx, udpPeerIdle, func(time.Time) { s.forgetUDPPeers(s.udpPeers.rotate()) })
}

// forgetUDPPeers takes idle addresses out of sipgo's pool, keeping those a
// UDP binding was registered from and the peers of calls in progress.
func (s *Server) forgetUDPPeers(idle map[netip.AddrPort]struct{}) {
	if len(idle) == 0 {
		return
	}
	keep := map[string]bool{}
	for _, c := range s.calls.all() {
		c.mu.Lock()
		if c.a != nil && c.a.InviteRequest != nil {
			keep[c.a.InviteRequest.Source()] = true
		}
		if c.b != nil && c.b.InviteRequest != nil {
			keep[c.b.InviteRequest.Destination()] = true
		}
		c.mu.Unlock()
	}
	s.reg.mu.RLock()
	for src := range s.reg.udpSources {
		keep[src] = true
	}
	s.reg.mu.RUnlock()
	for ap := range idle {
		if key := ap.String(); !keep[key] {
			s.unpinUDP(key)
		}
	}
}
