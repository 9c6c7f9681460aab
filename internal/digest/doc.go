// Package digest implements the server side of HTTP digest authentication as
// SIP uses it: RFC 2617 and RFC 7616 computations with the MD5 and SHA-256
// algorithms (RFC 8760), parsing of Authorization headers, challenges, and
// stateless nonces that expire.
package digest
