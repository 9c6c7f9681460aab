package main

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/switchboard/switchboard/internal/webhook"
	"github.com/switchboard/switchboard/web"
)

// TestWebhookURLSecretsStayOutOfLogsAndMetrics configures two webhooks on
// one (dead) host whose URLs carry secrets in the password, the path and the
// query, as Slack-style and token-in-query receivers do, and checks that
// neither /metrics (served without a token) nor the log nor the delivery
// errors show them, while the two webhooks stay apart.
func TestWebhookURLSecretsStayOutOfLogsAndMetrics(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t)) // nothing listens: every attempt fails
	secrets := []string{"PASSWORDSECRET", "PATHSECRETONE", "QUERYSECRETONE", "PATHSECRETTWO", "QUERYSECRETTWO"}
	urls := []string{
		"http://hookuser:PASSWORDSECRET@" + addr + "/services/PATHSECRETONE/hook?token=QUERYSECRETONE",
		"http://" + addr + "/services/PATHSECRETTWO/hook?token=QUERYSECRETTWO",
	}
	var cfg strings.Builder
	cfg.WriteString("webhooks:\n")
	for _, u := range urls {
		fmt.Fprintf(&cfg, "  - {url: %q, secret: %q}\n", u, hookSecret)
	}
	e := startAPIWith(t, map[string]string{"1002": "bob-1002"}, cfg.String())
	bob := newPhone(t, fmt.Sprintf("127.0.0.1:%d", e.sipPort), "1002", "bob-1002", "")
	if code := bob.register(300); code != 200 {
		t.Fatalf("bob REGISTER: %d", code)
	}

	var hooks web.List[web.WebhookStatus]
	waitFor(t, "a failed attempt on both webhooks", func() bool {
		e.api("GET", "/api/v1/webhooks", nil, 200, &hooks)
		return len(hooks.Items) == 2 && hooks.Items[0].Attempts >= 1 && hooks.Items[1].Attempts >= 1
	})
	labels := map[string]bool{}
	for _, h := range hooks.Items {
		labels[h.Label] = true
		if !strings.HasPrefix(h.Label, "http://"+addr+"#") {
			t.Errorf("label %q: want the scheme and host, and a fingerprint", h.Label)
		}
		if h.LastError == "" || strings.Contains(h.LastError, "SECRET") {
			t.Errorf("last error %q: want the failure without the URL", h.LastError)
		}
	}
	for _, u := range urls {
		if !labels[webhook.Label(u)] {
			t.Errorf("no webhook labelled %q (got %v)", webhook.Label(u), labels)
		}
	}
	// The authenticated API still shows the URL, with the password masked.
	if want := strings.Replace(urls[0], "PASSWORDSECRET", "xxxxx", 1); hooks.Items[0].URL != want && hooks.Items[1].URL != want {
		t.Errorf("API URLs %q, %q: want one to be %q", hooks.Items[0].URL, hooks.Items[1].URL, want)
	}

	_, m := e.raw("GET", "/metrics", "", nil)
	for l := range labels {
		if want := fmt.Sprintf("switchboard_webhook_pending{webhook=%q} 1\n", l); !strings.Contains(string(m), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	log := e.stderr.String()
	if !strings.Contains(log, "webhook delivery failed") {
		t.Fatalf("the log has no failed delivery:\n%s", log)
	}
	for _, s := range secrets {
		if strings.Contains(string(m), s) {
			t.Errorf("/metrics shows %s", s)
		}
		if strings.Contains(log, s) || strings.Contains(log, url.QueryEscape(s)) {
			t.Errorf("the log shows %s", s)
		}
	}
	if t.Failed() {
		t.Logf("log:\n%s", tail(log, 4000))
	}
}
