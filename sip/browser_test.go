package sip

import (
	"strings"
	"testing"

	"github.com/switchboard/switchboard/internal/store"
)

const chromeOffer = "v=0\r\no=- 46117 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n" +
	"m=audio 9 UDP/TLS/RTP/SAVPF 111 0 8 126\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n" +
	"a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 AB:CD\r\na=setup:actpass\r\na=mid:0\r\n" +
	"a=sendrecv\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:126 telephone-event/8000\r\n"

func TestParseOffer(t *testing.T) {
	for name, tc := range map[string]struct {
		body    string
		browser bool
		codecs  string
		err     bool
	}{
		"browser": {chromeOffer, true, "opus/48000/2,PCMU/8000,PCMA/8000,telephone-event/8000", false},
		"phone": {"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 101\r\n" +
			"a=rtpmap:101 telephone-event/8000\r\n", false, "PCMU/8000,telephone-event/8000", false},
		"SRTP without WebRTC": {"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/SAVP 0\r\n", false, "", true},
		"garbage":             {"not sdp", false, "", true},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, info, browser, err := parseOffer([]byte(tc.body))
			if (err != nil) != tc.err {
				t.Fatalf("err = %v, want error %v", err, tc.err)
			}
			if browser != tc.browser {
				t.Fatalf("browser = %v, want %v", browser, tc.browser)
			}
			if got := strings.Join(info.Codecs, ","); !tc.err && got != tc.codecs {
				t.Fatalf("codecs = %s, want %s", got, tc.codecs)
			}
		})
	}
}

func TestIsBrowserBinding(t *testing.T) {
	for transport, want := range map[string]bool{"WS": true, "WSS": true, "ws": true, "UDP": false, "TCP": false, "TLS": false} {
		if got := isBrowserBinding(store.Binding{Transport: transport}); got != want {
			t.Errorf("%s: %v, want %v", transport, got, want)
		}
	}
}

func TestSameButVersion(t *testing.T) {
	const a = "v=0\r\no=switchboard 7 3 IN IP4 127.0.0.1\r\ns=switchboard\r\nm=audio 20000 RTP/AVP 0\r\na=sendrecv\r\n"
	for name, tc := range map[string]struct {
		b    string
		same bool
	}{
		"identical":       {a, true},
		"another version": {strings.Replace(a, " 7 3 ", " 7 4 ", 1), true},
		"on hold":         {strings.Replace(a, "a=sendrecv", "a=recvonly", 1), false},
		"another port":    {strings.Replace(a, "20000", "20002", 1), false},
	} {
		if got := sameButVersion([]byte(a), []byte(tc.b)); got != tc.same {
			t.Errorf("%s: %v, want %v", name, got, tc.same)
		}
	}
}
