package sip

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"

	"github.com/pion/sdp/v3"

	"github.com/switchboard/switchboard/media"
)

// SRTP with SDES keys (RFC 4568) on a leg whose phone offers RTP/SAVP: the
// relay terminates SRTP on that leg. Each leg has the relay's own key,
// made per call; the phone's key decrypts what it sends, the relay's key
// (in the SDP the phone receives) encrypts what it is sent. The other leg
// is offered the same profile, with its own relay key, so the two phones
// never learn each other's keys. Keys are never logged.

// cryptoLine is a usable a=crypto attribute: one inline key, no MKI.
type cryptoLine struct {
	Tag   string
	Suite string
	Key   []byte // master key and salt
}

// parseCrypto reads "<tag> <suite> inline:<key||salt>[|lifetime]" (RFC 4568
// §9.1). Suites the relay does not terminate, several keys, MKIs and
// session parameters make the line unusable.
func parseCrypto(v string) (cryptoLine, bool) {
	f := strings.Fields(v)
	if len(f) != 3 || (f[1] != media.SuiteAES128SHA1_80 && f[1] != media.SuiteAES128SHA1_32) {
		return cryptoLine{}, false
	}
	inline, ok := strings.CutPrefix(f[2], "inline:")
	if !ok || strings.Contains(inline, ";") {
		return cryptoLine{}, false
	}
	parts := strings.Split(inline, "|")
	if len(parts) > 2 || (len(parts) == 2 && strings.Contains(parts[1], ":")) {
		return cryptoLine{}, false // an MKI
	}
	key, err := base64.StdEncoding.DecodeString(parts[0])
	if err != nil || len(key) != media.SRTPKeyLen {
		return cryptoLine{}, false
	}
	return cryptoLine{Tag: f[0], Suite: f[1], Key: key}, true
}

// sdesLeg is the SDES state of one leg of a call; guarded by call.mu.
type sdesLeg struct {
	local  []byte // the relay's key towards this leg's peer, made once
	suite  string // in use; "" while the leg is plain
	tag    string
	remote []byte // the peer's key
}

// srtpMedia is implemented by relay sessions that terminate SRTP.
type srtpMedia interface {
	SetSRTP(leg Leg, suite string, remoteKey, localKey []byte) error
}

var errNoCrypto = errors.New("sdp: RTP/SAVP without a usable a=crypto line (AES_CM_128_HMAC_SHA1_80 or _32, one inline key)")

// parseCallerOffer is parseOffer for a caller whose offer may be RTP/SAVP.
func parseCallerOffer(body []byte) (*sdp.SessionDescription, int, mediaInfo, bool, error) {
	if !isWebRTCOffer(body) {
		sd, audio, info, err := parseSDPSecure(body)
		if err == nil && info.Secure && len(info.Crypto) == 0 {
			err = errNoCrypto
		}
		return sd, audio, info, false, err
	}
	return parseOffer(body)
}

// secureSDP applies SDES to sd, an SDP that from's peer sent, before it is
// rewritten for to's peer: it sets the relay's SRTP on leg from with the
// peer's key, and replaces the audio stream's profile and crypto lines
// with what to's peer gets: RTP/SAVP with the relay's key for leg to when
// from's peer is secure or leg to already is, plain RTP/AVP otherwise.
func (c *call) secureSDP(from, to Leg, sd *sdp.SessionDescription, audio int, info mediaInfo) error {
	m := sd.MediaDescriptions[audio]
	c.mu.Lock()
	defer c.mu.Unlock()
	f, t := &c.sdes[from], &c.sdes[to]
	var chosen cryptoLine
	if info.Secure {
		if len(info.Crypto) == 0 {
			return errNoCrypto
		}
		chosen = info.Crypto[0]
	}
	sm, ok := c.media.(srtpMedia)
	if info.Secure && !ok {
		return errors.New("sdp: this relay does not do SRTP")
	}
	if info.Secure && (f.suite != chosen.Suite || !bytes.Equal(f.remote, chosen.Key)) {
		if f.local == nil {
			f.local = newSRTPKey()
		}
		if err := sm.SetSRTP(from, chosen.Suite, chosen.Key, f.local); err != nil {
			return err
		}
		f.suite, f.tag, f.remote = chosen.Suite, chosen.Tag, chosen.Key
	} else if !info.Secure && f.suite != "" {
		if ok {
			_ = sm.SetSRTP(from, "", nil, nil)
		}
		f.suite, f.tag, f.remote = "", "", nil
	}

	attrs := make([]sdp.Attribute, 0, len(m.Attributes)+1)
	for _, a := range m.Attributes {
		if a.Key != "crypto" {
			attrs = append(attrs, a)
		}
	}
	suite, tag := t.suite, t.tag
	if info.Secure {
		suite, tag = chosen.Suite, chosen.Tag
	}
	profile := strings.TrimPrefix(m.MediaName.Protos[1], "S")
	if suite != "" {
		if t.local == nil {
			t.local = newSRTPKey()
		}
		profile = "S" + profile
		attrs = append(attrs, sdp.Attribute{Key: "crypto", Value: tag + " " + suite + " inline:" + base64.StdEncoding.EncodeToString(t.local)})
	}
	m.MediaName.Protos = []string{"RTP", profile}
	m.Attributes = attrs
	return nil
}

// newSRTPKey makes a fresh master key and salt.
func newSRTPKey() []byte {
	k := make([]byte, media.SRTPKeyLen)
	_, _ = rand.Read(k) // never fails (crypto/rand)
	return k
}

// plainOffer returns offer with its RTP/SAVP audio stream made plain
// RTP/AVP (no crypto lines), and whether there was one to change.
func plainOffer(offer []byte) ([]byte, bool) {
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(offer); err != nil {
		return nil, false
	}
	changed := false
	for _, m := range sd.MediaDescriptions {
		if m.MediaName.Media != "audio" || len(m.MediaName.Protos) != 2 || m.MediaName.Protos[1] != "SAVP" {
			continue
		}
		m.MediaName.Protos = []string{"RTP", "AVP"}
		attrs := m.Attributes[:0]
		for _, a := range m.Attributes {
			if a.Key != "crypto" {
				attrs = append(attrs, a)
			}
		}
		m.Attributes = attrs
		changed = true
	}
	if !changed {
		return nil, false
	}
	out, err := sd.Marshal()
	if err != nil {
		return nil, false
	}
	return out, true
}
