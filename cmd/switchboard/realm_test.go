package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDomainChangeNamesStaleUsers: after sip.domain changes, the start
// names the users made through ctl or the API, whose digest hashes hold
// the old realm, and says how to fix them; users from the file are
// re-hashed and not named.
func TestDomainChangeNamesStaleUsers(t *testing.T) {
	s := startServer(t, map[string]string{"1001": "alice-1001"}, "")
	sock := filepath.Join(s.dir, "sb.sock")
	if code, out, errs := ctlRun(t, "", "--socket", sock, "users", "add", "--password", "pw-for-3001", "3001"); code != 0 {
		t.Fatalf("users add: %d %s %s", code, out, errs)
	}
	s.stop(t)
	if strings.Contains(s.stderr.String(), "another sip.domain") {
		t.Fatalf("warning before the domain changed:\n%s", s.stderr.String())
	}
	cfg := filepath.Join(s.dir, "switchboard.yaml")
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte(strings.Replace(string(b), `domain: "switchboard.local"`, `domain: "pbx.example"`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	s.stderr = &lockedBuffer{}
	s.start(t, cfg)
	log := s.stderr.String()
	if !strings.Contains(log, "users whose password was set for another sip.domain") || !strings.Contains(log, "users=3001") {
		t.Fatalf("no warning naming user 3001 after the domain changed:\n%s", log)
	}
}
