//go:build rtpengine

package main

import (
	"bytes"
	"fmt"
	"os/exec"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestGenRTPEngine runs a short load through rtpengine, driven over its ng
// protocol. rtpengine is installed by scripts/bench-deps.sh for `make bench`
// only, so this test is built with -tags rtpengine, which scripts/bench.sh
// runs before its sweep.
func TestGenRTPEngine(t *testing.T) {
	if _, err := exec.LookPath("rtpengine"); err != nil {
		t.Fatal("rtpengine is not installed: run scripts/bench-deps.sh")
	}
	defer goleak.VerifyNone(t)
	// In the shared socket mode the A ends of all calls share one address
	// (and the B ends another), which rtpengine must still keep apart.
	for _, sockets := range []string{socketsShared, socketsPhone} {
		t.Run(sockets, func(t *testing.T) {
			const calls = 10
			lo, hi := freePorts(t, 8*calls)
			cfg := genConfig{Calls: calls, Relay: relayRTPEngine, Sockets: sockets, Duration: 500 * time.Millisecond,
				Warmup: 300 * time.Millisecond, Drain: 200 * time.Millisecond, Ports: fmt.Sprintf("%d-%d", lo, hi)}
			var stderr bytes.Buffer
			res, err := runGen(t.Context(), cfg, &stderr)
			if err != nil {
				t.Fatalf("runGen: %v\nrtpengine stderr: %s", err, stderr.String())
			}
			if res.Sent == 0 || res.Lost != 0 || res.Received != res.Sent || res.Misrouted != 0 || res.Duplicates != 0 {
				t.Errorf("sent=%d received=%d lost=%d misrouted=%d dup=%d, want every packet to reach the right phone once",
					res.Sent, res.Received, res.Lost, res.Misrouted, res.Duplicates)
			}
			if res.RelayPPSIn < 0.4*2*calls*50 || res.RelayCPU <= 0 || res.RSSBeforeKiB <= 0 {
				t.Errorf("relay pps=%.0f cpu=%.1f%% rss=%d: rtpengine's counters were not read", res.RelayPPSIn, res.RelayCPU, res.RSSBeforeKiB)
			}
		})
	}
}
