package web

import (
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// CheckOrigin wraps the handler of a WebSocket endpoint (/ws) so that a
// page on another site cannot open it from a user's browser: a browser
// says which page opened a WebSocket in the Origin header (RFC 6455 §4.1,
// §10.2), and WebSockets are not covered by the same-origin policy. A
// handshake passes when it has no Origin (softphones and other non-browser
// clients send none), when the Origin is our own host as the request
// names it (our phone page), when it is a page on the browser's own
// machine (loopbackOrigin), or when it is one of web.allowed_origins
// (Config.AllowedOrigins). Others get 403 before any upgrade.
func (s *Server) CheckOrigin(h http.Handler) http.Handler {
	allowed := map[string]bool{}
	for _, o := range s.cfg.AllowedOrigins {
		if k, ok := originKey(o); ok {
			allowed[k] = true
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origins := r.Header.Values("Origin")
		if len(origins) == 0 {
			h.ServeHTTP(w, r)
			return
		}
		o := origins[0]
		if len(origins) == 1 && (sameHost(o, r.Host) || loopbackOrigin(o) || allowedOrigin(allowed, o)) {
			h.ServeHTTP(w, r)
			return
		}
		s.log.Warn("websocket refused: origin not allowed", "origin", o, "host", r.Host, "remote", r.RemoteAddr)
		http.Error(w, "this page's origin may not use the SIP WebSocket: open the phone page from this server, or add the origin to web.allowed_origins", http.StatusForbidden)
	})
}

// loopbackOrigin reports a page served from the browser's own machine
// (http://127.0.0.1:3000, http://localhost:5173, ...): a developer's page
// or a local client of the user's own, which no other site can pose as
// (a DNS name that resolves to 127.0.0.1 still has its own name in
// Origin). Such pages may use /ws without being listed.
func loopbackOrigin(origin string) bool {
	_, host, _, ok := splitOrigin(origin)
	if !ok {
		return false
	}
	host = strings.ToLower(host)
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func allowedOrigin(allowed map[string]bool, origin string) bool {
	k, ok := originKey(origin)
	return ok && allowed[k]
}

// originKey is an origin in one spelling: lower-case scheme and host, and
// the port, the scheme's default when absent (RFC 6454 §4).
func originKey(origin string) (string, bool) {
	scheme, host, port, ok := splitOrigin(origin)
	if !ok {
		return "", false
	}
	return scheme + "://" + net.JoinHostPort(host, port), true
}

// splitOrigin parses an http or https origin; port is the default when the
// origin has none.
func splitOrigin(origin string) (scheme, host, port string, ok bool) {
	u, err := url.Parse(origin)
	if err != nil || u.Hostname() == "" || u.User != nil {
		return "", "", "", false
	}
	scheme = strings.ToLower(u.Scheme)
	port = u.Port()
	switch {
	case scheme == "http" && port == "":
		port = "80"
	case scheme == "https" && port == "":
		port = "443"
	case scheme != "http" && scheme != "https":
		return "", "", "", false
	}
	return scheme, strings.ToLower(u.Hostname()), port, true
}

// sameHost reports whether origin is the host the request was sent to: its
// Host header. A Host without a port (the default one, or behind a proxy
// that terminates TLS) matches an origin on a default port.
func sameHost(origin, reqHost string) bool {
	_, host, port, ok := splitOrigin(origin)
	if !ok || reqHost == "" {
		return false
	}
	h, p, err := net.SplitHostPort(reqHost)
	if err != nil {
		// No port in Host.
		h, p = strings.Trim(reqHost, "[]"), ""
	}
	if !strings.EqualFold(h, host) {
		return false
	}
	if p == "" {
		return port == "80" || port == "443"
	}
	return p == port
}
