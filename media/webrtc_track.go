package media

import (
	"strings"
	"sync/atomic"

	"github.com/pion/webrtc/v4"
)

// bridgeTrack is the bridge's outgoing audio track. Unlike pion's
// TrackLocalStaticRTP, which stamps every packet with the one payload type
// it was bound with, it lets the bridge write each packet with its own
// payload type, so that audio and RFC 4733 telephone events share the
// stream.
type bridgeTrack struct {
	binding atomic.Pointer[trackBinding]
}

// trackBinding is where a bound track writes.
type trackBinding struct {
	id     string
	ssrc   uint32
	writer webrtc.TrackLocalWriter
}

var _ webrtc.TrackLocal = (*bridgeTrack)(nil)

// Bind is called by pion once negotiation is complete. It picks the first
// negotiated audio codec for pion's bookkeeping (RTCP sender reports use
// its clock rate); the bridge chooses the payload type of each packet.
func (t *bridgeTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	codecs := ctx.CodecParameters()
	if len(codecs) == 0 {
		return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
	}
	chosen := codecs[0]
	for _, c := range codecs {
		if (Codec{Name: mimeSubtype(c.MimeType)}).isAudio() {
			chosen = c
			break
		}
	}
	t.binding.Store(&trackBinding{id: ctx.ID(), ssrc: uint32(ctx.SSRC()), writer: ctx.WriteStream()})
	return chosen, nil
}

// Unbind is called by pion when the sender stops.
func (t *bridgeTrack) Unbind(ctx webrtc.TrackLocalContext) error {
	if b := t.binding.Load(); b != nil && b.id == ctx.ID() {
		t.binding.CompareAndSwap(b, nil)
	}
	return nil
}

// ID returns the track's id (the a=msid track part).
func (t *bridgeTrack) ID() string { return "audio" }

// RID returns no RTP stream id: the bridge does not simulcast.
func (t *bridgeTrack) RID() string { return "" }

// StreamID returns the track's stream id (the a=msid stream part).
func (t *bridgeTrack) StreamID() string { return "switchboard" }

// Kind returns audio.
func (t *bridgeTrack) Kind() webrtc.RTPCodecType { return webrtc.RTPCodecTypeAudio }

// mimeSubtype returns "opus" for "audio/opus".
func mimeSubtype(mime string) string {
	_, sub, _ := strings.Cut(mime, "/")
	return sub
}
