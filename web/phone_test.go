package web

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestPhoneHandler(t *testing.T) {
	h, err := PhoneHandler(PhoneConfig{Domain: "pbx.example.org"})
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		path     string
		status   int
		typ      string
		contains string
	}{
		"page":      {"/", 200, "text/html", `<meta name="sip-domain" content="pbx.example.org">`},
		"script":    {"/phone/sipua.js", 200, "javascript", "class UA"},
		"styles":    {"/phone/phone.css", 200, "text/css", ".keypad"},
		"index":     {"/phone/index.html", 302, "", ""},
		"missing":   {"/phone/nope.js", 404, "", ""},
		"testids":   {"/", 200, "text/html", `data-testid="call-button"`},
		"no webrtc": {"/phone/phone.js", 200, "javascript", "does not support WebRTC"},
		"icon link": {"/", 200, "text/html", `<link rel="icon" type="image/svg+xml" href="/phone/icon.svg">`},
		"icon":      {"/phone/icon.svg", 200, "image/svg+xml", "<svg"},
	} {
		t.Run(name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", tc.path, nil))
			res := rec.Result()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", res.StatusCode, tc.status)
			}
			if tc.status != 200 {
				return
			}
			if ct := res.Header.Get("Content-Type"); !strings.Contains(ct, tc.typ) {
				t.Fatalf("Content-Type %q, want %s", ct, tc.typ)
			}
			if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
				t.Fatalf("Content-Security-Policy %q", csp)
			}
			if !strings.Contains(string(body), tc.contains) {
				t.Fatalf("body has no %q", tc.contains)
			}
		})
	}
	// The domain is HTML-escaped, not injected.
	h, err = PhoneHandler(PhoneConfig{Domain: `x"><script>alert(1)</script>`})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if strings.Contains(rec.Body.String(), "<script>alert") {
		t.Fatal("domain injected into the page unescaped")
	}
}
