package sip

import (
	"crypto/tls"
	"fmt"
	"net"
)

// listenTLS opens the SIP over TLS listener (RFC 3261 §26.2) when a TLS
// configuration is set; nil when it is not. Banned sources are turned away
// before their handshake.
func (s *Server) listenTLS() (net.Listener, error) {
	if s.cfg.TLS == nil {
		return nil, nil
	}
	addr := s.cfg.TLSListen.String()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("sip: listen tls %s: %w", addr, err)
	}
	return s.framed(tls.NewListener(guardListener{ln, s.guard}, s.cfg.TLS)), nil
}
