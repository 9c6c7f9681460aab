package sip

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

func optionsMsg(branch string) string {
	return "OPTIONS sip:" + testDomain + " SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK" + branch + ";rport\r\n" +
		"From: <sip:probe@" + testDomain + ">;tag=1\r\nTo: <sip:" + testDomain + ">\r\nCall-ID: drain-" + branch +
		"\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
}

// TestCallDrain drains with a call up: new calls get 503 with Retry-After,
// OPTIONS reports unavailable, the call in progress keeps its audio and
// can still end normally; when the drain time is up, stopping the server
// sends BYE to both phones and completes the record.
func TestCallDrain(t *testing.T) {
	e := newCallEnv(t, 0)
	a, b := callPair(e, "UDP", "TCP")
	c := e.newPhone("1003", "pw-1003", phoneOpts{})
	c.register()
	answeredCall(t, a, b)

	if res := rawUDP(t, e.udp, optionsMsg("before"), 2*time.Second); !strings.HasPrefix(res, "SIP/2.0 200") {
		t.Fatalf("OPTIONS before drain: %q", res)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	drained := make(chan error, 1)
	go func() { drained <- e.srv.Drain(ctx) }()
	waitFor(t, 2*time.Second, "draining", e.srv.Draining)

	res := rawUDP(t, e.udp, optionsMsg("during"), 2*time.Second)
	if !strings.HasPrefix(res, "SIP/2.0 503") || !strings.Contains(res, "Retry-After: 30") {
		t.Fatalf("OPTIONS while draining: %q", res)
	}
	oc := c.call("1002", callOpts{})
	if oc.status != 503 {
		t.Fatalf("new call while draining: status %d (responses %v)", oc.status, oc.codes)
	}
	// The call in progress is untouched: audio both ways, still listed.
	audio(t, e, a, b, 20, 100)
	audio(t, e, b, a, 20, 100)
	if n := e.srv.ActiveCalls(); n != 1 {
		t.Fatalf("%d active calls while draining, want 1", n)
	}
	select {
	case err := <-drained:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Drain with a call up returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Drain did not return when its context ended")
	}
	e.stop()
	a.expect(sip.BYE, 2*time.Second)
	b.expect(sip.BYE, 2*time.Second)
	rec := e.lastRecord(t, "1001")
	if rec.Result != "answered" || rec.HangupBy != "system" || rec.Reason != "shutdown" || rec.EndedAt.IsZero() || len(rec.Legs) != 2 {
		t.Errorf("record %+v", rec)
	}
	for _, l := range rec.Legs {
		if l.PacketsIn < 20 || l.PacketsOut < 20 {
			t.Errorf("leg %s: %+v", l.Name, l)
		}
	}
	if n := e.relay.PortsInUse(); n != 0 {
		t.Errorf("%d relay ports in use after stop", n)
	}
}

// TestDrainEndsWhenCallsEnd: Drain returns as soon as the last call hangs
// up, without waiting for its context.
func TestDrainEndsWhenCallsEnd(t *testing.T) {
	e := newCallEnv(t, 0)
	a, b := callPair(e, "UDP", "UDP")
	oc := answeredCall(t, a, b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	drained := make(chan error, 1)
	go func() { drained <- e.srv.Drain(ctx) }()
	waitFor(t, 2*time.Second, "draining", e.srv.Draining)
	oc.hangup()
	select {
	case err := <-drained:
		if err != nil {
			t.Fatalf("Drain: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Drain did not return after the last call ended")
	}
	b.expect(sip.BYE, 2*time.Second)
	rec := e.lastRecord(t, "1001")
	if rec.HangupBy != "caller" || rec.Result != "answered" {
		t.Errorf("record %+v", rec)
	}
	// Registration still works while draining.
	b.register()
}
