package sip

import (
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// TestCallShutdownStaleBinding stops the server during a call to a user
// with a second, stale binding whose phone is gone: the INVITE to it never
// gets an answer, and shutdown must not wait for that transaction to time
// out (32 s).
func TestCallShutdownStaleBinding(t *testing.T) {
	e := newCallEnv(t, 0)
	a, b := callPair(e, "UDP", "UDP")
	gone := e.newPhone("1002", "pw-1002", phoneOpts{})
	gone.register()
	gone.close()
	answeredCall(t, a, b)
	start := time.Now()
	e.stop()
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("shutdown took %s with a stale binding ringing", d)
	}
	a.expect(sip.BYE, time.Second)
	b.expect(sip.BYE, time.Second)
}
