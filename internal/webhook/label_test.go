package webhook

import (
	"strings"
	"testing"
)

func TestLabelHidesURLSecrets(t *testing.T) {
	for name, tc := range map[string]struct{ url, prefix string }{
		"query token":  {"https://hooks.example.com/in?token=S3CRET", "https://hooks.example.com#"},
		"secret path":  {"https://hooks.slack.com/services/T0/B0/S3CRET", "https://hooks.slack.com#"},
		"password":     {"http://u:S3CRET@127.0.0.1:9000/h", "http://127.0.0.1:9000#"},
		"not a URL":    {"::S3CRET", "webhook#"},
		"no host":      {"mailto:S3CRET@example.com", "webhook#"},
		"port and all": {"http://[::1]:8080/S3CRET?x=S3CRET#S3CRET", "http://[::1]:8080#"},
	} {
		t.Run(name, func(t *testing.T) {
			l := Label(tc.url)
			if !strings.HasPrefix(l, tc.prefix) || len(l) != len(tc.prefix)+8 || strings.Contains(l, "S3CRET") {
				t.Errorf("Label(%q) = %q, want %q and 8 hex digits", tc.url, l, tc.prefix)
			}
			if Label(tc.url) != l {
				t.Errorf("Label(%q) is not stable", tc.url)
			}
		})
	}
	if a, b := Label("https://h.example/a?t=1"), Label("https://h.example/a?t=2"); a == b {
		t.Errorf("two webhooks on one host share the label %q", a)
	}
}
