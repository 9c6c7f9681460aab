// Package sip is Switchboard's signalling plane: SIP transports (UDP and
// TCP), the registrar (RFC 3261 §10) with digest authentication (RFC 8760),
// and call routing. It is built on github.com/emiago/sipgo, whose types stay
// inside this package.
package sip
