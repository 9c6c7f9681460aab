package sip

import (
	"context"
	"strconv"
	"time"

	"github.com/emiago/sipgo/sip"
)

// drainRetryAfter is the Retry-After (seconds) on the 503s a draining
// server answers: about how long a restart takes.
const drainRetryAfter = 30

// drainPoll is how often Drain looks whether the last call has ended.
const drainPoll = 50 * time.Millisecond

// Drain stops taking new calls and waits until the calls in progress have
// ended or ctx ends. From then on a new INVITE gets 503 with Retry-After
// and OPTIONS reports the server unavailable, so that phones and load
// balancers go elsewhere; requests inside existing dialogs, and REGISTER,
// are still served. Drain returns ctx's error when calls were still up;
// ending them (BYE on both legs) is Run's job once its context ends.
func (s *Server) Drain(ctx context.Context) error {
	s.RefuseNew()
	t := time.NewTicker(drainPoll)
	defer t.Stop()
	for s.ActiveCalls() > 0 {
		select {
		case <-ctx.Done():
			s.log.Info("drain over with calls still up", "active_calls", s.ActiveCalls())
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// RefuseNew makes new calls and OPTIONS get 503 from now on, as Drain
// does first. Calling it before anything reports the server not ready
// keeps the two views consistent.
func (s *Server) RefuseNew() {
	if s.draining.CompareAndSwap(false, true) {
		s.log.Info("draining: new calls refused", "active_calls", s.ActiveCalls())
	}
}

// Draining reports whether Drain has been called.
func (s *Server) Draining() bool { return s.draining.Load() }

// refuseWhileDraining answers a request that would start something new
// with 503 while the server drains, and reports whether it did.
func (s *Server) refuseWhileDraining(req *sip.Request, tx sip.ServerTransaction) bool {
	if !s.draining.Load() {
		return false
	}
	if req.Method == sip.INVITE {
		s.guard.count(&s.guard.refused, RefusedDraining)
	}
	s.respond(tx, req, 503, "Service Unavailable: Shutting Down", sip.NewHeader("Retry-After", strconv.Itoa(drainRetryAfter)))
	return true
}
