package media

import (
	"testing"

	"github.com/pion/rtp"
)

func TestClassifyRTP(t *testing.T) {
	marshal := func(p rtp.Packet) []byte {
		p.Version = 2
		b, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	withExt := rtp.Header{PayloadType: 8, SequenceNumber: 9, Timestamp: 10, SSRC: 11}
	if err := withExt.SetExtension(1, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		pkt  []byte
		kind packetKind
		want rtpHeader
	}{
		"pcmu": {
			pkt:  marshal(rtp.Packet{Header: rtp.Header{PayloadType: 0, SequenceNumber: 65535, Timestamp: 0xdeadbeef, SSRC: 0x01020304}, Payload: make([]byte, 160)}),
			kind: kindRTP, want: rtpHeader{0, 65535, 0xdeadbeef, 0x01020304},
		},
		"marker and dynamic payload type": {
			pkt:  marshal(rtp.Packet{Header: rtp.Header{Marker: true, PayloadType: 101, SequenceNumber: 1, Timestamp: 2, SSRC: 3}, Payload: []byte{1, 0, 0, 160}}),
			kind: kindRTP, want: rtpHeader{101, 1, 2, 3},
		},
		"csrcs": {
			pkt:  marshal(rtp.Packet{Header: rtp.Header{PayloadType: 8, SequenceNumber: 5, Timestamp: 6, SSRC: 7, CSRC: []uint32{1, 2, 3}}, Payload: []byte{1}}),
			kind: kindRTP, want: rtpHeader{8, 5, 6, 7},
		},
		"header extension": {
			pkt:  marshal(rtp.Packet{Header: withExt, Payload: []byte{1, 2}}),
			kind: kindRTP, want: rtpHeader{8, 9, 10, 11},
		},
		"padding": {
			pkt:  marshal(rtp.Packet{Header: rtp.Header{Padding: true, PaddingSize: 4, PayloadType: 0, SequenceNumber: 1, Timestamp: 1, SSRC: 1}, Payload: []byte{9, 9}}),
			kind: kindRTP, want: rtpHeader{0, 1, 1, 1},
		},
		"header only":           {pkt: []byte{0x80, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3}, kind: kindRTP, want: rtpHeader{0, 1, 2, 3}},
		"rtcp receiver report":  {pkt: rtcpReceiverReport(1), kind: kindRTCP},
		"rtcp sender report":    {pkt: []byte{0x80, 200, 0, 6}, kind: kindRTCP},
		"empty":                 {pkt: nil, kind: kindInvalid},
		"short":                 {pkt: []byte{0x80, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0}, kind: kindInvalid},
		"version 0":             {pkt: make([]byte, 172), kind: kindInvalid},
		"version 1":             {pkt: append([]byte{0x40}, make([]byte, 171)...), kind: kindInvalid},
		"version 3":             {pkt: append([]byte{0xc0}, make([]byte, 171)...), kind: kindInvalid},
		"csrc beyond end":       {pkt: []byte{0x81, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3}, kind: kindInvalid},
		"extension header cut":  {pkt: []byte{0x90, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0xbe, 0xde}, kind: kindInvalid},
		"extension beyond end":  {pkt: []byte{0x90, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0xbe, 0xde, 0, 2, 0, 0, 0, 0}, kind: kindInvalid},
		"zero padding length":   {pkt: []byte{0xa0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 1, 0}, kind: kindInvalid},
		"padding beyond header": {pkt: []byte{0xa0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 1, 3}, kind: kindInvalid},
		"stun":                  {pkt: []byte{0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, kind: kindInvalid},
		"dtls":                  {pkt: []byte{22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, kind: kindInvalid},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			h, kind := classifyRTP(tc.pkt)
			if kind != tc.kind {
				t.Fatalf("kind = %d, want %d", kind, tc.kind)
			}
			if kind != kindRTP {
				return
			}
			if h != tc.want {
				t.Errorf("header = %+v, want %+v", h, tc.want)
			}
			var p rtp.Packet // cross-check with pion/rtp
			if err := p.Unmarshal(tc.pkt); err != nil {
				t.Fatalf("pion rejects a packet we accept: %v", err)
			}
			if got := (rtpHeader{p.PayloadType, p.SequenceNumber, p.Timestamp, p.SSRC}); got != h {
				t.Errorf("pion reads %+v, we read %+v", got, h)
			}
		})
	}
}

func TestIsRTCP(t *testing.T) {
	tests := map[string]struct {
		pkt  []byte
		want bool
	}{
		"receiver report": {rtcpReceiverReport(1), true},
		"sender report":   {[]byte{0x80, 200, 0, 6, 1, 2, 3, 4}, true},
		"bye":             {[]byte{0x81, 203, 0, 1, 1, 2, 3, 4}, true},
		"rtp":             {[]byte{0x80, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3}, false},
		"rtp with marker": {[]byte{0x80, 0x80 | 96, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3}, false},
		"version 1":       {[]byte{0x40, 200, 0, 1, 1, 2, 3, 4}, false},
		"too short":       {[]byte{0x80, 200, 0}, false},
		"empty":           {nil, false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := isRTCP(tc.pkt); got != tc.want {
				t.Errorf("isRTCP(%x) = %v, want %v", tc.pkt, got, tc.want)
			}
		})
	}
}

// FuzzClassifyRTP checks that no input panics and that accepted packets'
// fields are read from where RFC 3550 §5.1 puts them.
func FuzzClassifyRTP(f *testing.F) {
	f.Add([]byte{0x80, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3})
	f.Add([]byte{0x9f, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0xbe, 0xde, 0xff, 0xff})
	f.Add([]byte{0xbf, 0xff, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0xff})
	f.Add(rtcpReceiverReport(1))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, kind := classifyRTP(b)
		_ = isRTCP(b)
		if kind != kindRTP {
			return
		}
		if len(b) < 12 || b[0]>>6 != 2 {
			t.Fatalf("accepted %x", b)
		}
		want := rtpHeader{b[1] & 0x7f, uint16(b[2])<<8 | uint16(b[3]), uint32(b[4])<<24 | uint32(b[5])<<16 | uint32(b[6])<<8 | uint32(b[7]), uint32(b[8])<<24 | uint32(b[9])<<16 | uint32(b[10])<<8 | uint32(b[11])}
		if h != want {
			t.Fatalf("header %+v, want %+v", h, want)
		}
	})
}
