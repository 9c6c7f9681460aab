package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/switchboard/switchboard/internal/certs"
	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/digest"
	"github.com/switchboard/switchboard/internal/store"
	"github.com/switchboard/switchboard/media"
	"github.com/switchboard/switchboard/sip"
	"github.com/switchboard/switchboard/web"
)

const defaultConfig = "configs/switchboard.yaml"

// serveCmd runs the server until ctx ends (at once) or, when lc is set,
// until lc asks it to stop (after draining).
func serveCmd(ctx context.Context, args []string, stdout, stderr io.Writer, lc *lifecycle) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", defaultConfig, "configuration file")
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			fs.SetOutput(stdout) // asked for: usage on stdout, exit 0
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "switchboard serve: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	log := newLogger(cfg.Log, stderr)
	if lc != nil {
		// sipgo's package logger is a global: set it only when the server
		// owns the process (started by main). A server run inside a test
		// shares the process with other sipgo users, which read it
		// unsynchronised.
		sip.SetLibraryLogger(log)
	}
	if err := serve(ctx, cfg, *path, log, lc); err != nil {
		log.Error("switchboard stopped", "error", err)
		return 1
	}
	return 0
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// serve runs every component until ctx ends, lc has it stop, or one of
// them fails.
// orphanByeTimeout bounds how long a start waits for the answers to the
// BYEs it sends to calls a crash left up.
const orphanByeTimeout = 10 * time.Second

func serve(ctx context.Context, cfg *config.Config, cfgPath string, log *slog.Logger, lc *lifecycle) error {
	log.Info("switchboard starting", "version", version)
	warnLoopbackMedia(cfg, log)
	warnNoSHA256(cfg, log)
	tuneGC(log)
	st, err := store.Open(ctx, cfg.Storage.Path, log)
	if err != nil {
		return err
	}
	defer st.Close()
	ev, err := newEventPlane(cfg, st, log)
	if err != nil {
		return err
	}
	// The users are synced once what can still refuse the configuration
	// has accepted it: a start that fails leaves the database as it was.
	if err := st.SyncConfigUsers(ctx, configUsers(cfg)); err != nil {
		return fmt.Errorf("sync users from config: %w", err)
	}
	if err := warnOtherRealm(ctx, st, cfg.SIP.Domain, log); err != nil {
		return err
	}
	if n, err := ev.markCrashed(ctx); err != nil {
		return err
	} else if n > 0 {
		log.Warn("calls left open by an unexpected stop recorded as crashed", "calls", n)
	}
	// Their phones (and providers) are still in those calls: they get a
	// BYE once SIP is up.
	orphans, err := st.TakeCallDialogs(ctx)
	if err != nil {
		return err
	}
	relay, err := media.New(mediaConfig(cfg), log.With("component", "media"))
	if err != nil {
		return err
	}
	defer relay.Close()
	trunks, err := newTrunks(cfg, log)
	if err != nil {
		return err
	}
	browsers, err := media.NewWebRTC(webrtcConfig(mediaConfig(cfg), cfg.Media.WebRTCPort), log.With("component", "webrtc"))
	if err != nil {
		return err
	}
	defer browsers.Close()
	sipCfg := sipConfig(cfg)
	if t := cfg.SIP.TLS; t.Enabled() {
		rl, err := certs.New(t.Cert, t.Key, 0, log.With("component", "sip"))
		if err != nil {
			return fmt.Errorf("sip.tls: %w", err)
		}
		sipCfg.TLS, sipCfg.TLSListen = rl.ServerConfig(), netip.MustParseAddrPort(t.Listen) // validated by config
	}
	webCfg := webConfig(cfg)
	if t := cfg.Web.TLS; t.Enabled() {
		rl, err := certs.New(t.Cert, t.Key, 0, log.With("component", "web"))
		if err != nil {
			return fmt.Errorf("web.tls: %w", err)
		}
		webCfg.TLS = rl.ServerConfig()
	}
	sipSrv, err := sip.NewServer(ctx, sipCfg, sip.Deps{
		Users: st, Bindings: st, Records: st, Relay: relayAdapter{r: relay, w: browsers}, Events: ev.recorder, Log: log, Trunks: trunks,
	})
	if err != nil {
		return err
	}
	app := newApp(sipSrv, st, cfg.SIP.Domain)
	reload := newReloader(cfgPath, cfg, st, sipSrv, log)
	reloadTrunks(reload, sipSrv, cfg, log)
	reload.OnReload("webhooks", func(_ context.Context, c *config.Config) error {
		return ev.setWebhooks(c)
	})
	webSrv, err := web.New(webCfg, web.Deps{Service: app, Trunks: app, CallResults: app.results, Reloader: reload, Events: eventLog{ev.hub, st},
		Originator: app,
		Webhooks:   ev,
		Signalling: app,
		Protection: newProtection(sipSrv, cfg.Limits), Log: log})
	if err != nil {
		return err
	}
	if err := mountBrowser(webSrv, sipSrv, cfg.SIP.Domain); err != nil {
		return err
	}
	stopCtx, stop := context.WithCancel(ctx)
	defer stop()
	g, gctx := errgroup.WithContext(stopCtx)
	if lc != nil {
		g.Go(func() error { return lc.run(gctx, sipSrv, webSrv, cfg.SIP.DrainTimeout.D(), reload, stop, log) })
	}
	// Stopping order: SIP (the last events are written), then the
	// recorder (it writes what is queued), then the deliverer; the store
	// closes last (deferred above).
	recCtx, stopRecorder := context.WithCancel(context.WithoutCancel(ctx))
	delCtx, stopDeliverer := context.WithCancel(context.WithoutCancel(ctx))
	g.Go(func() error { defer stopRecorder(); return sipSrv.Run(gctx) })
	g.Go(func() error { defer stopDeliverer(); return ev.recorder.Run(recCtx) })
	g.Go(func() error { return ev.deliverer.Run(delCtx) })
	g.Go(func() error { return ev.prune(gctx) })
	g.Go(func() error { return ev.keepAlive(gctx) })
	g.Go(func() error { return webSrv.Run(gctx) })
	g.Go(func() error { return webSrv.RunControl(gctx) })
	g.Go(func() error { return readyWhenListening(gctx, sipSrv, webSrv) })
	if len(orphans) > 0 {
		g.Go(func() error {
			if _, err := sipSrv.Addr(gctx, "udp"); err == nil {
				n := sipSrv.EndOrphanDialogs(gctx, orphans, orphanByeTimeout)
				log.Info("calls left up by the previous run ended with BYE", "calls", len(orphans), "dialogs_ended", n)
			}
			return nil
		})
	}
	if cfg.Debug.Listen != "" {
		g.Go(func() error { return serveDebug(gctx, cfg.Debug.Listen, log) })
	}
	err = g.Wait()
	if err == nil || errors.Is(err, context.Canceled) {
		log.Info("switchboard stopped")
		return nil
	}
	return err
}

// warnLoopbackMedia warns when SIP takes phones from other hosts but the
// relay, which every call's audio goes through, is on loopback: their SDP
// would name an address they cannot reach, and calls would have no audio.
func warnLoopbackMedia(cfg *config.Config, log *slog.Logger) {
	listen, err := netip.ParseAddrPort(cfg.SIP.Listen)
	if err != nil || listen.Addr().IsLoopback() {
		return
	}
	media, err := netip.ParseAddr(cfg.Media.Address)
	if err != nil || !media.IsLoopback() || cfg.Media.PublicAddress != "" {
		return
	}
	log.Warn("media.address is a loopback address while sip.listen takes phones from other hosts: their audio cannot reach the relay; set media.address to this host's address (and media.public_address behind NAT)",
		"sip_listen", cfg.SIP.Listen, "media_address", cfg.Media.Address)
}

// warnNoSHA256 warns when SHA-256 is not among the digest algorithms
// offered: the browser phone signs in with SHA-256 only (browsers have no
// MD5), so it cannot sign in at all.
func warnNoSHA256(cfg *config.Config, log *slog.Logger) {
	for _, a := range cfg.SIP.AuthAlgorithms {
		if strings.EqualFold(a, "SHA-256") {
			return
		}
	}
	log.Warn("sip.auth_algorithms does not offer SHA-256: the browser phone, which signs in with SHA-256 only, cannot sign in; add SHA-256 to the list",
		"auth_algorithms", cfg.SIP.AuthAlgorithms)
}

// warnOtherRealm names the users whose passwords were set under another
// sip.domain (through the API or ctl, before the domain changed): their
// digest hashes hold the old realm, so they cannot sign in until their
// password is set again. Users from the file are re-hashed at every start.
func warnOtherRealm(ctx context.Context, st *store.Store, domain string, log *slog.Logger) error {
	us, err := st.Users(ctx)
	if err != nil {
		return err
	}
	var names []string
	for _, u := range us {
		if u.Realm != domain {
			names = append(names, u.Name)
		}
	}
	if len(names) > 0 {
		log.Warn("users whose password was set for another sip.domain cannot sign in until it is set again (switchboard ctl users passwd NAME, or PATCH /api/v1/users/NAME)",
			"sip_domain", domain, "users", strings.Join(names, ","))
	}
	return nil
}

// configUsers turns the file's accounts into stored ones: only HA1 hashes
// for the configured realm are kept, never the password.
func configUsers(cfg *config.Config) []store.User {
	out := make([]store.User, 0, len(cfg.Users))
	for _, u := range cfg.Users {
		out = append(out, store.User{
			Name:        u.Name,
			DisplayName: u.DisplayName,
			Realm:       cfg.SIP.Domain,
			HA1MD5:      digest.HA1(digest.MD5, u.Name, cfg.SIP.Domain, u.Password),
			HA1SHA256:   digest.HA1(digest.SHA256, u.Name, cfg.SIP.Domain, u.Password),
			FromConfig:  true,
		})
	}
	return out
}

func mediaConfig(cfg *config.Config) media.Config {
	m := cfg.Media
	c := media.Config{
		Address: netip.MustParseAddr(m.Address), // validated by config
		PortMin: m.PortMin,
		PortMax: m.PortMax,
		Timeout: m.Timeout.D(),
	}
	if m.PublicAddress != "" {
		c.PublicAddress = netip.MustParseAddr(m.PublicAddress)
	}
	return c
}

func sipConfig(cfg *config.Config) sip.Config {
	c := cfg.SIP
	return sip.Config{
		Listen:             netip.MustParseAddrPort(c.Listen), // validated by config
		Domain:             c.Domain,
		Aliases:            c.Aliases,
		MinExpires:         c.MinExpires.D(),
		MaxExpires:         c.MaxExpires.D(),
		DefaultExpires:     c.DefaultExpires.D(),
		MaxContacts:        c.MaxContacts,
		NonceLifetime:      c.NonceLifetime.D(),
		AuthAlgorithms:     c.AuthAlgorithms,
		LegacyDigestAgents: c.LegacyDigestAgents,
		RingTimeout:        c.RingTimeout.D(),
		UserAgent:          c.UserAgent,
		Limits:             sipLimits(cfg.Limits),
	}
}

func sipLimits(l config.Limits) sip.Limits {
	out := sip.Limits{
		RequestsPerSecond: l.RequestsPerSecond,
		RequestBurst:      l.RequestBurst,
		AuthFailures:      l.AuthFailures,
		AuthFailureWindow: l.AuthFailureWindow.D(),
		BanTime:           l.BanTime.D(),
		MaxBanTime:        l.MaxBanTime.D(),
		ScannerAgents:     l.ScannerAgents,
		MaxMessageSize:    l.MaxMessageSize,
		MaxHeaders:        l.MaxHeaders,
		MaxCalls:          l.MaxCalls,
		MaxCallsPerUser:   l.MaxCallsPerUser,
		MaxPending:        l.MaxPending,
	}
	for _, t := range l.Trusted {
		p, _ := config.ParsePrefix(t) // validated by config
		out.Trusted = append(out.Trusted, p)
	}
	return out
}
