package sip

import (
	"bytes"
	"crypto/rand"
	"strconv"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"

	"github.com/switchboard/switchboard/media"
)

func testSRTPKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, media.SRTPKeyLen)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func testSRTPContext(t *testing.T, key []byte) *srtp.Context {
	t.Helper()
	c, err := srtp.CreateContext(key[:16], key[16:], srtp.ProtectionProfileAes128CmHmacSha1_80)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// relayKey checks that body is RTP/SAVP with one crypto line and returns
// its key.
func relayKey(t *testing.T, who string, body []byte) []byte {
	t.Helper()
	_, _, info, err := parseSDPSecure(body)
	if err != nil {
		t.Fatalf("%s got unusable SDP: %v\n%s", who, err, body)
	}
	if !info.Secure || len(info.Crypto) != 1 || info.Crypto[0].Suite != media.SuiteAES128SHA1_80 || info.Crypto[0].Tag != "1" {
		t.Fatalf("%s got SDP without one AES_CM_128_HMAC_SHA1_80 crypto line (secure %v, %d lines):\n%s", who, info.Secure, len(info.Crypto), body)
	}
	return info.Crypto[0].Key
}

// srtpAudio sends n SRTP packets under key from one phone to the relay and
// checks the other phone decrypts every one intact under the relay key it
// was given. A nil key is a plain RTP phone on that side.
func srtpAudio(t *testing.T, e *callEnv, from, to *testPhone, key, toRelayKey []byte, n int, seq0 uint16) {
	t.Helper()
	dst := from.mediaDst()
	if !e.inRelayRange(dst) {
		t.Fatalf("phone %s would send to %v, not the relay", from.user, dst)
	}
	var enc, dec *srtp.Context
	if key != nil {
		enc = testSRTPContext(t, key)
	}
	if toRelayKey != nil {
		dec = testSRTPContext(t, toRelayKey)
	}
	to.drainRTP()
	tag := from.user[len(from.user)-1]
	for i := range n {
		seq := seq0 + uint16(i)
		plain, err := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: seq,
			Timestamp: uint32(seq) * 160, SSRC: ssrcOf(from.user)}, Payload: pcmu(tag, seq)}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		sec := plain
		if enc != nil {
			if sec, err = enc.EncryptRTP(nil, plain, nil); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := from.rtpConn.WriteToUDPAddrPort(sec, dst); err != nil {
			t.Fatal(err)
		}
	}
	got := map[uint16]bool{}
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < n && time.Now().Before(deadline) {
		r, ok := to.recvRTP(time.Until(deadline))
		if !ok {
			break
		}
		raw, err := r.pkt.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		plain := raw
		if dec != nil {
			if bytes.Contains(raw, pcmu(tag, r.pkt.SequenceNumber)[:32]) {
				t.Fatalf("phone %s received audio in the clear", to.user)
			}
			if plain, err = dec.DecryptRTP(nil, raw, nil); err != nil {
				t.Fatalf("phone %s cannot decrypt with the relay's key: %v", to.user, err)
			}
		}
		var p rtp.Packet
		if err := p.Unmarshal(plain); err != nil {
			t.Fatal(err)
		}
		if p.SSRC != ssrcOf(from.user) || !bytes.Equal(p.Payload, pcmu(tag, p.SequenceNumber)) {
			t.Fatalf("phone %s decrypted a damaged packet: SSRC %x seq %d", to.user, p.SSRC, p.SequenceNumber)
		}
		got[p.SequenceNumber] = true
	}
	if len(got) < n {
		t.Fatalf("SRTP %s→%s: %d of %d packets arrived", from.user, to.user, len(got), n)
	}
}

// srtpCall registers 1001 and 1002 as phones with the options given and
// has 1001 call 1002, which answers: the call must connect.
func srtpCall(t *testing.T, e *callEnv, optsA, optsB phoneOpts) (a, b *testPhone, oc *outCall) {
	t.Helper()
	a = e.newPhone("1001", "pw-1001", optsA)
	b = e.newPhone("1002", "pw-1002", optsB)
	a.register()
	b.register()
	oc = a.call("1002", callOpts{})
	if oc.status != 200 {
		t.Fatalf("status %d, responses %v", oc.status, oc.codes)
	}
	return a, b, oc
}

// TestCallSRTP: a caller offering RTP/SAVP with an SDES key calls an SRTP
// phone. Each phone gets the relay's own key, never the other phone's, and
// audio crosses both ways encrypted and intact.
func TestCallSRTP(t *testing.T) {
	e := newCallEnv(t, 0)
	keyA, keyB := testSRTPKey(t), testSRTPKey(t)
	a, b, oc := srtpCall(t, e, phoneOpts{srtpKey: keyA}, phoneOpts{srtpKey: keyB})
	inv := b.expect(sip.INVITE, time.Second)
	b.expect(sip.ACK, 2*time.Second)

	relayA := relayKey(t, "caller", oc.answer)
	relayB := relayKey(t, "callee", inv.Body())
	for _, k := range [][]byte{relayA, relayB} {
		if bytes.Equal(k, keyA) || bytes.Equal(k, keyB) {
			t.Fatal("a phone was given a phone's key instead of the relay's")
		}
	}
	if bytes.Equal(relayA, relayB) {
		t.Fatal("both legs got the same relay key")
	}
	if !hasLine(oc.answer, "m=audio "+portOf(t, oc.answer)+" RTP/SAVP 0 101") {
		t.Errorf("caller's answer is not RTP/SAVP:\n%s", oc.answer)
	}

	srtpAudio(t, e, a, b, keyA, relayB, 30, 100)
	srtpAudio(t, e, b, a, keyB, relayA, 30, 100)

	// A re-INVITE with the same key: each phone keeps its relay key and
	// audio goes on.
	req := sip.NewRequest(sip.INVITE, oc.d.InviteResponse.Contact().Address)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(a.offer("sendrecv"))
	res := oc.do(req)
	if res.StatusCode != 200 {
		t.Fatalf("re-INVITE: %d", res.StatusCode)
	}
	re := b.expect(sip.INVITE, time.Second)
	b.expect(sip.ACK, 2*time.Second)
	if !bytes.Equal(relayKey(t, "caller", res.Body()), relayA) || !bytes.Equal(relayKey(t, "callee", re.Body()), relayB) {
		t.Fatal("a re-INVITE changed the relay's keys")
	}
	srtpAudio(t, e, a, b, keyA, relayB, 30, 200)
	srtpAudio(t, e, b, a, keyB, relayA, 30, 200)

	oc.hangup()
	b.expect(sip.BYE, 2*time.Second)
	e.waitIdle(t)
}

// TestCallSRTPToPlainPhone: the callee is offered RTP/SAVP and answers
// plain RTP/AVP; the relay encrypts only on the caller's leg.
func TestCallSRTPToPlainPhone(t *testing.T) {
	e := newCallEnv(t, 0)
	keyA := testSRTPKey(t)
	a, b, oc := srtpCall(t, e, phoneOpts{srtpKey: keyA}, phoneOpts{})
	inv := b.expect(sip.INVITE, time.Second)
	b.expect(sip.ACK, 2*time.Second)
	relayA, relayB := relayKey(t, "caller", oc.answer), relayKey(t, "callee", inv.Body())
	if bytes.Equal(relayA, keyA) || bytes.Equal(relayB, keyA) {
		t.Fatal("the caller's key was passed on")
	}
	srtpAudio(t, e, a, b, keyA, nil, 30, 100)
	srtpAudio(t, e, b, a, nil, relayA, 30, 100)
	oc.hangup()
	b.expect(sip.BYE, 2*time.Second)
	e.waitIdle(t)
}

// TestCallSRTPToPhoneWithoutSRTP: a callee that refuses RTP/SAVP with 488
// is offered plain RTP/AVP at once; the call connects, SRTP on the
// caller's leg only.
func TestCallSRTPToPhoneWithoutSRTP(t *testing.T) {
	e := newCallEnv(t, 0)
	keyA := testSRTPKey(t)
	a, b, oc := srtpCall(t, e, phoneOpts{srtpKey: keyA}, phoneOpts{plainOnly: true})
	first := b.expect(sip.INVITE, time.Second)
	if !bytes.Contains(first.Body(), []byte("RTP/SAVP")) {
		t.Fatalf("the callee was not offered SRTP first:\n%s", first.Body())
	}
	second := b.expect(sip.INVITE, 2*time.Second)
	if bytes.Contains(second.Body(), []byte("RTP/SAVP")) || bytes.Contains(second.Body(), []byte("a=crypto")) {
		t.Fatalf("the retry still offers SRTP:\n%s", second.Body())
	}
	b.expect(sip.ACK, 2*time.Second)
	relayA := relayKey(t, "caller", oc.answer)
	srtpAudio(t, e, a, b, keyA, nil, 30, 100)
	srtpAudio(t, e, b, a, nil, relayA, 30, 100)
	oc.hangup()
	b.expect(sip.BYE, 2*time.Second)
	e.waitIdle(t)
}

// TestCallSRTPWithoutUsableKey: RTP/SAVP whose crypto line the relay cannot
// use is refused with 488.
func TestCallSRTPWithoutUsableKey(t *testing.T) {
	e := newCallEnv(t, 0)
	a := e.newPhone("1001", "pw-1001", phoneOpts{srtpKey: []byte("short key")})
	b := e.newPhone("1002", "pw-1002", phoneOpts{})
	a.register()
	b.register()
	if oc := a.call("1002", callOpts{}); oc.status != 488 {
		t.Fatalf("status %d, want 488", oc.status)
	}
	if n := b.count(sip.INVITE); n != 0 {
		t.Fatalf("callee got %d INVITEs", n)
	}
	e.waitIdle(t)
}

func portOf(t *testing.T, body []byte) string {
	t.Helper()
	_, _, info, err := parseSDPSecure(body)
	if err != nil {
		t.Fatal(err)
	}
	return strconv.Itoa(int(info.RTP.Port()))
}

func TestParseCrypto(t *testing.T) {
	key := "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz" // 30 bytes
	for v, ok := range map[string]bool{
		"1 AES_CM_128_HMAC_SHA1_80 inline:" + key:                 true,
		"2 AES_CM_128_HMAC_SHA1_32 inline:" + key + "|2^20":       true,
		"1 AES_CM_128_HMAC_SHA1_80 inline:" + key + "|2^20|1:4":   false, // MKI
		"1 AES_256_CM_HMAC_SHA1_80 inline:" + key:                 false,
		"1 AES_CM_128_HMAC_SHA1_80 inline:c2hvcnQ=":               false,
		"1 AES_CM_128_HMAC_SHA1_80 inline:" + key + " UNENC_SRTP": false,
		"1 AES_CM_128_HMAC_SHA1_80":                               false,
		"":                                                        false,
	} {
		if _, got := parseCrypto(v); got != ok {
			t.Errorf("parseCrypto(%q) usable = %v, want %v", v, got, ok)
		}
	}
}
