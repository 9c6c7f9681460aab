package sip

import (
	"context"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard/switchboard/internal/store"
)

// newInternalCall is the call an authenticated user u places to callee at
// our domain, before anything about it is known.
func (s *Server) newInternalCall(req *sip.Request, u store.User, callee string) *call {
	id, now := s.newCallID(req)
	c := &call{
		events: callEvents{invited: s.now()},
		s:      s,
		id:     id,
		ended:  make(chan struct{}),
		aKey:   requestDialogKey(req),
		rec: store.CallRecord{
			Caller: u.Name, Callee: callee,
			CallerURI: req.From().Address.String(), CalleeURI: req.Recipient.String(),
			Direction: "internal", StartedAt: now,
		},
	}
	c.rec.ID = c.id
	c.log = s.log.With("call_id", c.id, "caller", u.Name, "callee", callee)
	return c
}

// refuseNotFound answers 404 to an authenticated user's call to a number
// that is neither a user nor routed to a trunk, and leaves a record of it
// (result not_found) with its call.ended event, as every call does. Only
// authenticated calls get this far: a scanner's guesses leave nothing.
func (s *Server) refuseNotFound(ctx context.Context, req *sip.Request, tx sip.ServerTransaction, u store.User, callee string) {
	c := s.newInternalCall(req, u, callee)
	c.log.Info("call failed: no such user or route")
	s.recordImmediate(ctx, c, 404, resultFor(404), "no such user or route")
	s.respond(tx, req, 404, "Not Found")
}
