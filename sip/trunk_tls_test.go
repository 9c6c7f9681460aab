package sip

import (
	"crypto/tls"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard/switchboard/internal/certs"
	"github.com/switchboard/switchboard/sip/trunk"
)

// providerCert makes a certificate for hosts, as the provider's TLS
// listener serves it, and a pool that trusts it (it is its own CA).
func providerCert(t *testing.T, hosts ...string) (*tls.Config, *x509.CertPool) {
	t.Helper()
	certPEM, keyPEM, err := certs.SelfSigned("provider.test", hosts...)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(certPEM) {
		t.Fatal("no certificate in the PEM")
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, pool
}

// TestTrunkTLS registers to a provider over TLS, whose certificate a
// private CA (the trunk's RootCAs, from its ca_file) signs, and calls out
// through it with audio both ways through the relay.
func TestTrunkTLS(t *testing.T) {
	srvTLS, pool := providerCert(t, "127.0.0.2")
	addr := reserveTCPAddr(t, "127.0.0.2")
	cfg := trunkConfig("prov", addr, true)
	cfg.Transport, cfg.RootCAs = "tls", pool
	e, ps := newTrunkEnv(t, cfg)
	pr := newProviderOpts(e, addr, phoneOpts{transport: "TLS", tls: srvTLS})

	waitState(t, ps[0], 10*time.Second, trunk.StateRegistered)
	reg := pr.registrations()[0]
	if pr.challenged(sip.REGISTER) == 0 {
		t.Error("the provider never challenged the REGISTER")
	}
	if !strings.HasSuffix(reg.contact, ";transport=tls") {
		t.Errorf("registered Contact %s, want one over TLS", reg.contact)
	}

	a := e.newPhone("1001", "pw-1001", phoneOpts{})
	a.register()
	oc := a.call(farNumber, callOpts{})
	if oc.status != 200 {
		t.Fatalf("call to %s: status %d (responses %v)", farNumber, oc.status, oc.codes)
	}
	inv := pr.expect(sip.INVITE, 2*time.Second)
	pr.expect(sip.ACK, 2*time.Second)
	if !strings.EqualFold(inv.Transport(), "TLS") {
		t.Errorf("INVITE over %s, want TLS", inv.Transport())
	}
	if inv.GetHeader("Proxy-Authorization") == nil {
		t.Error("the INVITE the provider accepted has no credentials")
	}
	if ct := inv.Contact(); ct == nil || !strings.EqualFold(ct.Address.UriParams.GetOr("transport", ""), "tls") {
		t.Errorf("INVITE Contact %v, want transport=tls", ct)
	}
	if dst, _ := sdpTarget(t, inv.Body()); !e.inRelayRange(dst) {
		t.Errorf("offer to the provider names %v, not the relay", dst)
	}
	audio(t, e, a, pr.testPhone, 20, 100)
	audio(t, e, pr.testPhone, a, 20, 200)
	oc.hangup()
	if bye := pr.expect(sip.BYE, 2*time.Second); !strings.EqualFold(bye.Transport(), "TLS") {
		t.Errorf("BYE over %s, want TLS", bye.Transport())
	}
	if rec := e.lastRecord(t, "1001"); rec.Trunk != "prov" || rec.Result != "answered" {
		t.Errorf("record %+v", rec)
	}
	e.waitIdle(t)
}

// TestTrunkTLSUntrusted: a provider whose certificate does not check out
// (signed by a CA the trunk does not trust, or for another address) gets
// nothing from us, and the trunk says why; calls through it fail fast.
func TestTrunkTLSUntrusted(t *testing.T) {
	for name, tc := range map[string]struct {
		hosts     []string
		trustCA   bool
		wantError string
	}{
		"unknown CA":    {hosts: []string{"127.0.0.2"}, wantError: "certificate signed by unknown authority"},
		"wrong address": {hosts: []string{"127.0.0.3"}, trustCA: true, wantError: "127.0.0.2"},
	} {
		t.Run(name, func(t *testing.T) {
			srvTLS, pool := providerCert(t, tc.hosts...)
			addr := reserveTCPAddr(t, "127.0.0.2")
			cfg := trunkConfig("prov", addr, true)
			cfg.Transport = "tls"
			if tc.trustCA {
				cfg.RootCAs = pool
			}
			e, ps := newTrunkEnv(t, cfg)
			pr := newProviderOpts(e, addr, phoneOpts{transport: "TLS", tls: srvTLS})
			waitState(t, ps[0], 10*time.Second, trunk.StateDown)
			st := ps[0].Status()
			t.Logf("trunk: %s", st.LastError)
			if st.Registered || !strings.Contains(st.LastError, tc.wantError) {
				t.Errorf("status %+v, want an error naming %q", st, tc.wantError)
			}
			if n := len(pr.registrations()) + pr.challenged(sip.REGISTER); n != 0 {
				t.Errorf("the provider received %d REGISTERs over an unverified connection", n)
			}
			a := e.newPhone("1001", "pw-1001", phoneOpts{})
			a.register()
			if oc := a.call(farNumber, callOpts{}); oc.status != 503 {
				t.Errorf("call through the trunk: status %d, want 503", oc.status)
			}
			if n := pr.count(sip.INVITE); n != 0 {
				t.Errorf("the provider received %d INVITEs", n)
			}
		})
	}
}

// TestVerifyServerByName checks the certificate of a connection opened for
// a name against the roots of the trunk with that host, and any other
// against the system's roots.
func TestVerifyServerByName(t *testing.T) {
	srvTLS, pool := providerCert(t, "sip.provider.test")
	leaf, err := x509.ParseCertificate(srvTLS.Certificates[0].Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	cfg := trunkConfig("prov", "sip.provider.test:5061", false)
	cfg.Transport, cfg.RootCAs = "tls", pool
	tr, err := trunk.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{trunks: newTrunkRunner([]trunk.Trunk{tr})}
	cs := func(name string) tls.ConnectionState {
		return tls.ConnectionState{ServerName: name, PeerCertificates: []*x509.Certificate{leaf}}
	}
	if err := s.verifyServer(cs("sip.provider.test")); err != nil {
		t.Errorf("the trunk's own provider: %v", err)
	}
	if err := s.verifyServer(cs("SIP.Provider.Test")); err != nil {
		t.Errorf("names compare without case: %v", err)
	}
	if err := s.verifyServer(cs("other.test")); err == nil {
		t.Error("a certificate from the trunk's private CA passed for another host")
	}
	if err := s.verifyServer(tls.ConnectionState{ServerName: "sip.provider.test"}); err == nil {
		t.Error("a server with no certificate passed")
	}
	// A connection to an address, when no trunk over TLS is at one.
	if err := s.verifyServer(cs("")); err == nil {
		t.Error("a connection for no trunk passed unchecked")
	}
}
