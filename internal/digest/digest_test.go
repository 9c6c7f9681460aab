package digest

import (
	"strings"
	"testing"
	"time"
)

// The worked examples of RFC 7616 §3.9.1 (both algorithms) and RFC 2617 §3.5.
func TestRFCVectors(t *testing.T) {
	tests := []struct {
		name     string
		header   string
		method   string
		user     string
		realm    string
		password string
	}{
		{
			name: "RFC 7616 MD5",
			header: `Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", algorithm=MD5, ` +
				`nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", ` +
				`qop=auth, response="8ca523f5e9506fed4657c9700eebdbec", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"`,
			method: "GET", user: "Mufasa", realm: "http-auth@example.org", password: "Circle of Life",
		},
		{
			name: "RFC 7616 SHA-256",
			header: `Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", algorithm=SHA-256, ` +
				`nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", ` +
				`qop=auth, response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"`,
			method: "GET", user: "Mufasa", realm: "http-auth@example.org", password: "Circle of Life",
		},
		{
			name: "RFC 2617",
			header: `Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", ` +
				`uri="/dir/index.html", qop=auth, nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", ` +
				`opaque="5ccc069c403ebaf9f0171e9517f40e41"`,
			method: "GET", user: "Mufasa", realm: "testrealm@host.com", password: "Circle Of Life",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(tt.header)
			if err != nil {
				t.Fatal(err)
			}
			ha1 := HA1(c.Algorithm, tt.user, tt.realm, tt.password)
			if !c.Verify(tt.method, ha1) {
				t.Fatalf("vector does not verify: want %s, computed %s", c.Response, c.ExpectedResponse(tt.method, ha1))
			}
			if c.Verify("POST", ha1) {
				t.Error("verifies for another method")
			}
			if c.Verify(tt.method, HA1(c.Algorithm, tt.user, tt.realm, tt.password+"x")) {
				t.Error("verifies with a wrong password")
			}
		})
	}
}

func TestNoQOP(t *testing.T) {
	ha1 := HA1(MD5, "1001", "switchboard.local", "secret")
	c := Credentials{Username: "1001", Realm: "switchboard.local", Nonce: "abc", URI: "sip:switchboard.local", Algorithm: MD5}
	c.Response = H(MD5, ha1+":abc:"+H(MD5, "REGISTER:sip:switchboard.local"))
	if !c.Verify("REGISTER", ha1) {
		t.Fatal("RFC 2069 style response rejected")
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"escaped quote", `Digest username="a\"b", nonce="n", uri="sip:x", response="r"`, true},
		{"comma inside quotes", `Digest username="a,b", nonce="n", uri="sip:x", response="r"`, true},
		{"basic scheme", `Basic dXNlcjpwYXNz`, false},
		{"unterminated", `Digest username="abc, nonce="n"`, false},
		{"missing response", `Digest username="a", nonce="n", uri="sip:x"`, false},
		{"duplicate param", `Digest username="a", username="b", nonce="n", uri="sip:x", response="r"`, false},
		{"unknown algorithm", `Digest username="a", nonce="n", uri="sip:x", response="r", algorithm=SHA-512`, false},
		{"empty", ``, false},
		{"no equals", `Digest username`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("Parse(%q) err = %v, want ok=%v", tt.in, err, tt.ok)
			}
			if tt.name == "escaped quote" && c.Username != `a"b` {
				t.Errorf("username = %q", c.Username)
			}
			if tt.name == "comma inside quotes" && c.Username != "a,b" {
				t.Errorf("username = %q", c.Username)
			}
		})
	}
}

func TestChallenge(t *testing.T) {
	got := Challenge("switchboard.local", "N", SHA256, true)
	want := `Digest realm="switchboard.local", nonce="N", algorithm=SHA-256, qop="auth", stale=true`
	if got != want {
		t.Fatalf("got %s", got)
	}
}

func TestNonces(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	n := NewNonces(time.Minute, clock)
	nonce := n.Issue()
	if n.Check(nonce) != NonceValid {
		t.Fatal("fresh nonce not valid")
	}
	if n.Issue() == nonce {
		t.Fatal("two nonces are equal")
	}
	now = now.Add(59 * time.Second)
	if n.Check(nonce) != NonceValid {
		t.Fatal("nonce invalid before its lifetime")
	}
	now = now.Add(2 * time.Second)
	if n.Check(nonce) != NonceStale {
		t.Fatal("old nonce accepted")
	}
	other := NewNonces(time.Minute, clock)
	if other.Check(nonce) != NonceUnknown {
		t.Fatal("nonce from another key accepted")
	}
	tampered := []byte(nonce)
	tampered[3] ^= 1
	if n.Check(string(tampered)) == NonceValid {
		t.Fatal("tampered nonce accepted")
	}
	for _, bad := range []string{"", "short", strings.Repeat("A", 43), "!!!!"} {
		if n.Check(bad) != NonceUnknown {
			t.Errorf("Check(%q) not unknown", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(`Digest username="Mufasa", realm="r", nonce="n", uri="/", response="x", qop=auth, nc=00000001, cnonce="c"`)
	f.Add(`Digest a="\`)
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Parse(s)
		if err == nil {
			_ = c.Verify("REGISTER", "00")
		}
	})
}

// BenchmarkVerifyMD5 is the check done for SIPp and most phones.
func BenchmarkVerifyMD5(b *testing.B) {
	ha1 := HA1(MD5, "1001", "switchboard.local", "secret")
	c := Credentials{Username: "1001", Realm: "switchboard.local", Nonce: "abcdef", URI: "sip:switchboard.local", Algorithm: MD5, QOP: "auth", NC: "00000001", CNonce: "xyz"}
	c.Response = c.ExpectedResponse("REGISTER", ha1)
	b.ReportAllocs()
	for b.Loop() {
		if !c.Verify("REGISTER", ha1) {
			b.Fatal("no")
		}
	}
}

func BenchmarkVerifySHA256(b *testing.B) {
	ha1 := HA1(SHA256, "1001", "switchboard.local", "secret")
	c := Credentials{Username: "1001", Realm: "switchboard.local", Nonce: "abcdef", URI: "sip:switchboard.local", Algorithm: SHA256, QOP: "auth", NC: "00000001", CNonce: "xyz"}
	c.Response = c.ExpectedResponse("REGISTER", ha1)
	b.ReportAllocs()
	for b.Loop() {
		if !c.Verify("REGISTER", ha1) {
			b.Fatal("no")
		}
	}
}

// BenchmarkParse is the Authorization header of a phone's REGISTER.
func BenchmarkParse(b *testing.B) {
	h := `Digest username="1001", realm="switchboard.local", nonce="AZ3k1bV0eXo5k2qH0Zl8nW4c1xg2m7Lr9u6YtA", ` +
		`uri="sip:switchboard.local", response="6629fae49393a05397450978507c4ef1", algorithm=MD5, ` +
		`cnonce="0a4f113b", qop=auth, nc=00000001`
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(h); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNonces is a challenge's nonce and its check when the answer
// comes back.
func BenchmarkNonces(b *testing.B) {
	n := NewNonces(time.Minute, nil)
	b.ReportAllocs()
	for b.Loop() {
		if n.Check(n.Issue()) != NonceValid {
			b.Fatal("fresh nonce not valid")
		}
	}
}
