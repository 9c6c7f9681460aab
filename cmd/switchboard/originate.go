package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/switchboard/switchboard/internal/jsontime"
	"github.com/switchboard/switchboard/sip"
	"github.com/switchboard/switchboard/web"
)

var _ web.Originator = (*app)(nil)

// Originate places a click-to-call through the signalling plane.
func (a *app) Originate(ctx context.Context, from, to string) (web.Originate, error) {
	o, err := a.sip.Originate(ctx, from, to)
	switch {
	case errors.Is(err, sip.ErrUnknownUser):
		return web.Originate{}, fmt.Errorf("%w (%w)", web.ErrNotFound, err)
	case errors.Is(err, sip.ErrNoRoute):
		return web.Originate{}, fmt.Errorf("%w (%w)", web.ErrNoRoute, err)
	case errors.Is(err, sip.ErrNotRegistered):
		return web.Originate{}, fmt.Errorf("%w (%w)", web.ErrConflict, err)
	case errors.Is(err, sip.ErrStopping):
		return web.Originate{}, fmt.Errorf("%w (%w)", web.ErrUnavailable, err)
	case err != nil:
		return web.Originate{}, err
	}
	return web.Originate{ID: o.ID, From: o.From, To: o.To, State: o.State, CallID: o.CallID, StartedAt: jsontime.Millis(o.StartedAt.UTC())}, nil
}

var _ web.Signalling = (*app)(nil)

// SignallingStats reports the signalling plane's counters for the metrics.
func (a *app) SignallingStats() web.SignallingStats {
	m := a.sip.Metrics()
	out := web.SignallingStats{Requests: m.Requests, SetupBuckets: sip.SetupBuckets, SetupCounts: m.SetupCounts,
		SetupSum: m.SetupSum, RelayPacketsIn: m.RelayPacketsIn, RelayPacketsOut: m.RelayPacketsOut,
		RelayBytesIn: m.RelayBytesIn, RelayBytesOut: m.RelayBytesOut, RelayLost: m.RelayLost}
	for k, n := range m.Responses {
		out.Responses = append(out.Responses, web.ResponseCount{Method: k.Method, Class: k.Class, N: n})
	}
	return out
}
