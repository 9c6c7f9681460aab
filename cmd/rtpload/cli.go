package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// loadFlags registers the flags gen and sweep share.
func loadFlags(fs *flag.FlagSet, cfg *genConfig, addr *string) {
	fs.IntVar(&cfg.PPS, "pps", 50, "packets per second sent by each phone")
	fs.IntVar(&cfg.Size, "size", 172, "UDP payload `bytes` per packet, 12-byte RTP header included")
	fs.DurationVar(&cfg.Warmup, "warmup", 2*time.Second, "unmeasured traffic before the window")
	fs.DurationVar(&cfg.Drain, "drain", 500*time.Millisecond, "wait for packets in flight after the window; later ones count as lost")
	fs.DurationVar(&cfg.Slot, "slot", 0, "round the phones' send times to multiples of this `duration`, so senders send a slot's packets together (0: evenly spread)")
	fs.StringVar(&cfg.Sockets, "sockets", socketsShared, `how phones reach the network: "shared" (a few unconnected sockets, sendmmsg/recvmmsg) or "phone" (a connected socket per phone)`)
	fs.BoolVar(&cfg.KernelTime, "kernel-time", false, "with --sockets shared: a packet's arrival is the kernel's receive time, not the reader's clock (latency leaves out the generator's wake-up)")
	fs.IntVar(&cfg.Senders, "senders", 0, "sender goroutines (default GOMAXPROCS)")
	fs.StringVar(&cfg.Readers, "readers", readersEpoll, `how the phones read: "epoll" (few goroutines) or "goroutine" (one per socket)`)
	fs.BoolVar(&cfg.Direct, "direct", false, "no relay: phones send to each other (the generator's own ceiling)")
	fs.IntVar(&cfg.RelayProcs, "relay-gomaxprocs", 0, "GOMAXPROCS of the relay child (default: Go's choice)")
	fs.StringVar(&cfg.Relay, "relay", relayOwn, `relay under test: "switchboard" (media.Relay in a child) or "rtpengine" (userspace, via its ng protocol)`)
	fs.StringVar(&cfg.RTPEngine, "rtpengine", "rtpengine", "rtpengine `executable`, for --relay rtpengine")
	fs.IntVar(&cfg.RelayThreads, "relay-threads", 0, "rtpengine --num-threads (default: rtpengine's choice, one per CPU)")
	fs.StringVar(addr, "addr", "127.0.0.1", "loopback `address` of phones and relay")
	fs.StringVar(&cfg.Ports, "ports", defaultPorts, "relay port `range`")
}

func genCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rtpload gen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg genConfig
	var addr, cpuProfile string
	var asJSON bool
	loadFlags(fs, &cfg, &addr)
	fs.IntVar(&cfg.Calls, "calls", 100, "concurrent calls (two phones each)")
	fs.DurationVar(&cfg.Duration, "duration", 20*time.Second, "measurement window")
	fs.StringVar(&cfg.RelayCPUProfile, "relay-cpuprofile", "", "have the relay child write a CPU profile to `file`")
	fs.StringVar(&cpuProfile, "cpuprofile", "", "write the generator's CPU profile to `file`")
	fs.BoolVar(&asJSON, "json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var err error
	if cfg.Addr, err = netip.ParseAddr(addr); err != nil {
		fmt.Fprintf(stderr, "rtpload gen: addr: %v\n", err)
		return 2
	}
	if cpuProfile != "" {
		stop, err := startCPUProfile(cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "rtpload gen: %v\n", err)
			return 1
		}
		defer stop()
	}
	res, err := runGen(ctx, cfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "rtpload gen: %v\n", err)
		return 1
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			fmt.Fprintf(stderr, "rtpload gen: %v\n", err)
			return 1
		}
		return 0
	}
	writeSummary(stdout, &res)
	return 0
}

// parseCalls parses a comma-separated list of call counts.
func parseCalls(s string) ([]int, error) {
	var calls []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > maxCalls {
			return nil, fmt.Errorf("calls %q: want a list of counts in 1-%d", s, maxCalls)
		}
		calls = append(calls, n)
	}
	return calls, nil
}
