package main

import (
	"context"
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/store"
	"github.com/switchboard/switchboard/web"
)

// TestOverloadShedsWith503 offers SIPp calls at twice the configured
// capacity: the calls past it get 503 with Retry-After at once, the server
// stays up, and the calls it took carry their audio to the end.
func TestOverloadShedsWith503(t *testing.T) {
	const capacity = 5
	dir := t.TempDir()
	sipPort, webPort := freePort(t), freePort(t)
	cfg := writeChildConfig(t, dir, sipPort, webPort, bothUsers, "")
	body := "limits:\n  max_calls: 5\n"
	appendFile(t, cfg, body)
	c := startChild(t, dir, cfg, sipPort, webPort)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// Calls held long enough to overlap even when SIPp is starved of CPU.
	p := startHeldCalls(t, ctx, dir, sipPort, 15*time.Second, 2*capacity)
	c.waitAnswered(capacity, 20*time.Second)

	// The refused calls are refused at once, not left to time out.
	var st web.ProtectionState
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := c.api("/api/v1/protection", &st); err != nil {
			t.Fatal(err)
		}
		if st.CallsRefused["max_calls"] >= capacity || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st.CallsRefused["max_calls"] < capacity {
		t.Fatalf("%d calls refused past capacity, want at least %d (%+v)", st.CallsRefused["max_calls"], capacity, st)
	}
	if c.readyz() != http.StatusOK {
		t.Fatal("server not ready under overload")
	}
	// SIPp ends the calls it got after the hold; it reports the refused
	// ones as failed.
	select {
	case <-p.uacDone:
	case <-time.After(60 * time.Second):
		t.Fatal("SIPp did not finish")
	}
	st2 := openStoreAfterStop(t, c, dir)
	recs, err := st2.Calls(context.Background(), store.CallFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	answered := 0
	for _, r := range recs {
		if r.Result != "answered" {
			continue
		}
		answered++
		if r.HangupBy != "caller" || len(r.Legs) != 2 {
			t.Errorf("record %+v", r)
			continue
		}
		// About 15 s of 20 ms packets each way, echoed by the UAS.
		for _, l := range r.Legs {
			if l.PacketsIn < 100 || l.PacketsOut < 100 {
				t.Errorf("call %s leg %s lost its audio under overload: %+v", r.ID, l.Name, l)
			}
		}
	}
	if answered != capacity {
		t.Errorf("%d calls answered, want %d (capacity)", answered, capacity)
	}
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

// openStoreAfterStop stops the child with SIGTERM and opens its database.
func openStoreAfterStop(t *testing.T, c *child, dir string) *store.Store {
	t.Helper()
	c.signal(syscall.SIGTERM)
	if code := c.wait(90 * time.Second); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	return openStore(t, dir)
}
