package web

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestCheckOrigin(t *testing.T) {
	srv, err := New(Config{Tokens: []string{testToken}, AllowedOrigins: []string{"https://phone.example.com", "http://10.0.0.5:8080/"}},
		Deps{Service: newFake(), Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	reached := false
	h := srv.CheckOrigin(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		reached = true
		w.WriteHeader(http.StatusSwitchingProtocols)
	}))
	for name, tc := range map[string]struct {
		host    string
		origins []string
		pass    bool
	}{
		"no origin (softphone)":           {"127.0.0.1:8080", nil, true},
		"our own page":                    {"127.0.0.1:8080", []string{"http://127.0.0.1:8080"}, true},
		"our own page over https":         {"127.0.0.1:8443", []string{"https://127.0.0.1:8443"}, true},
		"host names differ in case":       {"Phone.Example.NET", []string{"https://phone.example.net"}, true},
		"behind a proxy, no port in Host": {"pbx.example.net", []string{"https://pbx.example.net"}, true},
		"ipv6 host":                       {"[::1]:8080", []string{"http://[::1]:8080"}, true},
		"allowed origin":                  {"127.0.0.1:8080", []string{"https://phone.example.com"}, true},
		"allowed with explicit default":   {"127.0.0.1:8080", []string{"https://phone.example.com:443"}, true},
		"allowed with port":               {"127.0.0.1:8080", []string{"http://10.0.0.5:8080"}, true},
		"another site":                    {"127.0.0.1:8080", []string{"https://evil.example"}, false},
		"same host, another port":         {"pbx.example.net:8080", []string{"http://pbx.example.net:3000"}, false},
		"a page on this machine":          {"127.0.0.1:8080", []string{"http://127.0.0.1:3000"}, true},
		"a page on localhost":             {"192.0.2.10:8080", []string{"http://localhost:5173"}, true},
		"a page on ipv6 loopback":         {"127.0.0.1:8080", []string{"http://[::1]:9000"}, true},
		"a name that only resolves there": {"127.0.0.1:8080", []string{"http://127.0.0.1.evil.example"}, false},
		"allowed host, another scheme":    {"127.0.0.1:8080", []string{"http://phone.example.com"}, false},
		"allowed host, another port":      {"127.0.0.1:8080", []string{"http://10.0.0.5:9090"}, false},
		"sandboxed page":                  {"127.0.0.1:8080", []string{"null"}, false},
		"not http":                        {"127.0.0.1:8080", []string{"file://127.0.0.1:8080"}, false},
		"two origins":                     {"127.0.0.1:8080", []string{"http://127.0.0.1:8080", "https://evil.example"}, false},
		"empty origin":                    {"127.0.0.1:8080", []string{""}, false},
	} {
		t.Run(name, func(t *testing.T) {
			reached = false
			r := httptest.NewRequest("GET", "/ws", nil)
			r.Host = tc.host
			for _, o := range tc.origins {
				r.Header.Add("Origin", o)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if reached != tc.pass {
				t.Fatalf("handler reached = %v, want %v", reached, tc.pass)
			}
			if !tc.pass && w.Code != http.StatusForbidden {
				t.Fatalf("refused with %d, want 403", w.Code)
			}
		})
	}
}
