package media

import (
	"fmt"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// SRTP suites a leg can terminate (RFC 4568 §6.2 names).
const (
	SuiteAES128SHA1_80 = "AES_CM_128_HMAC_SHA1_80"
	SuiteAES128SHA1_32 = "AES_CM_128_HMAC_SHA1_32"
)

// SRTPKeyLen is the length of the master key and salt of both suites,
// concatenated as in an SDES inline key: 16 key bytes then 14 salt bytes.
const SRTPKeyLen = 30

// srtpLeg is the SRTP state of one leg. Each context is used by exactly one
// socket reader, since a [srtp.Context] is not safe for concurrent use:
//   - rtpIn and rtcpIn decrypt what the leg's peer sends, in the leg's RTP
//     and RTCP readers;
//   - rtpOut and rtcpOut encrypt what goes to the peer, in the other leg's
//     RTP and RTCP readers.
//
// RTCP multiplexed on the RTP port uses the RTP reader's context.
type srtpLeg struct {
	rtpIn, rtcpIn, rtpOut, rtcpOut *srtp.Context
}

// srtpProfile maps a suite name to pion's protection profile.
func srtpProfile(suite string) (srtp.ProtectionProfile, error) {
	switch suite {
	case SuiteAES128SHA1_80:
		return srtp.ProtectionProfileAes128CmHmacSha1_80, nil
	case SuiteAES128SHA1_32:
		return srtp.ProtectionProfileAes128CmHmacSha1_32, nil
	}
	return 0, fmt.Errorf("media: SRTP suite %q is not supported", suite)
}

// SetSRTP makes the leg terminate SRTP and SRTCP (RFC 3711) towards its
// peer: packets from the peer are authenticated and decrypted with
// remoteKey, packets to it are encrypted with localKey. Both keys are a
// 30-byte master key and salt. Packets that fail authentication are dropped
// and counted. An empty suite turns SRTP off again (plain RTP). Calling it
// again, for a re-INVITE with new keys, starts fresh contexts.
func (l *Leg) SetSRTP(suite string, remoteKey, localKey []byte) error {
	if suite == "" {
		l.srtp.Store(nil)
		return nil
	}
	profile, err := srtpProfile(suite)
	if err != nil {
		return err
	}
	if len(remoteKey) != SRTPKeyLen || len(localKey) != SRTPKeyLen {
		return fmt.Errorf("media: SRTP keys must be %d bytes", SRTPKeyLen)
	}
	var st srtpLeg
	for _, c := range []struct {
		dst *(*srtp.Context)
		key []byte
	}{{&st.rtpIn, remoteKey}, {&st.rtcpIn, remoteKey}, {&st.rtpOut, localKey}, {&st.rtcpOut, localKey}} {
		ctx, err := srtp.CreateContext(c.key[:16], c.key[16:], profile)
		if err != nil {
			return fmt.Errorf("media: SRTP context: %w", err)
		}
		*c.dst = ctx
	}
	l.srtp.Store(&st)
	l.log.Debug("media SRTP on", "leg", l.name, "suite", suite)
	return nil
}

// readerScratch is the per-reader state of the SRTP path: buffers for the
// decrypted and re-encrypted packet, and a header to parse into, reused
// packet after packet. A reader owns its scratch.
type readerScratch struct {
	plain, secure []byte
	hdr           rtp.Header
	rtcpHdr       rtcp.Header
}

// buffers allocates the scratch buffers on first use, so that plain RTP
// legs never pay for them.
func (sc *readerScratch) buffers() {
	if sc.plain == nil {
		sc.plain = make([]byte, readBufferSize)
		sc.secure = make([]byte, readBufferSize+64)
	}
}

// unprotect decrypts pkt from l's peer when l terminates SRTP, returning the
// plain packet (in sc) or ok=false when it fails authentication or replay
// checks, counted on l. rtcp says pkt is an RTCP packet; rtpReader says
// which of l's readers runs this.
func (l *Leg) unprotect(sc *readerScratch, pkt []byte, rtcp, rtpReader bool) ([]byte, bool) {
	st := l.srtp.Load()
	if st == nil {
		return pkt, true
	}
	ctx := st.rtcpIn
	if rtpReader {
		ctx = st.rtpIn
	}
	sc.buffers()
	var out []byte
	var err error
	if rtcp {
		out, err = ctx.DecryptRTCP(sc.plain[:0], pkt, &sc.rtcpHdr)
	} else {
		out, err = ctx.DecryptRTP(sc.plain[:0], pkt, &sc.hdr)
	}
	if err != nil {
		l.srtpFailed.Add(1)
		l.dropped.Add(1)
		return nil, false
	}
	return out, true
}

// protect encrypts pkt for out's peer when out terminates SRTP. It runs in
// a reader of out's other leg (l), which owns sc.
func (l *Leg) protect(out *Leg, sc *readerScratch, pkt []byte, rtcp, rtpReader bool) ([]byte, bool) {
	st := out.srtp.Load()
	if st == nil {
		return pkt, true
	}
	ctx := st.rtcpOut
	if rtpReader {
		ctx = st.rtpOut
	}
	sc.buffers()
	var b []byte
	var err error
	if rtcp {
		b, err = ctx.EncryptRTCP(sc.secure[:0], pkt, &sc.rtcpHdr)
	} else {
		b, err = ctx.EncryptRTP(sc.secure[:0], pkt, &sc.hdr)
	}
	if err != nil {
		l.dropped.Add(1)
		return nil, false
	}
	return b, true
}
