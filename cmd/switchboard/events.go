package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/events"
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
	return &eventPlane{
		st:        st,
		hub:       hub,
		recorder:  events.NewRecorder(events.RecorderConfig{}, st, hub, d, log),
		deliverer: d,
		retention: cfg.Events.Retention.D(),
		log:       log.With("component", "events"),
	}, nil
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
