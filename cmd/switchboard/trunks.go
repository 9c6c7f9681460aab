package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"reflect"

	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/jsontime"
	"github.com/switchboard/switchboard/sip"
	"github.com/switchboard/switchboard/sip/trunk"
	"github.com/switchboard/switchboard/web"
)

var _ web.Trunks = (*app)(nil)

// newTrunks builds a provider adapter for each configured trunk, in the
// file's order, which is the order calls try them in.
func newTrunks(cfg *config.Config, log *slog.Logger) ([]trunk.Trunk, error) {
	out := make([]trunk.Trunk, 0, len(cfg.Trunks))
	for _, t := range cfg.Trunks {
		tc := trunk.Config{
			Name: t.Name, Address: t.Address, Transport: t.Transport,
			Username: t.Username, AuthUsername: t.AuthUsername, Password: t.Password, Register: *t.Register,
			Inbound: t.Inbound, Outbound: t.Outbound, CallerID: t.CallerID,
			AllowUsers: t.AllowUsers, CountryCode: t.CountryCode,
			RegisterExpires: t.RegisterExpires.D(), Timeout: t.Timeout.D(),
			PingInterval: t.PingInterval.D(),
			UserAgent:    cfg.SIP.UserAgent,
		}
		if tc.PingInterval == 0 {
			tc.PingInterval = -1 // 0 in the file disables the checks
		}
		if t.Transport == "tls" && !cfg.SIP.TLS.Enabled() {
			// Our Contact over TLS then names a port with no TLS behind it.
			log.Warn("trunk over TLS without sip.tls: the provider's requests to our Contact (calls to its DIDs, BYE, re-INVITE) cannot reach us; "+
				"set sip.tls with a certificate the provider trusts", "trunk", t.Name)
		}
		roots, err := t.RootCAs()
		if err != nil {
			return nil, fmt.Errorf("trunks: %q: ca_file %q %w", t.Name, t.CAFile, err)
		}
		tc.RootCAs = roots
		p, err := trunk.New(tc, log)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// reloadTrunks makes a reload apply the file's trunks: when any of them
// changed, or the contents of a CA file they name (a provider's CA
// renewed in place), all are rebuilt; the old ones unregister, the new
// ones register, and calls already up go on.
func reloadTrunks(r *reloader, s *sip.Server, cfg *config.Config, log *slog.Logger) {
	cur, curCAs := cfg.Trunks, caFileSums(cfg.Trunks)
	r.OnReload("trunks", func(_ context.Context, next *config.Config) error {
		nextCAs := caFileSums(next.Trunks)
		if reflect.DeepEqual(cur, next.Trunks) && reflect.DeepEqual(curCAs, nextCAs) {
			return nil
		}
		ts, err := newTrunks(next, log)
		if err != nil {
			return err
		}
		s.SetTrunks(ts)
		cur, curCAs = next.Trunks, nextCAs
		return nil
	})
}

// caFileSums are the SHA-256 sums of the trunks' CA files, by path; a file
// that cannot be read sums to zero (building the trunks reports why).
func caFileSums(ts []config.Trunk) map[string][32]byte {
	out := map[string][32]byte{}
	for _, t := range ts {
		if t.CAFile == "" {
			continue
		}
		var sum [32]byte
		if b, err := os.ReadFile(t.CAFile); err == nil {
			sum = sha256.Sum256(b)
		}
		out[t.CAFile] = sum
	}
	return out
}

// Trunks lists the trunks and their state for the API.
func (a *app) Trunks(context.Context) ([]web.Trunk, error) {
	sts := a.sip.Trunks()
	out := make([]web.Trunk, len(sts))
	for i, st := range sts {
		out[i] = web.Trunk{
			Name: st.Name, Address: st.Address, Transport: st.Transport, Register: st.Register,
			State: string(st.State), Registered: st.Registered, LastError: st.LastError,
			LastErrorAt: jsontime.Millis(st.LastErrorAt.UTC()), LastSuccessAt: jsontime.Millis(st.LastSuccessAt.UTC()),
		}
	}
	return out, nil
}
