package sip

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// TestCallDialogsStoredWhileUp: an answered call's two dialogs are stored
// while it is up, with what a BYE needs, and deleted when it ends; a BYE
// built from a stored dialog is the one the phone's dialog expects.
func TestCallDialogsStoredWhileUp(t *testing.T) {
	e := newCallEnv(t, 0)
	a, b := callPair(e, "UDP", "TCP")
	oc := answeredCall(t, a, b)
	ctx := context.Background()
	// Stored once the caller's ACK came, just after its 200, in place of
	// what was stored while it rang.
	var stored map[string]string
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if stored, err = e.st.TakeCallDialogs(ctx); err != nil || len(stored) > 0 && !strings.Contains(fmt.Sprint(stored), `"kind"`) {
			break
		}
	}
	if err != nil || len(stored) != 1 {
		t.Fatalf("dialogs while the call is up: %v, %v", stored, err)
	}
	var ends []dialogEnd
	var callID string
	for id, d := range stored {
		callID = id
		if err := json.Unmarshal([]byte(d), &ends); err != nil {
			t.Fatal(err)
		}
	}
	if len(ends) != 2 {
		t.Fatalf("stored %d dialogs, want the caller's and the callee's: %+v", len(ends), ends)
	}
	caller, callee := ends[0], ends[1]
	if caller.CallID != oc.d.InviteRequest.CallID().Value() || caller.Transport != "UDP" || !strings.Contains(caller.To, oc.d.InviteRequest.From().Value()) {
		t.Errorf("caller's dialog %+v", caller)
	}
	if callee.CallID == caller.CallID || callee.Transport != "TCP" {
		t.Errorf("callee's dialog %+v", callee)
	}
	for _, d := range ends {
		bye, err := d.bye()
		if err != nil {
			t.Fatal(err)
		}
		if bye.CSeq().SeqNo <= byeCSeqStep || bye.From() == nil || bye.To() == nil {
			t.Errorf("BYE %s", bye)
		}
		if tag, _ := bye.To().Params.Get("tag"); tag == "" {
			t.Errorf("BYE without the far side's tag: %s", bye)
		}
	}
	// Stored again (Take deleted them), then the call ends: only the
	// other call's dialogs are left.
	if err := e.st.SetCallDialogs(ctx, callID, stored[callID]); err != nil {
		t.Fatal(err)
	}
	if err := e.st.SetCallDialogs(ctx, "other", "[]"); err != nil {
		t.Fatal(err)
	}
	oc.hangup()
	b.expect(sip.BYE, 2*time.Second)
	e.waitIdle(t)
	// The delete follows the call's end record: poll the database (a
	// reader beside the store), without taking.
	db, err := sql.Open("sqlite", e.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var left int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM call_dialogs WHERE call_id = ?`, callID).Scan(&left); err != nil {
			t.Fatal(err)
		}
		if left == 0 {
			break
		}
	}
	if left != 0 {
		t.Fatalf("the ended call's dialogs are still stored")
	}
}

// TestRingingCallStored: once a call rings, its caller's INVITE and the
// device's are stored; what a restarted server sends from them answers the
// caller with 500 (its INVITE transaction ends) and CANCELs the device
// (matched to the INVITE it rings for). The answer replaces them.
func TestRingingCallStored(t *testing.T) {
	for _, tp := range []string{"UDP", "TCP"} {
		t.Run(tp, func(t *testing.T) { testRingingCallStored(t, tp) })
	}
}

// testRingingCallStored is TestRingingCallStored with both phones on
// transport: over TCP the restarted server has none of the previous run's
// connections, and reaches the caller at its Via address and the device at
// its Contact.
func testRingingCallStored(t *testing.T, transport string) {
	e := newCallEnv(t, 0)
	a, b := callPair(e, transport, transport)
	b.setPlan(planRing)
	ctx := context.Background()
	done := make(chan *outCall, 1)
	go func() {
		oc, err := a.place(b.user, callOpts{})
		if err != nil {
			t.Error(err)
		}
		done <- oc
	}()
	inv := b.expect(sip.INVITE, 5*time.Second)
	var stored map[string]string
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if stored, err = e.st.TakeCallDialogs(ctx); err != nil || len(stored) > 0 {
			break
		}
	}
	if err != nil || len(stored) != 1 {
		t.Fatalf("stored while ringing: %v, %v", stored, err)
	}
	var ends []dialogEnd
	for _, d := range stored {
		if err := json.Unmarshal([]byte(d), &ends); err != nil {
			t.Fatal(err)
		}
	}
	kinds := map[string]dialogEnd{}
	for _, d := range ends {
		kinds[d.Kind] = d
	}
	if len(ends) != 2 || kinds[endCancel].CallID != inv.CallID().Value() || kinds[endReject].Invite == "" {
		t.Fatalf("stored %+v", ends)
	}
	// The restarted server's messages (sent here by the same server, which
	// the phones cannot tell apart). The caller's first: the CANCEL would
	// also end the live call here, which answers the caller itself.
	only := func(kind string) map[string]string {
		b, err := json.Marshal([]dialogEnd{kinds[kind]})
		if err != nil {
			t.Fatal(err)
		}
		return map[string]string{"call": string(b)}
	}
	if n := e.srv.EndOrphanDialogs(ctx, only(endReject), 5*time.Second); n != 1 {
		t.Errorf("caller's INVITE not answered (%d)", n)
	}
	select {
	case oc := <-done:
		if oc == nil || oc.status != 500 || oc.final == nil || !strings.Contains(oc.final.String(), "server restarted") {
			t.Errorf("caller's final response %+v", oc)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the caller got no final response")
	}
	if n := e.srv.EndOrphanDialogs(ctx, only(endCancel), 5*time.Second); n != 1 {
		t.Errorf("device's INVITE not cancelled (%d)", n)
	}
	cancel := b.expect(sip.CANCEL, 5*time.Second)
	if got, want := cancel.Via().Params, inv.Via().Params; got.String() != want.String() {
		t.Errorf("CANCEL Via %s, INVITE Via %s", cancel.Via(), inv.Via())
	}
}
