// Package trunk connects Switchboard to external SIP providers (trunks):
// outbound registration with digest authentication (RFC 3261 §10.2,
// RFC 8760), health checks with OPTIONS (RFC 3261 §11), a circuit breaker
// that makes calls to a provider that is down fail fast, and the routing
// facts the call core needs: which numbers leave through a trunk, with what
// caller ID and credentials, and which inbound requests are the trunk's.
//
// The call core uses a provider only through the Trunk interface; the
// package never imports the core. It sends its own requests (REGISTER,
// OPTIONS) through the Host the core hands to Run, so that they leave from
// the server's SIP socket.
package trunk
