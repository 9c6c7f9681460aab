package sip

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// sdpOf joins lines with CRLF.
func sdpOf(lines ...string) []byte {
	return []byte(strings.Join(lines, "\r\n") + "\r\n")
}

var sdpHead = []string{"v=0", "o=alice 2890844526 2890844526 IN IP4 192.0.2.10", "s=-"}

func TestParseSDP(t *testing.T) {
	ap := netip.MustParseAddrPort
	tests := []struct {
		name    string
		body    []byte
		rtp     netip.AddrPort
		rtcp    netip.AddrPort
		dir     string
		codecs  []string
		wantErr string
	}{
		{
			name: "session level c=",
			body: sdpOf(append(sdpHead, "c=IN IP4 192.0.2.10", "t=0 0", "m=audio 4000 RTP/AVP 0 8 101",
				"a=rtpmap:101 telephone-event/8000")...),
			rtp: ap("192.0.2.10:4000"), dir: "sendrecv", codecs: []string{"PCMU/8000", "PCMA/8000", "telephone-event/8000"},
		},
		{
			name: "media level c= wins",
			body: sdpOf(append(sdpHead, "c=IN IP4 192.0.2.10", "t=0 0", "m=audio 4000 RTP/AVP 0",
				"c=IN IP4 198.51.100.7")...),
			rtp: ap("198.51.100.7:4000"), dir: "sendrecv", codecs: []string{"PCMU/8000"},
		},
		{
			name: "a=rtcp port only",
			body: sdpOf(append(sdpHead, "c=IN IP4 192.0.2.10", "t=0 0", "m=audio 4000 RTP/AVP 0", "a=rtcp:4011")...),
			rtp:  ap("192.0.2.10:4000"), rtcp: ap("192.0.2.10:4011"), dir: "sendrecv", codecs: []string{"PCMU/8000"},
		},
		{
			name: "a=rtcp with address",
			body: sdpOf(append(sdpHead, "c=IN IP4 192.0.2.10", "t=0 0", "m=audio 4000 RTP/AVP 0",
				"a=rtcp:5001 IN IP4 198.51.100.1")...),
			rtp: ap("192.0.2.10:4000"), rtcp: ap("198.51.100.1:5001"), dir: "sendrecv", codecs: []string{"PCMU/8000"},
		},
		{
			name: "empty a=rtcp is ignored",
			body: sdpOf(append(sdpHead, "c=IN IP4 192.0.2.10", "t=0 0", "m=audio 4000 RTP/AVP 0", "a=rtcp:")...),
			rtp:  ap("192.0.2.10:4000"), dir: "sendrecv", codecs: []string{"PCMU/8000"},
		},
		{
			name: "hold with c=0.0.0.0",
			body: sdpOf(append(sdpHead, "c=IN IP4 0.0.0.0", "t=0 0", "m=audio 4000 RTP/AVP 0", "a=sendonly")...),
			dir:  "sendonly", codecs: []string{"PCMU/8000"},
		},
		{
			name: "media direction overrides session",
			body: sdpOf(append(sdpHead, "c=IN IP4 192.0.2.10", "t=0 0", "a=sendonly", "m=audio 4000 RTP/AVP 0", "a=inactive")...),
			rtp:  ap("192.0.2.10:4000"), dir: "inactive", codecs: []string{"PCMU/8000"},
		},
		{
			name: "declined audio skipped",
			body: sdpOf(append(sdpHead, "c=IN IP4 192.0.2.10", "t=0 0", "m=audio 0 RTP/AVP 0", "m=audio 4002 RTP/AVP 8")...),
			rtp:  ap("192.0.2.10:4002"), dir: "sendrecv", codecs: []string{"PCMA/8000"},
		},
		{
			name:    "no audio",
			body:    sdpOf(append(sdpHead, "c=IN IP4 192.0.2.10", "t=0 0", "m=video 5000 RTP/AVP 96")...),
			wantErr: "no audio stream",
		},
		{
			name:    "only declined audio",
			body:    sdpOf(append(sdpHead, "c=IN IP4 192.0.2.10", "t=0 0", "m=audio 0 RTP/AVP 0")...),
			wantErr: "no audio stream",
		},
		{
			name:    "srtp",
			body:    sdpOf(append(sdpHead, "c=IN IP4 192.0.2.10", "t=0 0", "m=audio 4000 RTP/SAVP 0")...),
			wantErr: "not RTP/AVP",
		},
		{
			name:    "no connection",
			body:    sdpOf(append(sdpHead, "t=0 0", "m=audio 4000 RTP/AVP 0")...),
			wantErr: "no connection address",
		},
		{
			name:    "hostname in c=",
			body:    sdpOf(append(sdpHead, "c=IN IP4 phone.example", "t=0 0", "m=audio 4000 RTP/AVP 0")...),
			wantErr: "not an IP address",
		},
		{name: "garbage", body: []byte("hello"), wantErr: "sdp:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, info, err := parseSDP(tt.body)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if info.RTP != tt.rtp || info.RTCP != tt.rtcp || info.Direction != tt.dir || !slices.Equal(info.Codecs, tt.codecs) {
				t.Fatalf("got %+v\nwant rtp %v rtcp %v dir %s codecs %v", info, tt.rtp, tt.rtcp, tt.dir, tt.codecs)
			}
		})
	}
}

func TestRewriteSDP(t *testing.T) {
	relay := netip.MustParseAddr("203.0.113.5")
	tests := []struct {
		name string
		body []byte
		// want and dont are whole lines that must, or must not, appear.
		want, dont []string
		rtp        netip.AddrPort // what the rewritten SDP asks for
	}{
		{
			name: "session and media c=",
			body: sdpOf(append(sdpHead, "c=IN IP4 192.0.2.10", "t=0 0", "m=audio 4000 RTP/AVP 0 101",
				"c=IN IP4 198.51.100.7", "a=rtpmap:0 PCMU/8000", "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16", "a=sendrecv")...),
			want: []string{"o=switchboard 2890844526 7 IN IP4 203.0.113.5", "c=IN IP4 203.0.113.5", "m=audio 30000 RTP/AVP 0 101",
				"a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16", "a=sendrecv"},
			dont: []string{"c=IN IP4 198.51.100.7", "c=IN IP4 192.0.2.10"},
			rtp:  netip.MustParseAddrPort("203.0.113.5:30000"),
		},
		{
			name: "a=rtcp follows the relay",
			body: sdpOf(append(sdpHead, "c=IN IP4 192.0.2.10", "t=0 0", "m=audio 4000 RTP/AVP 0", "a=rtcp:4011 IN IP4 192.0.2.10")...),
			want: []string{"a=rtcp:30001 IN IP4 203.0.113.5"},
			dont: []string{"a=rtcp:4011 IN IP4 192.0.2.10"},
			rtp:  netip.MustParseAddrPort("203.0.113.5:30000"),
		},
		{
			name: "ICE attributes dropped",
			body: sdpOf(append(sdpHead, "c=IN IP4 192.0.2.10", "t=0 0", "a=ice-lite", "a=ice-ufrag:abcd", "m=audio 4000 RTP/AVP 0",
				"a=ice-pwd:secretsecretsecretsecret", "a=candidate:1 1 UDP 2130706431 192.0.2.10 4000 typ host",
				"a=end-of-candidates", "a=rtcp-mux", "a=ptime:20")...),
			want: []string{"a=ptime:20"},
			dont: []string{"a=ice-lite", "a=ice-ufrag:abcd", "a=ice-pwd:secretsecretsecretsecret",
				"a=candidate:1 1 UDP 2130706431 192.0.2.10 4000 typ host", "a=end-of-candidates", "a=rtcp-mux"},
			rtp: netip.MustParseAddrPort("203.0.113.5:30000"),
		},
		{
			name: "video declined",
			body: sdpOf(append(sdpHead, "c=IN IP4 192.0.2.10", "t=0 0", "m=audio 4000 RTP/AVP 0",
				"m=video 5000 RTP/AVP 96", "c=IN IP4 192.0.2.10", "a=rtpmap:96 H264/90000")...),
			want: []string{"m=audio 30000 RTP/AVP 0", "m=video 0 RTP/AVP 96"},
			dont: []string{"m=video 5000 RTP/AVP 96", "a=rtpmap:96 H264/90000", "c=IN IP4 192.0.2.10"},
			rtp:  netip.MustParseAddrPort("203.0.113.5:30000"),
		},
		{
			name: "hold with c=0.0.0.0 stays held",
			body: sdpOf(append(sdpHead, "c=IN IP4 0.0.0.0", "t=0 0", "m=audio 4000 RTP/AVP 0", "a=sendonly")...),
			want: []string{"m=audio 30000 RTP/AVP 0", "c=IN IP4 0.0.0.0", "a=sendonly", "c=IN IP4 203.0.113.5"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sd, audio, _, err := parseSDP(tt.body)
			if err != nil {
				t.Fatal(err)
			}
			out, err := rewriteSDP(sd, audio, relay, 30000, 7)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range tt.want {
				if !hasLine(out, l) {
					t.Errorf("missing %q in\n%s", l, out)
				}
			}
			for _, l := range tt.dont {
				if hasLine(out, l) {
					t.Errorf("unexpected %q in\n%s", l, out)
				}
			}
			_, _, info, err := parseSDP(out)
			if err != nil {
				t.Fatalf("rewritten SDP does not parse: %v\n%s", err, out)
			}
			if info.RTP != tt.rtp {
				t.Errorf("rewritten SDP asks for RTP at %v, want %v", info.RTP, tt.rtp)
			}
			// The parsed input is still the far side's view.
			if sd.MediaDescriptions[audio].MediaName.Port.Value == 30000 {
				t.Error("rewriteSDP modified its input")
			}
		})
	}
}

func FuzzParseRewrite(f *testing.F) {
	f.Add(string(sdpOf(append(sdpHead, "c=IN IP4 192.0.2.10", "t=0 0", "m=audio 4000 RTP/AVP 0 101",
		"a=rtpmap:101 telephone-event/8000", "a=rtcp:4001 IN IP4 192.0.2.10", "a=sendrecv")...)))
	f.Add(string(sdpOf(append(sdpHead, "c=IN IP4 0.0.0.0", "t=0 0", "m=audio 4000 RTP/AVP 0", "a=rtcp:", "m=video 5000 RTP/AVP 96")...)))
	f.Add(string(sdpOf(append(sdpHead, "t=0 0", "m=audio 4000 RTP/AVPF 0", "c=IN IP6 ::1", "a=candidate:x", "a=rtcp-mux")...)))
	f.Add("v=0\r\nm=audio 1 RTP/AVP\r\n")
	f.Add("")
	relay := netip.MustParseAddr("127.0.0.1")
	f.Fuzz(func(t *testing.T, body string) {
		sd, audio, _, err := parseSDP([]byte(body))
		if err != nil {
			return
		}
		out, err := rewriteSDP(sd, audio, relay, 30000, 2)
		if err != nil {
			return
		}
		_, _, _, _ = parseSDP(out)
	})
}
