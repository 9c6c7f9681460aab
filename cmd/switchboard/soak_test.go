package main

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Soak sizes: `make soak` runs 10,000 calls and 50,000 registration
// refreshes; `go test` runs a short version.
func soakSize(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// Tolerances of the soak: what the server may hold after the load beyond
// what it held before it, once calls have ended and the heap is collected.
const (
	soakHeapSlack       = 8 << 20 // bytes of heap in use
	soakGoroutineSlack  = 5
	soakFDSlack         = 5
	soakMediaPortMin    = 24000
	soakMediaPortMax    = 27999
	soakRegisteredUsers = 200
)

// sample is the server's resource use at one moment.
type sample struct {
	heapInUse  float64
	goroutines float64
	fds        float64
	relayPorts int
	bindings   int
	openCalls  int
}

func (s sample) String() string {
	return fmt.Sprintf("heap in use %.1f MiB, goroutines %.0f, open fds %.0f, relay ports %d, binding rows %d, open call rows %d",
		s.heapInUse/(1<<20), s.goroutines, s.fds, s.relayPorts, s.bindings, s.openCalls)
}

// transactionLinger is how long finished SIP transactions are kept
// (64*T1), plus a margin.
const transactionLinger = 34 * time.Second

// within reports whether s is back to base within the soak tolerances.
func (s sample) within(base sample) bool {
	return s.heapInUse <= base.heapInUse+soakHeapSlack && s.goroutines <= base.goroutines+soakGoroutineSlack &&
		s.fds <= base.fds+soakFDSlack && s.relayPorts == 0 && s.bindings == base.bindings && s.openCalls == 0
}

// measure collects the child's garbage (twice, through pprof) and reads
// its metrics, its relay sockets and its live-state rows.
func (c *child) measure(t *testing.T, debugAddr string, db *sql.DB) sample {
	t.Helper()
	for range 2 {
		res, err := c.http.Get("http://" + debugAddr + "/debug/pprof/heap?gc=1")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	res, err := c.http.Get(c.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var s sample
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		v, _ := strconv.ParseFloat(val, 64)
		switch name {
		case "go_memstats_heap_inuse_bytes":
			s.heapInUse = v
		case "go_goroutines":
			s.goroutines = v
		case "process_open_fds":
			s.fds = v
		}
	}
	s.relayPorts = udpPortsOf(t, c.cmd.Process.Pid, soakMediaPortMin, soakMediaPortMax)
	if err := db.QueryRow(`SELECT count(*) FROM bindings`).Scan(&s.bindings); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT count(*) FROM calls WHERE ended_at IS NULL`).Scan(&s.openCalls); err != nil {
		t.Fatal(err)
	}
	return s
}

// udpPortsOf counts the UDP sockets process pid has bound to a port in
// [lo, hi], from /proc.
func udpPortsOf(t *testing.T, pid, lo, hi int) int {
	t.Helper()
	inodes := map[string]bool{}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	n := 0
	for _, file := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		b, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || !inodes[f[9]] {
				continue
			}
			_, portHex, _ := strings.Cut(f[1], ":")
			if p, err := strconv.ParseUint(portHex, 16, 16); err == nil && int(p) >= lo && int(p) <= hi {
				n++
			}
		}
	}
	return n
}

// TestSoak runs calls with media and registration refreshes through the
// server (a child process) and checks that afterwards its heap,
// goroutines, open files, relay ports and live-state rows are back where
// they were (within the soak* tolerances). SOAK_CALLS and SOAK_REGISTERS
// set the load; `make soak` runs 10,000 and 50,000.
func TestSoak(t *testing.T) {
	calls := soakSize("SOAK_CALLS", 200)
	registers := soakSize("SOAK_REGISTERS", 2000)
	rate := soakSize("SOAK_CALL_RATE", 50)
	sipp := sippPath(t)
	dir := t.TempDir()
	sipPort, webPort, debugPort := freePort(t), freePort(t), freePort(t)
	users := map[string]string{"1001": "alice-1001", "1002": "bob-1002"}
	var csv strings.Builder
	csv.WriteString("SEQUENTIAL\n")
	for i := range soakRegisteredUsers {
		name, pass := fmt.Sprintf("s%03d", i), fmt.Sprintf("soak-%d", i)
		users[name] = pass
		fmt.Fprintf(&csv, "%s;[authentication username=%s password=%s]\n", name, name, pass)
	}
	if err := os.WriteFile(filepath.Join(dir, "regs.csv"), []byte(csv.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := writeChildConfig(t, dir, sipPort, webPort, users, "")
	appendFile(t, cfg, fmt.Sprintf("media:\n  port_min: %d\n  port_max: %d\ndebug:\n  listen: \"127.0.0.1:%d\"\n", soakMediaPortMin, soakMediaPortMax, debugPort))
	b, _ := os.ReadFile(cfg)
	if err := os.WriteFile(cfg, []byte(strings.Replace(string(b), "level: info", "level: warn", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	c := startChild(t, dir, cfg, sipPort, webPort)
	debugAddr := fmt.Sprintf("127.0.0.1:%d", debugPort)
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "sb.db")+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	server := fmt.Sprintf("127.0.0.1:%d", sipPort)
	register, _ := filepath.Abs("../../sipp/register_auth.xml")
	uacScenario, _ := filepath.Abs("../../sipp/uac_call.xml")
	// The refreshes come from the port the users registered from, so that
	// they refresh their bindings; the test holds the port in between so
	// that nothing else takes it.
	regPort := freePort(t)
	var hold *net.UDPConn
	holdPort := func() {
		hold, _ = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: regPort})
	}
	releasePort := func() {
		if hold != nil {
			hold.Close()
			hold = nil
		}
	}
	defer releasePort()
	registerAll := func(n, r int) *exec.Cmd {
		releasePort()
		cmd := exec.CommandContext(ctx, sipp, server, "-sf", register, "-inf", "regs.csv", "-m", fmt.Sprint(n), "-r", fmt.Sprint(r),
			"-i", "127.0.0.1", "-p", fmt.Sprint(regPort), "-mp", fmt.Sprint(freeUDPBlock(t)), "-nostdin", "-timeout", "30m", "-timeout_error")
		cmd.Dir = dir
		return cmd
	}
	// Warm up: every soak user registered once and a few calls, so that
	// pools, caches and the database reach their working size.
	if out, err := registerAll(soakRegisteredUsers, 500).CombinedOutput(); err != nil {
		t.Fatalf("register: %v\n%s", err, tail(string(out), 2000))
	}
	holdPort()
	uas := startSoakUAS(t, ctx, dir, server)
	runCalls := func(n int) {
		t.Helper()
		cmd := exec.CommandContext(ctx, sipp, server, "-sf", uacScenario, "-inf", "uac.csv", "-s", "1002", "-m", fmt.Sprint(n),
			"-r", fmt.Sprint(rate), "-l", fmt.Sprint(4*rate), "-i", "127.0.0.1", "-p", fmt.Sprint(freePort(t)),
			"-mi", "127.0.0.1", "-mp", fmt.Sprint(freeUDPBlock(t)), "-nostdin", "-timeout", "50m", "-timeout_error",
			"-trace_err", "-error_file", filepath.Join(dir, "uac-errors.log"))
		cmd.Dir = dir
		// SIPp exits 1 when any call failed: the answered records are
		// counted below, and the failures' answers logged.
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Logf("sipp calls: %v; failures by answer: %v", err, sippFailures(filepath.Join(dir, "uac-errors.log")))
			if !strings.Contains(string(out), "Successful call") {
				t.Fatalf("sipp did not run: %s", tail(string(out), 3000))
			}
		}
	}
	runCalls(20)
	waitNoCalls(t, c)
	// Finished SIP transactions linger for 64*T1 (32 s) to absorb
	// retransmissions (RFC 3261 §17): measure once those of the warm-up
	// are gone.
	time.Sleep(transactionLinger)
	before := c.measure(t, debugAddr, db)
	t.Logf("before: %v", before)

	start := time.Now()
	regs := registerAll(registers, soakSize("SOAK_REGISTER_RATE", 300))
	regOut := &lockedBuffer{}
	regs.Stdout, regs.Stderr = regOut, regOut
	if err := regs.Start(); err != nil {
		t.Fatal(err)
	}
	runCalls(calls)
	if err := regs.Wait(); err != nil {
		// Failed refreshes (503 when the server sheds load on a starved
		// machine) leave the bindings as they were.
		t.Logf("sipp refreshes: %v\n%s", err, tail(regOut.String(), 1500))
	}
	waitNoCalls(t, c)
	loadTime := time.Since(start)
	t.Logf("during: %v", c.measure(t, debugAddr, db))
	// The load's transactions linger too: the server is back to its
	// baseline once they have expired.
	settled := time.Now()
	var after sample
	for {
		after = c.measure(t, debugAddr, db)
		if after.within(before) || time.Since(settled) > 3*transactionLinger {
			break
		}
		time.Sleep(2 * time.Second)
	}
	t.Logf("after %d calls and %d registration refreshes in %s, settled %s later: %v", calls, registers,
		loadTime.Round(time.Second), time.Since(settled).Round(time.Second), after)
	uas.stop(t)

	var answered int
	if err := db.QueryRow(`SELECT count(*) FROM calls WHERE result = 'answered'`).Scan(&answered); err != nil {
		t.Fatal(err)
	}
	// On a machine shared with other work a few calls may fail on SIPp's
	// timers; the soak is about what the server keeps afterwards.
	if want := calls + 20; answered < want*99/100 {
		t.Errorf("%d answered call records, want at least 99%% of %d", answered, want)
	} else {
		t.Logf("%d of %d calls answered", answered, want)
	}
	if after.heapInUse > before.heapInUse+soakHeapSlack {
		t.Errorf("heap in use grew from %.1f to %.1f MiB (tolerance %d MiB)", before.heapInUse/(1<<20), after.heapInUse/(1<<20), soakHeapSlack>>20)
	}
	if after.goroutines > before.goroutines+soakGoroutineSlack {
		t.Errorf("goroutines grew from %.0f to %.0f", before.goroutines, after.goroutines)
	}
	if after.fds > before.fds+soakFDSlack {
		t.Errorf("open fds grew from %.0f to %.0f", before.fds, after.fds)
	}
	if after.relayPorts != 0 || before.relayPorts != 0 {
		t.Errorf("relay ports held with no call up: %d before, %d after", before.relayPorts, after.relayPorts)
	}
	if after.bindings != before.bindings || after.openCalls != 0 {
		t.Errorf("live-state rows: bindings %d → %d, open calls %d → %d", before.bindings, after.bindings, before.openCalls, after.openCalls)
	}
}

// sippFailures counts, from SIPp's error file, the messages on which it
// aborted calls, by their first line.
func sippFailures(path string) map[string]int {
	out := map[string]int{}
	b, err := os.ReadFile(path)
	if err != nil {
		return out
	}
	for _, block := range strings.Split(string(b), "Aborting call on unexpected message")[1:] {
		_, msg, _ := strings.Cut(block, "received '")
		first, _, _ := strings.Cut(msg, "\n")
		out[strings.TrimSpace(first)]++
	}
	return out
}

// waitNoCalls waits until the server has no call in progress.
func waitNoCalls(t *testing.T, c *child) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var list struct {
			Items []struct{} `json:"items"`
		}
		if err := c.api("/api/v1/calls", &list); err == nil && len(list.Items) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("calls still up: %d", len(list.Items))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// soakUAS is SIPp answering as 1002 and echoing the RTP.
type soakUAS struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func startSoakUAS(t *testing.T, ctx context.Context, dir, server string) *soakUAS {
	t.Helper()
	sipp := sippPath(t)
	writeTone(t, filepath.Join(dir, "audio.ulaw"), 1.0)
	for name, line := range map[string]string{
		"uas.csv": "SEQUENTIAL\n1002;[authentication username=1002 password=bob-1002]\n",
		"uac.csv": "SEQUENTIAL\n1001;[authentication username=1001 password=alice-1001]\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(line), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	uasPort := freePort(t)
	register, _ := filepath.Abs("../../sipp/register_auth.xml")
	reg := exec.Command(sipp, server, "-sf", register, "-inf", "uas.csv", "-m", "1", "-i", "127.0.0.1", "-p", fmt.Sprint(uasPort), "-mp", fmt.Sprint(freeUDPBlock(t)), "-nostdin", "-timeout", "10s", "-timeout_error")
	reg.Dir = dir
	if out, err := reg.CombinedOutput(); err != nil {
		t.Fatalf("register UAS: %v\n%s", err, tail(string(out), 2000))
	}
	u := &soakUAS{done: make(chan struct{})}
	u.cmd = exec.CommandContext(ctx, sipp, "-sn", "uas", "-i", "127.0.0.1", "-p", fmt.Sprint(uasPort),
		"-mi", "127.0.0.1", "-mp", fmt.Sprint(freeUDPBlock(t)), "-rtp_echo", "-nostdin")
	u.cmd.Dir = dir
	if err := u.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = u.cmd.Wait(); close(u.done) }()
	t.Cleanup(func() { u.stop(t) })
	time.Sleep(300 * time.Millisecond)
	return u
}

func (u *soakUAS) stop(t *testing.T) {
	select {
	case <-u.done:
		return
	default:
	}
	_ = u.cmd.Process.Kill()
	<-u.done
}
