package media

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Config configures a [Relay]. The zero value is not usable: Address, PortMin
// and PortMax must be set.
type Config struct {
	// Address is the local address relay sockets are bound to, for example
	// 127.0.0.1. It may be an unspecified address (0.0.0.0 or ::) only when
	// PublicAddress is set, because an unspecified address cannot be advertised
	// in SDP.
	Address netip.Addr `yaml:"address"`
	// PublicAddress is the address advertised in SDP (c= lines) when the host is
	// behind NAT. The zero value means Address.
	PublicAddress netip.Addr `yaml:"public_address"`
	// PortMin and PortMax bound the inclusive range of relay ports. RTP uses the
	// even ports and RTCP the next odd port (RFC 3550 §11), so the range must
	// hold at least two such pairs (one session).
	PortMin int `yaml:"port_min"`
	PortMax int `yaml:"port_max"`
	// Timeout closes a session when neither leg has received a packet (RTP or
	// RTCP) for this long, counted from [Session.StartTimeout] for a session
	// whose timeout is held. Zero disables the media timeout.
	Timeout time.Duration `yaml:"timeout"`
}

// pairsPerSession is the number of RTP/RTCP port pairs a session uses: one
// pair per leg.
const pairsPerSession = 2

// Validate reports whether the configuration can run a relay.
func (c Config) Validate() error {
	var errs []error
	switch {
	case !c.Address.IsValid():
		errs = append(errs, errors.New("address is not set"))
	case c.Address.IsMulticast():
		errs = append(errs, fmt.Errorf("address %s is a multicast address", c.Address))
	case c.Address.IsUnspecified() && !c.PublicAddress.IsValid():
		errs = append(errs, fmt.Errorf("address %s is unspecified and public_address is not set", c.Address))
	}
	if c.PublicAddress.IsValid() && (c.PublicAddress.IsUnspecified() || c.PublicAddress.IsMulticast()) {
		errs = append(errs, fmt.Errorf("public_address %s cannot be advertised", c.PublicAddress))
	}
	switch {
	case c.PortMin < 1 || c.PortMin > 65535:
		errs = append(errs, fmt.Errorf("port_min %d is outside 1-65535", c.PortMin))
	case c.PortMax < 1 || c.PortMax > 65535:
		errs = append(errs, fmt.Errorf("port_max %d is outside 1-65535", c.PortMax))
	case c.PortMin > c.PortMax:
		errs = append(errs, fmt.Errorf("port_min %d is greater than port_max %d", c.PortMin, c.PortMax))
	case countPairs(c.PortMin, c.PortMax) < pairsPerSession:
		errs = append(errs, fmt.Errorf("port range %d-%d holds fewer than %d RTP/RTCP pairs", c.PortMin, c.PortMax, pairsPerSession))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout %s is negative", c.Timeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("media config: %w", err)
	}
	return nil
}

// advertised returns the address to put in SDP.
func (c Config) advertised() netip.Addr {
	if c.PublicAddress.IsValid() {
		return c.PublicAddress.Unmap()
	}
	return c.Address.Unmap()
}
