package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/switchboard/switchboard/internal/browsertest"
	"github.com/switchboard/switchboard/internal/certs"
)

// startHTTPSBrowserEnv is startBrowserEnv with web.tls: the page is served
// over HTTPS and registers over wss://.
func startHTTPSBrowserEnv(t *testing.T, users map[string]string) *browserEnv {
	t.Helper()
	dir := t.TempDir()
	certPEM, keyPEM, err := certs.SelfSigned("switchboard-test", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return startBrowserEnvWeb(t, dir, users, fmt.Sprintf("  tls: {cert: %q, key: %q}\n", certFile, keyFile),
		"https", browsertest.IgnoreCertErrors())
}

// registrationTransports returns user's bindings' transports as the API
// lists them.
func (e *browserEnv) registrationTransports(t *testing.T, user string) []string {
	t.Helper()
	req, _ := http.NewRequest("GET", e.base+"/api/v1/registrations", nil)
	req.Header.Set("Authorization", "Bearer test-token-1")
	// The test certificate is self-signed.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var regs struct {
		Items []struct {
			User      string `json:"user"`
			Transport string `json:"transport"`
		} `json:"items"`
	}
	if err := json.NewDecoder(res.Body).Decode(&regs); err != nil {
		t.Fatalf("registrations: %v", err)
	}
	var out []string
	for _, r := range regs.Items {
		if r.User == user {
			out = append(out, r.Transport)
		}
	}
	return out
}

// A page on HTTPS registers over wss://: its binding says WSS in the API
// and in `switchboard ctl registrations`, and a call to it still goes down
// its WebSocket (the page rings, answers, and audio flows both ways).
func TestBrowserBindingOverWSS(t *testing.T) {
	e := startHTTPSBrowserEnv(t, map[string]string{"1001": "alice-1001", "1003": "carol-1003"})
	page := e.signIn(t, "1003", "carol-1003")
	if got := e.registrationTransports(t, "1003"); len(got) != 1 || got[0] != "WSS" {
		t.Fatalf("the page's binding over wss:// has transports %q, want [WSS]", got)
	}
	code, out, errs := ctlRun(t, "", "--socket", filepath.Join(e.dir, "sb.sock"), "registrations")
	if code != 0 || !regexpLine(out, `^1003\s+WSS\s+`) {
		t.Fatalf("ctl registrations (%d, %s):\n%s", code, errs, out)
	}

	phone := newPhone(t, fmt.Sprintf("127.0.0.1:%d", e.sipPort), "1001", "alice-1001", "test-phone")
	media := newRTPPhone(t)
	deskPhoneCallsPage(t, page, phone, media, "the browser over wss://")

	// The binding goes with its connection, as over ws://.
	page.Close()
	waitFor(t, "the WSS binding to go with its connection", func() bool { return len(e.registrationTransports(t, "1003")) == 0 })
}
