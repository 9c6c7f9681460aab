package sip

import "github.com/emiago/sipgo/sip"

// defaultMaxForwards is the Max-Forwards a request without one is taken to
// carry: the value every UAC should insert (RFC 3261 §8.1.1.6).
const defaultMaxForwards = 70

// maxForwards is req's Max-Forwards, defaultMaxForwards when it has none.
func maxForwards(req *sip.Request) uint32 {
	if h := req.MaxForwards(); h != nil {
		return uint32(*h)
	}
	return defaultMaxForwards
}

// refuseTooManyHops answers 483 to a request we would pass on (an initial
// INVITE) whose Max-Forwards is spent (RFC 3261 §16.3 item 3). A B2BUA
// must honour it too, or a routing loop through trunks would never end
// (RFC 7332 §3.3). It reports whether it answered.
func (s *Server) refuseTooManyHops(req *sip.Request, tx sip.ServerTransaction) bool {
	if maxForwards(req) > 0 {
		return false
	}
	s.log.Info("call refused: Max-Forwards is 0", "from", req.From().Address.User, "to", req.Recipient.User, "source", req.Source())
	s.respond(tx, req, 483, "Too Many Hops")
	return true
}

// forwardMaxForwards gives out, a request sent on behalf of in, in's
// Max-Forwards less one (RFC 7332 §3.3).
func forwardMaxForwards(in, out *sip.Request) {
	mf := sip.MaxForwardsHeader(max(maxForwards(in), 1) - 1)
	if out.MaxForwards() == nil {
		out.AppendHeader(&mf)
		return
	}
	out.ReplaceHeader(&mf)
}
