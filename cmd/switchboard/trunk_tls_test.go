package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/switchboard/switchboard/internal/certs"
	"github.com/switchboard/switchboard/web"
)

// tlsRegistrar is a provider's registrar over TLS on 127.0.0.2 (a sipgo
// server with a certificate made by the test) that accepts every
// REGISTER.
type tlsRegistrar struct {
	addr string
	mu   sync.Mutex
	regs int
}

func startTLSRegistrar(t *testing.T, ip string, certPEM, keyPEM []byte) *tlsRegistrar {
	t.Helper()
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("tls-provider"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	r := &tlsRegistrar{addr: ln.Addr().String()}
	srv.OnRegister(func(req *sip.Request, tx sip.ServerTransaction) {
		r.mu.Lock()
		r.regs++
		r.mu.Unlock()
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	srv.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.ServeTLS(tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
	}()
	t.Cleanup(func() {
		ln.Close()
		ua.Close()
		<-done
	})
	return r
}

func (r *tlsRegistrar) registrations() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.regs
}

// TestTrunkTLSCAFile runs the server with two TLS trunks to providers
// whose certificates private CAs sign: the one whose ca_file holds its CA
// registers; the one without (the system's roots) is refused at the
// handshake, and says so.
func TestTrunkTLSCAFile(t *testing.T) {
	certPEM, keyPEM, err := certs.SelfSigned("provider CA", "127.0.0.2")
	if err != nil {
		t.Fatal(err)
	}
	otherPEM, otherKey, err := certs.SelfSigned("other CA", "127.0.0.3")
	if err != nil {
		t.Fatal(err)
	}
	trusted, untrusted := startTLSRegistrar(t, "127.0.0.2", certPEM, keyPEM), startTLSRegistrar(t, "127.0.0.3", otherPEM, otherKey)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "provider-ca.pem")
	if err := os.WriteFile(caFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	extra := fmt.Sprintf(`trunks:
  - {name: private, address: %q, transport: tls, ca_file: %q, username: acct-1, password: secret-1, register_expires: 60s}
  - {name: system, address: %q, transport: tls, username: acct-2, password: secret-2, register_expires: 60s}
`, trusted.addr, caFile, untrusted.addr)
	s := startServer(t, map[string]string{"1001": "alice-1001"}, extra)

	var ts []web.Trunk
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, out, errs := ctlRun(t, "", "--socket", filepath.Join(s.dir, "sb.sock"), "--json", "trunks")
		if code != 0 || json.Unmarshal([]byte(out), &ts) != nil || len(ts) != 2 {
			t.Fatalf("ctl trunks: %d %s %s", code, out, errs)
		}
		if ts[0].State == "registered" && ts[1].LastError != "" || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if ts[0].State != "registered" || trusted.registrations() == 0 {
		t.Errorf("trunk with the provider's CA in ca_file: %+v, %d REGISTERs", ts[0], trusted.registrations())
	}
	if ts[1].Registered || !strings.Contains(ts[1].LastError, "certificate signed by unknown authority") {
		t.Errorf("trunk trusting the system's roots only: %+v", ts[1])
	}
	if n := untrusted.registrations(); n != 0 {
		t.Errorf("%d REGISTERs reached the provider whose certificate is not trusted", n)
	}
	// The provider's CA is renewed in place: the same ca_file gets a new
	// certificate, and a reload (with nothing else changed) uses it.
	renewedPEM, renewedKey, err := certs.SelfSigned("renewed CA", "127.0.0.2")
	if err != nil {
		t.Fatal(err)
	}
	renewed := startTLSRegistrar(t, "127.0.0.2", renewedPEM, renewedKey)
	cfgText, err := os.ReadFile(filepath.Join(s.dir, "switchboard.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// The trunk points at the renewed provider with the old CA: refused.
	if err := os.WriteFile(filepath.Join(s.dir, "switchboard.yaml"), []byte(strings.Replace(string(cfgText), trusted.addr, renewed.addr, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	reload := func() {
		if code, out, errs := ctlRun(t, "", "--socket", filepath.Join(s.dir, "sb.sock"), "reload"); code != 0 {
			t.Fatalf("ctl reload: %d %s %s", code, out, errs)
		}
	}
	reload()
	trunkState := func(want func(web.Trunk) bool) web.Trunk {
		deadline := time.Now().Add(15 * time.Second)
		for {
			code, out, errs := ctlRun(t, "", "--socket", filepath.Join(s.dir, "sb.sock"), "--json", "trunks")
			if code != 0 || json.Unmarshal([]byte(out), &ts) != nil || len(ts) != 2 {
				t.Fatalf("ctl trunks: %d %s %s", code, out, errs)
			}
			if want(ts[0]) || time.Now().After(deadline) {
				return ts[0]
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if tr := trunkState(func(tr web.Trunk) bool { return tr.LastError != "" }); tr.Registered || renewed.registrations() != 0 {
		t.Fatalf("a provider the CA file does not vouch for: %+v, %d REGISTERs", tr, renewed.registrations())
	}
	if err := os.WriteFile(caFile, renewedPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	reload()
	if tr := trunkState(func(tr web.Trunk) bool { return tr.State == "registered" }); tr.State != "registered" || renewed.registrations() == 0 {
		t.Errorf("after the CA file was renewed and the server reloaded: %+v, %d REGISTERs", tr, renewed.registrations())
	}

	// Without sip.tls the provider cannot send us requests over TLS: the
	// log says so.
	if !strings.Contains(s.stderr.String(), "trunk over TLS without sip.tls") {
		t.Errorf("no warning about the missing sip.tls in the log:\n%s", s.stderr.String())
	}
}
