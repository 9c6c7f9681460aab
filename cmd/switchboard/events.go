package main

import (
	"context"
	"log/slog"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/events"
	"github.com/switchboard/switchboard/internal/jsontime"
	"github.com/switchboard/switchboard/internal/store"
	"github.com/switchboard/switchboard/internal/webhook"
	"github.com/switchboard/switchboard/sip"
	"github.com/switchboard/switchboard/web"
)

// eventPlane carries events from the signalling plane to webhooks (through
// the store's outbox) and to live subscribers (through the hub).
type eventPlane struct {
	st        *store.Store
	hub       *events.Hub
	recorder  *events.Recorder
	deliverer *webhook.Deliverer
	retention time.Duration
	log       *slog.Logger
	// configured are the URLs of the configured webhooks.
	configured atomic.Pointer[[]string]
}

var (
	_ sip.Notifier  = (*events.Recorder)(nil)
	_ sip.Committer = (*events.Recorder)(nil)
)

// newEventPlane tells the store which webhooks to queue events for; call it
// before anything writes an event.
func newEventPlane(cfg *config.Config, st *store.Store, log *slog.Logger) (*eventPlane, error) {
	wc := webhook.Config{RetryPeriod: cfg.Events.RetryPeriod.D(), Webhooks: webhookTargets(cfg)}
	d, err := webhook.New(wc, st, log)
	if err != nil {
		return nil, err
	}
	hub := events.NewHub(0)
	p := &eventPlane{
		st:        st,
		hub:       hub,
		recorder:  events.NewRecorder(events.RecorderConfig{}, st, hub, d, log),
		deliverer: d,
		retention: cfg.Events.Retention.D(),
		log:       log.With("component", "events"),
	}
	urls := make([]string, len(wc.Webhooks))
	for i, t := range wc.Webhooks {
		urls[i] = t.URL
	}
	p.configured.Store(&urls)
	return p, nil
}

// pruneEvery is how often old events are deleted.
const pruneEvery = time.Hour

// prune deletes events older than the retention period, at start and then
// every pruneEvery, until ctx ends.
func (p *eventPlane) prune(ctx context.Context) error {
	t := time.NewTicker(pruneEvery)
	defer t.Stop()
	for {
		n, err := p.st.PruneEvents(ctx, time.Now().Add(-p.retention))
		if err != nil && ctx.Err() == nil {
			p.log.Warn("prune old events", "error", err)
		} else if n > 0 {
			p.log.Info("old events pruned", "events", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// aliveEvery is how often a running server records that it is up: the
// most a crashed call's recorded end can be early by.
const aliveEvery = 5 * time.Second

// keepAlive records every aliveEvery that the server is running, until ctx
// ends.
func (p *eventPlane) keepAlive(ctx context.Context) error {
	t := time.NewTicker(aliveEvery)
	defer t.Stop()
	for {
		if err := p.st.MarkAlive(ctx, time.Time{}); err != nil && ctx.Err() == nil {
			p.log.Warn("record that the server is up", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// webhookTargets are the file's webhooks as the deliverer takes them.
func webhookTargets(cfg *config.Config) []webhook.Target {
	var out []webhook.Target
	for _, w := range cfg.Webhooks {
		out = append(out, webhook.Target{URL: w.URL, Secret: w.Secret, Events: w.Events})
	}
	return out
}

// eventLog is the event plane as the web API's event stream sees it.
type eventLog struct {
	hub *events.Hub
	st  *store.Store
}

var _ web.EventLog = eventLog{}

func webEvent(e store.Event) web.Event {
	return web.Event{Seq: e.Seq, ID: e.ID, Type: e.Type, Time: e.Time, Data: e.Data}
}

func (l eventLog) Subscribe(ctx context.Context) web.Subscription {
	ch, cancel := l.hub.Subscribe(ctx)
	return &hubSubscription{ch: ch, cancel: cancel}
}

func (l eventLog) EventsAfter(ctx context.Context, after int64, limit int) ([]web.Event, error) {
	evs, err := l.st.Events(ctx, after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]web.Event, len(evs))
	for i, e := range evs {
		out[i] = webEvent(e)
	}
	return out, nil
}

type hubSubscription struct {
	ch     <-chan store.Event
	cancel func()
}

func (s *hubSubscription) Next(ctx context.Context) (web.Event, error) {
	select {
	case e, ok := <-s.ch:
		if !ok {
			return web.Event{}, web.ErrSubscriptionLost
		}
		return webEvent(e), nil
	case <-ctx.Done():
		return web.Event{}, ctx.Err()
	}
}

func (s *hubSubscription) Close() { s.cancel() }

// setWebhooks applies the webhooks of a reloaded configuration.
func (p *eventPlane) setWebhooks(cfg *config.Config) error {
	ts := webhookTargets(cfg)
	if err := p.deliverer.SetWebhooks(ts); err != nil {
		return err
	}
	urls := make([]string, len(ts))
	for i, t := range ts {
		urls[i] = t.URL
	}
	p.configured.Store(&urls)
	return nil
}

var _ web.Webhooks = (*eventPlane)(nil)

// WebhookStatus reports each webhook's queue: the configured ones, and
// removed ones whose deliveries are still kept.
func (p *eventPlane) WebhookStatus(ctx context.Context) ([]web.WebhookStatus, error) {
	stats, err := p.st.DeliveryStats(ctx)
	if err != nil {
		return nil, err
	}
	configured := map[string]bool{}
	var out []web.WebhookStatus
	if urls := p.configured.Load(); urls != nil {
		for _, u := range *urls {
			configured[u] = true
		}
	}
	seen := map[string]bool{}
	for _, s := range stats {
		seen[s.Webhook] = true
		out = append(out, web.WebhookStatus{URL: redactURL(s.Webhook), Label: webhook.Label(s.Webhook), Configured: configured[s.Webhook],
			Pending: s.Pending, Delivered: s.Delivered, Expired: s.Expired, OldestPendingAt: jsontime.Millis(s.OldestPending),
			Attempts: s.HeadAttempts, NextAttemptAt: jsontime.Millis(s.NextAttemptAt), LastError: s.LastError, LastDeliveredAt: jsontime.Millis(s.LastDeliveredAt)})
	}
	if urls := p.configured.Load(); urls != nil {
		for _, u := range *urls {
			if !seen[u] {
				out = append(out, web.WebhookStatus{URL: redactURL(u), Label: webhook.Label(u), Configured: true})
			}
		}
	}
	return out, nil
}

// redactURL hides a password in a webhook URL.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	return u.Redacted()
}

// markCrashed ends the call records the previous run left open (it was
// killed during those calls), each with its call.ended event, so that
// webhook receivers learn how every call they saw start ended.
// They end when that run was last known alive (keepAlive), so a crashed
// call's duration does not count the time the server was down.
func (p *eventPlane) markCrashed(ctx context.Context) (int, error) {
	end := time.Now()
	if t, err := p.st.LastAlive(ctx); err != nil {
		return 0, err
	} else if !t.IsZero() && t.Before(end) {
		end = t
	}
	return p.st.MarkOpenCallsCrashedWithEvents(ctx, end, func(r store.CallRecord) ([]store.Event, error) {
		e, err := store.NewEvent(sip.EventCallEnded, sip.NewCallEvent(r))
		if err != nil {
			return nil, err
		}
		return []store.Event{e}, nil
	})
}
