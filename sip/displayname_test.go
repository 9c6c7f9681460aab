package sip

import (
	"context"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

func TestQuotedDisplayName(t *testing.T) {
	for in, want := range map[string]string{
		"Alice":                     "Alice",
		`Bob "The Builder" \ Smith`: `Bob \"The Builder\" \\ Smith`,
		"Eve\r\nX-Injected: 1":      "EveX-Injected: 1",
		"tab\there\x7f":             "tabhere",
		"next\u0085line":            "nextline",
		"Zoë":                       "Zoë",
	} {
		if got := quotedDisplayName(in); got != want {
			t.Errorf("quotedDisplayName(%q) = %q, want %q", in, got, want)
		}
	}
}

// An account's display name reaches the callee inside a well-formed quoted
// string, whatever it holds: quotes and backslashes escaped, and a line
// break (stored before the API refused them) unable to start a header.
func TestDisplayNameInFrom(t *testing.T) {
	e := newCallEnv(t, 0)
	u := testUser("1001", "pw-1001")
	u.DisplayName = "Bob \"The Builder\" \\ Smith\r\nX-Injected: 1"
	if err := e.st.UpdateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	e.srv.InvalidateUser("1001")
	a, b := callPair(e, "UDP", "UDP")
	b.setPlan(answerPlan{code: 200})
	oc := a.call("1002", callOpts{})
	if oc.status != 200 {
		t.Fatalf("status %d, responses %v", oc.status, oc.codes)
	}
	inv := b.expect(sip.INVITE, time.Second)
	b.expect(sip.ACK, 2*time.Second)
	if h := inv.GetHeader("X-Injected"); h != nil {
		t.Fatalf("the display name injected a header: %v\n%s", h, inv)
	}
	if got, want := inv.From().DisplayName, `Bob \"The Builder\" \\ SmithX-Injected: 1`; got != want {
		t.Fatalf("From display name %q, want %q\n%s", got, want, inv)
	}
	oc.hangup()
}
