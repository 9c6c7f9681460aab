package sip

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/switchboard/switchboard/internal/certs"
)

// TestRegisterOverTLS registers a phone over TLS with a certificate the
// test makes, verified by the phone against it; the binding records TLS.
func TestRegisterOverTLS(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM, err := certs.SelfSigned("switchboard test", "127.0.0.1", testDomain)
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
	rl, err := certs.New(certFile, keyFile, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *Config) {
		c.TLS = rl.ServerConfig()
		c.TLSListen = netip.MustParseAddrPort("127.0.0.1:0")
	})
	tlsAddr, err := e.srv.Addr(context.Background(), "tls")
	if err != nil || tlsAddr == "" {
		t.Fatalf("no TLS listener: %q %v", tlsAddr, err)
	}

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("test-phone/1001"),
		sipgo.WithUserAgenTLSConfig(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}))
	if err != nil {
		t.Fatal(err)
	}
	defer ua.Close()
	client, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	p := &phone{t: t, ua: ua, client: client, user: "1001", pass: "pw-1001", server: tlsAddr, tp: "TLS", callID: sip.GenerateTagN(16) + "@tls"}
	res := p.register([]string{"<sip:1001@127.0.0.1:5999;transport=tls>"})
	if res.StatusCode != 200 {
		t.Fatalf("REGISTER over TLS: %d %s", res.StatusCode, res.Reason)
	}
	bs := e.srv.UserBindings("1001")
	if len(bs) != 1 || bs[0].Transport != "TLS" {
		t.Fatalf("bindings %+v", bs)
	}

	// A client that does not trust the certificate gets nowhere.
	bad, err := sipgo.NewUA(sipgo.WithUserAgenTLSConfig(&tls.Config{ServerName: "127.0.0.1"}))
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	bc, err := sipgo.NewClient(bad, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	req := p.registerReq([]string{"<sip:1001@127.0.0.1:5998;transport=tls>"})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := bc.Do(ctx, req, sipgo.ClientRequestBuild); err == nil {
		t.Fatal("an untrusted certificate was accepted")
	}
}
