package main

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard/switchboard/media"
)

// TestGenRun runs short real loads of 20 calls through a relay child process
// (this test binary, re-executed) with shared sockets and with a socket per
// phone (both reader modes), and without a relay, and expects every packet to
// arrive once from the right phone.
func TestGenRun(t *testing.T) {
	defer goleak.VerifyNone(t)
	t.Setenv(childEnv, "1")
	tests := map[string]genConfig{
		"relay shared sockets":         {Sockets: socketsShared, Duration: time.Second},
		"relay shared sockets slotted": {Sockets: socketsShared, Slot: time.Millisecond, Senders: 3, Duration: 400 * time.Millisecond},
		"relay shared kernel time":     {Sockets: socketsShared, KernelTime: true, Duration: 400 * time.Millisecond},
		"relay epoll readers":          {Sockets: socketsPhone, Readers: readersEpoll, Duration: 400 * time.Millisecond},
		"relay goroutine readers":      {Sockets: socketsPhone, Readers: readersGoroutine, Duration: 400 * time.Millisecond},
		"direct shared sockets":        {Sockets: socketsShared, Direct: true, Duration: 400 * time.Millisecond},
		"direct phone sockets":         {Sockets: socketsPhone, Direct: true, Duration: 400 * time.Millisecond},
	}
	for name, cfg := range tests {
		t.Run(name, func(t *testing.T) {
			const calls = 20
			lo, hi := freePorts(t, 4*calls)
			cfg.Calls = calls
			cfg.Warmup = 200 * time.Millisecond
			cfg.Drain = 200 * time.Millisecond
			cfg.Ports = fmt.Sprintf("%d-%d", lo, hi)
			var stderr bytes.Buffer
			res, err := runGen(t.Context(), cfg, &stderr)
			if err != nil {
				t.Fatalf("runGen: %v\nrelay stderr: %s", err, stderr.String())
			}
			expected := uint64(2 * calls * 50 * cfg.Duration / time.Second)
			if res.Expected != expected {
				t.Errorf("Expected = %d, want %d", res.Expected, expected)
			}
			// The window's edges fall between packets: allow a few per phone
			// more. A sender starved of CPU on a loaded machine sends less
			// (what it has not sent by the window's end is not sent): allow
			// down to half.
			if res.Sent < expected/2 || res.Sent > expected+2*calls {
				t.Errorf("Sent = %d, want about %d", res.Sent, expected)
			}
			if res.Lost != 0 || res.Received != res.Sent || res.Duplicates != 0 || res.Misrouted != 0 || res.Malformed != 0 {
				t.Errorf("sent=%d received=%d lost=%d dup=%d misrouted=%d malformed=%d, want everything received once",
					res.Sent, res.Received, res.Lost, res.Duplicates, res.Misrouted, res.Malformed)
			}
			if res.Latency.P50 <= 0 || res.Latency.Max < res.Latency.P99 {
				t.Errorf("latency %+v", res.Latency)
			}
			if cfg.Direct {
				return
			}
			perSecond := float64(2 * calls * 50)
			if res.RelayPPSIn < 0.4*perSecond || res.RelayPPSIn > 1.1*perSecond {
				t.Errorf("relay pps in = %.0f, want about %.0f", res.RelayPPSIn, perSecond)
			}
			if res.RelayDropped != 0 {
				t.Errorf("relay dropped %d packets", res.RelayDropped)
			}
			if res.RSSOpenKiB <= res.RSSBeforeKiB || res.RelayCPU <= 0 {
				t.Errorf("rss before=%d open=%d relay cpu=%.1f%%: not measured", res.RSSBeforeKiB, res.RSSOpenKiB, res.RelayCPU)
			}
			var line bytes.Buffer
			writeSummary(&line, &res)
			if !strings.Contains(line.String(), fmt.Sprintf("calls=%d", calls)) {
				t.Errorf("summary %q", line.String())
			}
		})
	}
}

// TestRelayProtocol drives the relay child's control protocol in process.
func TestRelayProtocol(t *testing.T) {
	defer goleak.VerifyNone(t)
	lo, hi := freePorts(t, 8)
	relay, err := media.New(media.Config{Address: loopback, PortMin: lo, PortMax: hi}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	srv := &relayServer{relay: relay}
	in := strings.Join([]string{
		"open 2",
		"remote 0 127.0.0.1:5000 127.0.0.1:5002",
		"remote 1 - -",
		"remote 2 127.0.0.1:5000 -",
		"remote 0 192.0.2.1:5000 -",
		"open 1",
		"stats",
		"bogus",
		"close",
		"stats",
		"quit",
		"stats", // after quit: not executed
	}, "\n") + "\n"
	var out bytes.Buffer
	if err := srv.serve(t.Context(), strings.NewReader(in), &out); err != nil {
		t.Fatalf("serve: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	want := []string{
		"ready pid=",
		"s 0 ", // the ports are checked below: the relay starts at a random pair
		"s 1 ",
		"ok 2",
		"ok",
		"ok",
		"err remote: no session \"2\"",
		"err remote 192.0.2.1:5000 is not a loopback address",
		"err open session 2:", // the range holds two sessions
		"ok sessions=2 packets_in=0 packets_out=0 dropped=0 lost=0 ",
		"err unknown command \"bogus\"",
		"ok",
		"ok sessions=0 ",
		"ok",
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), out.String())
	}
	for i := range want {
		if !strings.HasPrefix(lines[i], want[i]) {
			t.Errorf("line %d = %q, want prefix %q", i, lines[i], want[i])
		}
	}
	// The two sessions hold the range's four RTP/RTCP pairs between them.
	seen := map[int]bool{}
	for _, l := range lines[1:3] {
		var n, a, b int
		if _, err := fmt.Sscanf(l, "s %d %d %d", &n, &a, &b); err != nil {
			t.Fatalf("session line %q: %v", l, err)
		}
		for _, p := range []int{a, b} {
			if p < lo || p > lo+6 || (p-lo)%2 != 0 || seen[p] {
				t.Errorf("session line %q: port %d is not a free even port of %d-%d", l, p, lo, lo+7)
			}
			seen[p] = true
		}
	}
	if relay.Sessions() != 0 {
		t.Errorf("%d sessions left after close", relay.Sessions())
	}
}

// TestRelayServeContext checks that a relay child blocked reading its
// inherited stdin stops when its context ends (SIGTERM).
func TestRelayServeContext(t *testing.T) {
	defer goleak.VerifyNone(t)
	lo, hi := freePorts(t, 4)
	relay, err := media.New(media.Config{Address: loopback, PortMin: lo, PortMax: hi}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close()
	defer pr.Close()
	// Like the stdin a child inherits: Fd puts the pipe in blocking mode,
	// where closing it would not interrupt a read.
	_ = pr.Fd()
	in := pollable(pr)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- (&relayServer{relay: relay}).serve(ctx, in, &bytes.Buffer{}) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve after cancel: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("serve did not return after its context ended")
	}
}

func TestGenConfigValidate(t *testing.T) {
	base := genConfig{Calls: 10, Duration: time.Second}.withDefaults()
	tests := map[string]struct {
		edit func(*genConfig)
		ok   bool
	}{
		"defaults":          {func(*genConfig) {}, true},
		"no calls":          {func(c *genConfig) { c.Calls = 0 }, false},
		"too many calls":    {func(c *genConfig) { c.Calls = maxCalls + 1 }, false},
		"too many packets":  {func(c *genConfig) { c.Calls, c.PPS = maxCalls, 100 }, false},
		"pps not dividing":  {func(c *genConfig) { c.PPS = 3 }, false},
		"packet too small":  {func(c *genConfig) { c.Size = minSize - 1 }, false},
		"packet too large":  {func(c *genConfig) { c.Size = maxSize + 1 }, false},
		"unbounded":         {func(c *genConfig) { c.Duration = time.Hour }, false},
		"not loopback":      {func(c *genConfig) { c.Addr = netip.MustParseAddr("192.0.2.1") }, false},
		"ipv6 loopback":     {func(c *genConfig) { c.Addr = netip.MustParseAddr("::1") }, false},
		"unknown readers":   {func(c *genConfig) { c.Readers = "io_uring" }, false},
		"goroutine readers": {func(c *genConfig) { c.Readers = readersGoroutine }, true},
		"phone sockets":     {func(c *genConfig) { c.Sockets = socketsPhone }, true},
		"unknown sockets":   {func(c *genConfig) { c.Sockets = "many" }, false},
		"kernel time":       {func(c *genConfig) { c.KernelTime = true }, true},
		"kernel time phone": {func(c *genConfig) { c.Sockets, c.KernelTime = socketsPhone, true }, false},
		"slot":              {func(c *genConfig) { c.Slot = time.Millisecond }, true},
		"negative slot":     {func(c *genConfig) { c.Slot = -time.Millisecond }, false},
		"slot over period":  {func(c *genConfig) { c.Slot = 21 * time.Millisecond }, false},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			c := base
			tt.edit(&c)
			if err := c.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestRelayConfig(t *testing.T) {
	tests := map[string]struct {
		addr, ports string
		ok          bool
	}{
		"loopback":     {"127.0.0.1", "40000-40099", true},
		"not loopback": {"0.0.0.0", "40000-40099", false},
		"bad range":    {"127.0.0.1", "40000", false},
		"reversed":     {"127.0.0.1", "40099-40000", false},
		"too small":    {"127.0.0.1", "40000-40002", false},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := relayConfig(tt.addr, tt.ports); (err == nil) != tt.ok {
				t.Fatalf("relayConfig(%q, %q) = %v, want ok=%v", tt.addr, tt.ports, err, tt.ok)
			}
		})
	}
}
