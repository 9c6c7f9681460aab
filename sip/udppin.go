package sip

import (
	"net/netip"
	"strings"

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
// the IP and port).
func udpPoolKey(dest string) (string, bool) {
	ap, err := netip.ParseAddrPort(dest)
	if err != nil {
		return "", false
	}
	return ap.String(), true
}

// isUDP reports whether a binding's transport is UDP.
func isUDP(transport string) bool { return strings.EqualFold(transport, "udp") }
