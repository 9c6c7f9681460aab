package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/switchboard/switchboard/web"
)

// ctlRun runs `switchboard ctl args…` in this process with stdin as its
// standard input.
func ctlRun(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = ctlCmd(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestCtl(t *testing.T) {
	e := startAPI(t, map[string]string{"1001": "alice-1001", "1002": "bob-1002"})
	sock := []string{"--socket", e.socket}
	ctl := func(stdin string, args ...string) (int, string, string) {
		t.Helper()
		return ctlRun(t, stdin, append(append([]string{}, sock...), args...)...)
	}

	fi, err := os.Stat(e.socket)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("control socket mode %v, want socket 0600", fi.Mode())
	}

	code, out, errs := ctl("", "status")
	if code != 0 || !strings.Contains(out, "registrations  0") || !regexpLine(out, `^users\s+2$`) || !regexpLine(out, `^ready\s+yes$`) {
		t.Fatalf("status: %d\n%s%s", code, out, errs)
	}
	// The socket path also comes from the config file.
	code, out, _ = ctlRun(t, "", "--config", filepath.Join(e.dir, "switchboard.yaml"), "--json", "status")
	var st web.Status
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Users != 2 {
		t.Fatalf("status --json via --config: %d %q", code, out)
	}

	// users add: password from standard input, then from the flag.
	if code, out, errs = ctl("pw-for-2001\n", "users", "add", "2001", "--display-name", "Dora"); code != 0 || out != "user 2001 created\n" {
		t.Fatalf("users add: %d %q %q", code, out, errs)
	}
	if code, _, errs = ctl("", "users", "add", "--password", "pw-for-2002", "2002"); code != 0 {
		t.Fatalf("users add --password: %d %q", code, errs)
	}
	sipAddr := fmt.Sprintf("127.0.0.1:%d", e.sipPort)
	dora := newPhone(t, sipAddr, "2001", "pw-for-2001", "")
	if c := dora.register(300); c != 200 {
		t.Fatalf("user added with ctl cannot register: %d", c)
	}
	code, out, errs = ctl("", "users", "add", "2001", "--password", "again-pw")
	if code != exitServer || !strings.Contains(errs, `user "2001" already exists (HTTP 409)`) {
		t.Fatalf("duplicate add: %d %q", code, errs)
	}
	code, _, errs = ctl("", "users", "add", "bad name", "--password", "ab")
	if code != exitServer || !strings.Contains(errs, "name: ") || !strings.Contains(errs, "password: ") {
		t.Fatalf("invalid add: %d %q", code, errs)
	}
	code, out, _ = ctl("", "users", "list")
	if code != 0 || !regexpLine(out, `^NAME\s+DISPLAY NAME\s+FROM\s+UPDATED$`) || !regexpLine(out, `^2001\s+Dora\s+api\s+`) || !regexpLine(out, `^1001\s+config\s+`) {
		t.Fatalf("users list:\n%s", out)
	}
	var users []web.User
	code, out, _ = ctl("", "users", "list", "--json")
	if code != 0 || json.Unmarshal([]byte(out), &users) != nil || len(users) != 4 {
		t.Fatalf("users list --json: %d %s", code, out)
	}

	// passwd: the new password works at once.
	if code, _, errs = ctl("new-pw-2001\n", "users", "passwd", "2001"); code != 0 {
		t.Fatalf("passwd: %d %q", code, errs)
	}
	if c := dora.register(300); c != 401 {
		t.Fatalf("old password still works: %d", c)
	}
	dora.pass = "new-pw-2001"
	if c := dora.register(300); c != 200 {
		t.Fatalf("new password: %d", c)
	}

	code, out, _ = ctl("", "registrations")
	if code != 0 || !regexpLine(out, `^USER\s+TRANSPORT\s+SOURCE\s+EXPIRES IN\s+CONTACT\s+USER AGENT$`) ||
		!regexpLine(out, `^2001\s+UDP\s+`+regexpQuote(dora.addr())+`\s+`) {
		t.Fatalf("registrations:\n%s", out)
	}
	var regs []web.Registration
	if code, out, _ = ctl("", "--json", "registrations"); code != 0 || json.Unmarshal([]byte(out), &regs) != nil || len(regs) != 1 {
		t.Fatalf("registrations --json: %s", out)
	}

	// A failed call gives a record.
	alice := newPhone(t, sipAddr, "1001", "alice-1001", "")
	if res := alice.finalResponse(alice.invite("1002")); res.status != 480 {
		t.Fatalf("call: %d", res.status)
	}
	code, out, _ = ctl("", "records", "--user", "1001")
	if code != 0 || !regexpLine(out, `^STARTED\s+CALLER\s+CALLEE\s+RESULT`) || !regexpLine(out, `\s1001\s+1002\s+unavailable\s+480\s`) {
		t.Fatalf("records:\n%s", out)
	}
	var recs []web.Record
	if code, out, _ = ctl("", "records", "--limit", "1", "--json"); code != 0 || json.Unmarshal([]byte(out), &recs) != nil || len(recs) != 1 {
		t.Fatalf("records --json: %s", out)
	}
	if code, out, _ = ctl("", "records", "--user", "nobody"); code != 0 || strings.Count(out, "\n") != 1 {
		t.Fatalf("records for nobody:\n%s", out)
	}

	if code, out, _ = ctl("", "calls"); code != 0 || !regexpLine(out, `^ID\s+CALLER\s+CALLEE\s+STATE`) || strings.Count(out, "\n") != 1 {
		t.Fatalf("calls:\n%s", out)
	}
	code, _, errs = ctl("", "hangup", "no-such-call")
	if code != exitServer || !strings.Contains(errs, `call "no-such-call" not found (HTTP 404)`) {
		t.Fatalf("hangup unknown: %d %q", code, errs)
	}
	if code, out, _ = ctl("", "trunks"); code != 0 || out != "no trunks\n" {
		t.Fatalf("trunks: %d %q", code, out)
	}
	if code, out, _ = ctl("", "--json", "trunks"); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("trunks --json: %d %q", code, out)
	}

	// remove drops the user's registrations.
	if code, out, _ = ctl("", "users", "remove", "2001"); code != 0 || !strings.Contains(out, "removed") {
		t.Fatalf("users remove: %d %q", code, out)
	}
	if code, out, _ = ctl("", "--json", "registrations"); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("registrations after removing the user: %s", out)
	}
	if code, _, errs = ctl("", "users", "remove", "2001"); code != exitServer || !strings.Contains(errs, "not found") {
		t.Fatalf("remove again: %d %q", code, errs)
	}

	if code, out, errs = ctl("", "bans"); code != 0 || !strings.HasPrefix(out, "ADDRESS") || !strings.Contains(out, "bans since start: 0") {
		t.Fatalf("bans: %d %q %q", code, out, errs)
	}
	if code, _, errs = ctl("", "unban", "192.0.2.7"); code != exitServer || !strings.Contains(errs, "not found") {
		t.Fatalf("unban of an address not banned: %d %q", code, errs)
	}

	for name, args := range map[string][]string{
		"no command":       {},
		"unknown command":  {"frobnicate"},
		"users alone":      {"users"},
		"users unknown":    {"users", "frob"},
		"add without name": {"users", "add"},
		"hangup two ids":   {"hangup", "a", "b"},
		"unknown flag":     {"status", "--verbose"},
		"bad limit":        {"records", "--limit", "0"},
	} {
		if code, _, errs := ctl("", args...); code != exitUsage || errs == "" {
			t.Errorf("%s: exit %d, want %d (%q)", name, code, exitUsage, errs)
		}
	}
	if code, _, _ := ctl("", "users", "add", "2003"); code != exitUsage {
		t.Errorf("add with no password anywhere: exit %d", code)
	}

	// Once the server stops, the socket is gone and ctl says so.
	e.stop(t)
	if _, err := os.Stat(e.socket); !os.IsNotExist(err) {
		t.Fatalf("socket left after stop: %v", err)
	}
	code, out, errs = ctl("", "status")
	want := fmt.Sprintf("switchboard is not running (no control socket at %s)\n", e.socket)
	if code != exitNotRunning || errs != want || out != "" {
		t.Fatalf("not running: %d %q %q, want %q", code, out, errs, want)
	}
}

func TestCtlStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sb.sock")
	ln, err := web.ListenControl(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(interface{ SetUnlinkOnClose(bool) }).SetUnlinkOnClose(false)
	ln.Close() // a server killed with -9 leaves its socket file
	code, _, errs := ctlRun(t, "", "--socket", path, "calls")
	if code != exitNotRunning || !strings.Contains(errs, "switchboard is not running") {
		t.Fatalf("stale socket: %d %q", code, errs)
	}
}

// regexpLine reports whether a line of s matches the pattern.
func regexpLine(s, pattern string) bool {
	return regexp.MustCompile(`(?m)` + pattern).MatchString(s)
}

func regexpQuote(s string) string { return regexp.QuoteMeta(s) }
