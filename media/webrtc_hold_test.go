package media

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestDirectionAnswer(t *testing.T) {
	for offer, want := range map[Direction]Direction{SendRecv: SendRecv, SendOnly: RecvOnly, RecvOnly: SendOnly, Inactive: Inactive, "": SendRecv, "bogus": SendRecv} {
		if got := offer.Answer(); got != want {
			t.Errorf("%q.Answer() = %q, want %q", offer, got, want)
		}
	}
}

// TestWebRTCPlainSideHold: the phone of a browser call holds and resumes.
// Its new offers are checked against the codecs in use, and while it is
// on hold the bridge withholds the RTP its direction does not let through;
// RTCP goes on.
func TestWebRTCPlainSideHold(t *testing.T) {
	leakCheck(t)
	relay := newTestRelay(t, 2, 0)
	w := newTestWebRTC(t, WebRTCConfig{})
	c := newPhoneCall(t, relay, "call-hold")
	br := newTestBrowser(t, chromeCodecs)
	plainSDP := phoneSDP(c.phone.rtpAddr, "0 101", "rtpmap:101 telephone-event/8000", "fmtp:101 0-16")
	b, answer, err := w.Answer(testCtx(t), br.offer(false), c.s.A(), mustParseCodecs(t, plainSDP))
	if err != nil {
		t.Fatalf("Answer: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	br.accept(answer)
	waitConnected(t, br, b)

	// What a re-offer may change without the browser.
	for name, tc := range map[string]struct {
		sdp  string
		want string // codecs, or "" for ErrNoCommonCodec
	}{
		"same offer":             {plainSDP, "[PCMU/8000 telephone-event/8000]"},
		"fewer codecs":           {phoneSDP(c.phone.rtpAddr, "0"), "[PCMU/8000]"},
		"events renumbered":      {phoneSDP(c.phone.rtpAddr, "0 102", "rtpmap:102 telephone-event/8000"), "[PCMU/8000]"},
		"more codecs":            {phoneSDP(c.phone.rtpAddr, "8 0 101", "rtpmap:101 telephone-event/8000"), "[PCMU/8000 telephone-event/8000]"},
		"another codec only":     {phoneSDP(c.phone.rtpAddr, "8 101", "rtpmap:101 telephone-event/8000"), ""},
		"PCMU number reused":     {phoneSDP(c.phone.rtpAddr, "0", "rtpmap:0 PCMA/8000"), ""},
		"no audio at all (DTMF)": {phoneSDP(c.phone.rtpAddr, "101", "rtpmap:101 telephone-event/8000"), ""},
	} {
		t.Run(name, func(t *testing.T) {
			cs, err := b.Reoffered(tc.sdp)
			if tc.want == "" {
				if !errors.Is(err, ErrNoCommonCodec) {
					t.Fatalf("Reoffered = %v, %v; want ErrNoCommonCodec", cs, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, c := range cs {
				names = append(names, c.String())
			}
			if got := "[" + strings.Join(names, " ") + "]"; got != tc.want {
				t.Fatalf("Reoffered = %s, want %s", got, tc.want)
			}
		})
	}

	seq := uint16(100)
	phoneSends := func(n int) {
		for range n {
			seq++
			c.phoneSend(t, 0, false, seq, uint32(seq)*160, audioPayload(int(seq)))
		}
	}
	browserSends := func(n int) {
		for i := range n {
			br.send(0, false, uint32(i*160), audioPayload(i))
		}
	}
	phoneGetsNothing := func(what string) {
		t.Helper()
		if pkt, _, err := recv(t, c.phone.rtp, c.buf, 300*time.Millisecond); err == nil {
			t.Fatalf("%s: the phone got %x", what, pkt[:min(len(pkt), 12)])
		}
	}
	browserGetsNothing := func(what string) {
		t.Helper()
		select {
		case p := <-br.rx:
			t.Fatalf("%s: the browser got seq %d", what, p.SequenceNumber)
		case <-time.After(300 * time.Millisecond):
		}
	}

	// Before the hold the phone hears the browser.
	browserSends(2)
	for range 2 {
		c.phoneRecv(t)
	}

	// The phone holds (sendonly): it may play music to the browser, and
	// gets nothing from it.
	b.SetPlainDirection(SendOnly)
	browserSends(10)
	phoneGetsNothing("on hold (sendonly)")
	phoneSends(3)
	for range 3 {
		br.recv()
	}
	eventually(t, "10 withheld", func() bool { return b.Stats().Withheld == 10 })
	// RTCP still reaches the phone.
	br.sendRTCP()
	if pkt, _ := mustRecv(t, c.phone.rtcp, c.buf); !isRTCP(pkt) {
		t.Fatalf("phone RTCP on hold = %x", pkt)
	}

	// inactive: nothing either way.
	b.SetPlainDirection(Inactive)
	phoneSends(5)
	browserGetsNothing("inactive")
	browserSends(5)
	phoneGetsNothing("inactive")
	eventually(t, "20 withheld", func() bool { return b.Stats().Withheld == 20 })

	// recvonly: the phone listens only.
	b.SetPlainDirection(RecvOnly)
	phoneSends(5)
	browserGetsNothing("recvonly")
	browserSends(3)
	for range 3 {
		if p := c.phoneRecv(t); p.PayloadType != 0 {
			t.Fatalf("phone got PT %d", p.PayloadType)
		}
	}

	// Resumed: both ways again.
	b.SetPlainDirection(SendRecv)
	browserSends(5)
	for range 5 {
		c.phoneRecv(t)
	}
	phoneSends(5)
	for range 5 {
		br.recv()
	}
	if st := b.Stats(); st.Withheld != 25 || st.Dropped != 0 {
		t.Fatalf("stats %+v, want 25 withheld and none dropped", st)
	}
	// What was held back is not loss: the stream the phone gets has no
	// gap in its sequence numbers.
	var st LegStats
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if st = c.s.A().Stats(); st.PacketsIn == 10 {
			break
		}
	}
	if st.Lost != 0 || st.PacketsIn != 10 {
		t.Errorf("leg A stats %+v, want 10 packets in and none lost", st)
	}
}

func TestPlainAudioSDPDirection(t *testing.T) {
	cs := []Codec{{PayloadType: 0, Name: "PCMU", ClockRate: 8000}}
	addr := loopback
	for d, want := range map[Direction]string{SendRecv: "a=sendrecv\r\n", RecvOnly: "a=recvonly\r\n", Inactive: "a=inactive\r\n", "": "a=sendrecv\r\n"} {
		body := PlainAudioSDPDirection(netip.AddrPortFrom(addr, 4000), cs, 1, 2, d)
		if !strings.HasSuffix(body, want) || strings.Count(body, "a=") != 2 {
			t.Errorf("%q: body ends %q, want one direction %q:\n%s", d, body[len(body)-14:], want, body)
		}
	}
}
