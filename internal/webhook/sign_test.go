package webhook_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/webhook"
)

// TestSignVectors checks Sign against signatures computed here with
// crypto/hmac directly, and against the example of the Standard Webhooks
// specification's reference libraries.
func TestSignVectors(t *testing.T) {
	hmacB64 := func(key []byte, msg string) string {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(msg))
		return base64.StdEncoding.EncodeToString(m.Sum(nil))
	}
	ts := time.Unix(1614265330, 0)
	body := []byte(`{"test": 2432232314}`)
	rawKey := []byte("\x31\xf2\x90\xf6\xbf\x06\x18\x8a\xab\x4f\x08\xd4\x3c\x3f\x08\x2c\xf6\x48\xe0\xed\x8b\x2d\xa5\xb0")
	for _, tc := range []struct {
		name, secret, id, want string
	}{
		{
			// The example of the Standard Webhooks libraries' tests.
			name:   "standard webhooks example",
			secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
			id:     "msg_p5jXN8AQM9LWM0D4loKWxJek",
			want:   "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
		},
		{
			name:   "whsec secret is base64 of the key",
			secret: "whsec_" + base64.StdEncoding.EncodeToString(rawKey),
			id:     "evt_01",
			want:   "v1," + hmacB64(rawKey, "evt_01.1614265330."+string(body)),
		},
		{
			name:   "other secret is the key's bytes",
			secret: "change-me-please",
			id:     "evt_02",
			want:   "v1," + hmacB64([]byte("change-me-please"), "evt_02.1614265330."+string(body)),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := webhook.Sign(tc.secret, tc.id, ts, body); got != tc.want {
				t.Errorf("Sign = %s, want %s", got, tc.want)
			}
			if err := webhook.Verify(tc.secret, tc.id, ts, body, tc.want); err != nil {
				t.Errorf("Verify of the expected signature: %v", err)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"type":"call.ended"}`)
	good := webhook.Sign(secret, "evt_1", now, body)
	header := func(id string, ts time.Time, sig string) http.Header {
		h := http.Header{}
		h.Set(webhook.HeaderID, id)
		h.Set(webhook.HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
		h.Set(webhook.HeaderSignature, sig)
		return h
	}
	for _, tc := range []struct {
		name   string
		secret string
		h      http.Header
		body   string
		want   error
	}{
		{"valid", secret, header("evt_1", now, good), string(body), nil},
		{"one of several", secret, header("evt_1", now, "v1,bm9wZQ== v2,xyz "+good), string(body), nil},
		{"wrong secret", "whsec_bm90LXRoZS1rZXk=", header("evt_1", now, good), string(body), webhook.ErrSignature},
		{"tampered body", secret, header("evt_1", now, good), `{"type":"call.started"}`, webhook.ErrSignature},
		{"other id", secret, header("evt_2", now, good), string(body), webhook.ErrSignature},
		{"other timestamp", secret, header("evt_1", now.Add(time.Second), good), string(body), webhook.ErrSignature},
		{"too old", secret, header("evt_1", now.Add(-6*time.Minute), webhook.Sign(secret, "evt_1", now.Add(-6*time.Minute), body)), string(body), webhook.ErrTimestamp},
		{"too new", secret, header("evt_1", now.Add(6*time.Minute), webhook.Sign(secret, "evt_1", now.Add(6*time.Minute), body)), string(body), webhook.ErrTimestamp},
		{"no signature", secret, header("evt_1", now, ""), string(body), webhook.ErrHeaders},
		{"bad timestamp", secret, http.Header{"Webhook-Id": {"evt_1"}, "Webhook-Timestamp": {"soon"}, "Webhook-Signature": {good}}, string(body), webhook.ErrTimestamp},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := webhook.VerifyRequest(tc.secret, tc.h, []byte(tc.body), now, 5*time.Minute)
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Errorf("VerifyRequest = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	ok := webhook.Target{URL: "http://127.0.0.1:9000/hook", Secret: "secret-1"}
	for _, tc := range []struct {
		name string
		cfg  webhook.Config
		ok   bool
	}{
		{"defaults", webhook.Config{Webhooks: []webhook.Target{ok}}, true},
		{"no webhooks", webhook.Config{}, true},
		{"ftp", webhook.Config{Webhooks: []webhook.Target{{URL: "ftp://x/y", Secret: "s"}}}, false},
		{"no secret", webhook.Config{Webhooks: []webhook.Target{{URL: ok.URL}}}, false},
		{"bad whsec", webhook.Config{Webhooks: []webhook.Target{{URL: ok.URL, Secret: "whsec_***"}}}, false},
		{"duplicate url", webhook.Config{Webhooks: []webhook.Target{ok, ok}}, false},
		{"empty event", webhook.Config{Webhooks: []webhook.Target{{URL: ok.URL, Secret: "s", Events: []string{""}}}}, false},
		{"negative timeout", webhook.Config{Timeout: -time.Second}, false},
		{"backoffs inverted", webhook.Config{MinBackoff: time.Hour, MaxBackoff: time.Minute}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate = %v, want ok %v", err, tc.ok)
			}
		})
	}
}
