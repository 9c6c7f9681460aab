package main

import (
	"fmt"
	"strings"
	"testing"
)

func TestCtlCallAndWebhooks(t *testing.T) {
	r := newReceiver(t) // down: deliveries fail
	e := startAPIWith(t, map[string]string{"1001": "alice-1001", "1002": "bob-1002"}, hookConfig(r))
	sock := []string{"--socket", e.socket}
	ctl := func(args ...string) (int, string, string) {
		t.Helper()
		return ctlRun(t, "", append(append([]string{}, sock...), args...)...)
	}
	alice := newPhone(t, fmt.Sprintf("127.0.0.1:%d", e.sipPort), "1001", "alice-1001", "")
	if code := alice.register(300); code != 200 {
		t.Fatalf("REGISTER: %d", code)
	}

	// ctl events replays from the start of the log, then follows it.
	code, out, errs := ctl("events", "--after", "0", "--count", "1")
	if code != 0 || !regexpLine(out, `^1\s+\S+\s+registration\.created\s+\{.*"user":"1001"`) {
		t.Fatalf("events: %d %q %q", code, out, errs)
	}
	code, out, errs = ctl("--json", "events", "--after", "0", "--count", "1")
	if code != 0 || !strings.HasPrefix(out, `{"type":"registration.created","timestamp":`) {
		t.Fatalf("events --json: %d %q %q", code, out, errs)
	}

	code, out, errs = ctl("call", "1001", "1002")
	if code != 0 || !strings.HasPrefix(out, "ringing 1001; 1002 is called when they answer") {
		t.Fatalf("call: %d %q %q", code, out, errs)
	}
	alice.respond(alice.readRequest("INVITE"), 486, "")
	if code, _, errs = ctl("call", "1002", "1001"); code != 1 || !strings.Contains(errs, "no registered device") {
		t.Fatalf("call from an unregistered user: %d %q", code, errs)
	}
	if code, _, _ = ctl("call", "1001"); code != 2 {
		t.Fatalf("call with one argument: exit %d, want 2", code)
	}

	// The registration event and the refused click-to-call's call.ended
	// wait for the receiver that is down.
	var hooksOut string
	waitFor(t, "failed deliveries in ctl webhooks", func() bool {
		code, hooksOut, errs = ctl("webhooks")
		return code == 0 && regexpLine(hooksOut, `^`+regexpQuote(r.url())+`\s+2\s+0\s+0\s+\S+\s+[1-9]`)
	})
	if !strings.HasPrefix(hooksOut, "URL") || !strings.Contains(hooksOut, "connection refused") {
		t.Fatalf("webhooks:\n%s", hooksOut)
	}
}
