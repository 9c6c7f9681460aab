package certs

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func writePair(t *testing.T, dir, cn string) []byte {
	t.Helper()
	c, k, err := SelfSigned(cn, "127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), c, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), k, 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

// handshake connects to ln with TLS (trusting any certificate, checking
// the version) and returns the server certificate's common name.
func handshake(t *testing.T, ln net.Listener, maxVersion uint16) (string, error) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_ = c.(*tls.Conn).Handshake()
		c.Close()
	}()
	defer func() { <-done }()
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, MaxVersion: maxVersion})
	if err != nil {
		return "", err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
}

func TestReloadsChangedFiles(t *testing.T) {
	dir := t.TempDir()
	writePair(t, dir, "first")
	r, err := New(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), 10*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", r.ServerConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if cn, err := handshake(t, ln, 0); err != nil || cn != "first" {
		t.Fatalf("first handshake: %q %v", cn, err)
	}
	// TLS 1.1 is refused.
	if _, err := handshake(t, ln, tls.VersionTLS11); err == nil {
		t.Fatal("a TLS 1.1 client was accepted")
	}
	// A renewed pair is served without a restart.
	time.Sleep(20 * time.Millisecond)
	writePair(t, dir, "second")
	time.Sleep(20 * time.Millisecond)
	if cn, err := handshake(t, ln, 0); err != nil || cn != "second" {
		t.Fatalf("after renewal: %q %v", cn, err)
	}
	// A broken key keeps the working certificate.
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if cn, err := handshake(t, ln, 0); err != nil || cn != "second" {
		t.Fatalf("after a broken key: %q %v", cn, err)
	}
}

func TestNewNamesBadFiles(t *testing.T) {
	dir := t.TempDir()
	if _, err := New(filepath.Join(dir, "none.pem"), filepath.Join(dir, "none.key"), 0, nil); err == nil {
		t.Fatal("missing files accepted")
	}
	c := writePair(t, dir, "x")
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), c, 0o600); err != nil { // a certificate as key
		t.Fatal(err)
	}
	if _, err := New(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), 0, nil); err == nil {
		t.Fatal("a certificate given as key accepted")
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(c) {
		t.Fatal("SelfSigned made an unparseable certificate")
	}
}
