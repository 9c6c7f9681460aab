package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names of the Standard Webhooks specification ("Signature scheme").
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// UserAgent is the User-Agent of delivery requests.
const UserAgent = "Switchboard-Webhooks"

// secretPrefix marks a base64-encoded secret, as Standard Webhooks
// libraries generate them.
const secretPrefix = "whsec_"

// Errors of signature verification.
var (
	// ErrSignature reports that no signature in the header matches.
	ErrSignature = errors.New("webhook: no matching signature")
	// ErrTimestamp reports a missing, malformed or too old (or too new)
	// webhook-timestamp.
	ErrTimestamp = errors.New("webhook: bad timestamp")
	// ErrHeaders reports a missing webhook-id or webhook-signature header.
	ErrHeaders = errors.New("webhook: missing headers")
)

// signingKey returns the HMAC key of secret: a secret that starts with
// "whsec_" is the base64 encoding of the key (the Standard Webhooks
// convention); any other secret is used as it is, its bytes being the key.
func signingKey(secret string) ([]byte, error) {
	if rest, ok := strings.CutPrefix(secret, secretPrefix); ok {
		key, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return nil, fmt.Errorf("webhook: secret starts with %q but the rest is not base64: %w", secretPrefix, err)
		}
		return key, nil
	}
	return []byte(secret), nil
}

// sign computes the v1 signature of the signed content id.timestamp.body.
func sign(key []byte, id string, ts int64, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write(strconv.AppendInt(nil, ts, 10))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Sign returns the webhook-signature header value for a message: "v1," and
// the base64 of HMAC-SHA256(key, id + "." + unix seconds of ts + "." +
// body), where the key is secret's (see package doc and docs/webhooks.md:
// "whsec_" + base64 key, or the secret's bytes). A "whsec_" secret that is
// not valid base64 is used as raw bytes too; Config.Validate refuses it.
func Sign(secret, id string, ts time.Time, body []byte) string {
	key, err := signingKey(secret)
	if err != nil {
		key = []byte(secret)
	}
	return "v1," + base64.StdEncoding.EncodeToString(sign(key, id, ts.Unix(), body))
}

// Verify checks that signatures, a webhook-signature header value (one or
// more space-separated "v1,<base64>" entries), holds a valid signature of
// the message. It does not check the timestamp's age: see VerifyRequest.
func Verify(secret, id string, ts time.Time, body []byte, signatures string) error {
	key, err := signingKey(secret)
	if err != nil {
		return err
	}
	want := sign(key, id, ts.Unix(), body)
	for _, s := range strings.Fields(signatures) {
		version, sig, ok := strings.Cut(s, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err != nil {
			continue
		}
		if hmac.Equal(got, want) {
			return nil
		}
	}
	return ErrSignature
}

// VerifyRequest checks the Standard Webhooks headers of a received request
// with body: that webhook-timestamp is within tolerance of now (no check
// when tolerance is 0), which defeats replays, and that webhook-signature
// signs webhook-id, webhook-timestamp and body.
func VerifyRequest(secret string, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	id, sigs := h.Get(HeaderID), h.Get(HeaderSignature)
	if id == "" || sigs == "" {
		return ErrHeaders
	}
	sec, err := strconv.ParseInt(h.Get(HeaderTimestamp), 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %q", ErrTimestamp, h.Get(HeaderTimestamp))
	}
	ts := time.Unix(sec, 0)
	if tolerance > 0 && (now.Sub(ts) > tolerance || ts.Sub(now) > tolerance) {
		return fmt.Errorf("%w: %s is more than %s from now", ErrTimestamp, ts.UTC().Format(time.RFC3339), tolerance)
	}
	return Verify(secret, id, ts, body, sigs)
}
