package sip

import (
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// TestCallTCPPhoneAfterRestart: a phone registered over TCP from an
// ephemeral port stays reachable after a restart, when the connection it
// registered on is gone: the call goes to its Contact, where it listens.
func TestCallTCPPhoneAfterRestart(t *testing.T) {
	e := newCallEnv(t, 0)
	mobile := e.newPhone("1002", "pw-1002", phoneOpts{transport: "TCP"})
	mobile.register()
	bs := e.srv.reg.current("1002")
	if len(bs) != 1 || bs[0].Source == mobile.sipAddr {
		t.Fatalf("bindings %+v: want one, from an ephemeral port other than the listener %s", bs, mobile.sipAddr)
	}

	e.restart()
	a := e.newPhone("1001", "pw-1001", phoneOpts{})
	a.register()
	oc := a.call("1002", callOpts{})
	if oc.status != 200 {
		t.Fatalf("status %d (responses %v)", oc.status, oc.codes)
	}
	inv := mobile.expect(sip.INVITE, time.Second)
	if !strings.EqualFold(inv.Transport(), "TCP") {
		t.Errorf("INVITE came over %s, want TCP", inv.Transport())
	}
	mobile.expect(sip.ACK, 2*time.Second)
	audio(t, e, a, mobile, 10, 1)
	audio(t, e, mobile, a, 10, 1)
	oc.hangup()
	mobile.expect(sip.BYE, 2*time.Second)
	e.waitIdle(t)
}
