package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard/switchboard/internal/store"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		// Re-executed by startChild as the real server process.
		main()
		return
	}
	if code, err := childMain(); err == nil {
		os.Exit(code)
	}
	goleak.VerifyTestMain(m)
}

// freePort returns a port that is free for both UDP and TCP on 127.0.0.1.
func freePort(t testing.TB) int {
	t.Helper()
	for range 20 {
		u, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		u.Close()
		if err == nil {
			l.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// server is the real serve command running in this process.
type server struct {
	sipPort int
	dir     string
	cancel  context.CancelFunc
	done    chan int
	stderr  *lockedBuffer
}

// startServer writes a config with the given users (name → password) and
// extra YAML, runs `switchboard serve --config` and waits until SIP answers.
func startServer(t testing.TB, users map[string]string, extra string) *server {
	t.Helper()
	s := &server{sipPort: freePort(t), dir: t.TempDir(), done: make(chan int, 1), stderr: &lockedBuffer{}}
	s.start(t, writeServerConfig(t, s, users, extra))
	return s
}

// writeServerConfig writes the config startServer runs in s.dir and
// returns its path.
func writeServerConfig(t testing.TB, s *server, users map[string]string, extra string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "sip:\n  listen: \"127.0.0.1:%d\"\n  domain: \"switchboard.local\"\n", s.sipPort)
	fmt.Fprintf(&b, "web:\n  listen: \"127.0.0.1:%d\"\n  api_tokens: [\"test-token-1\"]\n", freePort(t))
	fmt.Fprintf(&b, "storage:\n  path: %q\ncontrol:\n  socket: %q\nlog:\n  level: warn\n", filepath.Join(s.dir, "sb.db"), filepath.Join(s.dir, "sb.sock"))
	b.WriteString(extra)
	b.WriteString("users:\n")
	for name, pass := range users {
		fmt.Fprintf(&b, "  - {name: %q, password: %q}\n", name, pass)
	}
	cfg := filepath.Join(s.dir, "switchboard.yaml")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// start runs `switchboard serve --config cfg` and waits until SIP answers.
func (s *server) start(t testing.TB, cfg string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() { s.done <- run(ctx, []string{"serve", "--config", cfg}, &bytes.Buffer{}, s.stderr) }()
	t.Cleanup(func() { s.stop(t) })
	deadline := time.Now().Add(10 * time.Second)
	for !s.answersOptions() {
		if time.Now().After(deadline) {
			t.Fatalf("server did not come up: %s", s.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *server) stop(t testing.TB) {
	if s.cancel == nil {
		return
	}
	s.cancel()
	select {
	case code := <-s.done:
		if code != 0 {
			t.Errorf("serve exited %d: %s", code, s.stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Error("serve did not stop")
	}
	s.cancel = nil
}

func (s *server) answersOptions() bool {
	c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", s.sipPort))
	if err != nil {
		return false
	}
	defer c.Close()
	msg := "OPTIONS sip:switchboard.local SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKready" + fmt.Sprint(time.Now().UnixNano()) + ";rport\r\n" +
		"From: <sip:probe@switchboard.local>;tag=1\r\nTo: <sip:switchboard.local>\r\nCall-ID: ready-" + fmt.Sprint(time.Now().UnixNano()) +
		"\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
	_, _ = c.Write([]byte(msg))
	_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	return err == nil && bytes.HasPrefix(buf[:n], []byte("SIP/2.0 200"))
}

func sippPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("sipp")
	if err != nil {
		t.Fatal("sipp not found: run `make deps` (Debian package sip-tester)")
	}
	return p
}

// TestSIPpRegistersManyUsers drives the real server with SIPp: 500 distinct
// users register with digest authentication over UDP, and 100 over TCP.
func TestSIPpRegistersManyUsers(t *testing.T) {
	sipp := sippPath(t)
	users := map[string]string{}
	var csv strings.Builder
	csv.WriteString("SEQUENTIAL\n")
	for i := range 500 {
		name, pass := fmt.Sprintf("u%03d", i), fmt.Sprintf("secret-%d", i)
		users[name] = pass
		fmt.Fprintf(&csv, "%s;[authentication username=%s password=%s]\n", name, name, pass)
	}
	s := startServer(t, users, "")
	csvPath := filepath.Join(s.dir, "users.csv")
	if err := os.WriteFile(csvPath, []byte(csv.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	scenario, _ := filepath.Abs("../../sipp/register_auth.xml")
	for _, tc := range []struct {
		name  string
		calls int
		args  []string
	}{
		{"udp", 500, nil},
		{"tcp", 100, []string{"-t", "t1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{fmt.Sprintf("127.0.0.1:%d", s.sipPort), "-sf", scenario, "-inf", csvPath,
				"-m", fmt.Sprint(tc.calls), "-r", "250", "-i", "127.0.0.1", "-p", fmt.Sprint(freePort(t)), "-mp", fmt.Sprint(freeUDPBlock(t)),
				"-nostdin", "-timeout", "60s", "-timeout_error", "-trace_err", "-error_file", filepath.Join(s.dir, tc.name+"-errors.log")}, tc.args...)
			cmd := exec.Command(sipp, args...)
			cmd.Dir = s.dir
			out, err := cmd.CombinedOutput()
			if err != nil {
				errs, _ := os.ReadFile(filepath.Join(s.dir, tc.name+"-errors.log"))
				t.Fatalf("sipp: %v\n%s\n%s", err, tail(string(out), 2000), tail(string(errs), 2000))
			}
		})
	}
	// Every user that SIPp saw acknowledged has a stored binding.
	s.stop(t)
	st, err := store.Open(context.Background(), filepath.Join(s.dir, "sb.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	bs, err := st.Bindings(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]map[string]bool{}
	for _, b := range bs {
		if seen[b.User] == nil {
			seen[b.User] = map[string]bool{}
		}
		seen[b.User][b.Transport] = true
	}
	if len(seen) != 500 {
		t.Fatalf("%d users have bindings, want 500", len(seen))
	}
	tcp := 0
	for _, tps := range seen {
		if tps["TCP"] {
			tcp++
		}
	}
	if tcp != 100 {
		t.Fatalf("%d users registered over TCP, want 100", tcp)
	}
}

func TestBadConfigExitsBeforeListening(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	cfg := filepath.Join(dir, "bad.yaml")
	yaml := fmt.Sprintf("sip: {listen: \"127.0.0.1:%d\"}\nweb: {api_tokens: [abcdefgh]}\nmedia: {port_min: 30000, port_max: 20000}\nstorage: {path: %q}\n", port, filepath.Join(dir, "x.db"))
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"serve", "--config", cfg}, &bytes.Buffer{}, &stderr)
	if code == 0 {
		t.Fatal("bad config exited 0")
	}
	if !strings.Contains(stderr.String(), "config: media.port_min 30000 must be below media.port_max 20000") {
		t.Fatalf("stderr %q", stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "x.db")); err == nil {
		t.Fatal("bad config still created the database")
	}
	var unknown bytes.Buffer
	if err := os.WriteFile(cfg, []byte("sip: {lisen: x}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code := run(context.Background(), []string{"serve", "--config", cfg}, &bytes.Buffer{}, &unknown); code == 0 || !strings.Contains(unknown.String(), "unknown key sip.lisen") {
		t.Fatalf("unknown key: exit %d, %q", code, unknown.String())
	}
}

func TestVersionAndUsage(t *testing.T) {
	var out bytes.Buffer
	if code := run(context.Background(), []string{"version"}, &out, &out); code != 0 || !strings.HasPrefix(out.String(), "switchboard ") {
		t.Fatalf("version: %d %q", code, out.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"frobnicate"}, &out, &out); code != 2 || !strings.Contains(out.String(), "unknown command") {
		t.Fatalf("unknown command: %d %q", code, out.String())
	}
	out.Reset()
	var errOut bytes.Buffer
	if code := run(context.Background(), []string{"serve", "--help"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "-config") {
		t.Fatalf("serve --help: %d stdout %q stderr %q", code, out.String(), errOut.String())
	}
	out.Reset()
	if code := run(context.Background(), nil, &out, &out); code != 2 || !strings.Contains(out.String(), "usage") {
		t.Fatalf("no command: %d %q", code, out.String())
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
