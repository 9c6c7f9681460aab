package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/config"
)

// TestDomainChangeNamesStaleUsers: after sip.domain changes, the start
// names the users made through ctl or the API, whose digest hashes hold
// the old realm, and says how to fix them; users from the file are
// re-hashed and not named.
func TestDomainChangeNamesStaleUsers(t *testing.T) {
	s := startServer(t, map[string]string{"1001": "alice-1001"}, "")
	sock := filepath.Join(s.dir, "sb.sock")
	// The control socket may come up a moment after SIP answers.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		code, out, errs := ctlRun(t, "", "--socket", sock, "users", "add", "--password", "pw-for-3001", "3001")
		if code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("users add: %d %s %s", code, out, errs)
		}
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

// TestLoopbackMediaWarning: SIP on a public address with the relay on
// loopback starts, with a warning that names both keys; the shipped
// loopback-only setup starts without it.
func TestLoopbackMediaWarning(t *testing.T) {
	var warned, quiet bytes.Buffer
	cfg, err := config.Parse([]byte("web: {api_tokens: [abcdefgh]}\nsip: {listen: '192.0.2.10:5060'}\n"))
	if err != nil {
		t.Fatal(err)
	}
	warnLoopbackMedia(cfg, slog.New(slog.NewTextHandler(&warned, nil)))
	if !strings.Contains(warned.String(), "media.address is a loopback address while sip.listen") {
		t.Errorf("no warning for SIP on 192.0.2.10 with media on 127.0.0.1: %q", warned.String())
	}
	cfg, err = config.Parse([]byte("web: {api_tokens: [abcdefgh]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	warnLoopbackMedia(cfg, slog.New(slog.NewTextHandler(&quiet, nil)))
	if quiet.Len() != 0 {
		t.Errorf("warning for the loopback setup: %q", quiet.String())
	}
}

// TestNoSHA256Warning: a config that offers MD5 alone warns that the
// browser phone cannot sign in; the default (SHA-256 first) does not.
func TestNoSHA256Warning(t *testing.T) {
	var warned, quiet bytes.Buffer
	cfg, err := config.Parse([]byte("web: {api_tokens: [abcdefgh]}\nsip: {auth_algorithms: [MD5]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	warnNoSHA256(cfg, slog.New(slog.NewTextHandler(&warned, nil)))
	if !strings.Contains(warned.String(), "browser phone") {
		t.Errorf("no warning for auth_algorithms [MD5]: %q", warned.String())
	}
	cfg, err = config.Parse([]byte("web: {api_tokens: [abcdefgh]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	warnNoSHA256(cfg, slog.New(slog.NewTextHandler(&quiet, nil)))
	if quiet.Len() != 0 {
		t.Errorf("warning for the default algorithms: %q", quiet.String())
	}
}
