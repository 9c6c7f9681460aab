package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/digest"
	"github.com/switchboard/switchboard/internal/jsontime"
	"github.com/switchboard/switchboard/internal/store"
	"github.com/switchboard/switchboard/sip"
	"github.com/switchboard/switchboard/web"
)

// app is the application as the web API sees it: the signalling plane for
// live state and the store for accounts and records.
type app struct {
	sip     *sip.Server
	st      *store.Store
	realm   string
	results *resultCounter
}

var (
	_ web.Service     = (*app)(nil)
	_ web.CallResults = (*resultCounter)(nil)
)

func newApp(s *sip.Server, st *store.Store, realm string) *app {
	return &app{sip: s, st: st, realm: realm, results: &resultCounter{calls: st, now: time.Now}}
}

// apiErr turns store errors into the API's.
func apiErr(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w (%w)", web.ErrNotFound, err)
	case errors.Is(err, store.ErrExists):
		return fmt.Errorf("%w (%w)", web.ErrExists, err)
	}
	return err
}

func webUser(u store.User) web.User {
	return web.User{Name: u.Name, DisplayName: u.DisplayName, FromConfig: u.FromConfig, CreatedAt: jsontime.Millis(u.CreatedAt), UpdatedAt: jsontime.Millis(u.UpdatedAt)}
}

func (a *app) Users(ctx context.Context) ([]web.User, error) {
	us, err := a.st.Users(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]web.User, len(us))
	for i, u := range us {
		out[i] = webUser(u)
	}
	return out, nil
}

func (a *app) User(ctx context.Context, name string) (web.User, error) {
	u, err := a.st.User(ctx, name)
	if err != nil {
		return web.User{}, apiErr(err)
	}
	return webUser(u), nil
}

// setPassword keeps only the digest hashes of password for our realm.
func (a *app) setPassword(u *store.User, password string) {
	u.Realm = a.realm
	u.HA1MD5 = digest.HA1(digest.MD5, u.Name, a.realm, password)
	u.HA1SHA256 = digest.HA1(digest.SHA256, u.Name, a.realm, password)
}

func (a *app) CreateUser(ctx context.Context, nu web.NewUser) (web.User, error) {
	u := store.User{Name: nu.Name, DisplayName: nu.DisplayName}
	a.setPassword(&u, nu.Password)
	if err := a.st.CreateUser(ctx, u); err != nil {
		return web.User{}, apiErr(err)
	}
	// The registrar may have cached "no such user" from an earlier attempt.
	a.sip.InvalidateUser(u.Name)
	return a.User(ctx, u.Name)
}

func (a *app) UpdateUser(ctx context.Context, name string, ch web.UserChange) (web.User, error) {
	u, err := a.st.User(ctx, name)
	if err != nil {
		return web.User{}, apiErr(err)
	}
	if ch.DisplayName != nil {
		u.DisplayName = *ch.DisplayName
	}
	if ch.Password != nil {
		a.setPassword(&u, *ch.Password)
	}
	u.UpdatedAt = time.Time{} // now
	if err := a.st.UpdateUser(ctx, u); err != nil {
		return web.User{}, apiErr(err)
	}
	a.sip.InvalidateUser(name)
	return a.User(ctx, name)
}

func (a *app) DeleteUser(ctx context.Context, name string) error {
	if err := a.st.DeleteUser(ctx, name); err != nil {
		return apiErr(err)
	}
	// Forget the account before its bindings, so that a REGISTER racing
	// with the delete cannot authenticate and bind again.
	a.sip.InvalidateUser(name)
	if err := a.sip.RemoveUserBindings(ctx, name); err != nil {
		return fmt.Errorf("remove registrations of deleted user %q: %w", name, err)
	}
	return nil
}

func (a *app) Registrations(context.Context) ([]web.Registration, error) {
	bs := a.sip.Registrations()
	out := make([]web.Registration, len(bs))
	for i, b := range bs {
		out[i] = web.Registration{ID: b.ID, User: b.User, Contact: b.Contact, Source: b.Source,
			Transport: b.Transport, UserAgent: b.UserAgent, ExpiresAt: jsontime.Millis(b.Expires.UTC())}
	}
	return out, nil
}

func (a *app) RemoveRegistration(ctx context.Context, id string) error {
	ok, err := a.sip.RemoveBinding(ctx, id)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("registration %q: %w", id, web.ErrNotFound)
	}
	return nil
}

func webCall(c sip.CallInfo) web.Call {
	out := web.Call{ID: c.ID, Caller: c.Caller, Callee: c.Callee, State: c.State,
		StartedAt: jsontime.Millis(c.StartedAt.UTC()), AnsweredAt: jsontime.Millis(c.AnsweredAt.UTC()), Legs: make([]web.CallLeg, len(c.Legs)), Codecs: c.Codecs,
		Trunk: c.Trunk, DID: c.DID}
	for i, l := range c.Legs {
		out.Legs[i] = web.CallLeg{Name: l.Name, RelayPort: l.RelayPort, Remote: l.Remote, MediaCounters: web.MediaCounters{
			PacketsIn: l.Stats.PacketsIn, PacketsOut: l.Stats.PacketsOut, BytesIn: l.Stats.BytesIn, BytesOut: l.Stats.BytesOut,
			Lost: l.Stats.Lost, JitterMS: l.Stats.JitterMS,
		}}
	}
	return out
}

func (a *app) Calls(context.Context) ([]web.Call, error) {
	cs := a.sip.Calls()
	out := make([]web.Call, len(cs))
	for i, c := range cs {
		out[i] = webCall(c)
	}
	return out, nil
}

func (a *app) Call(_ context.Context, id string) (web.Call, error) {
	c, ok := a.sip.Call(id)
	if !ok {
		return web.Call{}, fmt.Errorf("call %q: %w", id, web.ErrNotFound)
	}
	return webCall(c), nil
}

func (a *app) Hangup(_ context.Context, id string) error {
	if !a.sip.Hangup(id) {
		return fmt.Errorf("call %q: %w", id, web.ErrNotFound)
	}
	return nil
}

func webRecord(r store.CallRecord) web.Record {
	out := web.Record{ID: r.ID, Caller: r.Caller, Callee: r.Callee, CallerURI: r.CallerURI, CalleeURI: r.CalleeURI,
		Direction: r.Direction, Trunk: r.Trunk, DID: r.DID, StartedAt: jsontime.Millis(r.StartedAt), AnsweredAt: jsontime.Millis(r.AnsweredAt), EndedAt: jsontime.Millis(r.EndedAt),
		DurationMS: r.Duration.Milliseconds(), Result: r.Result, Status: r.Status, HangupBy: r.HangupBy, Reason: r.Reason,
		Legs: make([]web.RecordLeg, len(r.Legs))}
	for i, l := range r.Legs {
		out.Legs[i] = web.RecordLeg{Name: l.Name, MediaCounters: web.MediaCounters{
			PacketsIn: l.PacketsIn, PacketsOut: l.PacketsOut, BytesIn: l.BytesIn, BytesOut: l.BytesOut, Lost: l.Lost, JitterMS: l.Jitter,
		}}
	}
	return out
}

func (a *app) Records(ctx context.Context, f web.RecordFilter) ([]web.Record, error) {
	rs, err := a.st.Calls(ctx, store.CallFilter{User: f.User, Since: f.Since, Until: f.Until, Result: f.Result, Limit: f.Limit, Before: f.Before})
	if errors.Is(err, store.ErrNotFound) {
		// The only thing Calls looks up is the cursor.
		return nil, fmt.Errorf("%w (%w)", web.ErrBadCursor, err)
	}
	if err != nil {
		return nil, err
	}
	out := make([]web.Record, len(rs))
	for i, r := range rs {
		out[i] = webRecord(r)
	}
	return out, nil
}

func (a *app) Record(ctx context.Context, id string) (web.Record, error) {
	r, err := a.st.Call(ctx, id)
	if err != nil {
		return web.Record{}, apiErr(err)
	}
	return webRecord(r), nil
}

// callLister is what resultCounter reads.
type callLister interface {
	Calls(ctx context.Context, f store.CallFilter) ([]store.CallRecord, error)
}

// resultCounter counts ended call records by result for the metrics
// without reading every record at each scrape: records that started before
// the watermark have all ended (an ended record never changes), so their
// counts are kept and only newer records are read again.
type resultCounter struct {
	calls callLister
	now   func() time.Time

	mu        sync.Mutex
	watermark time.Time         // every record started before it has ended and is in done
	done      map[string]uint64 // results of the records started before watermark
}

// resultSettle is how long after a call starts its record is surely
// written: records are inserted within milliseconds of their StartedAt.
const resultSettle = time.Minute

// resultPage is how many records one query reads.
const resultPage = 1000

// CallResults returns how many recorded calls ended with each result.
func (c *resultCounter) CallResults(ctx context.Context) (map[string]uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	next := c.now().Add(-resultSettle) // the next watermark, at most
	type ended struct {
		started time.Time
		result  string
	}
	var window []ended
	before := ""
	for {
		recs, err := c.calls.Calls(ctx, store.CallFilter{Since: c.watermark, Limit: resultPage, Before: before})
		if err != nil {
			return nil, fmt.Errorf("count call results: %w", err)
		}
		for _, r := range recs {
			if r.EndedAt.IsZero() {
				if r.StartedAt.Before(next) {
					next = r.StartedAt
				}
				continue
			}
			window = append(window, ended{r.StartedAt, r.Result})
		}
		if len(recs) < resultPage {
			break
		}
		before = recs[len(recs)-1].ID
	}
	if c.done == nil {
		c.done = map[string]uint64{}
	}
	if next.Before(c.watermark) {
		next = c.watermark
	}
	out := maps.Clone(c.done)
	for _, e := range window {
		out[e.result]++
		if e.started.Before(next) {
			c.done[e.result]++
		}
	}
	c.watermark = next
	return out, nil
}

func webConfig(cfg *config.Config) web.Config {
	return web.Config{
		Listen:         cfg.Web.Listen,
		Tokens:         cfg.Web.APITokens,
		ControlSocket:  cfg.Control.Socket,
		Version:        version,
		AllowedOrigins: cfg.Web.AllowedOrigins,
	}
}

// readyWhenListening marks the server ready once SIP has bound its sockets,
// and not ready again as soon as it starts stopping.
func readyWhenListening(ctx context.Context, s *sip.Server, w *web.Server) error {
	if _, err := s.Addr(ctx, "udp"); err != nil {
		return nil // stopping before SIP came up
	}
	if !s.Draining() {
		w.SetReady(true)
	}
	<-ctx.Done()
	w.SetReady(false)
	return nil
}
