package main

import (
	"fmt"
	"path/filepath"
	"testing"
)

// The page rides out a server restart: it says it is reconnecting, signs
// in again by itself once the server is back (its WebSocket passes the
// origin check as before), and takes a call.
func TestPhonePageReconnectsAfterRestart(t *testing.T) {
	e := startBrowserEnv(t, map[string]string{"1001": "alice-1001", "1003": "carol-1003"})
	page := e.signIn(t, "1003", "carol-1003")

	e.stop(t)
	page.WaitText("reg-state", "Reconnecting")
	e.start(t, filepath.Join(e.dir, "switchboard.yaml"))
	page.WaitText("reg-state", "Registered")
	page.WaitHidden("error")
	if got := e.registrationTransports(t, "1003"); len(got) != 1 || got[0] != "WS" {
		t.Fatalf("after the restart the page's bindings are %q, want one over WS", got)
	}

	phone := newPhone(t, fmt.Sprintf("127.0.0.1:%d", e.sipPort), "1001", "alice-1001", "test-phone")
	media := newRTPPhone(t)
	deskPhoneCallsPage(t, page, phone, media, "the page after the restart")
}
