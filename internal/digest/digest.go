package digest

import (
	"crypto/md5"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strings"
)

// Algorithm names as they appear in the algorithm parameter.
const (
	MD5    = "MD5"
	SHA256 = "SHA-256"
)

// ErrMalformed reports a credentials header that cannot be parsed.
var ErrMalformed = errors.New("digest: malformed credentials")

func newHash(alg string) (hash.Hash, error) {
	switch strings.ToUpper(alg) {
	case "", MD5:
		return md5.New(), nil
	case SHA256:
		return sha256.New(), nil
	}
	return nil, fmt.Errorf("digest: unsupported algorithm %q", alg)
}

// H returns the lowercase hex hash of s with alg (RFC 7616 §3.4.1).
func H(alg, s string) string {
	h, err := newHash(alg)
	if err != nil {
		return ""
	}
	h.Write([]byte(s))
	return hex.EncodeToString(h.Sum(nil))
}

// HA1 is H(username:realm:password), what the store keeps instead of the
// password (RFC 7616 §3.4.2).
func HA1(alg, username, realm, password string) string {
	return H(alg, username+":"+realm+":"+password)
}

// Credentials are the parameters of an Authorization or
// Proxy-Authorization header (RFC 7616 §3.4).
type Credentials struct {
	Username  string
	Realm     string
	Nonce     string
	URI       string
	Response  string
	Algorithm string
	CNonce    string
	Opaque    string
	QOP       string
	NC        string
}

// ExpectedResponse computes the request-digest for method with the given HA1
// (RFC 7616 §3.4.1; without qop, RFC 2069 compatibility per RFC 2617 §3.2.2.1).
func (c *Credentials) ExpectedResponse(method, ha1 string) string {
	alg := c.Algorithm
	ha2 := H(alg, method+":"+c.URI)
	if c.QOP == "" {
		return H(alg, ha1+":"+c.Nonce+":"+ha2)
	}
	return H(alg, ha1+":"+c.Nonce+":"+c.NC+":"+c.CNonce+":"+c.QOP+":"+ha2)
}

// Verify reports whether the response in c is right for method and ha1. The
// comparison takes constant time.
func (c *Credentials) Verify(method, ha1 string) bool {
	if c.QOP != "" && c.QOP != "auth" {
		return false
	}
	if c.QOP == "auth" && (c.NC == "" || c.CNonce == "") {
		return false
	}
	want := c.ExpectedResponse(method, ha1)
	if want == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(c.Response))) == 1
}

// Parse reads a header value such as `Digest username="1001", realm="x", …`.
func Parse(header string) (Credentials, error) {
	var c Credentials
	scheme, rest, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Digest") {
		return c, ErrMalformed
	}
	err := parseParams(rest, func(k, v string) {
		switch k {
		case "username":
			c.Username = v
		case "realm":
			c.Realm = v
		case "nonce":
			c.Nonce = v
		case "uri":
			c.URI = v
		case "response":
			c.Response = v
		case "algorithm":
			c.Algorithm = strings.ToUpper(v)
		case "cnonce":
			c.CNonce = v
		case "opaque":
			c.Opaque = v
		case "qop":
			c.QOP = strings.ToLower(v)
		case "nc":
			c.NC = v
		}
	})
	if err != nil {
		return Credentials{}, err
	}
	if c.Username == "" || c.Nonce == "" || c.Response == "" || c.URI == "" {
		return c, ErrMalformed
	}
	if c.Algorithm == "" {
		c.Algorithm = MD5
	}
	if c.Algorithm != MD5 && c.Algorithm != SHA256 {
		return c, fmt.Errorf("digest: unsupported algorithm %q", c.Algorithm)
	}
	return c, nil
}

// parseParams splits `a=b, c="d, e"` into keys and values and hands each
// pair to param, honouring quoted strings with backslash escapes (RFC 7230
// §3.2.6). Keys are lowercased; a key given twice makes the whole list
// malformed. A quoted value without escapes is a substring of s: parsing
// allocates nothing for a usual header (it runs for every authenticated
// request).
func parseParams(s string, param func(key, val string)) error {
	var seenBuf [16]string
	seen := seenBuf[:0]
	i := 0
	for {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == ',') {
			i++
		}
		if i >= len(s) {
			return nil
		}
		start := i
		for i < len(s) && s[i] != '=' && s[i] != ',' {
			i++
		}
		if i >= len(s) || s[i] != '=' {
			return ErrMalformed
		}
		key := strings.ToLower(strings.TrimSpace(s[start:i]))
		i++
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		var val string
		if i < len(s) && s[i] == '"' {
			i++
			end := strings.IndexAny(s[i:], `"\`)
			if end >= 0 && s[i+end] == '"' {
				val = s[i : i+end] // no escapes
				i += end + 1
			} else {
				var b strings.Builder
				closed := false
				for i < len(s) {
					ch := s[i]
					if ch == '\\' && i+1 < len(s) {
						b.WriteByte(s[i+1])
						i += 2
						continue
					}
					if ch == '"' {
						closed = true
						i++
						break
					}
					b.WriteByte(ch)
					i++
				}
				if !closed {
					return ErrMalformed
				}
				val = b.String()
			}
		} else {
			start := i
			for i < len(s) && s[i] != ',' {
				i++
			}
			val = strings.TrimSpace(s[start:i])
		}
		if key == "" {
			return ErrMalformed
		}
		for _, k := range seen {
			if k == key {
				return ErrMalformed
			}
		}
		seen = append(seen, key)
		param(key, val)
	}
}

// Challenge formats a WWW-Authenticate / Proxy-Authenticate value
// (RFC 7616 §3.3).
func Challenge(realm, nonce, alg string, stale bool) string {
	var b strings.Builder
	b.WriteString(`Digest realm="`)
	b.WriteString(realm)
	b.WriteString(`", nonce="`)
	b.WriteString(nonce)
	b.WriteString(`", algorithm=`)
	b.WriteString(alg)
	b.WriteString(`, qop="auth"`)
	if stale {
		b.WriteString(", stale=true")
	}
	return b.String()
}
