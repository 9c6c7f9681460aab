package sip

import (
	"net"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard/switchboard/internal/store"
)

// deviceDestination is where a request to a registered device goes. Over
// UDP it is the address the REGISTER came from, which is the only way
// through a NAT. Over TCP and TLS the REGISTER's connection is the flow to
// use while it lasts (RFC 5626 §5.3); once it is gone (the phone closed it,
// or we restarted) the source port is an ephemeral one nobody listens on,
// so the request goes to the Contact address instead (RFC 3261 §18.1.1,
// RFC 5626 §4.4.1: a flow that failed is not dialled again).
func (s *Server) deviceDestination(b store.Binding, contact sip.Uri) string {
	network := strings.ToLower(b.Transport)
	if network != "tcp" && network != "tls" {
		return b.Source
	}
	if c, err := s.ua.TransportLayer().GetConnection(network, b.Source); err == nil && c != nil {
		return b.Source
	}
	port := contact.Port
	if port == 0 {
		port = 5060
		if network == "tls" || contact.Scheme == "sips" {
			port = 5061
		}
	}
	host := strings.Trim(contact.Host, "[]")
	if host == "" {
		return b.Source
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}
