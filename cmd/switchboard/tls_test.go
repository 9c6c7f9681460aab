package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/certs"
)

// TestTLS serves SIP over TLS and HTTPS with a certificate the test makes:
// a client that trusts it gets answers on both, TLS 1.1 is refused, and a
// renewed certificate is served without a restart.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	write := func(cn string) *x509.CertPool {
		c, k, err := certs.SelfSigned(cn, "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		// The key first, then the certificate: a reader between the two
		// writes sees a mismatched pair and keeps the old one.
		if err := os.WriteFile(keyFile, k, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(certFile, c, 0o600); err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(c)
		return pool
	}
	pool := write("first")
	sipPort, webPort, tlsPort := freePort(t), freePort(t), freePort(t)
	cfg := writeChildConfig(t, dir, sipPort, webPort, bothUsers,
		fmt.Sprintf("  tls: {listen: \"127.0.0.1:%d\", cert: %q, key: %q}\n", tlsPort, certFile, keyFile))
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	withWeb := strings.Replace(string(b), fmt.Sprintf("api_tokens: [%q]\n", childToken),
		fmt.Sprintf("api_tokens: [%q]\n  tls: {cert: %q, key: %q}\n", childToken, certFile, keyFile), 1)
	if err := os.WriteFile(cfg, []byte(withWeb), 0o600); err != nil {
		t.Fatal(err)
	}
	trust := func(pool *x509.CertPool) func(*child) {
		return func(c *child) {
			c.http = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
			c.base = fmt.Sprintf("https://127.0.0.1:%d", webPort)
		}
	}
	c := startChild(t, dir, cfg, sipPort, webPort, trust(pool))
	var status struct {
		Ready bool `json:"ready"`
	}
	if err := c.api("/api/v1/status", &status); err != nil || !status.Ready {
		t.Fatalf("status over HTTPS: %+v %v", status, err)
	}

	options := func(conf *tls.Config) (string, error) {
		conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", tlsPort), conf)
		if err != nil {
			return "", err
		}
		defer conn.Close()
		local := conn.LocalAddr().String()
		fmt.Fprintf(conn, "OPTIONS sip:switchboard.local SIP/2.0\r\nVia: SIP/2.0/TLS %s;branch=z9hG4bKtls%d\r\nFrom: <sip:probe@switchboard.local>;tag=1\r\n"+
			"To: <sip:switchboard.local>\r\nCall-ID: tls-%d\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n", local, time.Now().UnixNano(), time.Now().UnixNano())
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(conn).ReadString('\n')
		return strings.TrimSpace(line), err
	}
	if line, err := options(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}); err != nil || line != "SIP/2.0 200 OK" {
		t.Fatalf("OPTIONS over TLS: %q %v", line, err)
	}
	if _, err := options(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MaxVersion: tls.VersionTLS11}); err == nil {
		t.Fatal("TLS 1.1 accepted")
	}

	// Renew the certificate: new connections get it within the check
	// interval, without a restart.
	time.Sleep(10 * time.Millisecond)
	pool2 := write("second")
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, errSIP := options(&tls.Config{RootCAs: pool2, ServerName: "127.0.0.1"})
		c.http.CloseIdleConnections()
		c2 := *c
		trust(pool2)(&c2)
		errWeb := c2.api("/api/v1/status", &status)
		if errSIP == nil && errWeb == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("renewed certificate not served: sip %v, web %v", errSIP, errWeb)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
