package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/browsertest"
)

// otherSite serves a page on another origin (another port of 127.0.0.1;
// the browser reaches it under the names of otherSites too).
func otherSite(t *testing.T) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<!doctype html><title>another site</title><p>another site</p>")
	}))
	t.Cleanup(s.Close)
	return s
}

// wsHandshake sends a WebSocket handshake for SIP to /ws on addr, with
// origin unless it is "", and returns the response status.
func wsHandshake(t *testing.T, addr, origin string) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET /ws HTTP/1.1\r\nHost: " + addr + "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: sip\r\n"
	if origin != "" {
		req += "Origin: " + origin + "\r\n"
	}
	if _, err := c.Write([]byte(req + "\r\n")); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// openWS opens a SIP WebSocket from page to url and returns "open sip" or
// what went wrong.
const openWS = `new Promise(done => {
  const ws = new WebSocket(%q, "sip");
  ws.onopen = () => { done("open " + ws.protocol); ws.close(); };
  ws.onerror = () => done("error");
  setTimeout(() => done("timeout"), 8000);
})`

// otherSites are host names the test browser resolves to 127.0.0.1: pages
// of other sites, served on loopback.
var otherSites = []string{"allowed.test", "stranger.test"}

// onHost is u (http://127.0.0.1:port) under another host name.
func onHost(u, host string) string { return strings.Replace(u, "127.0.0.1", host, 1) }

// startBrowserEnvAllowing is startBrowserEnv with web.allowed_origins.
func startBrowserEnvAllowing(t *testing.T, users map[string]string, origins ...string) *browserEnv {
	t.Helper()
	list := make([]string, len(origins))
	for i, o := range origins {
		list[i] = fmt.Sprintf("%q", o)
	}
	return startBrowserEnvWeb(t, t.TempDir(), users, fmt.Sprintf("  allowed_origins: [%s]\n", strings.Join(list, ", ")),
		"http", browsertest.MapHosts(otherSites...))
}

// /ws refuses handshakes from pages on other sites unless
// web.allowed_origins names them; pages of our own host, pages on the
// browser's own machine and clients without an Origin (softphones) are
// let in.
func TestWebSocketOrigin(t *testing.T) {
	site := otherSite(t)
	allowedURL, strangerURL := onHost(site.URL, "allowed.test"), onHost(site.URL, "stranger.test")
	e := startBrowserEnvAllowing(t, map[string]string{"1003": "carol-1003"}, allowedURL)
	addr := strings.TrimPrefix(e.base, "http://")
	wsURL := "ws://" + addr + "/ws"
	s, br := e.server, e.browser

	// Without a browser: the handshake as a softphone and as a forged page.
	if st := wsHandshake(t, addr, ""); st != http.StatusSwitchingProtocols {
		t.Errorf("handshake without Origin: %d, want 101", st)
	}
	if st := wsHandshake(t, addr, "http://"+addr); st != http.StatusSwitchingProtocols {
		t.Errorf("handshake from our own origin: %d, want 101", st)
	}
	if st := wsHandshake(t, addr, "https://evil.example"); st != http.StatusForbidden {
		t.Errorf("handshake from another site: %d, want 403", st)
	}

	// Our own page registers over /ws as always.
	own := e.signIn(t, "1003", "carol-1003")
	if got := browsertest.Eval[string](own, fmt.Sprintf(openWS, wsURL)); got != "open sip" {
		t.Errorf("WebSocket from our page: %s, want open", got)
	}

	listed := br.NewPage(t)
	listed.Navigate(allowedURL + "/")
	if got := browsertest.Eval[string](listed, fmt.Sprintf(openWS, wsURL)); got != "open sip" {
		t.Errorf("WebSocket from %s, listed in web.allowed_origins: %s, want open", allowedURL, got)
	}

	local := br.NewPage(t)
	local.Navigate(site.URL + "/")
	if got := browsertest.Eval[string](local, fmt.Sprintf(openWS, wsURL)); got != "open sip" {
		t.Errorf("WebSocket from %s, a page on this machine: %s, want open", site.URL, got)
	}

	stranger := br.NewPage(t)
	stranger.Navigate(strangerURL + "/")
	if got := browsertest.Eval[string](stranger, fmt.Sprintf(openWS, wsURL)); got != "error" {
		t.Errorf("WebSocket from %s, not allowed: %s, want error", strangerURL, got)
	}
	waitFor(t, "the refusal in the log", func() bool {
		return strings.Contains(s.stderr.String(), "websocket refused: origin not allowed") &&
			strings.Contains(s.stderr.String(), strangerURL)
	})
}
