package webhook

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/url"
)

// Label names a webhook where its URL must not be shown: in logs and in
// /metrics, which is served without a token. A webhook URL often carries
// its secret (a token in the query, a Slack-style secret path, a password),
// so the label keeps only the scheme and host, which tell an operator where
// deliveries go, and adds a short fingerprint of the whole URL, which tells
// two webhooks on one host apart without revealing anything of the rest:
// "https://hooks.example.com#3fa2c1d0".
func Label(raw string) string {
	sum := sha256.Sum256([]byte(raw))
	fp := hex.EncodeToString(sum[:4])
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "webhook#" + fp
	}
	return u.Scheme + "://" + u.Host + "#" + fp
}

// hideURL rewrites a request error so that it does not quote the URL, as
// net/http's errors do (`Post "https://…?token=…": …`), for the error ends
// up in logs and in the delivery state.
func hideURL(err error, label string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return &urlError{op: ue.Op, label: label, err: ue.Err}
	}
	return err
}

// urlError is a *url.Error with the webhook's label instead of its URL.
type urlError struct {
	op, label string
	err       error
}

func (e *urlError) Error() string { return e.op + " " + e.label + ": " + e.err.Error() }
func (e *urlError) Unwrap() error { return e.err }
