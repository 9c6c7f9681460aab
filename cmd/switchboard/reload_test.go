package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sippRegister registers user with SIPp and reports whether the server
// accepted it.
func sippRegister(t *testing.T, dir string, sipPort int, user, pass string) error {
	t.Helper()
	csv := filepath.Join(dir, "reg-"+user+".csv")
	if err := os.WriteFile(csv, []byte(fmt.Sprintf("SEQUENTIAL\n%s;[authentication username=%s password=%s]\n", user, user, pass)), 0o600); err != nil {
		t.Fatal(err)
	}
	register, _ := filepath.Abs("../../sipp/register_auth.xml")
	cmd := exec.Command(sippPath(t), fmt.Sprintf("127.0.0.1:%d", sipPort), "-sf", register, "-inf", csv, "-m", "1",
		"-i", "127.0.0.1", "-p", fmt.Sprint(freePort(t)), "-mp", fmt.Sprint(freeUDPBlock(t)), "-nostdin", "-timeout", "10s", "-timeout_error")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%w: %s", err, tail(string(out), 500))
	}
	return nil
}

func ctlReload(t *testing.T, sock string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := ctlCmd(context.Background(), []string{"--socket", sock, "reload"}, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func waitLog(t *testing.T, c *child, s string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !strings.Contains(c.stderr.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("server log has no %q", s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReload changes the file under a running server with a call up: an
// invalid file is refused (SIGHUP and ctl reload) and changes nothing; a
// valid one adds and removes users without dropping the call or the
// callee's registration.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	sipPort, webPort := freePort(t), freePort(t)
	cfg := writeChildConfig(t, dir, sipPort, webPort, bothUsers, "")
	c := startChild(t, dir, cfg, sipPort, webPort)
	sock := filepath.Join(dir, "sb.sock")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	startHeldCall(t, ctx, dir, sipPort, 60*time.Second)
	c.waitAnswered(1, 15*time.Second)

	good, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(good), `password: "bob-1002"`, `password: "b"`, 1)
	if bad == string(good) {
		t.Fatal("config template changed")
	}
	if err := os.WriteFile(cfg, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	c.signal(syscall.SIGHUP)
	waitLog(t, c, "reload refused", 10*time.Second)
	if !strings.Contains(c.stderr.String(), "password must have at least 4 characters") {
		t.Errorf("the refusal does not name the problem:\n%s", tail(c.stderr.String(), 2000))
	}
	code, _, stderr := ctlReload(t, sock)
	if code != exitServer || !strings.Contains(stderr, "users[") || !strings.Contains(stderr, "running configuration stays") {
		t.Errorf("ctl reload of a bad file: exit %d, %q", code, stderr)
	}
	// Nothing changed: 1002's password is still the old one.
	if err := sippRegister(t, dir, sipPort, "1002", "bob-1002"); err != nil {
		t.Fatalf("1002 after a refused reload: %v", err)
	}

	// A valid file: 1003 added, 1001 removed, a key that needs a restart.
	next := writeChildConfig(t, t.TempDir(), sipPort, webPort, map[string]string{"1002": "bob-1002", "1003": "carol-1003"}, "")
	body, _ := os.ReadFile(next)
	body = bytes.Replace(body, []byte(filepath.Dir(next)), []byte(dir), -1)
	body = append(body, []byte("media:\n  port_min: 20000\n  port_max: 21999\n")...)
	hooks := make(chan string, 100)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		select {
		case hooks <- string(b):
		default:
		}
	}))
	defer receiver.Close()
	body = append(body, []byte(fmt.Sprintf("webhooks:\n  - {url: %q, secret: \"reload-secret-1\"}\n", receiver.URL+"/hook"))...)
	if err := os.WriteFile(cfg, body, 0o600); err != nil {
		t.Fatal(err)
	}
	c.signal(syscall.SIGHUP)
	waitLog(t, c, "configuration reloaded", 10*time.Second)
	if err := sippRegister(t, dir, sipPort, "1003", "carol-1003"); err != nil {
		t.Fatalf("1003 after reload: %v", err)
	}
	// The webhook added by the reload hears of it.
	deadline := time.After(15 * time.Second)
	for got := false; !got; {
		select {
		case b := <-hooks:
			got = strings.Contains(b, `"registration.created"`) && strings.Contains(b, `"1003"`)
		case <-deadline:
			t.Fatal("the webhook added by reload got no registration.created for 1003")
		}
	}
	if err := sippRegister(t, dir, sipPort, "1001", "alice-1001"); err == nil {
		t.Error("1001 still registers after leaving the file")
	}
	if !strings.Contains(c.stderr.String(), "media.port_max") {
		t.Error("the reload did not report media.port_max as needing a restart")
	}
	code, stdout, stderr := ctlReload(t, sock)
	if code != exitOK || !strings.Contains(stdout, "reloaded: users, trunks, webhooks") || !strings.Contains(stdout, "media.port_max") {
		t.Errorf("ctl reload: exit %d, %q %q", code, stdout, stderr)
	}

	// The call and the callee's registration went through all of it.
	c.waitAnswered(1, time.Second)
	var regs struct {
		Items []struct {
			User string `json:"user"`
		} `json:"items"`
	}
	if err := c.api("/api/v1/registrations", &regs); err != nil {
		t.Fatal(err)
	}
	users := map[string]bool{}
	for _, r := range regs.Items {
		users[r.User] = true
	}
	if !users["1002"] || !users["1003"] || users["1001"] {
		t.Errorf("registrations after reload: %+v", regs.Items)
	}
	if c.readyz() != http.StatusOK {
		t.Error("not ready after reload")
	}
	c.signal(syscall.SIGTERM)
	waitLog(t, c, "stopping: draining calls", 10*time.Second)
	c.signal(syscall.SIGTERM)
	if code := c.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit status %d", code)
	}
}
