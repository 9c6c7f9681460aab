package sip

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// tlsPeer is a trunk over TLS (trunk.Provider): the name its provider's
// certificate must carry and the roots it must chain to (nil for the
// system's).
type tlsPeer interface {
	TLSPeer() (host string, roots *x509.CertPool, ok bool)
}

// clientTLS is the TLS configuration of the connections the server opens
// itself, such as to a trunk's provider over TLS (RFC 3261 §26.3.1). sipgo
// dials every TLS connection with this one configuration, which can hold
// one set of roots only, so crypto/tls's own verification gives way to
// verifyServer, which verifies the certificate with the roots of the trunk
// the connection is for. Verification is never skipped.
func (s *Server) clientTLS() *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // verifyServer verifies instead
		VerifyConnection:   s.verifyServer,
	}
}

// errNoTLSPeer is a TLS connection for which no trunk answers: it is to
// an address, not a name, and no TLS trunk has an address.
var errNoTLSPeer = errors.New("no trunk over TLS is at this address: the certificate cannot be checked")

// verifyServer checks the certificate chain of the server at the other
// end of a TLS connection we opened, as crypto/tls would, but with the
// roots of the trunks whose provider it may be: the trunks over TLS whose
// host is the name the connection was opened for (cs.ServerName). The
// certificate must be valid for that host and chain to the roots of one of
// them (several trunks may share a host). A connection to an address sends
// no name, and crypto/tls does not tell which address it went to: the
// candidates are then the trunks whose host is an address, and the
// certificate must be valid for one of those addresses under that trunk's
// roots. A connection for no trunk is checked against the system's roots.
func (s *Server) verifyServer(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("tls: the server sent no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	type peer struct {
		host  string
		roots *x509.CertPool
	}
	var peers []peer
	for _, t := range s.trunks.list() {
		tp, ok := t.(tlsPeer)
		if !ok {
			continue
		}
		host, roots, ok := tp.TLSPeer()
		_, ipErr := netip.ParseAddr(host)
		if ok && (cs.ServerName != "" && strings.EqualFold(host, cs.ServerName) || cs.ServerName == "" && ipErr == nil) {
			peers = append(peers, peer{host, roots})
		}
	}
	if len(peers) == 0 {
		if cs.ServerName == "" {
			return fmt.Errorf("tls: %w", errNoTLSPeer)
		}
		peers = append(peers, peer{cs.ServerName, nil})
	}
	var err error
	for _, p := range peers {
		_, err = cs.PeerCertificates[0].Verify(x509.VerifyOptions{DNSName: p.host, Roots: p.roots, Intermediates: inter})
		if err == nil {
			return nil
		}
	}
	return fmt.Errorf("tls: %w", err)
}
