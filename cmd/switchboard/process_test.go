package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/store"
)

// childEnv makes the test binary run main() instead of the tests: the
// process tests start it as a real server they can signal and kill.
const childEnv = "SWITCHBOARD_TEST_CHILD"

const childToken = "child-token-1"

// child is the server running as a separate process.
type child struct {
	t        *testing.T
	dir, cfg string
	sipPort  int
	webPort  int
	cmd      *exec.Cmd
	stderr   *lockedBuffer
	done     chan struct{}
	exitCode int
	http     *http.Client
	base     string // the web listener's URL
}

// writeChildConfig writes a config for a child server in dir.
func writeChildConfig(t *testing.T, dir string, sipPort, webPort int, users map[string]string, extra string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "sip:\n  listen: \"127.0.0.1:%d\"\n  domain: \"switchboard.local\"\n", sipPort)
	b.WriteString(extra)
	fmt.Fprintf(&b, "web:\n  listen: \"127.0.0.1:%d\"\n  api_tokens: [%q]\n", webPort, childToken)
	fmt.Fprintf(&b, "storage:\n  path: %q\ncontrol:\n  socket: %q\nlog:\n  level: info\n", filepath.Join(dir, "sb.db"), filepath.Join(dir, "sb.sock"))
	b.WriteString("users:\n")
	for name, pass := range users {
		fmt.Fprintf(&b, "  - {name: %q, password: %q}\n", name, pass)
	}
	cfg := filepath.Join(dir, "switchboard.yaml")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startChild runs `switchboard serve --config cfg` as a child process and
// waits until it is ready.
func startChild(t *testing.T, dir, cfg string, sipPort, webPort int, opts ...func(*child)) *child {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := &child{t: t, dir: dir, cfg: cfg, sipPort: sipPort, webPort: webPort, stderr: &lockedBuffer{}, done: make(chan struct{}),
		http: &http.Client{Timeout: 5 * time.Second}, base: fmt.Sprintf("http://127.0.0.1:%d", webPort)}
	for _, o := range opts {
		o(c)
	}
	t.Cleanup(c.http.CloseIdleConnections)
	c.cmd = exec.Command(exe, "serve", "--config", cfg)
	c.cmd.Env = append(os.Environ(), childEnv+"=1")
	c.cmd.Dir = dir
	c.cmd.Stdout, c.cmd.Stderr = c.stderr, c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := c.cmd.Wait()
		c.exitCode = 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			c.exitCode = ee.ExitCode()
		} else if err != nil {
			c.exitCode = -1
		}
		close(c.done)
	}()
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			_ = c.cmd.Process.Kill()
			<-c.done
		}
		if t.Failed() {
			t.Logf("server log:\n%s", tail(c.stderr.String(), 4000))
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for c.readyz() != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatalf("child server not ready: %s", c.stderr.String())
		}
		select {
		case <-c.done:
			t.Fatalf("child server exited %d: %s", c.exitCode, c.stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return c
}

func (c *child) signal(sig os.Signal) {
	c.t.Helper()
	if err := c.cmd.Process.Signal(sig); err != nil {
		c.t.Fatalf("signal %v: %v", sig, err)
	}
}

// wait waits for the process to exit and returns its status.
func (c *child) wait(d time.Duration) int {
	c.t.Helper()
	select {
	case <-c.done:
		return c.exitCode
	case <-time.After(d):
		c.t.Fatalf("server did not exit within %s", d)
		return -1
	}
}

func (c *child) readyz() int {
	res, err := c.http.Get(c.base + "/readyz")
	if err != nil {
		return 0
	}
	res.Body.Close()
	return res.StatusCode
}

// api GETs an API path and decodes the JSON into out.
func (c *child) api(path string, out any) error {
	req, _ := http.NewRequest(http.MethodGet, c.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+childToken)
	res, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, res.Status)
	}
	return json.NewDecoder(res.Body).Decode(out)
}

// waitAnswered waits until n calls are answered.
// waitAnswerStored waits until the newest call record has its answer time.
func (c *child) waitAnswerStored(d time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		var list struct {
			Items []struct {
				AnsweredAt *time.Time `json:"answered_at"`
			} `json:"items"`
		}
		if err := c.api("/api/v1/records?limit=1", &list); err == nil && len(list.Items) == 1 && list.Items[0].AnsweredAt != nil && !list.Items[0].AnsweredAt.IsZero() {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no answer time stored within %s", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *child) waitAnswered(n int, d time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		var list struct {
			Items []struct {
				State string `json:"state"`
			} `json:"items"`
		}
		answered := 0
		if err := c.api("/api/v1/calls", &list); err == nil {
			for _, it := range list.Items {
				if it.State == "answered" {
					answered++
				}
			}
		}
		if answered >= n {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%d calls answered after %s, want %d", answered, d, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sippPair is a SIPp UAS registered as 1002 that echoes RTP, and a SIPp
// UAC calling it as 1001 with a call that lasts until the server or -d
// ends it. Both trace their messages to dir.
type sippPair struct {
	uas, uac *exec.Cmd
	uasDone  chan struct{} // closed when the process has exited
	uacDone  chan struct{}
	out      *lockedBuffer
}

func startHeldCall(t *testing.T, ctx context.Context, dir string, sipPort int, hold time.Duration) *sippPair {
	t.Helper()
	return startHeldCalls(t, ctx, dir, sipPort, hold, 1)
}

// startHeldCalls is startHeldCall for n calls placed at once.
func startHeldCalls(t *testing.T, ctx context.Context, dir string, sipPort int, hold time.Duration, n int) *sippPair {
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
	// The call scenario, held until -d (or the server's BYE) with the tone
	// looping.
	src, err := os.ReadFile("../../sipp/uac_call.xml")
	if err != nil {
		t.Fatal(err)
	}
	held := strings.Replace(string(src), `<pause milliseconds="1200"/>`, `<pause/>`, 1)
	held = strings.Replace(held, `audio.ulaw,1,0`, `audio.ulaw,-1,0`, 1)
	if held == string(src) {
		t.Fatal("uac_call.xml changed: cannot derive the held call")
	}
	if err := os.WriteFile(filepath.Join(dir, "uac_hold.xml"), []byte(held), 0o600); err != nil {
		t.Fatal(err)
	}
	server := fmt.Sprintf("127.0.0.1:%d", sipPort)
	uasPort := freePort(t)
	register, _ := filepath.Abs("../../sipp/register_auth.xml")
	reg := exec.Command(sipp, server, "-sf", register, "-inf", "uas.csv", "-m", "1", "-i", "127.0.0.1", "-p", fmt.Sprint(uasPort), "-mp", fmt.Sprint(freeUDPBlock(t)), "-nostdin", "-timeout", "10s", "-timeout_error")
	reg.Dir = dir
	if out, err := reg.CombinedOutput(); err != nil {
		t.Fatalf("register UAS: %v\n%s", err, tail(string(out), 2000))
	}
	p := &sippPair{uasDone: make(chan struct{}), uacDone: make(chan struct{}), out: &lockedBuffer{}}
	p.uas = exec.CommandContext(ctx, sipp, "-sn", "uas", "-i", "127.0.0.1", "-p", fmt.Sprint(uasPort),
		"-mi", "127.0.0.1", "-mp", fmt.Sprint(freeUDPBlock(t)), "-rtp_echo", "-m", fmt.Sprint(n), "-nostdin", "-trace_msg", "-message_file", "uas_messages.log")
	p.uac = exec.CommandContext(ctx, sipp, server, "-sf", "uac_hold.xml", "-inf", "uac.csv", "-s", "1002", "-m", fmt.Sprint(n), "-l", fmt.Sprint(n), "-r", fmt.Sprint(n),
		"-d", fmt.Sprint(hold.Milliseconds()), "-i", "127.0.0.1", "-p", fmt.Sprint(freePort(t)), "-mi", "127.0.0.1", "-mp", fmt.Sprint(freeUDPBlock(t)),
		"-nostdin", "-trace_msg", "-message_file", "uac_messages.log")
	for i, cmd := range []*exec.Cmd{p.uas, p.uac} {
		cmd.Dir = dir
		cmd.Stdout, cmd.Stderr = p.out, p.out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := p.uasDone
		if i == 1 {
			done = p.uacDone
		}
		go func() { _ = cmd.Wait(); close(done) }()
		if i == 0 {
			time.Sleep(300 * time.Millisecond)
		}
	}
	t.Cleanup(func() {
		for _, c := range []struct {
			cmd  *exec.Cmd
			done chan struct{}
		}{{p.uac, p.uacDone}, {p.uas, p.uasDone}} {
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	})
	return p
}

// gotBYE reports whether SIPp's message trace in file shows a BYE it
// received from the server.
func gotBYE(t *testing.T, dir, file string) bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return false
	}
	for _, block := range strings.Split(string(b), "----------------------------------------------- ") {
		if strings.Contains(block, "message received") && strings.Contains(block, "\nBYE sip:") {
			return true
		}
	}
	return false
}

func openStore(t *testing.T, dir string) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(dir, "sb.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func onlyRecord(t *testing.T, st *store.Store) store.CallRecord {
	t.Helper()
	recs, err := st.Calls(context.Background(), store.CallFilter{Limit: 10})
	if err != nil || len(recs) != 1 {
		t.Fatalf("records %+v (%v), want 1", recs, err)
	}
	return recs[0]
}

var bothUsers = map[string]string{"1001": "alice-1001", "1002": "bob-1002"}

// TestSIGTERMDrainsThenEndsCalls sends SIGTERM with a call up: the server
// stops being ready and refuses new work at once, lets the call go on for
// sip.drain_timeout, then sends BYE to both phones, records the call,
// removes its control socket and exits 0.
func TestSIGTERMDrainsThenEndsCalls(t *testing.T) {
	dir := t.TempDir()
	sipPort, webPort := freePort(t), freePort(t)
	cfg := writeChildConfig(t, dir, sipPort, webPort, bothUsers, "  drain_timeout: 2s\n")
	c := startChild(t, dir, cfg, sipPort, webPort)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	startHeldCall(t, ctx, dir, sipPort, 30*time.Second)
	c.waitAnswered(1, 15*time.Second)

	start := time.Now()
	c.signal(syscall.SIGTERM)
	deadline := time.Now().Add(5 * time.Second)
	for c.readyz() != http.StatusServiceUnavailable {
		if time.Now().After(deadline) {
			t.Fatal("/readyz still ready after SIGTERM")
		}
		time.Sleep(20 * time.Millisecond)
	}
	srv := &server{sipPort: sipPort}
	if srv.answersOptions() {
		t.Error("OPTIONS answered 200 while draining")
	}
	// The call is still up during the drain.
	var list struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := c.api("/api/v1/calls", &list); err != nil || len(list.Items) != 1 {
		t.Errorf("calls while draining: %d (%v), want 1", len(list.Items), err)
	}
	if code := c.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	if d := time.Since(start); d < 2*time.Second {
		t.Errorf("stopped after %s, before the 2s drain timeout", d)
	}
	if _, err := os.Stat(filepath.Join(dir, "sb.sock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("control socket left behind: %v", err)
	}
	// SIPp writes its trace as it goes; give a starved SIPp time.
	byeDeadline := time.Now().Add(10 * time.Second)
	for !gotBYE(t, dir, "uac_messages.log") || !gotBYE(t, dir, "uas_messages.log") {
		if time.Now().After(byeDeadline) {
			t.Error("a phone received no BYE from the server")
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	rec := onlyRecord(t, openStore(t, dir))
	if rec.Result != "answered" || rec.HangupBy != "system" || rec.Reason != "shutdown" || rec.EndedAt.IsZero() || len(rec.Legs) != 2 {
		t.Fatalf("record %+v", rec)
	}
	for _, l := range rec.Legs {
		if l.PacketsIn == 0 || l.PacketsOut == 0 {
			t.Errorf("leg %s carried no audio: %+v", l.Name, l)
		}
	}
}

// TestSecondSIGTERMStopsAtOnce: a second SIGTERM cuts a long drain short.
func TestSecondSIGTERMStopsAtOnce(t *testing.T) {
	dir := t.TempDir()
	sipPort, webPort := freePort(t), freePort(t)
	cfg := writeChildConfig(t, dir, sipPort, webPort, bothUsers, "  drain_timeout: 10m\n")
	c := startChild(t, dir, cfg, sipPort, webPort)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	startHeldCall(t, ctx, dir, sipPort, 30*time.Second)
	c.waitAnswered(1, 15*time.Second)
	c.signal(syscall.SIGTERM)
	waitLog(t, c, "stopping: draining calls", 10*time.Second)
	start := time.Now()
	c.signal(syscall.SIGTERM)
	if code := c.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("second SIGTERM took %s to stop the server", d)
	}
	rec := onlyRecord(t, openStore(t, dir))
	if rec.Reason != "shutdown" || rec.EndedAt.IsZero() {
		t.Fatalf("record %+v", rec)
	}
}

// TestKill9KeepsRegistrationsAndRecords kills the server with SIGKILL
// while a call is up: the restarted server still has the acknowledged
// registration and records the call as ended by the crash.
func TestKill9KeepsRegistrationsAndRecords(t *testing.T) {
	dir := t.TempDir()
	sipPort, webPort := freePort(t), freePort(t)
	cfg := writeChildConfig(t, dir, sipPort, webPort, bothUsers, "")
	c := startChild(t, dir, cfg, sipPort, webPort)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	startHeldCall(t, ctx, dir, sipPort, 30*time.Second)
	c.waitAnswered(1, 15*time.Second)
	// The answer time is stored once the caller has ACKed the 200, a
	// moment after the call is listed as answered: kill after that.
	c.waitAnswerStored(15 * time.Second)
	killedAt := time.Now()
	c.signal(syscall.SIGKILL)
	if code := c.wait(10 * time.Second); code == 0 {
		t.Fatal("SIGKILL exited 0")
	}
	// The stale control socket is replaced at the next start.
	c2 := startChild(t, dir, cfg, sipPort, webPort)
	var regs struct {
		Items []struct {
			User string `json:"user"`
		} `json:"items"`
	}
	if err := c2.api("/api/v1/registrations", &regs); err != nil {
		t.Fatal(err)
	}
	if len(regs.Items) != 1 || regs.Items[0].User != "1002" {
		t.Fatalf("registrations after restart: %+v", regs.Items)
	}
	c2.signal(syscall.SIGTERM)
	if code := c2.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	rec := onlyRecord(t, openStore(t, dir))
	if rec.Result != store.ResultCrashed || rec.EndedAt.IsZero() || rec.AnsweredAt.IsZero() {
		t.Fatalf("record %+v", rec)
	}
	// The call ended when the server was last known alive, not when it
	// came back: the time it was down is not part of the call.
	if rec.EndedAt.After(killedAt) || rec.EndedAt.Before(rec.AnsweredAt) {
		t.Errorf("crashed call ended at %s; answered %s, server killed %s", rec.EndedAt, rec.AnsweredAt, killedAt)
	}
	if want := rec.EndedAt.Sub(rec.AnsweredAt); rec.Duration != want {
		t.Errorf("duration %s, want %s (answer to end)", rec.Duration, want)
	}
}

// TestKill9WhileRinging kills the server while a call rings: the restarted
// server answers the caller's INVITE with 500 and CANCELs the ringing
// phone, so neither rings on for good.
func TestKill9WhileRinging(t *testing.T) {
	dir := t.TempDir()
	sipPort, webPort := freePort(t), freePort(t)
	cfg := writeChildConfig(t, dir, sipPort, webPort, bothUsers, "")
	c := startChild(t, dir, cfg, sipPort, webPort)
	sipAddr := fmt.Sprintf("127.0.0.1:%d", sipPort)
	alice := newPhone(t, sipAddr, "1001", "alice-1001", "")
	bob := newPhone(t, sipAddr, "1002", "bob-1002", "")
	if code := bob.register(300); code != 200 {
		t.Fatalf("REGISTER: %d", code)
	}
	oc := alice.invite("1002")
	inv := bob.readRequest("INVITE")
	bob.respond(inv, 180, "")
	alice.read("180 Ringing", func(m *sipMsg) bool { return m.status == 180 && m.get("call-id") == oc.callID })
	c.signal(syscall.SIGKILL)
	if code := c.wait(10 * time.Second); code == 0 {
		t.Fatal("SIGKILL exited 0")
	}
	startChild(t, dir, cfg, sipPort, webPort)
	res := alice.readFinal(oc.callID, oc.cseq)
	if res.status != 500 || !strings.Contains(res.get("reason"), "server restarted") {
		t.Errorf("caller's INVITE answered %d (Reason %q), want 500 server restarted", res.status, res.get("reason"))
	}
	cancel := bob.readRequest("CANCEL")
	if cancel.get("call-id") != inv.get("call-id") || cancel.get("via") != inv.get("via") {
		t.Errorf("CANCEL for call %s via %q; the ringing INVITE was %s via %q", cancel.get("call-id"), cancel.get("via"), inv.get("call-id"), inv.get("via"))
	}
}
