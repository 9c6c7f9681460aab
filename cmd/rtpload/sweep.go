package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"time"
)

// maxSweepRuns bounds a sweep's length.
const maxSweepRuns = 20

// sweepPause separates runs so that the previous relay's sockets are gone
// and the machine settles.
const sweepPause = time.Second

func sweepCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rtpload sweep", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg genConfig
	var addr, callList, profile string
	var asJSON bool
	loadFlags(fs, &cfg, &addr)
	fs.StringVar(&callList, "calls", "100,250,500,1000,2000", "comma-separated call `counts`")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "measurement window of each run")
	fs.StringVar(&profile, "relay-cpuprofile", "", "have each relay child write a CPU profile to `prefix`.CALLS.pprof")
	fs.BoolVar(&asJSON, "json", false, "print the results as a JSON array")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	calls, err := parseCalls(callList)
	if err == nil && len(calls) > maxSweepRuns {
		err = fmt.Errorf("calls: at most %d runs", maxSweepRuns)
	}
	if err == nil {
		cfg.Addr, err = netip.ParseAddr(addr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "rtpload sweep: %v\n", err)
		return 2
	}

	var results []result
	if !asJSON {
		writeTableHeader(stdout)
	}
	best := 0
	for i, n := range calls {
		if i > 0 {
			select {
			case <-ctx.Done():
				fmt.Fprintf(stderr, "rtpload sweep: %v\n", ctx.Err())
				return 1
			case <-time.After(sweepPause):
			}
		}
		run := cfg
		run.Calls = n
		if profile != "" {
			run.RelayCPUProfile = fmt.Sprintf("%s.%d.pprof", profile, n)
		}
		res, err := runGen(ctx, run, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "rtpload sweep: %d calls: %v\n", n, err)
			return 1
		}
		results = append(results, res)
		if res.Pass && n > best {
			best = n
		}
		if !asJSON {
			writeTableRow(stdout, &res)
		}
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(results); err != nil {
			fmt.Fprintf(stderr, "rtpload sweep: %v\n", err)
			return 1
		}
		return 0
	}
	fmt.Fprint(stdout, tableLegend)
	fmt.Fprintf(stdout, "largest passing run: %d calls (target: loss < %.1f%%, p99 < %s, offered >= %.0f%%)\n",
		best, targetLossPct, targetP99, 100*minOffered)
	return 0
}

const tableFormat = "%6v %8v %8v %7v %7v %8v %8v %7v %7v %6v %9v %8v %9v %10v %7v  %v\n"

// writeTableHeader prints the column names of the sweep table.
func writeTableHeader(w io.Writer) {
	fmt.Fprintf(w, tableFormat, "calls", "pps_in", "offered", "loss%", "p50_us", "p99_us", "max_us",
		"relay%", "us/pkt", "gen%", "machine%", "others%", "KiB/call", "KiB/call*", "rcvbuf", "result")
}

// writeTableRow prints one run as a row of the sweep table.
func writeTableRow(w io.Writer, r *result) {
	pps := r.RelayPPSIn
	if r.Config.Direct {
		pps = float64(r.Received) / r.Window
	}
	f := func(format string, v float64) string { return fmt.Sprintf(format, v) }
	fmt.Fprintf(w, tableFormat, r.Config.Calls, f("%.0f", pps), f("%.1f%%", 100*r.Offered),
		f("%.3f", r.LossPct), f("%.0f", r.Latency.P50), f("%.0f", r.Latency.P99), f("%.0f", r.Latency.Max),
		f("%.1f", r.RelayCPU), f("%.2f", r.RelayCPUPerPacket), f("%.1f", r.GenCPU), f("%.1f", r.MachineBusy),
		f("%.1f", r.Others), f("%.1f", r.KiBPerCall), f("%.1f", r.KiBPerCallLoaded), r.UDP.RcvbufErrors, r.verdict())
}

// tableLegend explains the columns.
const tableLegend = `columns: pps_in = RTP packets/s the relay received (it sends as many); offered = packets the
generator sent / packets scheduled; loss% and p50/p99/max = one way phone -> relay -> phone, send
time to the far phone's read (the relay's share plus both kernels and the generator's wake-up);
relay%, gen% = CPU of each process, 100 = one core; us/pkt = relay CPU per packet received;
machine% = all cores busy (/proc/stat); others% = machine% minus both processes (other work on
the shared machine, ksoftirqd; tick-sampled, so about +-5); KiB/call = relay RSS growth per call
after opening the sessions, KiB/call* = at the end of the run; rcvbuf = kernel UDP receive
buffer errors during the run, for every socket on the machine (netstat -su).
`
