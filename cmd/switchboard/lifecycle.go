package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/switchboard/switchboard/sip"
	"github.com/switchboard/switchboard/web"
)

// lifecycle carries the operator's requests to a running server: stop
// (drain first, then end what is left), stop now, and reload. main feeds it
// from signals; tests call its methods.
type lifecycle struct {
	stops  atomic.Int32
	drain  chan struct{} // closed by the first Stop
	now    context.Context
	cancel context.CancelFunc // the second Stop
	reload chan struct{}      // one pending reload at most
}

func newLifecycle() *lifecycle {
	now, cancel := context.WithCancel(context.Background())
	return &lifecycle{drain: make(chan struct{}), now: now, cancel: cancel, reload: make(chan struct{}, 1)}
}

// Stop asks the server to stop: the first time it drains, the second time
// it stops waiting for calls.
func (l *lifecycle) Stop() {
	switch l.stops.Add(1) {
	case 1:
		close(l.drain)
	case 2:
		l.cancel()
	}
}

// Reload asks the server to read its configuration file again.
func (l *lifecycle) Reload() {
	select {
	case l.reload <- struct{}{}:
	default: // one is pending already
	}
}

// notifySignals turns SIGTERM and SIGINT into Stop and SIGHUP into Reload
// for as long as the process lives.
func (l *lifecycle) notifySignals() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		for sig := range sigs {
			if sig == syscall.SIGHUP {
				l.Reload()
			} else {
				l.Stop()
			}
		}
	}()
}

// run serves the lifecycle's requests until ctx ends. On Stop it drains
// the server: ready goes false, new calls are refused, and calls in
// progress have drainTimeout (or until the second Stop) to end; then stop
// ends every component, and the SIP server ends what is left with BYE.
func (l *lifecycle) run(ctx context.Context, sipSrv *sip.Server, webSrv *web.Server, drainTimeout time.Duration,
	reload *reloader, stop context.CancelFunc, log *slog.Logger) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-l.reload:
			// Reload logs its outcome; a refused file changes nothing.
			_, _ = reload.Reload(ctx)
		case <-l.drain:
			// SIP refuses new work before /readyz says so: whoever sees
			// "not ready" finds OPTIONS and INVITE refused too.
			sipSrv.RefuseNew()
			webSrv.SetReady(false)
			log.Info("stopping: draining calls", "active_calls", sipSrv.ActiveCalls(), "drain_timeout", drainTimeout.String())
			dctx, cancel := context.WithTimeout(ctx, drainTimeout)
			unhook := context.AfterFunc(l.now, cancel)
			err := sipSrv.Drain(dctx)
			unhook()
			cancel()
			if err != nil && l.now.Err() != nil {
				log.Info("stopping now: second stop signal", "active_calls", sipSrv.ActiveCalls())
			}
			stop()
			return nil
		}
	}
}
