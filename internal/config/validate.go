package config

import (
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// ExampleToken is the API token of the shipped demo config. It is refused
// when the web listener is reachable from other hosts.
const ExampleToken = "change-me"

// Validate checks every key and returns all problems found, each naming the
// key, the bad value and the rule.
func (c *Config) Validate() error {
	v := &validator{}
	v.hostPort("sip.listen", c.SIP.Listen)
	if ap, err := netip.ParseAddrPort(c.SIP.Listen); err == nil && ap.Addr().IsUnspecified() {
		v.addf("sip.listen %s must name one address of this host, such as 192.0.2.10:5060: the server gives it to phones in Via and Contact, where %s cannot be reached", c.SIP.Listen, ap.Addr())
	}
	if c.SIP.Domain == "" || strings.ContainsAny(c.SIP.Domain, " \t@:;") {
		v.addf("sip.domain %q must be a host name such as switchboard.local", c.SIP.Domain)
	}
	for i, a := range c.SIP.Aliases {
		if a == "" || strings.ContainsAny(a, " \t@;") {
			v.addf("sip.aliases[%d] %q must be a host name or address", i, a)
		}
	}
	v.positive("sip.min_expires", c.SIP.MinExpires)
	v.positive("sip.max_expires", c.SIP.MaxExpires)
	v.positive("sip.default_expires", c.SIP.DefaultExpires)
	if c.SIP.MinExpires > c.SIP.MaxExpires {
		v.addf("sip.min_expires %s must not be above sip.max_expires %s", c.SIP.MinExpires, c.SIP.MaxExpires)
	}
	if c.SIP.DefaultExpires < c.SIP.MinExpires || c.SIP.DefaultExpires > c.SIP.MaxExpires {
		v.addf("sip.default_expires %s must lie between sip.min_expires %s and sip.max_expires %s", c.SIP.DefaultExpires, c.SIP.MinExpires, c.SIP.MaxExpires)
	}
	if c.SIP.MaxContacts < 1 || c.SIP.MaxContacts > 100 {
		v.addf("sip.max_contacts %d must be between 1 and 100", c.SIP.MaxContacts)
	}
	v.positive("sip.nonce_lifetime", c.SIP.NonceLifetime)
	v.positive("sip.ring_timeout", c.SIP.RingTimeout)
	if c.SIP.DrainTimeout != nil && (*c.SIP.DrainTimeout < 0 || c.SIP.DrainTimeout.D() > time.Hour) {
		v.addf("sip.drain_timeout %s must be between 0 (end calls at once) and 1h", *c.SIP.DrainTimeout)
	}
	seenAlg := map[string]bool{}
	for i, a := range c.SIP.AuthAlgorithms {
		if a != "MD5" && a != "SHA-256" {
			v.addf("sip.auth_algorithms[%d] %q must be SHA-256 or MD5", i, a)
		}
		if seenAlg[a] {
			v.addf("sip.auth_algorithms[%d] %q is listed twice", i, a)
		}
		seenAlg[a] = true
	}

	v.ip("media.address", c.Media.Address)
	if c.Media.PublicAddress != "" {
		v.ip("media.public_address", c.Media.PublicAddress)
	}
	v.port("media.port_min", c.Media.PortMin)
	v.port("media.port_max", c.Media.PortMax)
	if c.Media.PortMin >= c.Media.PortMax {
		v.addf("media.port_min %d must be below media.port_max %d", c.Media.PortMin, c.Media.PortMax)
	} else if c.Media.PortMax-c.Media.PortMin+1 < 4 {
		v.addf("media.port_min %d to media.port_max %d must hold at least 4 ports (two legs of one call)", c.Media.PortMin, c.Media.PortMax)
	}
	if w := c.Media.WebRTCPort; w != 0 {
		v.port("media.webrtc_port", w)
		if c.Media.PortMin <= w && w <= c.Media.PortMax {
			v.addf("media.webrtc_port %d must be outside media.port_min %d to media.port_max %d", w, c.Media.PortMin, c.Media.PortMax)
		}
	}
	if c.Media.Timeout != nil && *c.Media.Timeout < 0 {
		v.addf("media.timeout %s must not be negative (0 disables it)", *c.Media.Timeout)
	}
	if ap, err := netip.ParseAddrPort(c.SIP.Listen); err == nil {
		if c.Media.PortMin <= int(ap.Port()) && int(ap.Port()) <= c.Media.PortMax {
			v.addf("media.port_min %d to media.port_max %d must not include the sip.listen port %d", c.Media.PortMin, c.Media.PortMax, ap.Port())
		}
	}

	v.tls("sip.tls", c.SIP.TLS, true)
	if c.SIP.TLS.Enabled() && c.SIP.TLS.Listen == c.SIP.Listen {
		v.addf("sip.tls.listen %q must differ from sip.listen (TCP cannot carry both)", c.SIP.TLS.Listen)
	}
	v.tls("web.tls", c.Web.TLS, false)
	v.hostPort("web.listen", c.Web.Listen)
	if len(c.Web.APITokens) == 0 {
		v.addf("web.api_tokens is empty: set at least one secret token (the API never runs without one)")
	}
	for i, t := range c.Web.APITokens {
		switch {
		case len(t) < 8:
			v.addf("web.api_tokens[%d] is %d characters: use at least 8", i, len(t))
		case t == ExampleToken && !loopback(c.Web.Listen):
			v.addf("web.api_tokens[%d] is the example token %q while web.listen %s is reachable from other hosts: set a secret token", i, ExampleToken, c.Web.Listen)
		}
	}
	for i, o := range c.Web.AllowedOrigins {
		if why := badOrigin(o); why != "" {
			v.addf("web.allowed_origins[%d] %q is not an origin: %s (want scheme://host[:port], such as https://phone.example.com)", i, o, why)
		}
	}
	if c.Control.Socket == "" {
		v.addf("control.socket must be a file path")
	}
	if c.Storage.Path == "" {
		v.addf("storage.path must be a file path")
	}
	if c.Debug.Listen != "" {
		v.hostPort("debug.listen", c.Debug.Listen)
		if _, err := netip.ParseAddrPort(c.Debug.Listen); err == nil && !loopback(c.Debug.Listen) {
			v.addf("debug.listen %s must be a loopback address such as 127.0.0.1:6060: the profiler has no authentication and its profiles show memory contents (reach it from elsewhere through an SSH tunnel)", c.Debug.Listen)
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		v.addf("log.level %q must be debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		v.addf("log.format %q must be text or json", c.Log.Format)
	}

	users := map[string]bool{}
	for i, u := range c.Users {
		key := fmt.Sprintf("users[%d]", i)
		if !validUser(u.Name) {
			v.addf("%s.name %q must be 1-64 letters, digits or . _ - +", key, u.Name)
		}
		if users[u.Name] {
			v.addf("%s.name %q is defined twice", key, u.Name)
		}
		users[u.Name] = true
		if len(u.Password) < 4 {
			v.addf("%s.password must have at least 4 characters", key)
		}
		if strings.ContainsFunc(u.DisplayName, isControl) {
			v.addf("%s.display_name %q must not contain line breaks or other control characters", key, u.DisplayName)
		}
	}

	trunks := map[string]bool{}
	for i, t := range c.Trunks {
		key := fmt.Sprintf("trunks[%d]", i)
		if !validUser(t.Name) {
			v.addf("%s.name %q must be 1-64 letters, digits or . _ - +", key, t.Name)
		}
		if trunks[t.Name] {
			v.addf("%s.name %q is defined twice", key, t.Name)
		}
		trunks[t.Name] = true
		if _, _, err := net.SplitHostPort(t.Address); err != nil || t.Address == "" {
			v.addf("%s.address %q must be host:port, such as sip.example.net:5060", key, t.Address)
		}
		switch t.Transport {
		case "udp", "tcp", "tls":
		default:
			v.addf("%s.transport %q must be udp, tcp or tls", key, t.Transport)
		}
		if *t.Register && (t.Username == "" || t.Password == "") {
			v.addf("%s.register is true: set %s.username and %s.password, or register: false for an IP-authenticated trunk", key, key, key)
		}
		if t.Outbound != "" {
			if _, err := regexp.Compile(t.Outbound); err != nil {
				v.addf("%s.outbound %q is not a valid regular expression: %v", key, t.Outbound, err)
			}
		}
		for did, user := range t.Inbound {
			if did == "" || user == "" {
				v.addf("%s.inbound %q: %q must map a number to a user", key, did, user)
			} else if !validUser(user) {
				v.addf("%s.inbound %q: user %q must be 1-64 letters, digits or . _ - +", key, did, user)
			}
		}
		for j, u := range t.AllowUsers {
			if !validUser(u) {
				v.addf("%s.allow_users[%d] %q must be a user name: 1-64 letters, digits or . _ - +", key, j, u)
			}
		}
		if cc := t.CountryCode; cc != "" && (len(cc) > 3 || strings.Trim(cc, "0123456789") != "" || cc[0] == '0') {
			v.addf("%s.country_code %q must be 1-3 digits without + or leading 0, such as 1 or 44", key, cc)
		}
		if d := t.RegisterExpires.D(); d < 30*time.Second || d > 24*time.Hour {
			v.addf("%s.register_expires %s must be between 30s and 24h", key, t.RegisterExpires)
		}
		if d := t.Timeout.D(); d < 100*time.Millisecond || d > time.Minute {
			v.addf("%s.timeout %s must be between 100ms and 1m", key, t.Timeout)
		}
		if t.CAFile != "" && t.Transport != "tls" {
			v.addf("%s.ca_file is set but %s.transport is %q: a CA file checks a provider's TLS certificate; set transport: tls", key, key, t.Transport)
		} else if _, err := t.RootCAs(); err != nil {
			v.addf("%s.ca_file %q %v", key, t.CAFile, err)
		}
		if t.PingInterval != nil && *t.PingInterval != 0 && (t.PingInterval.D() < time.Second || t.PingInterval.D() > time.Hour) {
			v.addf("%s.ping_interval %s must be between 1s and 1h, or 0 to disable the checks", key, *t.PingInterval)
		}
	}

	v.positive("events.retry_period", c.Events.RetryPeriod)
	v.positive("events.retention", c.Events.Retention)
	if c.Events.Retention < c.Events.RetryPeriod {
		v.addf("events.retention %s must not be below events.retry_period %s", c.Events.Retention, c.Events.RetryPeriod)
	}
	seenURL := map[string]int{}
	for i, w := range c.Webhooks {
		key := fmt.Sprintf("webhooks[%d]", i)
		u, err := url.Parse(w.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.addf("%s.url %q must be an http:// or https:// URL", key, w.URL)
		} else if j, dup := seenURL[w.URL]; dup {
			v.addf("%s.url is the URL of webhooks[%d] too: list each receiver once (with all the events it wants)", key, j)
		} else {
			seenURL[w.URL] = i
		}
		if len(w.Secret) < 8 {
			v.addf("%s.secret must have at least 8 characters", key)
		} else if rest, ok := strings.CutPrefix(w.Secret, "whsec_"); ok {
			if k, err := base64.StdEncoding.DecodeString(rest); err != nil || len(k) == 0 {
				v.addf("%s.secret starts with \"whsec_\", so the rest must be the key in base64 (standard alphabet, with padding); it is not: drop the prefix to use the secret as it is, or fix the encoding", key)
			}
		}
		for j, e := range w.Events {
			if !knownEvents[e] {
				v.addf("%s.events[%d] %q is not an event type (%s)", key, j, e, eventList())
			}
		}
	}
	c.Limits.validate(v)
	return v.err()
}

var knownEvents = map[string]bool{
	"registration.created": true, "registration.expired": true, "registration.removed": true,
	"call.started": true, "call.ringing": true, "call.answered": true, "call.ended": true,
	"trunk.up": true, "trunk.down": true,
}

func eventList() string {
	return "registration.created, registration.expired, registration.removed, call.started, call.ringing, call.answered, call.ended, trunk.up, trunk.down"
}

type validator struct{ errs []error }

func (v *validator) addf(format string, args ...any) {
	v.errs = append(v.errs, fmt.Errorf("config: "+format, args...))
}

func (v *validator) err() error { return errors.Join(v.errs...) }

func (v *validator) hostPort(key, s string) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		v.addf("%s %q must be an IP address and port, such as 127.0.0.1:5060", key, s)
		return
	}
	if ap.Port() == 0 {
		v.addf("%s %q must name a port between 1 and 65535", key, s)
	}
}

// tls checks a certificate and key pair's settings: the files must exist
// and hold a certificate with its private key.
func (v *validator) tls(key string, t TLS, listen bool) {
	if !listen && t.Listen != "" {
		v.addf("%s.listen is not a key: %s serves on its own listen address", key, strings.TrimSuffix(key, ".tls"))
	}
	if !t.Enabled() {
		if listen && t.Listen != "" {
			v.addf("%s.listen %q needs %s.cert and %s.key", key, t.Listen, key, key)
		}
		return
	}
	if t.Cert == "" || t.Key == "" {
		v.addf("%s needs both cert and key (PEM files): cert %q, key %q", key, t.Cert, t.Key)
		return
	}
	files := true
	for _, f := range []struct{ k, path string }{{key + ".cert", t.Cert}, {key + ".key", t.Key}} {
		if fi, err := os.Stat(f.path); err != nil {
			v.addf("%s %q is not a readable file: %v", f.k, f.path, err)
			files = false
		} else if !fi.Mode().IsRegular() {
			v.addf("%s %q is not a regular file (%s)", f.k, f.path, fi.Mode().Type())
			files = false
		}
	}
	if files {
		if _, err := tls.LoadX509KeyPair(t.Cert, t.Key); err != nil {
			v.addf("%s.cert %q and %s.key %q are not a usable certificate and key pair (PEM, the key matching the certificate): %v", key, t.Cert, key, t.Key, err)
		}
	}
	if listen {
		v.hostPort(key+".listen", t.Listen)
	}
}

func (v *validator) ip(key, s string) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		v.addf("%s %q must be an IP address, such as 127.0.0.1", key, s)
	}
}

func (v *validator) port(key string, p int) {
	if p < 1024 || p > 65535 {
		v.addf("%s %d must be between 1024 and 65535", key, p)
	}
}

func (v *validator) positive(key string, d Duration) {
	if d <= 0 {
		v.addf("%s %s must be above zero", key, d)
	} else if d.D() < time.Second && !strings.HasSuffix(key, "timeout") {
		v.addf("%s %s must be at least 1s", key, d)
	}
}

func loopback(hostport string) bool {
	ap, err := netip.ParseAddrPort(hostport)
	return err == nil && ap.Addr().IsLoopback()
}

// validUser reports whether s is usable as a SIP user part and a name in the API.
func validUser(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("._-+", r):
		default:
			return false
		}
	}
	return true
}

// MediaPorts is a helper for callers that need the port count.
func (m Media) MediaPorts() int { return m.PortMax - m.PortMin + 1 }

// ListenPort returns the port of sip.listen.
func (s SIP) ListenPort() int {
	_, p, _ := net.SplitHostPort(s.Listen)
	n, _ := strconv.Atoi(p)
	return n
}

// badOrigin says why s is not a web origin as browsers send it in the
// Origin header (RFC 6454 §7): an http or https scheme and a host, with an
// optional port and nothing else. "" means it is one.
func badOrigin(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "it does not parse as a URL"
	case u.Scheme != "http" && u.Scheme != "https":
		return "the scheme must be http or https"
	case u.Host == "" || u.Hostname() == "":
		return "it has no host"
	case u.User != nil:
		return "it must not name a user"
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(s, "?") || strings.HasSuffix(s, "#"):
		return "it must not have a path, query or fragment"
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "the port must be 1-65535"
		}
	}
	return ""
}

// isControl reports whether r is a control character, which a display name
// may not hold: it goes into SIP headers, where a line break would start a
// new header. (Quotes are fine: they are escaped there.)
func isControl(r rune) bool { return unicode.IsControl(r) }
