package media

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
)

func TestParseCodecs(t *testing.T) {
	phone := netip.MustParseAddrPort("192.0.2.10:4000")
	tests := map[string]struct {
		sdp  string
		want []Codec
		err  error
	}{
		"static without rtpmap, dynamic DTMF": {
			sdp: phoneSDP(phone, "0 8 101", "rtpmap:101 telephone-event/8000", "fmtp:101 0-16"),
			want: []Codec{
				{PayloadType: 0, Name: "PCMU", ClockRate: 8000},
				{PayloadType: 8, Name: "PCMA", ClockRate: 8000},
				{PayloadType: 101, Name: "telephone-event", ClockRate: 8000, Fmtp: "0-16"},
			},
		},
		"opus with channels and fmtp, unknown dynamic skipped": {
			sdp: phoneSDP(phone, "111 96 9", "rtpmap:111 opus/48000/2", "fmtp:111 minptime=10;useinbandfec=1"),
			want: []Codec{
				{PayloadType: 111, Name: "opus", ClockRate: 48000, Channels: 2, Fmtp: "minptime=10;useinbandfec=1"},
				{PayloadType: 9, Name: "G722", ClockRate: 8000},
			},
		},
		"rtpmap overrides the static name": {
			sdp:  phoneSDP(phone, "0", "rtpmap:0 PCMU/8000"),
			want: []Codec{{PayloadType: 0, Name: "PCMU", ClockRate: 8000}},
		},
		"rejected audio stream then an active one": {
			sdp: "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n" +
				"m=audio 0 RTP/AVP 0\r\nm=video 5000 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\nm=audio 6000 RTP/AVP 8\r\n",
			want: []Codec{{PayloadType: 8, Name: "PCMA", ClockRate: 8000}},
		},
		"malformed attributes ignored": {
			sdp:  phoneSDP(phone, "0 x 200 97", "rtpmap:97 foo", "rtpmap:x bar/1", "fmtp:0"),
			want: []Codec{{PayloadType: 0, Name: "PCMU", ClockRate: 8000}},
		},
		"no audio":    {sdp: "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\nm=video 5000 RTP/AVP 96\r\n", err: ErrInvalidSDP},
		"not sdp":     {sdp: "hello", err: ErrInvalidSDP},
		"empty":       {sdp: "", err: ErrInvalidSDP},
		"only static": {sdp: phoneSDP(phone, "18"), want: []Codec{{PayloadType: 18, Name: "G729", ClockRate: 8000}}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseCodecs(tt.sdp)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseCodecs: %v", err)
			}
			if !equalCodecs(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestBridgeable(t *testing.T) {
	in := []Codec{
		{PayloadType: 18, Name: "G729", ClockRate: 8000},
		{PayloadType: 0, Name: "pcmu", ClockRate: 8000},
		{PayloadType: 0, Name: "PCMA", ClockRate: 8000}, // duplicate payload type
		{PayloadType: 111, Name: "OPUS", ClockRate: 48000, Channels: 2},
		{PayloadType: 112, Name: "opus", ClockRate: 48000, Channels: 1}, // mono Opus does not exist in SDP
		{PayloadType: 96, Name: "telephone-event", ClockRate: 48000},
		{PayloadType: 13, Name: "CN", ClockRate: 8000},
	}
	tests := map[string]struct {
		codecs []string
		want   []Codec
	}{
		"defaults": {want: []Codec{
			{PayloadType: 0, Name: "PCMU", ClockRate: 8000},
			{PayloadType: 111, Name: "opus", ClockRate: 48000, Channels: 2},
			{PayloadType: 96, Name: "telephone-event", ClockRate: 48000},
		}},
		"G.711 and CN only": {codecs: []string{"pcmu", "pcma", "cn"}, want: []Codec{
			{PayloadType: 0, Name: "PCMU", ClockRate: 8000},
			{PayloadType: 13, Name: "CN", ClockRate: 8000},
		}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			set := WebRTCConfig{Codecs: tt.codecs}.codecSet()
			if got := set.filter(in); !equalCodecs(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNegotiate(t *testing.T) {
	pcmu := Codec{PayloadType: 0, Name: "PCMU", ClockRate: 8000}
	phoneDTMF := Codec{PayloadType: 101, Name: "telephone-event", ClockRate: 8000}
	opus := Codec{PayloadType: 96, Name: "opus", ClockRate: 48000, Channels: 2}
	plain := []Codec{opus, pcmu, phoneDTMF}
	offer := []Codec{ // Chromium's numbers
		{PayloadType: 111, Name: "opus", ClockRate: 48000, Channels: 2},
		{PayloadType: 0, Name: "PCMU", ClockRate: 8000},
		{PayloadType: 8, Name: "PCMA", ClockRate: 8000},
		{PayloadType: 110, Name: "telephone-event", ClockRate: 48000},
		{PayloadType: 126, Name: "telephone-event", ClockRate: 8000},
	}
	answer := []Codec{offer[1], offer[4]} // the answer kept PCMU and DTMF/8000
	maps, negotiated := negotiate(plain, answer, offer)
	if want := []Codec{pcmu, phoneDTMF}; !equalCodecs(negotiated, want) {
		t.Fatalf("negotiated %v, want %v", negotiated, want)
	}
	toPlain := map[uint8]uint8{0: 0, 126: 101}
	for pt := range 128 {
		e := maps.toPlain[pt]
		want, ok := toPlain[uint8(pt)]
		if e.ok != ok || (ok && e.pt != want) {
			t.Errorf("toPlain[%d] = %+v, want %d (%v)", pt, e, want, ok)
		}
	}
	toBrowser := map[uint8]uint8{0: 0, 101: 126}
	for pt := range 128 {
		e := maps.toBrowser[pt]
		want, ok := toBrowser[uint8(pt)]
		if e.ok != ok || (ok && e.pt != want) {
			t.Errorf("toBrowser[%d] = %+v, want %d (%v)", pt, e, want, ok)
		}
	}
	if e := maps.toBrowser[101]; e.clock != 8000 {
		t.Errorf("DTMF clock %d", e.clock)
	}
}

func TestWebRTCConfigValidate(t *testing.T) {
	ok := WebRTCConfig{Address: loopback}
	tests := map[string]struct {
		cfg     WebRTCConfig
		wantErr string
	}{
		"minimal":             {cfg: ok},
		"range":               {cfg: WebRTCConfig{Address: loopback, PortMin: 30000, PortMax: 30100}},
		"mux":                 {cfg: WebRTCConfig{Address: loopback, MuxPort: 3478}},
		"unspecified":         {cfg: WebRTCConfig{Address: netip.IPv4Unspecified(), PublicAddress: netip.MustParseAddr("203.0.113.5")}},
		"codecs":              {cfg: WebRTCConfig{Address: loopback, Codecs: []string{"pcmu", "telephone-event"}}},
		"no address":          {cfg: WebRTCConfig{}, wantErr: "address is not set"},
		"multicast":           {cfg: WebRTCConfig{Address: netip.MustParseAddr("224.0.0.1")}, wantErr: "multicast"},
		"bad public":          {cfg: WebRTCConfig{Address: loopback, PublicAddress: netip.IPv4Unspecified()}, wantErr: "cannot be advertised"},
		"mux and range":       {cfg: WebRTCConfig{Address: loopback, MuxPort: 3478, PortMin: 1, PortMax: 2}, wantErr: "excludes"},
		"mux out of range":    {cfg: WebRTCConfig{Address: loopback, MuxPort: 70000}, wantErr: "mux_port"},
		"inverted range":      {cfg: WebRTCConfig{Address: loopback, PortMin: 2000, PortMax: 1000}, wantErr: "port range"},
		"half range":          {cfg: WebRTCConfig{Address: loopback, PortMin: 2000}, wantErr: "port range"},
		"unknown codec":       {cfg: WebRTCConfig{Address: loopback, Codecs: []string{"G729"}}, wantErr: `codec "G729"`},
		"DTMF only is silent": {cfg: WebRTCConfig{Address: loopback, Codecs: []string{"telephone-event"}}, wantErr: "no audio codec"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Validate = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestPlainAudioSDP(t *testing.T) {
	codecs := []Codec{
		{PayloadType: 111, Name: "opus", ClockRate: 48000, Channels: 2, Fmtp: "minptime=10;useinbandfec=1"},
		{PayloadType: 0, Name: "PCMU", ClockRate: 8000},
		{PayloadType: 126, Name: "telephone-event", ClockRate: 8000, Fmtp: "0-15"},
	}
	body := PlainAudioSDP(netip.MustParseAddrPort("192.0.2.7:20000"), codecs, 42, 2)
	for _, line := range []string{
		"o=switchboard 42 2 IN IP4 192.0.2.7", "c=IN IP4 192.0.2.7", "m=audio 20000 RTP/AVP 111 0 126",
		"a=rtpmap:111 opus/48000/2", "a=fmtp:111 minptime=10;useinbandfec=1", "a=rtpmap:0 PCMU/8000",
		"a=rtpmap:126 telephone-event/8000", "a=fmtp:126 0-15", "a=sendrecv",
	} {
		if !strings.Contains(body, line+"\r\n") {
			t.Errorf("SDP lacks %q:\n%s", line, body)
		}
	}
	if got := mustParseCodecs(t, body); !equalCodecs(got, codecs) {
		t.Errorf("round trip: %v, want %v", got, codecs)
	}
	if v6 := PlainAudioSDP(netip.MustParseAddrPort("[2001:db8::1]:4000"), codecs[1:2], 1, 1); !strings.Contains(v6, "c=IN IP6 2001:db8::1\r\n") {
		t.Errorf("IPv6 SDP:\n%s", v6)
	}
}

// TestSSRCRebase: the browser sees one continuous stream when the leg's
// source changes.
func TestSSRCRebase(t *testing.T) {
	var r ssrcRebase
	now := time.Unix(1000, 0)
	h := func(ssrc uint32, seq uint16, ts uint32) *rtp.Header {
		return &rtp.Header{SSRC: ssrc, SequenceNumber: seq, Timestamp: ts}
	}
	// The first source passes unchanged, including a wrap.
	for i, seq := range []uint16{65534, 65535, 0} {
		p := h(1, seq, uint32(i)*160)
		r.apply(p, 8000, now.Add(time.Duration(i)*20*time.Millisecond))
		if p.SequenceNumber != seq || p.Timestamp != uint32(i)*160 || p.Marker {
			t.Fatalf("first source rewritten: %+v", p)
		}
	}
	// A late packet of the first source does not move the reference.
	late := h(1, 65533, 0)
	r.apply(late, 8000, now.Add(50*time.Millisecond))
	// A new source 100 ms after the last packet follows on.
	p := h(2, 5000, 90000)
	r.apply(p, 8000, now.Add(140*time.Millisecond))
	if p.SequenceNumber != 1 || p.Timestamp != 320+800 || !p.Marker {
		t.Fatalf("new source: seq %d ts %d marker %v, want seq 1 ts 1120 marker", p.SequenceNumber, p.Timestamp, p.Marker)
	}
	p = h(2, 5001, 90160)
	r.apply(p, 8000, now.Add(160*time.Millisecond))
	if p.SequenceNumber != 2 || p.Timestamp != 1280 || p.Marker {
		t.Fatalf("second packet of new source: %+v", p)
	}
}

// FuzzForwardToBrowser: whatever a phone sends, the path to the browser
// does not panic and writes a well-formed packet or nothing.
func FuzzForwardToBrowser(f *testing.F) {
	f.Add(rtpPacket(f, 0, 1, 2, 3, make([]byte, 160)))
	f.Add([]byte{0xb0, 0x00, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0xbe, 0xde, 0, 1, 0x10, 0xff, 0, 0, 1, 2, 3}) // extension
	f.Add([]byte{0xa0, 0x00, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 9, 9, 0, 0, 3})                               // padding
	f.Add([]byte{0x83, 0x00, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4})                                  // truncated CSRCs
	f.Add(rtcpReceiverReport(7))
	f.Fuzz(func(t *testing.T, pkt []byte) {
		b, w := newBenchBridge(t)
		b.forwardToBrowser(pkt, b.legRTP, time.Now())
		if w.n > 0 {
			var p rtp.Packet
			buf := make([]byte, len(pkt)+64)
			n, err := rtp.MarshalPacketTo(buf, &w.hdr, w.payload)
			if err != nil {
				t.Fatalf("written packet does not marshal: %v", err)
			}
			if err := p.Unmarshal(buf[:n]); err != nil {
				t.Fatalf("written packet does not parse: %v", err)
			}
		}
	})
}

// FuzzParseCodecs: SDP from the network never panics the parser, and what
// it returns is usable as payload type map indexes.
func FuzzParseCodecs(f *testing.F) {
	phone := netip.MustParseAddrPort("192.0.2.10:4000")
	f.Add(phoneSDP(phone, "0 8 101", "rtpmap:101 telephone-event/8000", "fmtp:101 0-16"))
	f.Add(phoneSDP(phone, "111 0", "rtpmap:111 opus/48000/2", "fmtp:111 minptime=10;useinbandfec=1"))
	f.Add(phoneSDP(phone, "96 97", "rtpmap:96 /", "rtpmap:97 a/b/c", "fmtp:96"))
	f.Fuzz(func(t *testing.T, body string) {
		cs, err := ParseCodecs(body)
		if err != nil {
			return
		}
		for _, c := range cs {
			if c.PayloadType > 127 {
				t.Fatalf("payload type %d", c.PayloadType)
			}
		}
		negotiate(cs, cs, cs)
	})
}
