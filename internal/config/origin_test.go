package config

import (
	"slices"
	"strings"
	"testing"
)

func TestAllowedOrigins(t *testing.T) {
	const ok = "web: {api_tokens: [abcdefgh], allowed_origins: [%s]}\n"
	cfg, err := Parse([]byte(strings.Replace(ok, "%s", "'https://phone.example.com', 'http://10.0.0.5:8080', 'https://example.org/'", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"https://phone.example.com", "http://10.0.0.5:8080", "https://example.org/"}; !slices.Equal(cfg.Web.AllowedOrigins, want) {
		t.Fatalf("allowed origins %q, want %q", cfg.Web.AllowedOrigins, want)
	}
	if cfg, err := Parse([]byte("web: {api_tokens: [abcdefgh]}\n")); err != nil || len(cfg.Web.AllowedOrigins) != 0 {
		t.Fatalf("default allowed origins %q (%v), want none", cfg.Web.AllowedOrigins, err)
	}
	for name, tc := range map[string]struct{ value, why string }{
		"no scheme":   {"'phone.example.com'", "the scheme must be http or https"},
		"ftp":         {"'ftp://example.com'", "the scheme must be http or https"},
		"path":        {"'https://example.com/phone'", "it must not have a path, query or fragment"},
		"query":       {"'https://example.com?x=1'", "it must not have a path, query or fragment"},
		"user":        {"'https://bob@example.com'", "it must not name a user"},
		"no host":     {"'https://'", "it has no host"},
		"bad port":    {"'https://example.com:99999'", "the port must be 1-65535"},
		"null origin": {"'null'", "the scheme must be http or https"},
		"wildcard":    {"'*'", "the scheme must be http or https"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(strings.Replace(ok, "%s", "'https://fine.example', "+tc.value, 1)))
			if err == nil {
				t.Fatalf("no error for %s", tc.value)
			}
			want := `web.allowed_origins[1] ` + `"` + strings.Trim(tc.value, "'") + `" is not an origin: ` + tc.why
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("error %q does not contain %q", err, want)
			}
		})
	}
}
