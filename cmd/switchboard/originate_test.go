package main

import (
	"bytes"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/web"
)

var (
	origSDPConn  = regexp.MustCompile(`(?m)^c=IN IP4 ([0-9.]+)`)
	origSDPAudio = regexp.MustCompile(`(?m)^m=audio ([0-9]+) `)
)

// sdpTarget returns where an SDP body wants its audio.
func sdpTarget(t *testing.T, body string) *net.UDPAddr {
	t.Helper()
	c, m := origSDPConn.FindStringSubmatch(body), origSDPAudio.FindStringSubmatch(body)
	if c == nil || m == nil {
		t.Fatalf("SDP without address or audio port:\n%s", body)
	}
	port, _ := strconv.Atoi(m[1])
	return &net.UDPAddr{IP: net.ParseIP(c[1]), Port: port}
}

// rtpSocket is a phone's media socket.
func rtpSocket(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// rtpPacket is a minimal PCMU RTP packet.
func rtpPacket(seq uint16, payload byte) []byte {
	p := make([]byte, 12+160)
	p[0], p[1] = 0x80, 0
	p[2], p[3] = byte(seq>>8), byte(seq)
	ts := uint32(seq) * 160
	p[4], p[5], p[6], p[7] = byte(ts>>24), byte(ts>>16), byte(ts>>8), byte(ts)
	p[8], p[9], p[10], p[11] = 0x12, 0x34, 0x56, 0x78
	for i := 12; i < len(p); i++ {
		p[i] = payload
	}
	return p
}

// mediaFlows sends RTP from one socket to dst until to receives one
// carrying the same payload.
func mediaFlows(t *testing.T, from *net.UDPConn, dst *net.UDPAddr, to *net.UDPConn, payload byte) {
	t.Helper()
	buf := make([]byte, 2048)
	deadline := time.Now().Add(10 * time.Second)
	for seq := uint16(1); time.Now().Before(deadline); seq++ {
		if _, err := from.WriteToUDP(rtpPacket(seq, payload), dst); err != nil {
			t.Fatal(err)
		}
		_ = to.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		n, _, err := to.ReadFromUDP(buf)
		if err == nil && n == 12+160 && bytes.Equal(buf[12:n], bytes.Repeat([]byte{payload}, 160)) {
			return
		}
	}
	t.Fatalf("RTP with payload %#x did not get through", payload)
}

// endedRecord waits until the record of call id exists and has ended, and
// returns it (read afresh each time: absent fields keep no earlier values).
func endedRecord(t *testing.T, e *apiEnv, what, id string) web.Record {
	t.Helper()
	var rec web.Record
	waitFor(t, what, func() bool {
		rec = web.Record{}
		res, _, err := e.send("GET", "/api/v1/records/"+id, "Bearer "+apiToken, nil)
		if err != nil || res.StatusCode != 200 {
			return false
		}
		e.api("GET", "/api/v1/records/"+id, nil, 200, &rec)
		return !rec.EndedAt.IsZero()
	})
	return rec
}

func TestOriginate(t *testing.T) {
	e := startAPI(t, map[string]string{"1001": "alice-1001", "1002": "bob-1002", "1003": "carol-1003"})
	sipAddr := fmt.Sprintf("127.0.0.1:%d", e.sipPort)
	alice := newPhone(t, sipAddr, "1001", "alice-1001", "")
	bob := newPhone(t, sipAddr, "1002", "bob-1002", "")
	for _, p := range []*sipPhone{alice, bob} {
		if code := p.register(300); code != 200 {
			t.Fatalf("%s REGISTER: %d", p.user, code)
		}
	}

	// Errors: unknown caller, caller with no device, invalid fields.
	var p apiProblem
	e.api("POST", "/api/v1/calls", map[string]string{"from": "9999", "to": "1002"}, 404, &p)
	e.api("POST", "/api/v1/calls", map[string]string{"from": "1003", "to": "1002"}, 409, &p)
	// A number nobody can reach is refused before the caller's phone rings.
	e.api("POST", "/api/v1/calls", map[string]string{"from": "1001", "to": "9999"}, 404, &p)
	if !strings.Contains(p.Detail, `"9999"`) {
		t.Fatalf("404 for an unreachable number: %+v", p)
	}
	e.api("POST", "/api/v1/calls", map[string]string{"from": "10 01", "to": ""}, 422, &p)
	if loc := p.locations(); len(loc) != 2 {
		t.Fatalf("422 locations %v", loc)
	}

	var o web.Originate
	e.api("POST", "/api/v1/calls", map[string]string{"from": "1001", "to": "1002"}, 202, &o)
	if o.ID == "" || o.From != "1001" || o.To != "1002" || o.State != "ringing" {
		t.Fatalf("originate %+v", o)
	}

	// Alice's phone rings, showing whom it will call, and she answers.
	aliceRTP, bobRTP := rtpSocket(t), rtpSocket(t)
	inA := alice.readRequest("INVITE")
	// Meanwhile the click-to-call is a call ringing, under its ID.
	var ringing web.Call
	e.api("GET", "/api/v1/calls/"+o.ID, nil, 200, &ringing)
	if ringing.State != "ringing" || ringing.Caller != "1001" || ringing.Callee != "1002" {
		t.Fatalf("click-to-call while ringing: %+v", ringing)
	}
	if from := inA.get("from"); !regexp.MustCompile(`sip:1002@`).MatchString(from) {
		t.Fatalf("INVITE to alice from %q", from)
	}
	relayA := sdpTarget(t, string(inA.body))
	alice.respond(inA, 180, "")
	time.Sleep(500 * time.Millisecond) // she lets it ring a while
	answeredA := time.Now()
	alice.respond(inA, 200, testSDP(aliceRTP.LocalAddr().(*net.UDPAddr).Port))
	alice.readRequest("ACK")

	// Then Bob's phone rings, as a call from Alice.
	inB := bob.readRequest("INVITE")
	if from := inB.get("from"); !regexp.MustCompile(`sip:1001@`).MatchString(from) {
		t.Fatalf("INVITE to bob from %q", from)
	}
	relayB := sdpTarget(t, string(inB.body))
	bob.respond(inB, 200, testSDP(bobRTP.LocalAddr().(*net.UDPAddr).Port))
	bob.readRequest("ACK")

	var calls web.Page[web.Call]
	waitFor(t, "the connected call in the list", func() bool {
		e.api("GET", "/api/v1/calls", nil, 200, &calls)
		return len(calls.Items) == 1 && calls.Items[0].State == "answered"
	})
	c := calls.Items[0]
	if c.Caller != "1001" || c.Callee != "1002" {
		t.Fatalf("call %+v", c)
	}
	// Its setup time counts from the INVITE to Bob, not from the request
	// that first rang Alice: it is no longer than from her answer to now.
	var setup float64
	waitFor(t, "the call's setup time", func() bool {
		_, m := e.raw("GET", "/metrics", "", nil)
		sum := regexp.MustCompile(`(?m)^switchboard_call_setup_seconds_sum (\S+)$`).FindSubmatch(m)
		if sum == nil || !bytes.Contains(m, []byte("\nswitchboard_call_setup_seconds_count 1\n")) {
			return false
		}
		setup, _ = strconv.ParseFloat(string(sum[1]), 64)
		return true
	})
	if most := time.Since(answeredA).Seconds(); setup > most {
		t.Errorf("setup time %.3fs, more than the %.3fs since the first phone answered: it counts that phone's ringing", setup, most)
	}
	// The ID the API answered with names the call, and later its record.
	if c.ID != o.ID {
		t.Fatalf("call %s, click-to-call %s: want one ID", c.ID, o.ID)
	}
	// Audio flows both ways between the two phones.
	mediaFlows(t, aliceRTP, relayA, bobRTP, 0xa1)
	mediaFlows(t, bobRTP, relayB, aliceRTP, 0xb2)
	_, metrics := e.raw("GET", "/metrics", "", nil)
	if !regexp.MustCompile(`(?m)^switchboard_relay_packets_total\{direction="in"\} [1-9]`).Match(metrics) {
		t.Fatalf("relay packets not counted:\n%s", regexp.MustCompile(`(?m)^switchboard_relay.*$`).FindAll(metrics, -1))
	}

	// Hung up through the API like any call: both phones get BYE.
	hungUp := make(chan error, 1)
	go func() {
		res, _, err := e.send("DELETE", "/api/v1/calls/"+c.ID, "Bearer "+apiToken, nil)
		if err == nil && res.StatusCode != 204 {
			err = fmt.Errorf("hangup: %d", res.StatusCode)
		}
		hungUp <- err
	}()
	bob.respond(bob.readRequest("BYE"), 200, "")
	alice.respond(alice.readRequest("BYE"), 200, "")
	if err := <-hungUp; err != nil {
		t.Fatal(err)
	}
	var rec web.Record
	rec = endedRecord(t, e, "the call's record", c.ID)
	if rec.Result != "answered" || rec.Caller != "1001" || rec.Callee != "1002" || rec.HangupBy != "system" {
		t.Fatalf("record %+v", rec)
	}

	// A second click-to-call that the caller ends: the callee is hung up.
	e.api("POST", "/api/v1/calls", map[string]string{"from": "1001", "to": "1002"}, 202, &o)
	inA = alice.readRequest("INVITE")
	alice.respond(inA, 200, testSDP(aliceRTP.LocalAddr().(*net.UDPAddr).Port))
	alice.readRequest("ACK")
	inB = bob.readRequest("INVITE")
	bob.respond(inB, 200, testSDP(bobRTP.LocalAddr().(*net.UDPAddr).Port))
	bob.readRequest("ACK")
	waitFor(t, "the second call", func() bool {
		e.api("GET", "/api/v1/calls", nil, 200, &calls)
		return len(calls.Items) == 1 && calls.Items[0].State == "answered"
	})
	second := calls.Items[0].ID
	alice.byeAnswered(inA)
	bob.respond(bob.readRequest("BYE"), 200, "")
	rec = endedRecord(t, e, "the second call's record", second)
	if rec.HangupBy != "caller" || rec.Result != "answered" {
		var all web.Page[web.Record]
		e.api("GET", "/api/v1/records", nil, 200, &all)
		t.Fatalf("second record %+v\nall records: %+v", rec, all.Items)
	}

	// The callee is busy: the caller, who answered, is hung up, and the
	// call's record says busy.
	e.api("POST", "/api/v1/calls", map[string]string{"from": "1001", "to": "1002"}, 202, &o)
	inA = alice.readRequest("INVITE")
	alice.respond(inA, 200, testSDP(aliceRTP.LocalAddr().(*net.UDPAddr).Port))
	alice.readRequest("ACK")
	inB = bob.readRequest("INVITE")
	bob.respond(inB, 486, "")
	bob.readRequest("ACK")
	bye := alice.readRequest("BYE")
	if bye.get("call-id") != inA.get("call-id") {
		t.Fatalf("BYE for another dialog: %s", bye.get("call-id"))
	}
	alice.respond(bye, 200, "")
	var recs web.Page[web.Record]
	waitFor(t, "the busy call's record", func() bool {
		recs = web.Page[web.Record]{}
		e.api("GET", "/api/v1/records?limit=1", nil, 200, &recs)
		return len(recs.Items) == 1 && recs.Items[0].Result != ""
	})
	if r := recs.Items[0]; r.Result != "busy" || r.Caller != "1001" || r.Status != 486 {
		t.Fatalf("busy click-to-call record %+v", r)
	}
	// No call is left.
	e.api("GET", "/api/v1/calls", nil, 200, &calls)
	if len(calls.Items) != 0 {
		t.Fatalf("calls left: %+v", calls.Items)
	}

	// The operator hangs up while the caller's phone rings: it is
	// CANCELled and the record says so.
	e.api("POST", "/api/v1/calls", map[string]string{"from": "1001", "to": "1002"}, 202, &o)
	inA = alice.readRequest("INVITE")
	alice.respond(inA, 180, "") // a CANCEL waits for a provisional response
	e.api("DELETE", "/api/v1/calls/"+o.ID, nil, 204, nil)
	alice.respond(alice.readRequest("CANCEL"), 200, "")
	alice.respond(inA, 487, "")
	rec = endedRecord(t, e, "the cancelled click-to-call's record", o.ID)
	if rec.Result != "cancelled" || rec.Reason != "hung up by operator" {
		t.Fatalf("cancelled click-to-call record %+v", rec)
	}

	// The caller declines: nobody else rings, and the click-to-call's own
	// record says how it ended.
	e.api("POST", "/api/v1/calls", map[string]string{"from": "1001", "to": "1002"}, 202, &o)
	inA = alice.readRequest("INVITE")
	alice.respond(inA, 603, "")
	alice.readRequest("ACK")
	rec = endedRecord(t, e, "the declined click-to-call's record", o.ID)
	if rec.Result != "declined" || rec.Status != 603 || rec.Caller != "1001" || rec.Callee != "1002" {
		t.Fatalf("declined click-to-call record %+v", rec)
	}
	if m := bob.within(300*time.Millisecond, func(m *sipMsg) bool { return m.method == "INVITE" }); m != nil {
		t.Fatalf("the callee rang although the caller declined: %s", m.uri)
	}
}

// byeAnswered hangs up, as the called side, the dialog that inv (an INVITE the
// phone answered with respond) set up, and waits for the 200.
func (p *sipPhone) byeAnswered(inv *sipMsg) {
	p.t.Helper()
	uri := "sip:" + p.server.String()
	if ct := inv.get("contact"); ct != "" {
		if i, j := strings.Index(ct, "<"), strings.Index(ct, ">"); i >= 0 && j > i {
			uri = ct[i+1 : j]
		}
	}
	from := inv.get("to")
	if !strings.Contains(from, ";tag=") {
		from += ";tag=" + p.tag
	}
	callID := inv.get("call-id")
	var b strings.Builder
	fmt.Fprintf(&b, "BYE %s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%s;rport\r\nMax-Forwards: 70\r\n", uri, p.addr(), randHex(8))
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n", from, inv.get("from"), callID)
	p.send(p.server, b.String())
	if res := p.readFinal(callID, 2); res.status != 200 {
		p.t.Fatalf("BYE: %d", res.status)
	}
}
