package main

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"

	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/store"
	"github.com/switchboard/switchboard/sip"
	"github.com/switchboard/switchboard/web"
)

// reloader re-reads the configuration file on SIGHUP or `switchboard ctl
// reload` and applies what can change while calls and registrations go on:
// users, and whatever components register with OnReload (trunks,
// webhooks). An invalid file is refused and the running configuration
// stays.
type reloader struct {
	path string
	st   *store.Store
	sip  *sip.Server
	log  *slog.Logger

	mu    sync.Mutex // one reload at a time; guards cur and hooks
	cur   *config.Config
	hooks []reloadHook
}

type reloadHook struct {
	name  string
	apply func(context.Context, *config.Config) error
}

var _ web.Reloader = (*reloader)(nil)

func newReloader(path string, cur *config.Config, st *store.Store, s *sip.Server, log *slog.Logger) *reloader {
	return &reloader{path: path, cur: cur, st: st, sip: s, log: log.With("component", "reload")}
}

// OnReload registers fn to apply a new, valid configuration; name is what
// the reload reports as applied (such as "webhooks"). Hooks run in the
// order they were registered.
func (r *reloader) OnReload(name string, fn func(context.Context, *config.Config) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hooks = append(r.hooks, reloadHook{name, fn})
}

// Reload reads the file again and applies it. A file that does not load
// or validate gives an error wrapping web.ErrInvalidConfig.
func (r *reloader) Reload(ctx context.Context) (web.ReloadResult, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	next, err := config.Load(r.path)
	if err != nil {
		r.log.Error("reload refused: the running configuration stays", "path", r.path, "error", err)
		return web.ReloadResult{}, fmt.Errorf("%w: %w (the running configuration stays)", web.ErrInvalidConfig, err)
	}
	res := web.ReloadResult{RestartNeeded: restartNeeded(r.cur, next)}
	for _, part := range []struct {
		name    string
		changed bool
	}{{"trunks", !reflect.DeepEqual(r.cur.Trunks, next.Trunks)}, {"webhooks", !reflect.DeepEqual(r.cur.Webhooks, next.Webhooks)}} {
		if part.changed && !r.hasHook(part.name) {
			// Nothing applies it while running yet.
			res.RestartNeeded = append(res.RestartNeeded, part.name)
		}
	}
	if err := r.applyUsers(ctx, next); err != nil {
		r.log.Error("reload: users", "error", err)
		return res, fmt.Errorf("reload users: %w", err)
	}
	res.Applied = append(res.Applied, "users")
	for _, h := range r.hooks {
		if err := h.apply(ctx, next); err != nil {
			r.log.Error("reload: "+h.name, "error", err)
			return res, fmt.Errorf("reload %s: %w", h.name, err)
		}
		res.Applied = append(res.Applied, h.name)
	}
	// Keep the running values of what needs a restart, so that the next
	// reload still reports them.
	kept := *r.cur
	kept.Users, kept.Trunks, kept.Webhooks = next.Users, next.Trunks, next.Webhooks
	r.cur = &kept
	if len(res.RestartNeeded) > 0 {
		r.log.Warn("reload: these keys changed but apply only at the next start", "keys", strings.Join(res.RestartNeeded, ", "))
	}
	r.log.Info("configuration reloaded", "path", r.path, "applied", strings.Join(res.Applied, ", "), "users", len(next.Users))
	return res, nil
}

func (r *reloader) hasHook(name string) bool {
	for _, h := range r.hooks {
		if h.name == name {
			return true
		}
	}
	return false
}

// applyUsers syncs the file's users into the store, drops the SIP cache
// entries of every user that may have changed, and the registrations of
// users that left the file.
func (r *reloader) applyUsers(ctx context.Context, next *config.Config) error {
	// Hashes are for the realm in use: sip.domain itself needs a restart.
	withRealm := *next
	withRealm.SIP.Domain = r.cur.SIP.Domain
	if err := r.st.SyncConfigUsers(ctx, configUsers(&withRealm)); err != nil {
		return err
	}
	kept := map[string]bool{}
	for _, u := range next.Users {
		kept[u.Name] = true
		r.sip.InvalidateUser(u.Name)
	}
	for _, u := range r.cur.Users {
		if kept[u.Name] {
			continue
		}
		r.sip.InvalidateUser(u.Name)
		if _, err := r.st.User(ctx, u.Name); err == nil {
			continue // still exists (made through the API)
		}
		if err := r.sip.RemoveUserBindings(ctx, u.Name); err != nil {
			return fmt.Errorf("remove registrations of %q: %w", u.Name, err)
		}
		r.log.Info("user removed from the configuration", "user", u.Name)
	}
	return nil
}

// restartNeeded lists the keys outside users, trunks and webhooks whose
// value differs between the running and the new configuration.
func restartNeeded(cur, next *config.Config) []string {
	var out []string
	cv, nv := reflect.ValueOf(cur).Elem(), reflect.ValueOf(next).Elem()
	t := cv.Type()
	for i := range t.NumField() {
		section := yamlName(t.Field(i))
		switch section {
		case "users", "trunks", "webhooks", "":
			continue
		}
		a, b := cv.Field(i), nv.Field(i)
		if a.Kind() != reflect.Struct {
			if !reflect.DeepEqual(a.Interface(), b.Interface()) {
				out = append(out, section)
			}
			continue
		}
		for j := range a.NumField() {
			if !reflect.DeepEqual(a.Field(j).Interface(), b.Field(j).Interface()) {
				out = append(out, section+"."+yamlName(a.Type().Field(j)))
			}
		}
	}
	return out
}

func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name
}
