package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// sample is one figure of results.tsv.
type sample struct {
	test, system string
	param        int
	rep          int
	metric       string
	value        float64
}

// runKey names one run: a system at one parameter (rate or count) in one
// repetition.
type runKey struct {
	system string
	param  int
	rep    int
}

// bench is everything report reads.
type bench struct {
	machine  map[string]string
	machineK []string                                 // keys in file order
	runs     map[string]map[runKey]map[string]float64 // test → run → metric → value
	commands map[string]map[string]string             // test → system → command
	relay    map[string]map[int][]relayResult         // system → calls → one result per rep
	goBench  []goBench
	notes    string
	webrtc   string // scripts/bench-webrtc.sh's output, verbatim
}

// relayResult is the part of an rtpload result the report uses.
type relayResult struct {
	Config struct {
		Calls int `json:"calls"`
		// Sockets is rtpload's socket mode ("shared", "phone"); runs of
		// rtpload before the shared mode have none and had a socket per
		// phone.
		Sockets string `json:"sockets"`
		// KernelTime: arrival times are the kernel's receive times.
		KernelTime bool `json:"kernel_time"`
	} `json:"config"`
	Offered   float64 `json:"offered"`
	GenPerPkt float64 `json:"gen_cpu_us_per_packet"`
	LossPct   float64 `json:"loss_pct"`
	Latency   struct {
		P50 float64 `json:"p50_us"`
		P99 float64 `json:"p99_us"`
	} `json:"latency"`
	RelayPPSIn     float64 `json:"relay_pps_in"`
	RelayCPU       float64 `json:"relay_cpu_pct"`
	RelayCPUPerPkt float64 `json:"relay_cpu_us_per_packet"`
	KiBPerCall     float64 `json:"kib_per_call"`
	KiBPerCallLoad float64 `json:"kib_per_call_loaded"`
	Pass           bool    `json:"pass"`
}

// goBench is one benchmark's medians over its -count runs.
type goBench struct {
	pkg, name                 string
	runs                      int
	nsPerOp, bPerOp, allocsOp float64
}

// load reads the bench directory. Missing files leave their part empty, so
// a run with SKIP still produces a document.
func load(dir string) (*bench, error) {
	b := &bench{
		machine:  map[string]string{},
		runs:     map[string]map[runKey]map[string]float64{},
		commands: map[string]map[string]string{},
		relay:    map[string]map[int][]relayResult{},
	}
	if err := eachLine(filepath.Join(dir, "machine.txt"), func(line string) error {
		k, v, ok := strings.Cut(line, ":")
		if ok {
			k = strings.TrimSpace(k)
			b.machine[k] = strings.TrimSpace(v)
			b.machineK = append(b.machineK, k)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if err := eachLine(filepath.Join(dir, "results.tsv"), func(line string) error {
		s, err := parseSample(line)
		if err != nil {
			return err
		}
		if b.runs[s.test] == nil {
			b.runs[s.test] = map[runKey]map[string]float64{}
		}
		k := runKey{s.system, s.param, s.rep}
		if b.runs[s.test][k] == nil {
			b.runs[s.test][k] = map[string]float64{}
		}
		b.runs[s.test][k][s.metric] = s.value
		return nil
	}); err != nil {
		return nil, err
	}
	if err := eachLine(filepath.Join(dir, "commands.tsv"), func(line string) error {
		f := strings.SplitN(line, "\t", 3)
		if len(f) != 3 {
			return fmt.Errorf("commands.tsv: %q: want test, system, command", line)
		}
		if b.commands[f[0]] == nil {
			b.commands[f[0]] = map[string]string{}
		}
		b.commands[f[0]][f[1]] = f[2]
		return nil
	}); err != nil {
		return nil, err
	}
	files, _ := filepath.Glob(filepath.Join(dir, "relay-*-*.json"))
	sort.Strings(files)
	for _, f := range files {
		base := strings.TrimSuffix(filepath.Base(f), ".json")
		parts := strings.Split(base, "-")
		if len(parts) != 3 {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var res []relayResult
		if err := json.Unmarshal(data, &res); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		sys := parts[1]
		if b.relay[sys] == nil {
			b.relay[sys] = map[int][]relayResult{}
		}
		for _, r := range res {
			b.relay[sys][r.Config.Calls] = append(b.relay[sys][r.Config.Calls], r)
		}
	}
	var err error
	if b.goBench, err = loadGoBench(filepath.Join(dir, "go.txt")); err != nil {
		return nil, err
	}
	if w, err := os.ReadFile(filepath.Join(dir, "webrtc-load.txt")); err == nil {
		b.webrtc = string(w)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if notes, err := os.ReadFile(filepath.Join(dir, "notes.md")); err == nil {
		b.notes = string(notes)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return b, nil
}

// eachLine calls fn for each non-empty line of path; a missing file has
// none.
func eachLine(path string, fn func(string) error) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if line := strings.TrimRight(sc.Text(), "\r"); strings.TrimSpace(line) != "" {
			if err := fn(line); err != nil {
				return err
			}
		}
	}
	return sc.Err()
}

// parseSample parses one results.tsv line.
func parseSample(line string) (sample, error) {
	f := strings.Split(line, "\t")
	if len(f) != 6 {
		return sample{}, fmt.Errorf("results.tsv: %q: want 6 tab-separated fields", line)
	}
	param, err1 := strconv.Atoi(f[2])
	rep, err2 := strconv.Atoi(f[3])
	v, err3 := strconv.ParseFloat(f[5], 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return sample{}, fmt.Errorf("results.tsv: %q: %w", line, err)
	}
	return sample{test: f[0], system: f[1], param: param, rep: rep, metric: f[4], value: v}, nil
}

var goBenchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+([0-9.]+) ns/op(.*)$`)

// loadGoBench reads `go test -bench -benchmem` output and returns each
// benchmark's medians, in order of first appearance.
func loadGoBench(path string) ([]goBench, error) {
	type acc struct {
		pkg              string
		ns, bytes, alloc []float64
	}
	var order []string
	byName := map[string]*acc{}
	pkg := ""
	err := eachLine(path, func(line string) error {
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimPrefix(strings.TrimSpace(p), "github.com/switchboard/switchboard/")
			return nil
		}
		m := goBenchLine.FindStringSubmatch(line)
		if m == nil {
			return nil
		}
		key := pkg + " " + m[1]
		a := byName[key]
		if a == nil {
			a = &acc{pkg: pkg}
			byName[key] = a
			order = append(order, key)
		}
		ns, _ := strconv.ParseFloat(m[2], 64)
		a.ns = append(a.ns, ns)
		if v, ok := unitValue(m[3], "B/op"); ok {
			a.bytes = append(a.bytes, v)
		}
		if v, ok := unitValue(m[3], "allocs/op"); ok {
			a.alloc = append(a.alloc, v)
		}
		return nil
	})
	out := make([]goBench, 0, len(order))
	for _, key := range order {
		a := byName[key]
		_, name, _ := strings.Cut(key, " ")
		out = append(out, goBench{pkg: a.pkg, name: name, runs: len(a.ns),
			nsPerOp: median(a.ns), bPerOp: median(a.bytes), allocsOp: median(a.alloc)})
	}
	return out, err
}

// unitValue finds "VALUE UNIT" in the tail of a benchmark line.
func unitValue(tail, unit string) (float64, bool) {
	f := strings.Fields(tail)
	for i := 1; i < len(f); i++ {
		if f[i] == unit {
			v, err := strconv.ParseFloat(f[i-1], 64)
			return v, err == nil
		}
	}
	return 0, false
}

// median returns the median of xs, leaving out NaNs (a figure that could
// not be computed, such as CPU per call of a run where none succeeded); NaN
// for none.
func median(xs []float64) float64 {
	s := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			s = append(s, x)
		}
	}
	if len(s) == 0 {
		return math.NaN()
	}
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// params returns the sorted parameters of test.
func (b *bench) params(test string) []int {
	seen := map[int]bool{}
	for k := range b.runs[test] {
		seen[k.param] = true
	}
	var ps []int
	for p := range seen {
		ps = append(ps, p)
	}
	sort.Ints(ps)
	return ps
}

// reps returns the sorted repetitions of test.
func (b *bench) reps(test string) []int {
	seen := map[int]bool{}
	for k := range b.runs[test] {
		seen[k.rep] = true
	}
	var rs []int
	for r := range seen {
		rs = append(rs, r)
	}
	sort.Ints(rs)
	return rs
}

// has reports whether test has runs of system.
func (b *bench) has(test, system string) bool {
	for k := range b.runs[test] {
		if k.system == system {
			return true
		}
	}
	return false
}

// sipRun is one SIPp run's derived figures.
type sipRun struct {
	offered                       float64 // scenarios per second SIPp was asked for
	ok, failed, wall, cpu, pssKiB float64
}

func (r sipRun) rate() float64 { return r.ok / r.wall }

// failPct is the share of failed calls (REGISTER or INVITE scenarios).
func (r sipRun) failPct() float64 {
	if r.ok+r.failed == 0 {
		return 100
	}
	return 100 * r.failed / (r.ok + r.failed)
}

// cpuUS is server CPU per successful scenario, in µs (NaN when none
// succeeded, or the server's CPU time could not be read because it was
// not running).
func (r sipRun) cpuUS() float64 {
	if r.ok == 0 || r.cpu <= 0 {
		return math.NaN()
	}
	return 1e6 * r.cpu / r.ok
}

// cpuPct is server CPU while offering, 100 = one core.
func (r sipRun) cpuPct() float64 { return 100 * r.cpu / r.wall }

// clean reports whether the server sustained the offered rate: fewer than
// 0.1% of the scenarios failed (SIPp paces the scenarios at the offered rate
// and fails any that waits more than 5 s for an answer, so a server that
// falls behind fails scenarios), and the successful scenarios per second
// reached minOfferedShare of the offered rate. Below that share SIPp itself
// could not generate the rate on cores it shares with the server, and the
// run says nothing about the server at that rate.
func (r sipRun) clean() bool {
	return r.ok > 0 && r.failPct() < targetFailPct && r.rate() >= minOfferedShare*r.offered
}

// minOfferedShare is the share of the offered rate a clean run achieves.
// Achieved counts the SIPp run's start and its last scenarios' tail, which
// cost a few percent of a 3 s window.
const minOfferedShare = 0.9

// sipRunOf returns the run of system at param in rep.
func (b *bench) sipRunOf(test, system string, param, rep int) (sipRun, bool) {
	m, ok := b.runs[test][runKey{system, param, rep}]
	if !ok || m["wall_s"] <= 0 {
		return sipRun{}, false
	}
	return sipRun{offered: float64(param), ok: m["ok"], failed: m["failed"], wall: m["wall_s"], cpu: m["cpu_s"], pssKiB: m["pss_kib"]}, true
}

// medianOf returns the median of f over the repetitions of system at param.
func (b *bench) medianOf(test, system string, param int, f func(sipRun) float64) float64 {
	var xs []float64
	for _, rep := range b.reps(test) {
		if r, ok := b.sipRunOf(test, system, param, rep); ok {
			xs = append(xs, f(r))
		}
	}
	return median(xs)
}

// ratioOf returns the median over repetitions of f(a)/f(b) at param.
func (b *bench) ratioOf(test, a, sysB string, param int, f func(sipRun) float64) float64 {
	var xs []float64
	for _, rep := range b.reps(test) {
		ra, okA := b.sipRunOf(test, a, param, rep)
		rb, okB := b.sipRunOf(test, sysB, param, rep)
		if okA && okB && f(rb) != 0 {
			xs = append(xs, f(ra)/f(rb))
		}
	}
	return median(xs)
}

// sustained returns, for one repetition, the highest offered rate that
// system sustained cleanly (0: none).
func (b *bench) sustained(test, system string, rep int) float64 {
	best := 0.0
	for _, p := range b.params(test) {
		if r, ok := b.sipRunOf(test, system, p, rep); ok && r.clean() {
			best = float64(p)
		}
	}
	return best
}

// sustainedMedian is the median over repetitions of sustained, and the
// median of the per-repetition ratios against ref (repetitions where ref
// sustained no rate have no ratio).
func (b *bench) sustainedMedian(test, system, ref string) (mine, theirs, ratio float64) {
	var ms, ts, rs []float64
	for _, rep := range b.reps(test) {
		m := b.sustained(test, system, rep)
		t := b.sustained(test, ref, rep)
		ms = append(ms, m)
		ts = append(ts, t)
		if t > 0 {
			rs = append(rs, m/t)
		}
	}
	return median(ms), median(ts), median(rs)
}

// relayMedian returns the median of f over system's repetitions at calls.
func (b *bench) relayMedian(system string, calls int, f func(relayResult) float64) float64 {
	var xs []float64
	for _, r := range b.relay[system][calls] {
		xs = append(xs, f(r))
	}
	return median(xs)
}

// relayRatio returns the median over repetitions of f(a)/f(b) at calls,
// pairing the i-th result of each (the same repetition).
func (b *bench) relayRatio(a, sysB string, calls int, f func(relayResult) float64) float64 {
	ra, rb := b.relay[a][calls], b.relay[sysB][calls]
	var xs []float64
	for i := range min(len(ra), len(rb)) {
		if d := f(rb[i]); d != 0 {
			xs = append(xs, f(ra[i])/d)
		}
	}
	return median(xs)
}

// relayRatioAll returns the median of the per-run ratios f(a)/f(b) over
// every call count and repetition measured for both.
func (b *bench) relayRatioAll(a, sysB string, f func(relayResult) float64) float64 {
	var xs []float64
	for _, c := range b.relayCalls(a) {
		ra, rb := b.relay[a][c], b.relay[sysB][c]
		for i := range min(len(ra), len(rb)) {
			if d := f(rb[i]); d != 0 {
				xs = append(xs, f(ra[i])/d)
			}
		}
	}
	return median(xs)
}

// relayCalls returns the sorted call counts measured for system.
func (b *bench) relayCalls(system string) []int {
	var cs []int
	for c := range b.relay[system] {
		cs = append(cs, c)
	}
	sort.Ints(cs)
	return cs
}

// largestPassing returns the median over repetitions of the largest call
// count that met the relay target.
func (b *bench) largestPassing(system string) float64 {
	calls := b.relayCalls(system)
	reps := 0
	for _, c := range calls {
		reps = max(reps, len(b.relay[system][c]))
	}
	var xs []float64
	for i := range reps {
		best := 0
		for _, c := range calls {
			if rs := b.relay[system][c]; i < len(rs) && rs[i].Pass {
				best = c
			}
		}
		xs = append(xs, float64(best))
	}
	return median(xs)
}
