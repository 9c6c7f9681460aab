package sip

import (
	"context"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard/switchboard/internal/store"
)

// callPair registers 1001 (caller) and 1002 (callee) and returns them.
func callPair(e *callEnv, callerTP, calleeTP string) (*testPhone, *testPhone) {
	a := e.newPhone("1001", "pw-1001", phoneOpts{transport: callerTP})
	b := e.newPhone("1002", "pw-1002", phoneOpts{transport: calleeTP})
	a.register()
	b.register()
	return a, b
}

// answeredCall places a call from a to b and checks it is answered.
func answeredCall(t *testing.T, a, b *testPhone) *outCall {
	t.Helper()
	oc := a.call(b.user, callOpts{})
	if oc.status != 200 {
		t.Fatalf("call %s→%s: status %d (responses %v)", a.user, b.user, oc.status, oc.codes)
	}
	b.expect(sip.INVITE, time.Second)
	b.expect(sip.ACK, 2*time.Second)
	return oc
}

func TestCallBasic(t *testing.T) {
	tests := []struct {
		name               string
		callerTP, calleeTP string
		calleeHangsUp      bool
	}{
		{name: "udp caller hangs up", callerTP: "UDP", calleeTP: "UDP"},
		{name: "udp callee hangs up", callerTP: "UDP", calleeTP: "UDP", calleeHangsUp: true},
		{name: "tcp caller hangs up", callerTP: "TCP", calleeTP: "TCP"},
		{name: "tcp callee hangs up", callerTP: "TCP", calleeTP: "TCP", calleeHangsUp: true},
		{name: "udp to tcp callee hangs up", callerTP: "UDP", calleeTP: "TCP", calleeHangsUp: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newCallEnv(t, 0)
			a, b := callPair(e, tt.callerTP, tt.calleeTP)
			// Ring for a moment: sipgo handles each message on its own
			// goroutine, so a 180 and a 200 sent back to back may swap.
			b.setPlan(answerPlan{ring: true, code: 200, delay: 50 * time.Millisecond})
			oc := a.call("1002", callOpts{})
			if oc.status != 200 {
				t.Fatalf("status %d, responses %v", oc.status, oc.codes)
			}
			if !slices.Contains(oc.codes, 180) {
				t.Errorf("caller got no 180 Ringing: %v", oc.codes)
			}
			inv := b.expect(sip.INVITE, time.Second)
			b.expect(sip.ACK, 2*time.Second)

			// Each side is told to send to the relay, never to the other
			// phone, and the two sides get different relay ports.
			toA, _ := sdpTarget(t, oc.answer)
			toB, infoB := sdpTarget(t, inv.Body())
			if !e.inRelayRange(toA) || !e.inRelayRange(toB) || toA == toB {
				t.Fatalf("SDP targets caller→%v callee→%v, want two relay ports in %d-%d", toA, toB, e.portMin, e.portMax)
			}
			if toA.Port() == b.rtpAddr.Port() || toB.Port() == a.rtpAddr.Port() {
				t.Fatal("SDP points at the other phone's RTP port")
			}
			if !slices.Contains(infoB.Codecs, "PCMU/8000") || !slices.Contains(infoB.Codecs, "telephone-event/8000") {
				t.Errorf("callee offered codecs %v", infoB.Codecs)
			}

			audio(t, e, a, b, 20, 100)
			audio(t, e, b, a, 20, 500)

			by := "caller"
			if tt.calleeHangsUp {
				by = "callee"
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if err := b.uasDialog().Bye(ctx); err != nil {
					t.Fatalf("callee BYE: %v", err)
				}
				a.expect(sip.BYE, 2*time.Second)
			} else {
				oc.hangup()
				b.expect(sip.BYE, 2*time.Second)
			}

			rec := e.lastRecord(t, "1001")
			if rec.Caller != "1001" || rec.Callee != "1002" || rec.Result != "answered" || rec.Status != 200 || rec.HangupBy != by {
				t.Errorf("record %+v", rec)
			}
			if rec.AnsweredAt.IsZero() || rec.EndedAt.Before(rec.AnsweredAt) || rec.AnsweredAt.Before(rec.StartedAt) {
				t.Errorf("record times started %v answered %v ended %v", rec.StartedAt, rec.AnsweredAt, rec.EndedAt)
			}
			if len(rec.Legs) != 2 {
				t.Fatalf("record legs %+v", rec.Legs)
			}
			for _, l := range rec.Legs {
				if l.PacketsIn < 20 || l.PacketsOut < 20 {
					t.Errorf("leg %s counted %d in, %d out", l.Name, l.PacketsIn, l.PacketsOut)
				}
			}
			e.waitIdle(t)
			e.events.expectCalls(t, "call.started", "call.ringing", "call.answered", "call.ended")
		})
	}
}

func TestCallFailures(t *testing.T) {
	tests := []struct {
		name   string
		callee string
		plan   answerPlan
		opts   func(*callOpts)
		// cancelOnRinging has the caller CANCEL after 180.
		cancelOnRinging bool
		want            int
		calleeRings     bool // the callee receives the INVITE
		calleeCancelled bool // and then a CANCEL
		result          string
		by              string // who the record says ended the call
	}{
		{name: "unknown user", callee: "9999", want: 404, result: "not_found", by: "system"},
		{name: "unknown user, wrong password", callee: "9999", opts: func(o *callOpts) { o.pass = "wrong" }, want: 407},
		{name: "not registered", callee: "1003", want: 480, result: "unavailable", by: "system"},
		{name: "busy", callee: "1002", plan: planBusy, want: 486, calleeRings: true, result: "busy", by: "callee"},
		{name: "busy everywhere", callee: "1002", plan: answerPlan{ring: true, code: 600}, want: 600, calleeRings: true, result: "busy", by: "callee"},
		{name: "declined", callee: "1002", plan: answerPlan{ring: true, code: 603}, want: 603, calleeRings: true, result: "declined", by: "callee"},
		{name: "callee rejects with 487", callee: "1002", plan: answerPlan{code: 487}, want: 487, calleeRings: true, result: "cancelled", by: "callee"},
		{name: "no answer", callee: "1002", plan: planRing, want: 480, calleeRings: true, calleeCancelled: true, result: "no_answer", by: "system"},
		{name: "caller cancels", callee: "1002", plan: planRing, cancelOnRinging: true, want: 487, calleeRings: true, calleeCancelled: true, result: "cancelled", by: "caller"},
		{name: "wrong password", callee: "1002", opts: func(o *callOpts) { o.pass = "wrong" }, want: 407},
		{name: "from spoofing", callee: "1002", opts: func(o *callOpts) { o.fromUser = "1002" }, want: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newCallEnv(t, 0, func(c *Config) { c.RingTimeout = time.Second })
			a, b := callPair(e, "UDP", "UDP")
			b.setPlan(tt.plan)
			var o callOpts
			if tt.opts != nil {
				tt.opts(&o)
			}
			if tt.cancelOnRinging {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				o.ctx = ctx
				o.onStatus = func(code int) {
					if code == 180 {
						cancel()
					}
				}
			}
			start := time.Now()
			oc := a.call(tt.callee, o)
			if oc.status != tt.want {
				t.Fatalf("status %d, want %d (responses %v)", oc.status, tt.want, oc.codes)
			}
			if tt.name == "no answer" && time.Since(start) < 900*time.Millisecond {
				t.Errorf("480 after %s, before the ring timeout", time.Since(start))
			}
			if tt.calleeRings {
				b.expect(sip.INVITE, time.Second)
			} else if r := b.next(sip.INVITE, 300*time.Millisecond); r != nil {
				t.Fatalf("callee was rung: %s", r.StartLine())
			}
			if tt.calleeCancelled {
				b.expect(sip.CANCEL, 3*time.Second)
			}
			if b.count(sip.ACK) != 0 || b.count(sip.BYE) != 0 {
				t.Errorf("callee got ACK/BYE for a call it did not answer")
			}
			if tt.result != "" {
				rec := e.lastRecord(t, "1001")
				if rec.Result != tt.result || rec.Status != tt.want || !rec.AnsweredAt.IsZero() || rec.HangupBy != tt.by {
					t.Errorf("record %+v, want result %q status %d hangup_by %q", rec, tt.result, tt.want, tt.by)
				}
				if got := e.events.calls(); len(got) == 0 || got[len(got)-1] != "call.ended" {
					t.Errorf("events %v, want them to end with call.ended", got)
				}
			} else {
				// Refused before the caller proved who it is: no trace.
				if recs, err := e.st.Calls(context.Background(), store.CallFilter{Limit: 10}); err != nil || len(recs) != 0 {
					t.Errorf("records %+v (%v), want none", recs, err)
				}
				if got := e.events.calls(); len(got) != 0 {
					t.Errorf("events %v, want none", got)
				}
			}
			e.waitIdle(t)
		})
	}
}

// forkingPhones registers caller 1001 and two devices of user 1002, a desk
// phone on UDP and a mobile on TCP.
func forkingPhones(e *callEnv) (a, desk, mobile *testPhone) {
	a = e.newPhone("1001", "pw-1001", phoneOpts{})
	desk = e.newPhone("1002", "pw-1002", phoneOpts{})
	mobile = e.newPhone("1002", "pw-1002", phoneOpts{transport: "TCP"})
	a.register()
	desk.register()
	mobile.register()
	return a, desk, mobile
}

func TestCallForking(t *testing.T) {
	e := newCallEnv(t, 0)
	a, desk, mobile := forkingPhones(e)
	desk.setPlan(answerPlan{ring: true, code: 200, delay: 300 * time.Millisecond})
	mobile.setPlan(planRing)

	oc := a.call("1002", callOpts{})
	if oc.status != 200 {
		t.Fatalf("status %d (responses %v)", oc.status, oc.codes)
	}
	desk.expect(sip.INVITE, time.Second)
	mobile.expect(sip.INVITE, time.Second)
	desk.expect(sip.ACK, 2*time.Second)
	mobile.expect(sip.CANCEL, 3*time.Second)
	if desk.count(sip.CANCEL) != 0 {
		t.Error("the device that answered was cancelled")
	}
	audio(t, e, a, desk, 10, 1)
	audio(t, e, desk, a, 10, 1)
	if _, ok := mobile.recvRTP(50 * time.Millisecond); ok {
		t.Error("the cancelled device received audio")
	}
	oc.hangup()
	desk.expect(sip.BYE, 2*time.Second)
	if mobile.count(sip.BYE) != 0 {
		t.Error("the cancelled device got a BYE")
	}
	e.waitIdle(t)
	// Two devices rang, the caller heard one ringing.
	ringing := 0
	for _, code := range oc.codes {
		if code == 180 {
			ringing++
		}
	}
	if ringing != 1 {
		t.Errorf("caller got responses %v, want one 180", oc.codes)
	}
	e.events.expectCalls(t, "call.started", "call.ringing", "call.answered", "call.ended")
}

// TestCallForkingDeclined: one device declines (603) while another rings:
// the ringing one is cancelled at once and the caller gets 603, without
// waiting for the ring timeout (RFC 3261 §16.7: a 6xx ends the search).
func TestCallForkingDeclined(t *testing.T) {
	for _, tc := range []struct {
		code   int
		result string
	}{{603, "declined"}, {600, "busy"}} {
		t.Run(strconv.Itoa(tc.code), func(t *testing.T) {
			e := newCallEnv(t, 0)
			a, desk, mobile := forkingPhones(e)
			desk.setPlan(answerPlan{ring: true, code: tc.code, delay: 200 * time.Millisecond})
			mobile.setPlan(planRing)

			start := time.Now()
			oc := a.call("1002", callOpts{})
			if oc.status != tc.code {
				t.Fatalf("status %d, want %d (responses %v)", oc.status, tc.code, oc.codes)
			}
			mobile.expect(sip.CANCEL, 3*time.Second)
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("%d after %s", tc.code, took)
			}
			if rec := e.lastRecord(t, "1001"); rec.Result != tc.result || rec.Status != tc.code || rec.HangupBy != "callee" {
				t.Errorf("record %+v, want %s %d, hung up by the callee", rec, tc.result, tc.code)
			}
			e.waitIdle(t)
		})
	}
}

// TestCallEarlyMedia has the callee answer 183 with SDP and play early
// media before it answers: the caller gets the 183 pointing at the relay,
// and hears the early media.
func TestCallEarlyMedia(t *testing.T) {
	e := newCallEnv(t, 0)
	a, b := callPair(e, "UDP", "UDP")
	b.setPlan(answerPlan{early: true, earlyRTP: 5, code: 200, delay: 200 * time.Millisecond})
	oc := answeredCall(t, a, b)
	if !slices.Contains(oc.codes, 183) || slices.Contains(oc.codes, 180) {
		t.Errorf("caller got %v, want a 183 and no 180", oc.codes)
	}
	early, _ := sdpTarget(t, oc.early)
	final, _ := sdpTarget(t, oc.answer)
	if !e.inRelayRange(early) || early != final {
		t.Errorf("183 points the caller at %v, 200 at %v: want the same relay port", early, final)
	}
	heard := 0
	for {
		r, ok := a.recvRTP(500 * time.Millisecond)
		if !ok {
			break
		}
		if r.pkt.SequenceNumber >= 1000 && string(r.pkt.Payload) == string(pcmu('e', r.pkt.SequenceNumber)) {
			heard++
		}
	}
	if heard != 5 {
		t.Errorf("caller heard %d of 5 early media packets", heard)
	}
	audio(t, e, a, b, 10, 1)
	oc.hangup()
	b.expect(sip.BYE, 2*time.Second)
	e.waitIdle(t)
}

// TestCallForkingBothAnswer has two devices answer at once: one wins and the
// other must not be left in a call nobody hears (it gets CANCEL before it
// answers, or ACK and BYE after).
func TestCallForkingBothAnswer(t *testing.T) {
	e := newCallEnv(t, 0)
	a := e.newPhone("1001", "pw-1001", phoneOpts{})
	d1 := e.newPhone("1002", "pw-1002", phoneOpts{})
	d2 := e.newPhone("1002", "pw-1002", phoneOpts{})
	a.register()
	d1.register()
	d2.register()
	for i := range 5 {
		// Both devices send their 200 at the same moment.
		gate := make(chan struct{})
		d1.setPlan(answerPlan{code: 200, gate: gate})
		d2.setPlan(answerPlan{code: 200, gate: gate})
		go func() {
			if d1.next(sip.INVITE, 2*time.Second) != nil && d2.next(sip.INVITE, 2*time.Second) != nil {
				time.Sleep(20 * time.Millisecond)
			}
			close(gate)
		}()
		oc := a.call("1002", callOpts{})
		if oc.status != 200 {
			t.Fatalf("call %d: status %d", i, oc.status)
		}
		ended := func(p *testPhone) bool {
			return p.next(sip.CANCEL, 0) != nil || p.next(sip.BYE, 0) != nil
		}
		var winner *testPhone
		waitFor(t, 3*time.Second, "the losing device to be released", func() bool {
			switch {
			case ended(d1):
				winner = d2
			case ended(d2):
				winner = d1
			}
			return winner != nil
		})
		audio(t, e, a, winner, 5, uint16(i*10))
		oc.hangup()
		winner.expect(sip.BYE, 2*time.Second)
		e.waitIdle(t)
	}
}

func TestCallHoldResume(t *testing.T) {
	for _, tp := range []string{"UDP", "TCP"} {
		t.Run(tp, func(t *testing.T) {
			e := newCallEnv(t, 0)
			a, b := callPair(e, tp, tp)
			oc := answeredCall(t, a, b)
			audio(t, e, a, b, 5, 1)
			relayA, relayB := a.mediaDst(), b.mediaDst()

			// The caller holds and resumes.
			for i, dir := range []string{"sendonly", "sendrecv"} {
				req := sip.NewRequest(sip.INVITE, oc.d.InviteResponse.Contact().Address)
				req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
				req.SetBody(a.offer(dir))
				res := oc.do(req)
				if res.StatusCode != 200 {
					t.Fatalf("re-INVITE %s: %d", dir, res.StatusCode)
				}
				got := b.expect(sip.INVITE, time.Second)
				to, info := sdpTarget(t, got.Body())
				if info.Direction != dir || !hasLine(got.Body(), "a="+dir) {
					t.Errorf("callee got direction %q, want %q:\n%s", info.Direction, dir, got.Body())
				}
				if to != relayB {
					t.Errorf("re-INVITE points the callee at %v, want the relay port %v", to, relayB)
				}
				b.expect(sip.ACK, 2*time.Second)
				toA, infoA := sdpTarget(t, res.Body())
				wantA := map[string]string{"sendonly": "recvonly", "sendrecv": "sendrecv"}[dir]
				if infoA.Direction != wantA || toA != relayA {
					t.Errorf("caller got %s at %v, want %s at %v", infoA.Direction, toA, wantA, relayA)
				}
				if i == 1 {
					audio(t, e, a, b, 10, 100)
					audio(t, e, b, a, 10, 100)
				}
			}

			// The callee holds: the caller gets the re-INVITE from us, with
			// a Contact that reaches us on its transport.
			req := sip.NewRequest(sip.INVITE, b.uasDialog().InviteRequest.Contact().Address)
			req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
			req.SetBody(b.offer("inactive"))
			if res := b.uasDo(req); res.StatusCode != 200 {
				t.Fatalf("callee re-INVITE: %d", res.StatusCode)
			}
			got := a.expect(sip.INVITE, time.Second)
			if to, info := sdpTarget(t, got.Body()); info.Direction != "inactive" || to != relayA {
				t.Errorf("caller got %s at %v, want inactive at %v", info.Direction, to, relayA)
			}
			wantContact := "sip:switchboard@" + e.udp
			if tp == "TCP" {
				wantContact += ";transport=tcp"
			}
			if ct := got.Contact(); ct == nil || ct.Address.String() != wantContact {
				t.Errorf("re-INVITE Contact %v, want <%s>", ct, wantContact)
			}
			a.expect(sip.ACK, 2*time.Second)

			// The caller resumes with an offerless re-INVITE: the callee's
			// offer comes in the 200 and the caller's answer in the ACK,
			// which must reach the callee too (RFC 3261 §14.1).
			req = sip.NewRequest(sip.INVITE, oc.d.InviteResponse.Contact().Address)
			res := oc.do(req, a.offer("sendrecv"))
			if res.StatusCode != 200 {
				t.Fatalf("offerless re-INVITE: %d", res.StatusCode)
			}
			if to, _ := sdpTarget(t, res.Body()); to != relayA {
				t.Errorf("offer in the 200 points the caller at %v, want %v", to, relayA)
			}
			b.expect(sip.INVITE, time.Second)
			ack := b.expect(sip.ACK, 3*time.Second)
			if to, _ := sdpTarget(t, ack.Body()); to != relayB {
				t.Errorf("answer in the ACK points the callee at %v, want %v", to, relayB)
			}
			audio(t, e, a, b, 10, 200)
			audio(t, e, b, a, 10, 200)

			oc.hangup()
			b.expect(sip.BYE, 2*time.Second)
			e.waitIdle(t)
		})
	}
}

// TestCallReinviteWithInfo sends an INFO while a re-INVITE waits for its
// answer: the INFO must not take the CSeq that the re-INVITE's ACK needs.
func TestCallReinviteWithInfo(t *testing.T) {
	e := newCallEnv(t, 0)
	a, b := callPair(e, "UDP", "UDP")
	oc := answeredCall(t, a, b)
	b.mu.Lock()
	b.reinviteDelay = 300 * time.Millisecond
	b.mu.Unlock()

	type result struct {
		res *sip.Response
		err error
	}
	done := make(chan result, 1)
	req := sip.NewRequest(sip.INVITE, oc.d.InviteResponse.Contact().Address)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(a.offer("sendonly"))
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err := oc.d.Do(ctx, req)
		if err == nil && res.IsSuccess() {
			err = oc.ackWithCSeq(req.CSeq().SeqNo)
		}
		done <- result{res, err}
	}()
	reinvite := b.expect(sip.INVITE, time.Second)

	info := sip.NewRequest(sip.INFO, oc.d.InviteResponse.Contact().Address)
	info.AppendHeader(sip.NewHeader("Content-Type", "application/dtmf-relay"))
	info.SetBody([]byte("Signal=1\r\nDuration=100\r\n"))
	if res := oc.do(info); res.StatusCode != 200 {
		t.Fatalf("INFO: %d", res.StatusCode)
	}
	r := <-done
	if r.err != nil || r.res.StatusCode != 200 {
		t.Fatalf("re-INVITE: %v %v", r.res, r.err)
	}
	ack := b.expect(sip.ACK, 2*time.Second)
	if got, want := ack.CSeq().SeqNo, reinvite.CSeq().SeqNo; got != want {
		t.Errorf("ACK CSeq %d, the re-INVITE had %d", got, want)
	}
	got := b.expect(sip.INFO, time.Second)
	if got.CSeq().SeqNo <= reinvite.CSeq().SeqNo {
		t.Errorf("INFO CSeq %d not after the re-INVITE's %d", got.CSeq().SeqNo, reinvite.CSeq().SeqNo)
	}
	oc.hangup()
	b.expect(sip.BYE, 2*time.Second)
	e.waitIdle(t)
}

// TestCallReinviteRetransmits has the caller ACK a re-INVITE's 200 late:
// over UDP the 200 is retransmitted until the ACK (RFC 3261 §13.3.1.4).
func TestCallReinviteRetransmits(t *testing.T) {
	e := newCallEnv(t, 0)
	a, b := callPair(e, "UDP", "UDP")
	oc := answeredCall(t, a, b)
	req := sip.NewRequest(sip.INVITE, oc.d.InviteResponse.Contact().Address)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(a.offer("sendonly"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := oc.d.Do(ctx, req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("re-INVITE: %v %v", res, err)
	}
	cseq := req.CSeq().SeqNo
	waitFor(t, 3*time.Second, "a retransmitted 200", func() bool { return a.strays(200, cseq) > 0 })
	if err := oc.ackWithCSeq(cseq); err != nil {
		t.Fatal(err)
	}
	n := a.strays(200, cseq)
	time.Sleep(1200 * time.Millisecond) // past the next retransmission, 2*T1 after the first
	if a.strays(200, cseq) != n {
		t.Error("the 200 is still retransmitted after the ACK")
	}
	oc.hangup()
	b.expect(sip.BYE, 2*time.Second)
	e.waitIdle(t)
}

func TestCallDTMF(t *testing.T) {
	e := newCallEnv(t, 0)
	a, b := callPair(e, "UDP", "UDP")
	oc := answeredCall(t, a, b)

	t.Run("rfc4733", func(t *testing.T) {
		b.drainRTP()
		// Digit 5, volume 10, end bit on the last of three packets.
		events := [][]byte{{5, 10, 0, 160}, {5, 10, 1, 64}, {5, 0x80 | 10, 1, 224}}
		for i, ev := range events {
			a.sendRTP(a.mediaDst(), 101, uint16(700+i), ev)
		}
		for i := range events {
			r, ok := b.recvRTP(2 * time.Second)
			if !ok {
				t.Fatalf("telephone-event %d did not arrive", i)
			}
			if r.pkt.PayloadType != 101 || string(r.pkt.Payload) != string(events[r.pkt.SequenceNumber-700]) {
				t.Fatalf("got PT %d payload %v", r.pkt.PayloadType, r.pkt.Payload)
			}
		}
	})

	t.Run("sip info", func(t *testing.T) {
		body := "Signal=5\r\nDuration=160\r\n"
		req := sip.NewRequest(sip.INFO, oc.d.InviteResponse.Contact().Address)
		req.AppendHeader(sip.NewHeader("Content-Type", "application/dtmf-relay"))
		req.SetBody([]byte(body))
		res := oc.do(req)
		if res.StatusCode != 200 {
			t.Fatalf("INFO answered %d", res.StatusCode)
		}
		got := b.expect(sip.INFO, time.Second)
		if string(got.Body()) != body || got.ContentType() == nil || got.ContentType().Value() != "application/dtmf-relay" {
			t.Fatalf("callee got INFO %q with %v", got.Body(), got.ContentType())
		}
	})

	oc.hangup()
	b.expect(sip.BYE, 2*time.Second)
	e.waitIdle(t)
}

// TestCallNAT has a callee behind NAT: its Contact and its SDP name
// addresses it cannot be reached at, and only the source of its packets is
// right.
func TestCallNAT(t *testing.T) {
	e := newCallEnv(t, 0)
	a := e.newPhone("1001", "pw-1001", phoneOpts{fakeContact: "sip:1001@192.0.2.10:5060"})
	b := e.newPhone("1002", "pw-1002", phoneOpts{fakeContact: "sip:1002@192.0.2.11:5060", fakeRTPPort: 9})
	a.register()
	b.register()
	oc := answeredCall(t, a, b)

	// Until the callee sends, the relay can only use its SDP address.
	b.sendRTP(b.mediaDst(), 0, 1, pcmu('n', 1))
	if _, ok := a.recvRTP(2 * time.Second); !ok {
		t.Fatal("callee's first packet did not reach the caller")
	}
	audio(t, e, a, b, 20, 10)
	audio(t, e, b, a, 20, 10)

	// In-dialog requests go where the phones really are.
	oc.hangup()
	b.expect(sip.BYE, 2*time.Second)
	e.waitIdle(t)
}

// TestCallManySequential checks that calls leave nothing behind.
func TestCallManySequential(t *testing.T) {
	if testing.Short() {
		t.Skip("200 calls")
	}
	e := newCallEnv(t, 0)
	a, b := callPair(e, "UDP", "UDP")
	// Warm up connections and pools before taking the baseline.
	oc := answeredCall(t, a, b)
	oc.hangup()
	b.expect(sip.BYE, 2*time.Second)
	e.waitIdle(t)
	time.Sleep(100 * time.Millisecond)
	baseGoroutines, basePorts, baseCalls := runtime.NumGoroutine(), e.relay.PortsInUse(), e.srv.ActiveCalls()

	const calls = 200
	for i := range calls {
		oc := answeredCall(t, a, b)
		dst := a.mediaDst()
		for s := range 2 {
			a.sendRTP(dst, 0, uint16(i*2+s), pcmu('a', uint16(s)))
		}
		if _, ok := b.recvRTP(2 * time.Second); !ok {
			t.Fatalf("call %d: no audio", i)
		}
		if i%2 == 0 {
			oc.hangup()
			b.expect(sip.BYE, 2*time.Second)
		} else {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := b.uasDialog().Bye(ctx); err != nil {
				t.Fatalf("call %d: callee BYE: %v", i, err)
			}
			cancel()
			a.expect(sip.BYE, 2*time.Second)
		}
		b.drainRTP()
	}
	e.waitIdle(t)
	if n := e.relay.PortsInUse(); n != basePorts {
		t.Errorf("relay ports in use %d, baseline %d", n, basePorts)
	}
	if n := e.srv.ActiveCalls(); n != baseCalls {
		t.Errorf("active calls %d, baseline %d", n, baseCalls)
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > baseGoroutines+5 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > baseGoroutines+5 {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines after %d calls, baseline %d:\n%s", n, calls, baseGoroutines, buf[:runtime.Stack(buf, true)])
	}
	recs, err := e.st.Calls(context.Background(), store.CallFilter{User: "1001", Result: "answered", Limit: 500})
	if err != nil || len(recs) != calls+1 {
		t.Errorf("%d answered records (%v), want %d", len(recs), err, calls+1)
	}
}

func TestCallMediaTimeout(t *testing.T) {
	e := newCallEnv(t, 500*time.Millisecond)
	a, b := callPair(e, "UDP", "UDP")
	answeredCall(t, a, b)
	a.expect(sip.BYE, 3*time.Second)
	b.expect(sip.BYE, time.Second)
	rec := e.lastRecord(t, "1001")
	if rec.Reason != "media timeout" || rec.HangupBy != "system" || rec.Result != "answered" {
		t.Errorf("record %+v", rec)
	}
	e.waitIdle(t)
}

// TestCallMediaTimeoutWaitsForAnswer: silence while the callee rings is
// not a media timeout (the ring timeout bounds ringing), and a call
// answered after ringing longer than the media timeout has audio.
func TestCallMediaTimeoutWaitsForAnswer(t *testing.T) {
	const mediaTimeout = 300 * time.Millisecond
	t.Run("never answered", func(t *testing.T) {
		e := newCallEnv(t, mediaTimeout, func(c *Config) { c.RingTimeout = 2 * time.Second })
		a, b := callPair(e, "UDP", "UDP")
		b.setPlan(planRing)
		oc := a.call("1002", callOpts{})
		if oc.status != 480 {
			t.Fatalf("status %d (responses %v), want 480 at the ring timeout", oc.status, oc.codes)
		}
		rec := e.lastRecord(t, "1001")
		if rec.Reason != "no answer" || rec.Result != "no_answer" {
			t.Errorf("record %+v", rec)
		}
		e.waitIdle(t)
	})
	t.Run("answered late", func(t *testing.T) {
		e := newCallEnv(t, mediaTimeout)
		a, b := callPair(e, "UDP", "UDP")
		b.setPlan(answerPlan{ring: true, code: 200, delay: 4 * mediaTimeout})
		oc := answeredCall(t, a, b)
		audio(t, e, a, b, 5, 1)
		audio(t, e, b, a, 5, 1)
		oc.hangup()
		b.expect(sip.BYE, 2*time.Second)
		if rec := e.lastRecord(t, "1001"); rec.Reason == "media timeout" {
			t.Errorf("record %+v", rec)
		}
		e.waitIdle(t)
	})
}

func TestCallShutdown(t *testing.T) {
	e := newCallEnv(t, 0)
	a, b := callPair(e, "UDP", "TCP")
	answeredCall(t, a, b)
	audio(t, e, a, b, 5, 1)
	e.stop()
	a.expect(sip.BYE, time.Second)
	b.expect(sip.BYE, time.Second)
	rec := e.lastRecord(t, "1001")
	if rec.Reason != "shutdown" || rec.HangupBy != "system" || rec.EndedAt.IsZero() || rec.Result != "answered" || len(rec.Legs) != 2 {
		t.Errorf("record %+v", rec)
	}
	if n := e.relay.PortsInUse(); n != 0 {
		t.Errorf("%d relay ports still in use", n)
	}
}

// TestCallShutdownWhileRinging ends a call that is still ringing: the caller
// gets a final response, the callee a CANCEL, and shutdown does not wait
// for the ring timeout.
func TestCallShutdownWhileRinging(t *testing.T) {
	e := newCallEnv(t, 0, func(c *Config) { c.RingTimeout = 30 * time.Second })
	a, b := callPair(e, "UDP", "UDP")
	b.setPlan(planRing)
	done := make(chan *outCall, 1)
	go func() {
		oc, err := a.place("1002", callOpts{})
		if err != nil {
			t.Errorf("call: %v", err)
			oc = &outCall{}
		}
		done <- oc
	}()
	b.expect(sip.INVITE, 2*time.Second)
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	e.stop()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("shutdown took %s", d)
	}
	select {
	case oc := <-done:
		if oc.status < 400 {
			t.Errorf("caller got %d", oc.status)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("caller got no final response")
	}
	b.expect(sip.CANCEL, 2*time.Second)
	rec := e.lastRecord(t, "1001")
	if rec.Reason != "shutdown" || !rec.AnsweredAt.IsZero() {
		t.Errorf("record %+v", rec)
	}
}

// TestCallCallerVanishes has the caller disappear while the callee rings:
// the ring timeout still cancels the callee, and the failure response that
// nobody ACKs holds up neither the call record nor shutdown.
func TestCallCallerVanishes(t *testing.T) {
	e := newCallEnv(t, 0, func(c *Config) { c.RingTimeout = 500 * time.Millisecond })
	a, b := callPair(e, "UDP", "UDP")
	b.setPlan(planRing)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = a.place("1002", callOpts{})
	}()
	b.expect(sip.INVITE, 2*time.Second)
	a.close()
	<-done
	b.expect(sip.CANCEL, 3*time.Second)
	rec := e.lastRecord(t, "1001")
	if rec.Result != "no_answer" || rec.Status != 480 {
		t.Errorf("record %+v", rec)
	}
	start := time.Now()
	e.stop()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("shutdown took %s", d)
	}
}
