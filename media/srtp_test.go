package media

import (
	"bytes"
	"crypto/rand"
	"testing"
	"time"

	"github.com/pion/srtp/v3"
)

func srtpKey(tb testing.TB) []byte {
	tb.Helper()
	k := make([]byte, SRTPKeyLen)
	if _, err := rand.Read(k); err != nil {
		tb.Fatal(err)
	}
	return k
}

func srtpContext(tb testing.TB, key []byte) *srtp.Context {
	tb.Helper()
	c, err := srtp.CreateContext(key[:16], key[16:], srtp.ProtectionProfileAes128CmHmacSha1_80)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// TestSRTPLeg terminates SRTP on leg A (the phone's key in, the relay's key
// out) while leg B is plain: audio and RTCP cross intact both ways, and
// packets under a wrong key are dropped and counted.
func TestSRTPLeg(t *testing.T) {
	leakCheck(t)
	r := newTestRelay(t, 2, 0)
	s := newTestSession(t, r, "srtp")
	alice, bob := newPhone(t), newPhone(t)
	connect(s, alice, bob)
	aliceKey, relayKey := srtpKey(t), srtpKey(t)
	if err := s.A().SetSRTP(SuiteAES128SHA1_80, aliceKey, relayKey); err != nil {
		t.Fatal(err)
	}
	aliceEnc, aliceDec := srtpContext(t, aliceKey), srtpContext(t, relayKey)
	buf := make([]byte, 2048)

	// Alice → Bob: SRTP in, plain out.
	for range 5 {
		plain := alice.nextRTP()
		sec, err := aliceEnc.EncryptRTP(nil, plain, nil)
		if err != nil {
			t.Fatal(err)
		}
		send(t, alice.rtp, legAddr(s.A()), sec)
		got, _ := mustRecv(t, bob.rtp, buf)
		if !bytes.Equal(got, plain) {
			t.Fatalf("bob got %x, want %x", got, plain)
		}
	}
	// Bob → Alice: plain in, SRTP under the relay's key out.
	for range 5 {
		plain := bob.nextRTP()
		send(t, bob.rtp, legAddr(s.B()), plain)
		got, _ := mustRecv(t, alice.rtp, buf)
		if bytes.Equal(got, plain) {
			t.Fatal("alice got plain RTP on an SRTP leg")
		}
		dec, err := aliceDec.DecryptRTP(nil, got, nil)
		if err != nil {
			t.Fatalf("alice cannot decrypt with the relay's key: %v", err)
		}
		if !bytes.Equal(dec, plain) {
			t.Fatalf("alice decrypted %x, want %x", dec, plain)
		}
	}
	// SRTCP both ways on the RTCP ports.
	rr := rtcpReceiverReport(7)
	sec, err := aliceEnc.EncryptRTCP(nil, rr, nil)
	if err != nil {
		t.Fatal(err)
	}
	send(t, alice.rtcp, legRTCPAddr(s.A()), sec)
	if got, _ := mustRecv(t, bob.rtcp, buf); !bytes.Equal(got, rr) {
		t.Fatalf("bob got RTCP %x, want %x", got, rr)
	}
	send(t, bob.rtcp, legRTCPAddr(s.B()), rtcpReceiverReport(8))
	got, _ := mustRecv(t, alice.rtcp, buf)
	if dec, err := aliceDec.DecryptRTCP(nil, got, nil); err != nil || !bytes.Equal(dec, rtcpReceiverReport(8)) {
		t.Fatalf("alice SRTCP: %x, %v", dec, err)
	}

	// A wrong key: dropped, counted, nothing reaches Bob.
	before := s.A().Stats()
	wrong := srtpContext(t, srtpKey(t))
	for range 3 {
		sec, err := wrong.EncryptRTP(nil, alice.nextRTP(), nil)
		if err != nil {
			t.Fatal(err)
		}
		send(t, alice.rtp, legAddr(s.A()), sec)
	}
	eventually(t, "three failed packets counted", func() bool {
		return s.A().Stats().SRTPFailed == before.SRTPFailed+3
	})
	expectNothing(t, bob.rtp, buf, 100*time.Millisecond)
	st := s.A().Stats()
	if st.PacketsIn != before.PacketsIn || st.Dropped != before.Dropped+3 {
		t.Fatalf("after wrong-key packets: in %d (was %d), dropped %d (was %d)", st.PacketsIn, before.PacketsIn, st.Dropped, before.Dropped)
	}
	if st.PacketsIn != 5 || s.B().Stats().PacketsOut != 5 || s.A().Stats().PacketsOut != 5 {
		t.Fatalf("counters: A in %d out %d, B out %d", st.PacketsIn, st.PacketsOut, s.B().Stats().PacketsOut)
	}
}

func TestSetSRTPRejectsBadInput(t *testing.T) {
	leakCheck(t)
	r := newTestRelay(t, 2, 0)
	s := newTestSession(t, r, "srtp-bad")
	if err := s.A().SetSRTP("AES_256_CM_HMAC_SHA1_80", srtpKey(t), srtpKey(t)); err == nil {
		t.Fatal("unsupported suite accepted")
	}
	if err := s.A().SetSRTP(SuiteAES128SHA1_32, srtpKey(t)[:20], srtpKey(t)); err == nil {
		t.Fatal("short key accepted")
	}
	if err := s.A().SetSRTP("", nil, nil); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkLegHandleSRTP measures the SRTP-to-SRTP path (decrypt, encrypt)
// of one packet, and its allocations.
func BenchmarkLegHandleSRTP(b *testing.B) {
	r := newTestRelay(b, 2, 0)
	s := newTestSession(b, r, "bench-srtp")
	alice, bob := newPhone(b), newPhone(b)
	connect(s, alice, bob)
	k := srtpKey(b)
	if err := s.A().SetSRTP(SuiteAES128SHA1_80, k, srtpKey(b)); err != nil {
		b.Fatal(err)
	}
	if err := s.B().SetSRTP(SuiteAES128SHA1_80, srtpKey(b), srtpKey(b)); err != nil {
		b.Fatal(err)
	}
	enc := srtpContext(b, k)
	leg := s.A()
	var sc readerScratch
	b.ReportAllocs()
	pkts := make([][]byte, 0, 1024)
	for range cap(pkts) {
		p, err := enc.EncryptRTP(nil, alice.nextRTP(), nil)
		if err != nil {
			b.Fatal(err)
		}
		pkts = append(pkts, p)
	}
	i := 0
	for b.Loop() {
		if i == len(pkts) {
			// Replay protection would drop repeats: encrypt afresh.
			b.StopTimer()
			for j := range pkts {
				pkts[j], _ = enc.EncryptRTP(pkts[j][:0], alice.nextRTP(), nil)
			}
			i = 0
			b.StartTimer()
		}
		leg.handleRTP(&sc, pkts[i], alice.rtpAddr, r.now())
		i++
	}
	if st := leg.Stats(); st.SRTPFailed != 0 {
		b.Fatalf("%d packets failed", st.SRTPFailed)
	}
}
