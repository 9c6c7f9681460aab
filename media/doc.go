// Package media relays RTP and RTCP between the two legs of a call so that
// media is anchored on the switchboard host (a back-to-back user agent's media
// plane).
//
// A [Relay] owns a range of UDP ports. Each call gets a [Session] with two
// [Leg]s: leg A faces the caller and leg B faces the callee. A leg is a pair of
// sockets, RTP on an even port and RTCP on the next odd port (RFC 3550 §11).
// Packets received on one leg are written unchanged out of the other leg's
// socket of the same kind.
//
// Legs use symmetric latching: a leg sends to the address its peer announced in
// SDP until the first packet arrives from the peer, and from then on to the
// source address of that packet, so that peers behind NAT receive media on the
// mapping they opened. Once latched, packets from any other source are dropped,
// which prevents RTP injection. A new SDP address (a re-INVITE) re-opens
// latching.
//
// The forwarding path allocates nothing per packet: every socket is read by
// one goroutine with a buffer of its own (on Linux one of a small pool of
// epoll readers, each owning the sockets of its share of the sessions;
// elsewhere a goroutine per socket), counters are atomics, and receiver
// statistics (loss per RFC 3550 §A.3, interarrival jitter per RFC 3550 §6.4.1
// and §A.8) are kept by the single goroutine that reads the leg's RTP socket.
package media
