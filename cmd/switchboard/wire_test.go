package main

import (
	"net/netip"
	"testing"
	"time"

	"github.com/switchboard/switchboard/media"
)

// TestRelayAdapterTimeoutWaitsForAnswer: the sessions calls get from the
// relay do not time out while the call rings, only once StartTimeout says
// it was answered.
func TestRelayAdapterTimeoutWaitsForAnswer(t *testing.T) {
	const timeout = 200 * time.Millisecond
	r, err := media.New(media.Config{Address: netip.MustParseAddr("127.0.0.1"), PortMin: 22000, PortMax: 22999, Timeout: timeout}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s, err := relayAdapter{r: r}.Open("ringing")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	time.Sleep(4 * timeout)
	select {
	case <-s.Done():
		t.Fatal("session timed out before the answer")
	default:
	}
	s.StartTimeout()
	select {
	case <-s.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("session did not time out after the answer")
	}
	if !s.TimedOut() {
		t.Error("TimedOut() = false")
	}
}
