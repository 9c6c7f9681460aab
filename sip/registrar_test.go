package sip

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
)

func TestRegisterSuccessUDPAndTCP(t *testing.T) {
	e := newEnv(t)
	for _, tp := range []string{"UDP", "TCP"} {
		t.Run(tp, func(t *testing.T) {
			p := e.phone("1001", "pw-1001", tp)
			contact := fmt.Sprintf("sip:1001@127.0.0.1:%d;transport=%s", 40000+len(tp), strings.ToLower(tp))
			res := p.register([]string{"<" + contact + ">"}, sip.NewHeader("Expires", "120"))
			if res.StatusCode != 200 {
				t.Fatalf("status %d %s", res.StatusCode, res.Reason)
			}
			if got := contactExpires(res)[contact]; got != "120" {
				t.Fatalf("200 OK contacts %v, want %s;expires=120", contactExpires(res), contact)
			}
			if res.GetHeader("Date") == nil {
				t.Error("200 OK without Date")
			}
			var found bool
			for _, b := range e.srv.UserBindings("1001") {
				if b.Contact == contact {
					found = true
					if b.Transport != tp {
						t.Errorf("transport %q, want %q", b.Transport, tp)
					}
					// NAT: the source is where the REGISTER really came from.
					if !strings.HasPrefix(b.Source, "127.0.0.1:") || b.Source == e.udp {
						t.Errorf("source %q", b.Source)
					}
				}
			}
			if !found {
				t.Fatalf("binding not in registrar: %+v", e.srv.UserBindings("1001"))
			}
			stored, err := e.st.Bindings(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			found = false
			for _, b := range stored {
				found = found || b.Contact == contact
			}
			if !found {
				t.Fatal("binding acknowledged with 200 but not in the store")
			}
		})
	}
}

func TestChallengeOffersSHA256ThenMD5(t *testing.T) {
	e := newEnv(t)
	p := e.phone("1001", "pw-1001", "UDP")
	res := p.do(p.registerReq([]string{"<sip:1001@127.0.0.1:5999>"}))
	if res.StatusCode != 401 {
		t.Fatalf("status %d", res.StatusCode)
	}
	ch := res.GetHeaders("WWW-Authenticate")
	if len(ch) != 2 || !strings.Contains(ch[0].Value(), "algorithm=SHA-256") || !strings.Contains(ch[1].Value(), "algorithm=MD5") {
		t.Fatalf("challenges %v", ch)
	}
	if !strings.Contains(ch[0].Value(), `realm="switchboard.local"`) || !strings.Contains(ch[0].Value(), `qop="auth"`) {
		t.Fatalf("challenge %s", ch[0].Value())
	}
	// Clients known to choke on SHA-256 challenges get MD5 alone.
	for _, ua := range []string{"User-Agent: SIPp\r\n", "User-Agent: baresip v1.0.0 (x86_64/linux)\r\n", ""} {
		msg := "REGISTER sip:switchboard.local SIP/2.0\r\n" +
			"Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKlegacy" + fmt.Sprint(len(ua)) + ";rport\r\n" +
			"From: <sip:1001@switchboard.local>;tag=a\r\nTo: <sip:1001@switchboard.local>\r\n" +
			"Call-ID: legacy-" + fmt.Sprint(len(ua)) + "\r\nCSeq: 1 REGISTER\r\n" + ua +
			"Contact: <sip:1001@127.0.0.1:5999>\r\nContent-Length: 0\r\n\r\n"
		res := rawUDP(t, e.udp, msg, 2*time.Second)
		if !strings.HasPrefix(res, "SIP/2.0 401") || !strings.Contains(res, "algorithm=MD5") || strings.Contains(res, "SHA-256") {
			t.Fatalf("%q: challenge order wrong:\n%s", ua, res)
		}
	}
}

// answer builds an Authorization for the challenge whose algorithm is alg.
func answer(t *testing.T, res *sip.Response, alg, user, pass string, req *sip.Request) string {
	t.Helper()
	for _, h := range res.GetHeaders("WWW-Authenticate") {
		chal, err := digest.ParseChallenge(h.Value())
		if err != nil {
			t.Fatal(err)
		}
		if chal.Algorithm != alg {
			continue
		}
		cred, err := digest.Digest(chal, digest.Options{Method: "REGISTER", URI: req.Recipient.Addr(), Username: user, Password: pass, Count: 1})
		if err != nil {
			t.Fatal(err)
		}
		return cred.String()
	}
	t.Fatalf("no %s challenge", alg)
	return ""
}

func TestRegisterMD5(t *testing.T) {
	e := newEnv(t)
	p := e.phone("1002", "pw-1002", "UDP")
	req := p.registerReq([]string{"<sip:1002@127.0.0.1:6001>"})
	res := p.do(req)
	auth := answer(t, res, "MD5", "1002", "pw-1002", req)
	req2 := p.registerReq([]string{"<sip:1002@127.0.0.1:6001>"}, sip.NewHeader("Authorization", auth))
	if res := p.do(req2); res.StatusCode != 200 {
		t.Fatalf("MD5 register: %d %s", res.StatusCode, res.Reason)
	}
}

func TestRegisterRefusals(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name       string
		user, pass string
		to         string // To/From user if different from the authenticated one
		domain     string
		want       int
	}{
		{name: "wrong password", user: "1001", pass: "nope", want: 401},
		{name: "unknown user", user: "9999", pass: "pw-9999", want: 401},
		{name: "another user's address", user: "1001", pass: "pw-1001", to: "1002", want: 403},
		{name: "another domain", user: "1001", pass: "pw-1001", domain: "evil.example", want: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := e.phone(tt.user, tt.pass, "UDP")
			req := p.registerReq([]string{"<sip:x@127.0.0.1:7000>"})
			if tt.to != "" {
				aor := sip.Uri{Scheme: "sip", User: tt.to, Host: testDomain}
				req.ReplaceHeader(&sip.ToHeader{Address: aor, Params: sip.NewParams()})
			}
			if tt.domain != "" {
				req.Recipient.Host = tt.domain
				to := req.To()
				to.Address.Host = tt.domain
			}
			res := p.do(req)
			if res.StatusCode == 401 {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				p.cseq++
				var err error
				res, err = p.client.DoDigestAuth(ctx, req, res, sipDigest(tt.user, tt.pass))
				if err != nil {
					t.Fatal(err)
				}
			}
			if res.StatusCode != tt.want {
				t.Fatalf("status %d %s, want %d", res.StatusCode, res.Reason, tt.want)
			}
			for _, b := range e.srv.Registrations() {
				if strings.Contains(b.Contact, "7000") {
					t.Fatalf("refused REGISTER left a binding: %+v", b)
				}
			}
		})
	}
	// Unknown user and wrong password must look alike.
	if strings.Contains(e.logBuf.String(), "password") {
		t.Error("log mentions a password")
	}
}

func TestSeveralContactsQueryAndRemoval(t *testing.T) {
	e := newEnv(t)
	desk := e.phone("1001", "pw-1001", "UDP")
	mobile := e.phone("1001", "pw-1001", "TCP")
	if res := desk.register([]string{"<sip:1001@127.0.0.1:6101>"}, sip.NewHeader("Expires", "300")); res.StatusCode != 200 {
		t.Fatal(res.StatusCode)
	}
	res := mobile.register([]string{"<sip:1001@127.0.0.1:6102;transport=tcp>;expires=200", "<sip:1001@127.0.0.1:6103>;expires=100"})
	if res.StatusCode != 200 {
		t.Fatal(res.StatusCode)
	}
	got := contactExpires(res)
	if len(got) != 3 || got["sip:1001@127.0.0.1:6101"] == "" || got["sip:1001@127.0.0.1:6102;transport=tcp"] != "200" || got["sip:1001@127.0.0.1:6103"] != "100" {
		t.Fatalf("contacts %v", got)
	}
	// A REGISTER without Contact is a query.
	if q := contactExpires(desk.register(nil)); len(q) != 3 {
		t.Fatalf("query returned %v", q)
	}
	// Expires 0 removes one.
	res = desk.register([]string{"<sip:1001@127.0.0.1:6101>;expires=0"})
	if got := contactExpires(res); res.StatusCode != 200 || len(got) != 2 {
		t.Fatalf("after removal %d %v", res.StatusCode, got)
	}
	// "*" without Expires: 0 is malformed.
	if res := desk.register([]string{"*"}); res.StatusCode != 400 {
		t.Fatalf("wildcard without Expires 0: %d", res.StatusCode)
	}
	res = desk.register([]string{"*"}, sip.NewHeader("Expires", "0"))
	if res.StatusCode != 200 || len(contactExpires(res)) != 0 || len(e.srv.UserBindings("1001")) != 0 {
		t.Fatalf("wildcard removal: %d %v", res.StatusCode, e.srv.UserBindings("1001"))
	}
	if st, _ := e.st.Bindings(context.Background()); len(st) != 0 {
		t.Fatalf("store still has %d bindings", len(st))
	}
}

func TestExpiresLimits(t *testing.T) {
	e := newEnv(t)
	p := e.phone("1003", "pw-1003", "UDP")
	res := p.register([]string{"<sip:1003@127.0.0.1:6201>;expires=1"})
	if res.StatusCode != 423 {
		t.Fatalf("too brief: %d", res.StatusCode)
	}
	if h := res.GetHeader("Min-Expires"); h == nil || h.Value() != "2" {
		t.Fatalf("Min-Expires %v", h)
	}
	res = p.register([]string{"<sip:1003@127.0.0.1:6201>;expires=999999"})
	if got := contactExpires(res)["sip:1003@127.0.0.1:6201"]; res.StatusCode != 200 || got != "3600" {
		t.Fatalf("max expires: %d %q", res.StatusCode, got)
	}
	res = p.register([]string{"<sip:1003@127.0.0.1:6202>"}, sip.NewHeader("Expires", "soon"))
	if res.StatusCode != 400 {
		t.Fatalf("bad Expires: %d", res.StatusCode)
	}
	// Default expiry when none is given.
	res = p.register([]string{"<sip:1003@127.0.0.1:6203>"})
	if got := contactExpires(res)["sip:1003@127.0.0.1:6203"]; got != "600" {
		t.Fatalf("default expires %q", got)
	}
	// Too many contacts.
	var cs []string
	for i := range 5 {
		cs = append(cs, fmt.Sprintf("<sip:1003@127.0.0.1:%d>", 6300+i))
	}
	if res := p.register(cs); res.StatusCode != 403 {
		t.Fatalf("over max_contacts: %d", res.StatusCode)
	}
}

func TestBindingExpiresOnTime(t *testing.T) {
	e := newEnv(t)
	p := e.phone("1001", "pw-1001", "UDP")
	start := time.Now()
	res := p.register([]string{"<sip:1001@127.0.0.1:6401>;expires=2"})
	if res.StatusCode != 200 {
		t.Fatal(res.StatusCode)
	}
	for len(e.srv.UserBindings("1001")) > 0 {
		if time.Since(start) > 3*time.Second {
			t.Fatalf("binding still there %s after a 2s registration", time.Since(start))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if time.Since(start) < 1900*time.Millisecond {
		t.Fatalf("binding gone early, after %s", time.Since(start))
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		st, _ := e.st.Bindings(context.Background())
		if len(st) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("expired binding still in the store")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(e.logBuf.String(), "registration expired") {
		t.Error("expiry not logged")
	}
}

func TestRestartKeepsBindings(t *testing.T) {
	e := newEnv(t)
	p := e.phone("1002", "pw-1002", "UDP")
	if res := p.register([]string{"<sip:1002@127.0.0.1:6501>;expires=300"}); res.StatusCode != 200 {
		t.Fatal(res.StatusCode)
	}
	e.restart()
	bs := e.srv.UserBindings("1002")
	if len(bs) != 1 || bs[0].Contact != "sip:1002@127.0.0.1:6501" {
		t.Fatalf("after restart: %+v", bs)
	}
	if left := time.Until(bs[0].Expires); left < 290*time.Second || left > 300*time.Second {
		t.Fatalf("expiry not kept: %s left", left)
	}
}

func TestInstanceReplacesOldContact(t *testing.T) {
	e := newEnv(t)
	p := e.phone("1001", "pw-1001", "UDP")
	inst := `;+sip.instance="<urn:uuid:00000000-0000-0000-0000-000000000001>";reg-id=1`
	p.register([]string{"<sip:1001@127.0.0.1:6601>" + inst})
	res := p.register([]string{"<sip:1001@127.0.0.1:6602>" + inst})
	got := contactExpires(res)
	if len(got) != 1 || got["sip:1001@127.0.0.1:6602"] == "" {
		t.Fatalf("same instance should replace its binding: %v", got)
	}
	c := res.GetHeaders("Contact")[0].(*sip.ContactHeader)
	if v, _ := c.Params.Get("+sip.instance"); !strings.Contains(v, "urn:uuid:") {
		t.Fatalf("instance not echoed: %s", c.Value())
	}
}

func TestStaleNonce(t *testing.T) {
	e := newEnv(t)
	p := e.phone("1001", "pw-1001", "UDP")
	req := p.registerReq([]string{"<sip:1001@127.0.0.1:6701>"})
	res := p.do(req)
	auth := answer(t, res, "SHA-256", "1001", "pw-1001", req)
	e.clock.advance(2 * time.Minute) // past the nonce lifetime
	res = p.do(p.registerReq([]string{"<sip:1001@127.0.0.1:6701>"}, sip.NewHeader("Authorization", auth)))
	if res.StatusCode != 401 || !strings.Contains(res.GetHeader("WWW-Authenticate").Value(), "stale=true") {
		t.Fatalf("old nonce: %d %v", res.StatusCode, res.GetHeader("WWW-Authenticate"))
	}
	if len(e.srv.UserBindings("1001")) != 0 {
		t.Fatal("registered with an expired nonce")
	}
	// A wrong password with an old nonce is not "stale": it is just wrong.
	req = p.registerReq([]string{"<sip:1001@127.0.0.1:6701>"})
	res = p.do(req)
	bad := answer(t, res, "SHA-256", "1001", "wrong", req)
	e.clock.advance(2 * time.Minute)
	res = p.do(p.registerReq([]string{"<sip:1001@127.0.0.1:6701>"}, sip.NewHeader("Authorization", bad)))
	if res.StatusCode != 401 || strings.Contains(res.GetHeader("WWW-Authenticate").Value(), "stale") {
		t.Fatalf("wrong password, old nonce: %d %v", res.StatusCode, res.GetHeader("WWW-Authenticate"))
	}
}

func TestOptions(t *testing.T) {
	e := newEnv(t)
	p := e.phone("1001", "pw-1001", "UDP")
	req := sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", Host: testDomain})
	req.SetDestination(e.udp)
	res := p.do(req)
	if res.StatusCode != 200 || res.GetHeader("Allow") == nil || !strings.Contains(res.GetHeader("Allow").Value(), "REGISTER") {
		t.Fatalf("OPTIONS: %d %v", res.StatusCode, res.GetHeader("Allow"))
	}
	if h := res.GetHeader("Accept"); h == nil || h.Value() != "application/sdp" {
		t.Fatalf("Accept: %v", h)
	}
}

func TestMalformedInput(t *testing.T) {
	e := newEnv(t)
	bad := "REGISTER sip:switchboard.local SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKbad1\r\n" +
		"From: <sip:1001@switchboard.local>;tag=a\r\n" +
		"To: <sip:1001@switchboard.local>\r\n" +
		"Call-ID: bad-1\r\n" +
		"CSeq: 1 REGISTER\r\n" +
		"Content-Length: nope\r\n\r\n"
	res := rawUDP(t, e.udp, bad, 2*time.Second)
	if !strings.HasPrefix(res, "SIP/2.0 400 ") || !strings.Contains(res, "Call-ID: bad-1") {
		t.Fatalf("malformed request answered with %q", res)
	}
	// Requests that parse but lack what every request carries, or whose
	// CSeq cannot be read, get 400 naming the problem.
	n := 0
	options := func(drop, add string) string {
		n++
		m := "OPTIONS sip:switchboard.local SIP/2.0\r\n" +
			fmt.Sprintf("Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKbad2-%d;rport\r\n", n) +
			"From: <sip:probe@switchboard.local>;tag=a\r\n" +
			"To: <sip:switchboard.local>\r\n" +
			"Call-ID: bad-2\r\n" +
			"CSeq: 1 OPTIONS\r\n" +
			"Max-Forwards: 70\r\n"
		if drop != "" {
			m = regexp.MustCompile(`(?m)^`+drop+`:.*\r\n`).ReplaceAllString(m, "")
		}
		return m + add + "Content-Length: 0\r\n\r\n"
	}
	for name, msg := range map[string]string{
		"no From":           options("From", ""),
		"no To":             options("To", ""),
		"CSeq of INVITE":    options("CSeq", "CSeq: 1 INVITE\r\n"),
		"CSeq not a number": options("CSeq", "CSeq: abc OPTIONS\r\n"),
	} {
		res := rawUDP(t, e.udp, msg, 2*time.Second)
		if !strings.HasPrefix(res, "SIP/2.0 400 ") || !strings.Contains(res, "Call-ID: bad-2") || !strings.Contains(res, "branch=z9hG4bKbad2") ||
			!strings.Contains(res, "Warning: 399 switchboard") || strings.Contains(res, "strconv") {
			t.Errorf("%s: answered with %q", name, res)
		}
	}
	if res := rawUDP(t, e.udp, options("", ""), 2*time.Second); !strings.HasPrefix(res, "SIP/2.0 200 ") {
		t.Errorf("a well-formed OPTIONS: %q", res)
	}
	for _, garbage := range []string{"\x00\x01\x02hello", "GET / HTTP/1.1\r\n\r\n", strings.Repeat("A", 3000), "SIP/2.0 200 OK\r\n\r\n"} {
		if res := rawUDP(t, e.udp, garbage, 200*time.Millisecond); res != "" {
			t.Errorf("garbage %q answered with %q", garbage[:min(10, len(garbage))], res)
		}
	}
	// Garbage over TCP closes nothing but that connection.
	c, err := netDial("tcp", e.tcp)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write([]byte("\x16\x03\x01 not sip at all\r\n\r\n"))
	c.Close()
	// The server still works.
	p := e.phone("1001", "pw-1001", "UDP")
	if res := p.register([]string{"<sip:1001@127.0.0.1:6801>"}); res.StatusCode != 200 {
		t.Fatalf("after garbage: %d", res.StatusCode)
	}
}
