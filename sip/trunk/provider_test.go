package trunk

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

func TestNormalize(t *testing.T) {
	tests := []struct{ in, cc, want string }{
		{"+1 (555) 123-4567", "1", "+15551234567"},
		{"0044 20 7946 0000", "1", "+442079460000"},
		{"020 7946 0000", "44", "+442079460000"},
		{"5551234567", "1", "+15551234567"},
		{"15551234567", "1", "+15551234567"},
		{"555.123.4567", "", "5551234567"},
		{"+4930123456", "", "+4930123456"},
	}
	for _, tt := range tests {
		t.Run(tt.in+"/"+tt.cc, func(t *testing.T) {
			if got := Normalize(tt.in, tt.cc); got != tt.want {
				t.Errorf("Normalize(%q, %q) = %q, want %q", tt.in, tt.cc, got, tt.want)
			}
		})
	}
}

func newTest(t *testing.T, cfg Config) *Provider {
	t.Helper()
	p, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRoute(t *testing.T) {
	p := newTest(t, Config{Name: "p", Address: "192.0.2.10:5080", Transport: "tcp", Username: "acct", Password: "pw",
		Outbound: `^\+?[0-9]{7,15}$`, CallerID: "+15551230000", AllowUsers: []string{"1001"}, CountryCode: "1"})
	if _, ok := p.Route("1002", "+15557654321"); ok {
		t.Error("a user not in allow_users may call out")
	}
	if _, ok := p.Route("1001", "1002"); ok {
		t.Error("a number that does not match outbound was routed")
	}
	r, ok := p.Route("1001", "5557654321")
	if !ok {
		t.Fatal("no route")
	}
	if got := r.URI.String(); got != "sip:+15557654321@192.0.2.10:5080;transport=tcp" {
		t.Errorf("URI %s", got)
	}
	if r.From.User != "+15551230000" || r.AssertedIdentity != "<sip:+15551230000@192.0.2.10>" {
		t.Errorf("caller ID: From %s, PAI %s", r.From.String(), r.AssertedIdentity)
	}
	if r.Destination != "192.0.2.10:5080" || r.Transport != "tcp" || r.Username != "acct" || r.Timeout != 5*time.Second {
		t.Errorf("route %+v", r)
	}
	sep := newTest(t, Config{Name: "p", Address: "192.0.2.10:5060", Username: "7001234", AuthUsername: "auth-77", Outbound: "."})
	if r, _ := sep.Route("1001", "5557654321"); r.Username != "auth-77" || r.From.User != "7001234" {
		t.Errorf("with auth_username: answers as %q, From %q", r.Username, r.From.User)
	}
	none := newTest(t, Config{Name: "in-only", Address: "192.0.2.10:5060"})
	if _, ok := none.Route("1001", "+15557654321"); ok {
		t.Error("a trunk without an outbound pattern takes calls")
	}
}

func TestInbound(t *testing.T) {
	p := newTest(t, Config{Name: "p", Address: "192.0.2.10:5060", Inbound: map[string]string{"+1 555 123 0000": "1001", "acct": "1002"}})
	from := netip.MustParseAddrPort("192.0.2.10:5060")
	other := netip.MustParseAddrPort("192.0.2.10:40000") // a phone on the provider's address
	for did, want := range map[string]string{"+15551230000": "1001", "15551230000": "1001", "acct": "1002", "+15559999999": "", "1230000": ""} {
		if user, ours := p.Inbound(from, did); !ours || user != want {
			t.Errorf("Inbound(%q) = %q, %v; want %q", did, user, ours, want)
		}
		// From another port, only the trunk's numbers are the provider's.
		if user, ours := p.Inbound(other, did); ours != (want != "") || user != want {
			t.Errorf("Inbound(%q) from another port = %q, %v; want %q, %v", did, user, ours, want, want != "")
		}
	}
	if _, ours := p.Inbound(netip.AddrPortFrom(from.Addr(), 0), ""); !ours {
		t.Error("the provider's address alone is not recognised")
	}
	if _, ours := p.Inbound(netip.MustParseAddrPort("198.51.100.7:5060"), "+15551230000"); ours {
		t.Error("a request from another address counts as the provider's")
	}
}

func TestBreaker(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	p := newTest(t, Config{Name: "p", Address: "192.0.2.10:5060", FailThreshold: 2, Cooldown: 10 * time.Second})
	p.now = func() time.Time { return now }
	var events []string
	p.notify = func(e string, _ any) { events = append(events, e) }
	if err := p.Ready(); err != nil {
		t.Fatalf("fresh IP trunk not ready: %v", err)
	}
	p.CallResult(486, nil) // the callee was busy: the provider works
	if st := p.Status().State; st != StateUp {
		t.Errorf("state %s after an answer", st)
	}
	p.CallResult(503, nil)
	if st := p.Status().State; st != StateFailing || p.Ready() != nil {
		t.Errorf("after one 503: state %s, ready %v", st, p.Ready())
	}
	p.CallResult(0, errors.New("no answer"))
	if err := p.Ready(); !errors.Is(err, ErrDown) {
		t.Errorf("after two failures: ready %v, want ErrDown", err)
	}
	now = now.Add(11 * time.Second) // cooldown over: one call may try
	if err := p.Ready(); err != nil {
		t.Errorf("after the cooldown: %v", err)
	}
	p.CallResult(180, nil)
	if st := p.Status().State; st != StateUp {
		t.Errorf("state %s after recovering", st)
	}
	if want := []string{"trunk.up", "trunk.down", "trunk.up"}; len(events) != 3 || events[0] != want[0] || events[1] != want[1] || events[2] != want[2] {
		t.Errorf("events %v, want %v", events, want)
	}

	reg := newTest(t, Config{Name: "r", Address: "192.0.2.10:5060", Register: true, Username: "u", Password: "p"})
	if err := reg.Ready(); !errors.Is(err, ErrUnregistered) {
		t.Errorf("unregistered trunk: %v", err)
	}
}

func TestRefreshAfter(t *testing.T) {
	for d, want := range map[time.Duration]time.Duration{
		2 * time.Second:        1600 * time.Millisecond,
		600 * time.Second:      540 * time.Second,
		3600 * time.Second:     3540 * time.Second,
		100 * time.Millisecond: 500 * time.Millisecond,
	} {
		if got := refreshAfter(d); got != want {
			t.Errorf("refreshAfter(%s) = %s, want %s", d, got, want)
		}
	}
}

func TestPublicAddr(t *testing.T) {
	local := sip.Uri{Host: "10.0.0.5", Port: 5060}
	tests := []struct{ name, params, want string }{
		{"nothing said", "", "invalid AddrPort"},
		{"same address", "rport=5060;received=10.0.0.5", "invalid AddrPort"},
		{"rport asked, not answered", "rport", "invalid AddrPort"},
		{"NAT", "rport=40211;received=203.0.113.9", "203.0.113.9:40211"},
		{"address only", "received=203.0.113.9", "203.0.113.9:5060"},
		{"port only", "rport=40211", "10.0.0.5:40211"},
		{"garbage", "received=nowhere;rport=x", "invalid AddrPort"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			via := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP", Host: "10.0.0.5", Port: 5060, Params: sip.NewParams()}
			via.Params.Add("branch", "z9hG4bK1")
			for _, kv := range strings.Split(tt.params, ";") {
				if k, v, _ := strings.Cut(kv, "="); k != "" {
					via.Params.Add(k, v)
				}
			}
			req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: "provider.test"})
			req.AppendHeader(via)
			if got := publicAddr(sip.NewResponseFromRequest(req, 200, "OK", nil), local).String(); got != tt.want {
				t.Errorf("publicAddr = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestFailureWorthLogging(t *testing.T) {
	var logged []int
	for n := 1; n <= 100; n++ {
		if failureWorthLogging(n) {
			logged = append(logged, n)
		}
	}
	if fmt.Sprint(logged) != "[1 2 3 4 8 16 32 64]" {
		t.Errorf("failures logged at warning level: %v", logged)
	}
}
