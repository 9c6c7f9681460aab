package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/certs"
)

func TestShippedConfigLoads(t *testing.T) {
	cfg, err := Load(filepath.Join("..", "..", "configs", "switchboard.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SIP.Listen != "127.0.0.1:5060" || cfg.SIP.Domain != "switchboard.local" {
		t.Errorf("sip = %+v", cfg.SIP)
	}
	names := []string{}
	for _, u := range cfg.Users {
		names = append(names, u.Name+"="+u.DisplayName)
	}
	if got := strings.Join(names, ","); got != "1001=Alice,1002=Bob,1003=Carol" {
		t.Errorf("users = %s", got)
	}
	if cfg.Media.Timeout.D() != time.Minute || cfg.SIP.MinExpires.D() != time.Minute {
		t.Errorf("defaults not applied: %+v", cfg)
	}
}

func TestEmptyConfigGetsDefaultsButNeedsToken(t *testing.T) {
	_, err := Parse(nil)
	if err == nil || !strings.Contains(err.Error(), "web.api_tokens is empty") {
		t.Fatalf("err = %v", err)
	}
	cfg, err := Parse([]byte("web: {api_tokens: [abcdefgh]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Media.PortMin != 20000 || cfg.Media.PortMax != 20999 || cfg.Storage.Path != "./data/switchboard.db" {
		t.Errorf("defaults: %+v", cfg)
	}
	if got := cfg.SIP.AuthAlgorithms; len(got) != 2 || got[0] != "SHA-256" {
		t.Errorf("auth algorithms = %v", got)
	}
}

func TestErrorsNameTheKey(t *testing.T) {
	const ok = "web: {api_tokens: [abcdefgh]}\n"
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown top key", ok + "sipp: {}\n", "unknown key sipp (line 2)"},
		{"unknown nested key with hint", ok + "sip: {listn: x}\n", `unknown key sip.listn (line 2); did you mean "listen"?`},
		{"unknown key in list item", ok + "users: [{name: a, password: abcd, pasword: x}]\n", "unknown key users[0].pasword"},
		{"port order", ok + "media: {port_min: 30000, port_max: 20000}\n", "media.port_min 30000 must be below media.port_max 20000"},
		{"port range", ok + "media: {port_min: 80, port_max: 20000}\n", "media.port_min 80 must be between 1024 and 65535"},
		{"webrtc port in relay range", ok + "media: {webrtc_port: 20100}\n", "media.webrtc_port 20100 must be outside media.port_min 20000 to media.port_max 20999"},
		{"webrtc port too low", ok + "media: {webrtc_port: 80}\n", "media.webrtc_port 80 must be between 1024 and 65535"},
		{"bad listen", ok + "sip: {listen: localhost}\n", `sip.listen "localhost" must be an IP address and port`},
		{"bad media address", ok + "media: {address: nowhere}\n", `media.address "nowhere" must be an IP address`},
		{"bad duration", ok + "sip: {ring_timeout: soon}\n", `sip.ring_timeout "soon" (line 2) is not a duration`},
		{"expires order", ok + "sip: {min_expires: 600, max_expires: 60}\n", "sip.min_expires 10m0s must not be above sip.max_expires 1m0s"},
		{"duplicate user", ok + "users: [{name: '1', password: abcd}, {name: '1', password: abcd}]\n", `users[1].name "1" is defined twice`},
		{"bad user name", ok + "users: [{name: 'a b', password: abcd}]\n", `users[0].name "a b" must be`},
		{"short password", ok + "users: [{name: a, password: x}]\n", "users[0].password must have at least 4 characters"},
		{"wildcard SIP address", "web: {api_tokens: [abcdefgh]}\nsip: {listen: '0.0.0.0:5060'}\n", "sip.listen 0.0.0.0:5060 must name one address of this host"},
		{"profiler exposed", "web: {api_tokens: [abcdefgh]}\ndebug: {listen: '0.0.0.0:6060'}\n", "debug.listen 0.0.0.0:6060 must be a loopback address"},
		{"example token exposed", "web: {listen: '0.0.0.0:8080', api_tokens: [change-me]}\n", `is the example token "change-me" while web.listen 0.0.0.0:8080 is reachable`},
		{"trunk regex", ok + "trunks: [{name: p, address: 'a:5060', register: false, outbound: '('}]\n", "trunks[0].outbound \"(\" is not a valid regular expression"},
		{"trunk needs credentials", ok + "trunks: [{name: p, address: 'a:5060'}]\n", "trunks[0].register is true: set trunks[0].username"},
		{"trunk transport", ok + "trunks: [{name: p, address: 'a:5060', register: false, transport: sctp}]\n", `trunks[0].transport "sctp" must be udp, tcp or tls`},
		{"trunk allow_users", ok + "trunks: [{name: p, address: 'a:5060', register: false, allow_users: ['a b']}]\n", `trunks[0].allow_users[0] "a b" must be a user name`},
		{"trunk country code", ok + "trunks: [{name: p, address: 'a:5060', register: false, country_code: '+1'}]\n", `trunks[0].country_code "+1" must be 1-3 digits`},
		{"trunk expires", ok + "trunks: [{name: p, address: 'a:5060', register: false, register_expires: 5s}]\n", "trunks[0].register_expires 5s must be between 30s and 24h"},
		{"trunk timeout", ok + "trunks: [{name: p, address: 'a:5060', register: false, timeout: 10ms}]\n", "trunks[0].timeout 10ms must be between 100ms and 1m"},
		{"trunk ping", ok + "trunks: [{name: p, address: 'a:5060', register: false, ping_interval: 100ms}]\n", "trunks[0].ping_interval 100ms must be between 1s and 1h, or 0"},
		{"trunk inbound user", ok + "trunks: [{name: p, address: 'a:5060', register: false, inbound: {'+1555': 'x y'}}]\n", `trunks[0].inbound "+1555": user "x y" must be`},
		{"trunk ca_file missing", ok + "trunks: [{name: p, address: 'a:5061', register: false, transport: tls, ca_file: /nonexistent/ca.pem}]\n", `trunks[0].ca_file "/nonexistent/ca.pem" is not a readable file`},
		{"webhook url", ok + "webhooks: [{url: 'ftp://x', secret: abcdefgh}]\n", `webhooks[0].url "ftp://x" must be an http:// or https:// URL`},
		{"webhook twice", ok + "webhooks: [{url: 'http://x/h', secret: abcdefgh}, {url: 'http://x/h', secret: abcdefgh}]\n", `webhooks[1].url is the URL of webhooks[0] too`},
		{"webhook whsec", ok + "webhooks: [{url: 'http://x/h', secret: 'whsec_!!!notbase64'}]\n", `webhooks[0].secret starts with "whsec_", so the rest must be the key in base64`},
		{"tls pair", "web: {api_tokens: [abcdefgh], tls: {cert: /etc/passwd, key: /etc/passwd}}\n", `web.tls.cert "/etc/passwd" and web.tls.key "/etc/passwd" are not a usable certificate and key pair`},
		{"webhook event", ok + "webhooks: [{url: 'http://x', secret: abcdefgh, events: [call.exploded]}]\n", `webhooks[0].events[0] "call.exploded" is not an event type`},
		{"algorithm", ok + "sip: {auth_algorithms: [SHA-512]}\n", `sip.auth_algorithms[0] "SHA-512" must be SHA-256 or MD5`},
		{"media overlaps sip", ok + "sip: {listen: '127.0.0.1:20002'}\n", "must not include the sip.listen port 20002"},
		{"yaml syntax", "sip: [\n", "config: yaml"},
		{"port not a number", ok + "media: {port_min: abc}\n", `config: media.port_min "abc" (line 2) must be a whole number`},
		{"bool not a bool", ok + "trunks: [{name: p, address: 'a:5060', register: maybe}]\n", `trunks[0].register "maybe" (line 2) must be true or false`},
		{"scalar for a section", ok + "media: 5\n", `config: media "5" (line 2) must be a mapping of keys`},
		{"scalar for a list", ok + "users: bob\n", `config: users "bob" (line 2) must be a list`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			if err == nil {
				t.Fatalf("no error for %q", tt.yaml)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "config: ") {
				t.Fatalf("error %q does not start with config:", err)
			}
		})
	}
}

func TestTrunkDefaults(t *testing.T) {
	cfg, err := Parse([]byte("web: {api_tokens: [abcdefgh]}\ntrunks: [{name: p, address: 'a:5060', register: false}, {name: q, address: 'b:5060', register: false, ping_interval: 0}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	tr := cfg.Trunks[0]
	if tr.Transport != "udp" || tr.RegisterExpires.D() != 600*time.Second || tr.Timeout.D() != 5*time.Second || tr.PingInterval.D() != 30*time.Second {
		t.Errorf("defaults: %+v", tr)
	}
	if d := cfg.Trunks[1].PingInterval; d == nil || *d != 0 {
		t.Errorf("ping_interval 0 must stay 0 (disabled), got %v", d)
	}
}

func TestAllProblemsReported(t *testing.T) {
	_, err := Parse([]byte("web: {api_tokens: [abcdefgh]}\nmedia: {port_min: 30000, port_max: 20000}\nlog: {level: loud}\n"))
	if err == nil || !strings.Contains(err.Error(), "media.port_min") || !strings.Contains(err.Error(), "log.level") {
		t.Fatalf("err = %v", err)
	}
}

func TestLoadNamesFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(p, []byte("nope: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(p)
	if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "unknown key nope") {
		t.Fatalf("err = %v", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Fatal("missing file accepted")
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("sip: {listen: '127.0.0.1:5060'}\nweb: {api_tokens: [abcdefgh]}\n"))
	f.Add([]byte("users: [{name: a, password: b}]\n"))
	f.Add([]byte("trunks: [{name: p, inbound: {'+1': a}}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = Parse(data)
	})
}

// TestTrunkCAFile reads a TLS trunk's CA file, and names the key when the
// file is no use.
func TestTrunkCAFile(t *testing.T) {
	dir := t.TempDir()
	caPEM, _, err := certs.SelfSigned("provider CA", "sip.provider.test")
	if err != nil {
		t.Fatal(err)
	}
	good, junk := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(good, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(junk, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := "web: {api_tokens: [abcdefgh]}\ntrunks: [{name: p, address: 'sip.provider.test:5061', register: false, "
	cfg, err := Parse([]byte(base + "transport: tls, ca_file: '" + good + "'}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if pool, err := cfg.Trunks[0].RootCAs(); err != nil || pool == nil {
		t.Fatalf("RootCAs() = %v, %v", pool, err)
	}
	if pool, err := (Trunk{}).RootCAs(); pool != nil || err != nil {
		t.Errorf("no ca_file: RootCAs() = %v, %v; want the system's (nil)", pool, err)
	}
	for name, tc := range map[string]struct{ yaml, want string }{
		"not PEM":     {"transport: tls, ca_file: '" + junk + "'}]\n", `trunks[0].ca_file "` + junk + `" holds no PEM certificate`},
		"without tls": {"transport: udp, ca_file: '" + good + "'}]\n", `trunks[0].ca_file is set but trunks[0].transport is "udp": a CA file checks a provider's TLS certificate; set transport: tls`},
		// A device or a directory would hang the start or read forever.
		"device":    {"transport: tls, ca_file: /dev/zero}]\n", `trunks[0].ca_file "/dev/zero" is not a regular file`},
		"directory": {"transport: tls, ca_file: '" + dir + "'}]\n", `trunks[0].ca_file "` + dir + `" is not a regular file`},
	} {
		_, err := Parse([]byte(base + tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", name, err, tc.want)
		}
	}
}
