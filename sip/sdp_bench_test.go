package sip

import (
	"net/netip"
	"testing"
)

// BenchmarkRewriteSDP measures what the B2BUA does to every offer and answer:
// parse the body, pick the audio stream and rewrite it to point at the relay.
func BenchmarkRewriteSDP(b *testing.B) {
	body := sdpOf(append(sdpHead, "c=IN IP4 192.0.2.10", "t=0 0", "m=audio 4000 RTP/AVP 0 8 101",
		"a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000", "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-15",
		"a=ptime:20", "a=sendrecv")...)
	relay := netip.MustParseAddr("203.0.113.5")
	b.ReportAllocs()
	for b.Loop() {
		sd, audio, _, err := parseSDP(body)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := rewriteSDP(sd, audio, relay, 20000, 2); err != nil {
			b.Fatal(err)
		}
	}
}
