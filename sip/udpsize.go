package sip

import "github.com/emiago/sipgo/sip"

// maxUDPMessage is the largest SIP message sent over UDP: the largest UDP
// payload over IPv4. sipgo refuses by default to send a UDP message of more
// than 1,300 bytes, which lost the 200 OK of a user's eighth device (the
// answer lists every binding), an INVITE whose offer carries many codecs,
// and any answer to a request with long headers. RFC 3261 §18.1.1 says a
// request that large should go over TCP, but a phone registered over UDP
// is rarely reachable any other way, so, like other SIP servers, the server
// sends it over UDP and lets IP fragment it. Answers go back on the
// transport the request came on (§18.2.2) whatever their size.
const maxUDPMessage = 65507

func init() {
	// sipgo refuses a message longer than UDPMTUSize-200 bytes.
	sip.UDPMTUSize = maxUDPMessage + 200
}
