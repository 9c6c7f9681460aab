package main

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/jsontime"
	"github.com/switchboard/switchboard/sip"
	"github.com/switchboard/switchboard/web"
)

// protection shows the signalling plane's abuse protection to the API and
// the metrics.
type protection struct {
	sip    *sip.Server
	limits map[string]float64
}

var _ web.Protection = protection{}

func newProtection(s *sip.Server, l config.Limits) protection {
	return protection{sip: s, limits: map[string]float64{
		"requests_per_second":         l.RequestsPerSecond,
		"request_burst":               float64(l.RequestBurst),
		"auth_failures":               float64(l.AuthFailures),
		"auth_failure_window_seconds": l.AuthFailureWindow.D().Seconds(),
		"ban_time_seconds":            l.BanTime.D().Seconds(),
		"max_ban_time_seconds":        l.MaxBanTime.D().Seconds(),
		"max_message_size":            float64(l.MaxMessageSize),
		"max_headers":                 float64(l.MaxHeaders),
		"max_calls":                   float64(l.MaxCalls),
		"max_calls_per_user":          float64(l.MaxCallsPerUser),
		"max_pending":                 float64(l.MaxPending),
	}}
}

func (p protection) Protection(context.Context) (web.ProtectionState, error) {
	// The bans first: a ban's counters are raised before it is listed, so
	// counters read after the list count every ban in it.
	bans := p.sip.Bans()
	st := p.sip.ProtectionStats()
	out := web.ProtectionState{Limits: p.limits, BansTotal: st.Bans, AuthFailures: st.AuthFailures,
		Dropped: st.Dropped, CallsRefused: st.CallsRefused, Bans: []web.Ban{}}
	for _, b := range bans {
		out.Bans = append(out.Bans, web.Ban{Address: b.Addr.String(), Reason: b.Reason, Since: jsontime.Millis(b.Since.UTC()), Until: jsontime.Millis(b.Until.UTC()), Offences: b.Offences})
	}
	return out, nil
}

func (p protection) Unban(_ context.Context, addr string) error {
	a, err := netip.ParseAddr(addr)
	if err != nil || !p.sip.Unban(a) {
		return fmt.Errorf("ban of %q: %w", addr, web.ErrNotFound)
	}
	return nil
}
