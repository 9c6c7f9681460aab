package main

import (
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// Targets from the issue (2-core machine, ratios in the same run).
const (
	targetRegisterRatio = 1.0   // REGISTER with digest auth vs Kamailio
	targetRegisterRate  = 10000 // successful REGISTER/s
	targetCPS           = 1000  // calls per second through the B2BUA
	targetCPSRatio      = 0.5   // vs Kamailio's stateful proxy
	targetRelayRatio    = 1.0   // throughput at equal CPU vs rtpengine
	targetP99US         = 1000  // p99 added latency at targetRelayCalls
	targetRelayCalls    = 2000  // concurrent calls
	targetBindingBytes  = 2048  // memory per registration
	targetCallKiB       = 50    // memory per relayed call
	targetFailPct       = 0.1   // SIPp failures
	refRegistrar        = "kamailio"
	refRegistrarDB      = "kamailio-db" // usrloc written through to SQLite: Switchboard's durable job
	refRelay            = "rtpengine"
	us                  = "switchboard"
)

func reportCmd(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("benchchart report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "docs/bench", "`directory` with the raw figures")
	doc := fs.String("doc", "docs/benchmarks.md", "Markdown `file` to write")
	chart := fs.String("chart", "docs/bench/chart.svg", "SVG `file` to write")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	b, err := load(*dir)
	if err != nil {
		fmt.Fprintf(stderr, "benchchart report: %v\n", err)
		return 1
	}
	rel, err := filepath.Rel(filepath.Dir(*doc), *chart)
	if err != nil {
		rel = *chart
	}
	var md strings.Builder
	writeReport(&md, b, filepath.ToSlash(rel))
	if err := os.WriteFile(*doc, []byte(md.String()), 0o644); err != nil {
		fmt.Fprintf(stderr, "benchchart report: %v\n", err)
		return 1
	}
	var svg strings.Builder
	writeChart(&svg, b)
	if err := os.WriteFile(*chart, []byte(svg.String()), 0o644); err != nil {
		fmt.Fprintf(stderr, "benchchart report: %v\n", err)
		return 1
	}
	return 0
}

// num formats a figure for a table: "–" for none, no decimals when large.
func num(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "–"
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// ratio formats a ratio as "1.23×".
func ratio(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "–"
	}
	return fmt.Sprintf("%.2f×", v)
}

// verdict says whether a figure met its target.
func verdict(ok bool, v float64) string {
	switch {
	case math.IsNaN(v):
		return "not measured"
	case ok:
		return "**met**"
	default:
		return "**not met**"
	}
}

// summaryRow is one line of the targets table.
type summaryRow struct {
	what, ours, theirs, rat, target, verdict string
}

// registerEfficiency is the REGISTERs per CPU-second of Switchboard and ref
// at the lowest offered rate, where an idle server pays the most per
// datagram, and at the highest, where its work is shared the most.
func registerEfficiency(b *bench, ref, against string) []summaryRow {
	ps := b.params("register")
	var rows []summaryRow
	for i, p := range ps {
		if i != 0 && i != len(ps)-1 {
			continue
		}
		e := b.ratioOf("register", ref, us, p, sipRun.cpuUS)
		rows = append(rows, summaryRow{fmt.Sprintf("REGISTER per CPU-second (at %d/s offered), %s", p, against),
			num(1e6 / b.medianOf("register", us, p, sipRun.cpuUS)), num(1e6 / b.medianOf("register", ref, p, sipRun.cpuUS)),
			ratio(e), "(efficiency, for context)", ""})
	}
	return rows
}

// summary computes the targets table; the chart shows the same ratios.
func summary(b *bench) []summaryRow {
	var rows []summaryRow
	if len(b.runs["register"]) > 0 {
		m, t, r := b.sustainedMedian("register", us, refRegistrar)
		rows = append(rows, summaryRow{"REGISTER with digest auth, highest offered rate sustained with < 0.1% failures (/s)",
			num(m), num(t), ratio(r), fmt.Sprintf("≥ %.1f× and ≥ %d/s", targetRegisterRatio, targetRegisterRate),
			verdict(r >= targetRegisterRatio && m >= targetRegisterRate, r)})
		rows = append(rows, registerEfficiency(b, refRegistrar, "vs Kamailio keeping bindings in memory only")...)
		if b.has("register", refRegistrarDB) {
			m, t, r := b.sustainedMedian("register", us, refRegistrarDB)
			rows = append(rows, summaryRow{"REGISTER sustained (/s, < 0.1% failures), vs Kamailio writing every binding to SQLite before its 200 OK (the same durable job)",
				num(m), num(t), ratio(r), fmt.Sprintf("≥ %.1f×", targetRegisterRatio), verdict(r >= targetRegisterRatio, r)})
			rows = append(rows, registerEfficiency(b, refRegistrarDB, "vs Kamailio writing every binding to SQLite")...)
		}
	}
	if len(b.runs["calls"]) > 0 {
		m, t, r := b.sustainedMedian("calls", us, refRegistrar)
		rows = append(rows, summaryRow{"Calls per second, highest offered rate sustained with < 0.1% failures (B2BUA + media anchoring vs stateful proxy)",
			num(m), num(t), ratio(r), fmt.Sprintf("≥ %d and ≥ %.1f×", targetCPS, targetCPSRatio),
			verdict(r >= targetCPSRatio && m >= targetCPS, r)})
		p := b.params("calls")[0]
		e := b.ratioOf("calls", refRegistrar, us, p, sipRun.cpuUS)
		rows = append(rows, summaryRow{fmt.Sprintf("Calls per CPU-second (at %d/s offered)", p),
			num(1e6 / b.medianOf("calls", us, p, sipRun.cpuUS)), num(1e6 / b.medianOf("calls", refRegistrar, p, sipRun.cpuUS)),
			ratio(e), "(efficiency, for context)", ""})
	}
	if len(b.relay[us]) > 0 {
		cpp := func(r relayResult) float64 { return r.RelayCPUPerPkt }
		r := b.relayRatioAll(refRelay, us, cpp)
		var mine, theirs []float64
		for _, c := range b.relayCalls(us) {
			mine = append(mine, 1e6/b.relayMedian(us, c, cpp))
			theirs = append(theirs, 1e6/b.relayMedian(refRelay, c, cpp))
		}
		rows = append(rows, summaryRow{"Relay packets per CPU-second (throughput at equal CPU; median over every call count and repetition)",
			num(median(mine)), num(median(theirs)),
			ratio(r), fmt.Sprintf("≥ %.1f×", targetRelayRatio), verdict(r >= targetRelayRatio, r)})
		p99 := b.relayMedian(us, targetRelayCalls, func(r relayResult) float64 { return r.Latency.P99 })
		rows = append(rows, summaryRow{fmt.Sprintf("Relay p99 one-way latency at %d calls (µs)", targetRelayCalls),
			num(p99), num(b.relayMedian(refRelay, targetRelayCalls, func(r relayResult) float64 { return r.Latency.P99 })),
			ratio(b.relayRatio(us, refRelay, targetRelayCalls, func(r relayResult) float64 { return r.Latency.P99 })),
			fmt.Sprintf("< %d µs", targetP99US), verdict(p99 < targetP99US, p99)})
		rows = append(rows, summaryRow{"Largest clean relay load (calls; loss < 0.1%, p99 < 1 ms)",
			num(b.largestPassing(us)), num(b.largestPassing(refRelay)),
			ratio(b.largestPassing(us) / b.largestPassing(refRelay)), fmt.Sprintf("%d", targetRelayCalls),
			verdict(b.largestPassing(us) >= targetRelayCalls, b.largestPassing(us))})
		kib := b.relayMedian(us, maxCalls(b, us), func(r relayResult) float64 { return r.KiBPerCallLoad })
		rows = append(rows, summaryRow{fmt.Sprintf("Relay memory per call at %d calls (KiB RSS)", maxCalls(b, us)),
			num(kib), num(b.relayMedian(refRelay, maxCalls(b, us), func(r relayResult) float64 { return r.KiBPerCallLoad })),
			"", fmt.Sprintf("< %d KiB", targetCallKiB), verdict(kib < targetCallKiB, kib)})
	}
	for _, g := range b.goBench {
		if strings.HasPrefix(g.name, "BenchmarkRelayForward") {
			rows = append(rows, summaryRow{"Allocations per relayed packet (" + g.name + ")", num(g.allocsOp), "", "", "0",
				verdict(g.allocsOp == 0, g.allocsOp)})
			break
		}
	}
	if ps := b.params("bindings"); len(ps) > 0 {
		n := ps[len(ps)-1]
		per := bindingBytes(b, us, n)
		rows = append(rows, summaryRow{fmt.Sprintf("Memory per registration after %d REGISTERs of distinct users (bytes)", n),
			num(per), num(bindingBytes(b, refRegistrar, n)), "", fmt.Sprintf("< %d", targetBindingBytes),
			verdict(per < targetBindingBytes, per)})
	}
	return rows
}

// maxCalls is the largest call count measured for system.
func maxCalls(b *bench, system string) int {
	cs := b.relayCalls(system)
	if len(cs) == 0 {
		return 0
	}
	return cs[len(cs)-1]
}

// bindingBytes is the memory growth per binding held after the step of n
// registrations: Go heap in use for Switchboard, shared memory in use for
// Kamailio. A registration that failed holds no binding.
func bindingBytes(b *bench, system string, n int) float64 {
	m, ok := b.runs["bindings"][runKey{system, n, 1}]
	if !ok || heldOf(m, n) <= 0 {
		return math.NaN()
	}
	return m["mem_bytes"] / heldOf(m, n)
}

// heldOf is the number of bindings held after the step of n registrations
// (all n when the run did not record it).
func heldOf(m map[string]float64, n int) float64 {
	if h, ok := m["held"]; ok {
		return h
	}
	return float64(n)
}

// writeReport writes docs/benchmarks.md.
func writeReport(w io.Writer, b *bench, chart string) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("# Benchmarks: Switchboard side by side with Kamailio and rtpengine\n\n")
	p("This page is written by `make bench` (scripts/bench.sh, then `bin/benchchart report`); ")
	p("the hand-written analysis at the end comes from docs/bench/notes.md and the raw figures are in docs/bench/. ")
	p("Reproduce everything with `make bench` (it installs Kamailio, rtpengine and SIPp from Debian packages through scripts/bench-deps.sh).\n\n")
	p("**Read the absolute numbers with care.** They come from a shared 2-core virtual machine on which other engineers' ")
	p("test suites were running at the same time, so every absolute figure is depressed and noisy. ")
	p("What carries over is the *ratios*: each comparison runs Switchboard and the reference system back to back in the same ")
	p("`make bench` run, repeats that %s times, and reports the median of the figures and the median of the per-repetition ratios.\n\n", b.machine["reps"])
	p("| Machine | |\n|---|---|\n")
	for _, k := range b.machineK {
		p("| %s | %s |\n", k, b.machine[k])
	}
	p("\n![Switchboard relative to Kamailio and rtpengine](%s)\n\n", chart)

	p("## Targets\n\n")
	p("Ratios are Switchboard / reference (higher is better for Switchboard), except latency (lower is better).\n\n")
	p("| Figure | Switchboard | Reference | Ratio | Target | |\n|---|---:|---:|---:|---|---|\n")
	for _, r := range summary(b) {
		p("| %s | %s | %s | %s | %s | %s |\n", r.what, r.ours, r.theirs, r.rat, r.target, r.verdict)
	}
	p("\n")

	writeSIPSection(w, b, "register", "REGISTER with digest authentication",
		"Each SIPp scenario is REGISTER → 401 → REGISTER with credentials → 200 OK (MD5, qop=auth) for one of "+
			"the users, cycling through them from the first, so a server that has run the lower rates mostly refreshes existing bindings at the higher ones. "+
			"Switchboard commits every binding to SQLite before its 200 OK, so a killed process loses no acknowledged registration. "+
			"Kamailio runs twice: *kamailio* keeps bindings in memory only (usrloc db_mode 0: a restart loses them all), and "+
			"*kamailio-db* writes each one through to SQLite before answering (usrloc db_mode 1, db_sqlite, WAL, one worker process "+
			"because db_sqlite sets no busy timeout and concurrent writers fail) — the same durable job. Both ratios are shown; "+
			"the ratio columns of a Kamailio row compare Switchboard with that row.", "REGISTER")
	writeBindingSection(w, b)
	writeSIPSection(w, b, "calls", "Call setup",
		"Each SIPp scenario is INVITE → 407 → INVITE with credentials → 200 OK → ACK, 100 ms of call, BYE → 200 OK, "+
			"from an authenticated caller to a callee registered with the server (SIPp in UAS mode). Switchboard is a B2BUA: "+
			"it authenticates, opens a second dialog to the callee, allocates relay ports and rewrites both SDPs. Kamailio is a "+
			"transaction-stateful proxy with record-routing; it touches no media.", "call")
	writeRelaySection(w, b)
	if strings.TrimSpace(b.webrtc) != "" {
		p("## WebRTC bridge under load\n\n")
		p("`scripts/bench-webrtc.sh` (run by `make bench` after the side-by-side part): a Go client of pion peers ")
		p("over SIP over WebSocket holds concurrent calls bridged to plain RTP phones through the real server. ")
		p("No reference system takes part. Output of the last run (docs/bench/webrtc-load.txt):\n\n")
		p("```\n%s\n```\n\n", strings.TrimSpace(b.webrtc))
	}
	writeGoSection(w, b)
	if b.notes != "" {
		p("%s", strings.TrimSpace(b.notes))
		p("\n")
	}
}

func writeCommands(w io.Writer, b *bench, test string) {
	cmds := b.commands[test]
	if len(cmds) == 0 {
		return
	}
	fmt.Fprintf(w, "Commands:\n\n")
	for _, sys := range []string{us, refRegistrar, refRegistrarDB, refRelay} {
		if c, ok := cmds[sys]; ok {
			fmt.Fprintf(w, "- %s: `%s`\n", sys, c)
		}
	}
	fmt.Fprintln(w)
}

func writeSIPSection(w io.Writer, b *bench, test, title, about, unit string) {
	if len(b.runs[test]) == 0 {
		return
	}
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("## %s\n\n%s\n\n", title, about)
	writeCommands(w, b, test)
	p("Medians of %d repetitions. A rate is *clean* when fewer than %.1f%% of the scenarios failed and the achieved rate reached %.0f%% of the offered one (below that, SIPp could not generate the rate on the cores it shares with the server, and the run shows nothing about the server at that rate). ",
		len(b.reps(test)), targetFailPct, 100*minOfferedShare)
	p("Achieved is successful scenarios divided by the wall time of the SIPp run, which includes its start and the last scenarios' tail.\n\n")
	p("| Offered /s | System | Achieved /s | Failed %% | Server CPU %% | CPU µs per %s | PSS MiB | Clean runs | Ratio achieved (SB / this) | Ratio CPU per %s (this / SB) |\n", unit, unit)
	p("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, rate := range b.params(test) {
		for _, sys := range []string{us, refRegistrar, refRegistrarDB} {
			if !b.has(test, sys) {
				continue
			}
			clean, n := 0, 0
			for _, rep := range b.reps(test) {
				if r, ok := b.sipRunOf(test, sys, rate, rep); ok {
					n++
					if r.clean() {
						clean++
					}
				}
			}
			rAch, rCPU := "", ""
			if sys != us {
				rAch = ratio(b.ratioOf(test, us, sys, rate, sipRun.rate))
				rCPU = ratio(b.ratioOf(test, sys, us, rate, sipRun.cpuUS))
			}
			p("| %d | %s | %s | %s | %s | %s | %s | %d/%d | %s | %s |\n", rate, sys,
				num(b.medianOf(test, sys, rate, sipRun.rate)), fmt.Sprintf("%.3f", b.medianOf(test, sys, rate, sipRun.failPct)),
				num(b.medianOf(test, sys, rate, sipRun.cpuPct)), num(b.medianOf(test, sys, rate, sipRun.cpuUS)),
				num(b.medianOf(test, sys, rate, func(r sipRun) float64 { return r.pssKiB / 1024 })), clean, n, rAch, rCPU)
		}
	}
	p("\n")
}

func writeBindingSection(w io.Writer, b *bench) {
	ps := b.params("bindings")
	if len(ps) == 0 {
		return
	}
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("## Memory per registration\n\n")
	p("Registrations of distinct users in steps; after each step, memory growth since the start divided by the bindings held ")
	p("(registrations that failed under load hold none). ")
	p("For Switchboard the figure is Go heap in use after a GC, read once 34 s have passed since the step (the answers it keeps ")
	p("for retransmitted REGISTERs, and any SIP transaction, live at most 64·T1 = 32 s), so it counts the binding (its registrar ")
	p("entry, its user cache entry and its SQLite pages) and nothing of the load. ")
	p("For Kamailio it is shared memory in use (`kamcmd core.shmmem`, real_used), where usrloc keeps bindings. ")
	p("PSS is the process tree's proportional set size growth: everything the kernel had to back, for both.\n\n")
	writeCommands(w, b, "bindings")
	p("| REGISTERs sent | Bindings held (SB / Kam) | Switchboard heap B/binding | Switchboard PSS B/binding | Kamailio shm B/binding | Kamailio PSS B/binding |\n")
	p("|---:|---:|---:|---:|---:|---:|\n")
	for _, n := range ps {
		sb := b.runs["bindings"][runKey{us, n, 1}]
		k := b.runs["bindings"][runKey{refRegistrar, n, 1}]
		per := func(m map[string]float64, key string, scale float64) string {
			if m == nil || heldOf(m, n) <= 0 {
				return "–"
			}
			return num(m[key] * scale / heldOf(m, n))
		}
		held := func(m map[string]float64) string {
			if m == nil {
				return "–"
			}
			return fmt.Sprintf("%.0f", heldOf(m, n))
		}
		p("| %d | %s / %s | %s | %s | %s | %s |\n", n, held(sb), held(k), per(sb, "mem_bytes", 1), per(sb, "pss_kib", 1024),
			per(k, "mem_bytes", 1), per(k, "pss_kib", 1024))
	}
	p("\n")
}

func writeRelaySection(w io.Writer, b *bench) {
	if len(b.relay) == 0 {
		return
	}
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("## Media relay\n\n")
	p("`rtpload` plays both phones of N concurrent calls (50 packets/s each way, 172-byte PCMU RTP, 20 ms) on 127.0.0.1 ")
	p("against Switchboard's relay (media.Relay in a child process) and against rtpengine in userspace mode (`--table=-1`), ")
	p("which it drives through rtpengine's ng control protocol (bencode over UDP: an offer and an answer per call). ")
	if b.relayKernelTime() {
		p("Latency is one way, phone → relay → phone, send time to the kernel's receive time at the far phone's socket ")
		p("(SO_TIMESTAMPNS; on loopback that is within the relay's send): it includes the loopback delivery into the relay ")
		p("and leaves out the generator's own wake-up and read, the same for both relays. CPU is the relay process's (100%% = one core).\n\n")
	} else {
		p("Latency is one way, phone → relay → phone, send time to the far phone's read: it includes both kernels' loopback ")
		p("delivery and the generator's own wake-up, the same for both relays. CPU is the relay process's (100%% = one core).\n\n")
	}
	switch b.relaySockets() {
	case "shared":
		p("The generator's phones share a few unconnected sockets, two per sender goroutine (one for the calls' A ends, ")
		p("one for their B ends, so a call's two ends have different addresses), and move packets with sendmmsg and recvmmsg; ")
		p("a packet's phone is told by the relay port it came from and its sender by a tag in the payload, so packets a relay ")
		p("forwards to the wrong phone still count as misrouted. Each relay leg still receives one phone's packets from one address.\n\n")
	case "phone":
		p("Each of the generator's phones has a UDP socket of its own and sends and reads one packet per system call.\n\n")
	default:
		p("The runs do not all use the same generator socket mode (`config.sockets` in the raw JSON).\n\n")
	}
	writeCommands(w, b, "relay")
	p("Medians of %d repetitions per row.\n\n", len(b.relay[us][maxCalls(b, us)]))
	p("| Calls | Relay | Packets/s | Loss %% | p50 µs | p99 µs | CPU %% | CPU %% per 1,000 streams | CPU µs/packet | RSS KiB/call | Generator sent %% | Generator CPU µs/packet | Clean runs | Ratio packets per CPU-s (SB/rtpengine) |\n")
	p("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, c := range b.relayCalls(us) {
		for _, sys := range []string{us, refRelay} {
			rs := b.relay[sys][c]
			if len(rs) == 0 {
				continue
			}
			clean := 0
			for _, r := range rs {
				if r.Pass {
					clean++
				}
			}
			med := func(f func(relayResult) float64) float64 { return b.relayMedian(sys, c, f) }
			rat := ""
			if sys == us {
				rat = ratio(b.relayRatio(refRelay, us, c, func(r relayResult) float64 { return r.RelayCPUPerPkt }))
			}
			p("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d/%d | %s |\n", c, sys,
				num(med(func(r relayResult) float64 { return r.RelayPPSIn })),
				fmt.Sprintf("%.3f", med(func(r relayResult) float64 { return r.LossPct })),
				num(med(func(r relayResult) float64 { return r.Latency.P50 })),
				num(med(func(r relayResult) float64 { return r.Latency.P99 })),
				num(med(func(r relayResult) float64 { return r.RelayCPU })),
				num(med(func(r relayResult) float64 { return r.RelayCPU * 1000 / float64(2*c) })),
				num(med(func(r relayResult) float64 { return r.RelayCPUPerPkt })),
				num(med(func(r relayResult) float64 { return r.KiBPerCallLoad })),
				num(med(func(r relayResult) float64 { return 100 * r.Offered })),
				num(med(func(r relayResult) float64 { return r.GenPerPkt })), clean, len(rs), rat)
		}
	}
	p("\nA run is clean when loss < 0.1%%, p99 < 1 ms and the generator sent at least 99%% of its schedule. ")
	p("Packets/s counts what the relay forwarded. RSS per call is growth of the relay's resident memory per call at the end of the run. ")
	p("Generator sent is the share of its schedule the generator sent in the window; its CPU per packet sent includes the kernel's ")
	p("work in its system calls, which on loopback includes delivering each packet into the relay's socket.\n\n")
}

// relayKernelTime reports whether every relay run took arrival times from
// the kernel.
func (b *bench) relayKernelTime() bool {
	n := 0
	for _, byCalls := range b.relay {
		for _, rs := range byCalls {
			for _, r := range rs {
				if !r.Config.KernelTime {
					return false
				}
				n++
			}
		}
	}
	return n > 0
}

// relaySockets returns rtpload's socket mode if every relay run used the
// same one ("phone" for runs that predate the field), else "".
func (b *bench) relaySockets() string {
	mode := ""
	for _, byCalls := range b.relay {
		for _, rs := range byCalls {
			for _, r := range rs {
				m := r.Config.Sockets
				if m == "" {
					m = "phone"
				}
				if mode != "" && m != mode {
					return ""
				}
				mode = m
			}
		}
	}
	return mode
}

func writeGoSection(w io.Writer, b *bench) {
	if len(b.goBench) == 0 {
		return
	}
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("## Go microbenchmarks of the hot paths\n\n")
	writeCommands(w, b, "go")
	p("Medians of the runs; docs/bench/go.txt is the raw output, ready for `benchstat`.\n\n")
	p("| Package | Benchmark | Runs | ns/op | B/op | allocs/op |\n|---|---|---:|---:|---:|---:|\n")
	for _, g := range b.goBench {
		p("| %s | %s | %d | %s | %s | %s |\n", g.pkg, g.name, g.runs, num(g.nsPerOp), num(g.bPerOp), num(g.allocsOp))
	}
	p("\n")
}
