package web

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/danielgtaylor/huma/v2"
)

// Config is what the HTTP side needs from the configuration file.
type Config struct {
	// Listen is the HTTP address (web.listen).
	Listen string
	// Tokens are the accepted bearer tokens (web.api_tokens); at least one.
	Tokens []string
	// ControlSocket is the Unix socket path RunControl serves on
	// (control.socket).
	ControlSocket string
	// Version is reported by /api/v1/status and the metrics.
	Version string
	// TLS, when set, makes Listen serve HTTPS (and WSS) with it.
	TLS *tls.Config
	// ShutdownTimeout bounds how long open requests may finish once the
	// server stops. Default 5s.
	ShutdownTimeout time.Duration
	// AllowedOrigins are the other sites' pages that may open /ws
	// (web.allowed_origins); see CheckOrigin.
	AllowedOrigins []string
}

// Deps are the services the HTTP side uses.
type Deps struct {
	// Service is the application; required.
	Service Service
	// Trunks is optional: without it the API lists no trunks.
	Trunks Trunks
	// CallResults is optional: without it there is no calls-by-result metric.
	CallResults CallResults
	// Reloader is optional: without it there is no reload operation.
	Reloader Reloader
	// Protection is optional: without it no bans or limits are reported.
	Protection Protection
	// Events is optional: without it /api/v1/events answers 503.
	Events EventLog
	// Originator is optional: without it POST /api/v1/calls answers 503.
	Originator Originator
	// Webhooks is optional: without it the API lists no webhooks.
	Webhooks Webhooks
	// Signalling is optional: without it the SIP and relay metrics are
	// absent.
	Signalling Signalling
	Log        *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Server is the HTTP API, metrics and probes, served on web.listen (with
// bearer tokens) and on the control socket (trusted by file permissions).
type Server struct {
	cfg     Config
	svc     Service
	trunks  Trunks
	log     *slog.Logger
	now     func() time.Time
	started time.Time
	ready   atomic.Bool

	mux    *http.ServeMux
	api    huma.API
	tokens [][sha256.Size]byte

	events EventLog
	orig   Originator
	hooks  Webhooks
	sig    Signalling
	// stopCtx ends when the server starts stopping, which ends the
	// long-lived event streams that Shutdown would otherwise wait for.
	stopCtx context.Context
	stop    context.CancelFunc
}

// New builds the server; it opens no socket until Run or RunControl.
func New(cfg Config, deps Deps) (*Server, error) {
	if deps.Service == nil {
		return nil, errors.New("web: no service")
	}
	if len(cfg.Tokens) == 0 {
		return nil, errors.New("web: no API token")
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 5 * time.Second
	}
	s := &Server{
		cfg:     cfg,
		svc:     deps.Service,
		trunks:  deps.Trunks,
		log:     deps.Log.With("component", "web"),
		now:     deps.Now,
		started: deps.Now(),
		mux:     http.NewServeMux(),
		events:  deps.Events,
		orig:    deps.Originator,
		hooks:   deps.Webhooks,
		sig:     deps.Signalling,
	}
	s.stopCtx, s.stop = context.WithCancel(context.Background())
	for i, t := range cfg.Tokens {
		if strings.TrimSpace(t) == "" {
			return nil, fmt.Errorf("web: API token %d is empty", i)
		}
		s.tokens = append(s.tokens, sha256.Sum256([]byte(t)))
	}
	s.api = newAPI(s)
	if deps.Reloader != nil {
		s.registerReload(s.api, deps.Reloader)
	}
	if deps.Protection != nil {
		s.registerProtection(s.api, deps.Protection)
	}
	documentBodyErrors(s.api.OpenAPI())
	s.mountAdmin()
	s.mountAPIDocs()
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.Handle("GET /metrics", newMetrics(s, deps.CallResults, deps.Protection))
	return s, nil
}

// API is the huma API, for features that add operations to it (such as the
// event stream); they share its OpenAPI document.
func (s *Server) API() huma.API { return s.api }

// Handle mounts another handler (the phone page, /ws, /admin) on the same
// listener. Paths under /api/ need a token like the API; others must check
// access themselves (see RequireToken).
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// SetReady sets what /readyz reports: true once the server takes calls,
// false while it drains before stopping.
func (s *Server) SetReady(ready bool) { s.ready.Store(ready) }

// Handler serves everything with bearer-token authentication on the API:
// what web.listen serves.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if needsToken(r.URL.Path) && !s.authorized(r) {
			s.unauthorized(w)
			return
		}
		s.serveMux(w, r)
	})
}

// ControlHandler serves the same API without tokens: what the control
// socket serves, where file permissions are the access control.
func (s *Server) ControlHandler() http.Handler { return http.HandlerFunc(s.serveMux) }

// RequireToken wraps h so that it answers 401 without a valid bearer
// token, for handlers mounted outside /api/.
func (s *Server) RequireToken(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(r) {
			s.unauthorized(w)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// needsToken reports whether path is part of the authenticated API. The
// OpenAPI document is public: it describes the API and holds no data.
func needsToken(path string) bool {
	if !strings.HasPrefix(path, "/api/") {
		return false
	}
	switch path {
	case openAPIPath + ".json", openAPIPath + ".yaml", openAPIPath + "-3.0.json", openAPIPath + "-3.0.yaml":
		return false
	}
	if path == apiDocsPath || strings.HasPrefix(path, apiDocsPath+"/") {
		return false
	}
	return true
}

// authorized checks the Authorization header against every configured
// token in constant time (RFC 6750 §2.1). Comparing hashes keeps the
// tokens' lengths out of the timing too.
func (s *Server) authorized(r *http.Request) bool {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return false
	}
	got := sha256.Sum256([]byte(tok))
	match := 0
	for i := range s.tokens {
		match |= subtle.ConstantTimeCompare(got[:], s.tokens[i][:])
	}
	return match == 1
}

// unauthorized answers 401 with a challenge (RFC 6750 §3) and a problem
// details body (RFC 9457) like every other API error.
func (s *Server) unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="switchboard"`)
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(http.StatusUnauthorized)
	fmt.Fprint(w, `{"title":"Unauthorized","status":401,"detail":"a valid bearer token is required (Authorization: Bearer <web.api_tokens entry>)"}`)
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ok")
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !s.ready.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "not ready")
		return
	}
	fmt.Fprintln(w, "ready")
}

// Run serves HTTP on Config.Listen until ctx ends, then lets open requests
// finish for up to Config.ShutdownTimeout.
func (s *Server) Run(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("web.listen %s: %w", s.cfg.Listen, err)
	}
	if s.cfg.TLS != nil {
		ln = tls.NewListener(ln, s.cfg.TLS)
		s.log.Info("https listening", "addr", ln.Addr().String())
		return s.serve(ctx, ln, s.Handler())
	}
	s.log.Info("http listening", "addr", ln.Addr().String())
	return s.serve(ctx, ln, s.Handler())
}

// serve runs an http.Server on ln until ctx ends.
func (s *Server) serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("web: serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	s.stop()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		// Requests still running past the timeout are cut off: stopping
		// matters more than they do.
		s.log.Warn("requests cut off at shutdown", "addr", ln.Addr().String(), "error", err)
		srv.Close()
	}
	<-errc
	return nil
}
