package sip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"

	"github.com/switchboard/switchboard/internal/store"
	"github.com/switchboard/switchboard/sip/trunk"
)

// trunkHost is the server as its trunks see it: they send through the
// server's sockets and publish through its notifier.
type trunkHost struct{ s *Server }

var _ trunk.Host = trunkHost{}

func (h trunkHost) Do(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	if h.s.fromListener(req) {
		h.s.waitUDPListener(ctx)
	}
	return h.s.client.Do(ctx, req)
}

func (h trunkHost) Contact(transport string) sip.Uri { return h.s.contactFor(transport).Address }

func (h trunkHost) Notify(eventType string, data any) { h.s.events.Notify(eventType, data) }

// Event types of trunks (sip/trunk publishes them through trunkHost).
const (
	EventTrunkUp   = "trunk.up"
	EventTrunkDown = "trunk.down"
)

// fromListener makes a UDP request leave from the server's listening
// socket, so that the provider sees, answers and calls the address we
// listen on (and a NAT keeps one mapping for it). It reports whether it
// did.
func (s *Server) fromListener(req *sip.Request) bool {
	if !strings.EqualFold(req.Transport(), "udp") {
		return false
	}
	a, err := netip.ParseAddrPort(s.boundAddr("udp"))
	if err != nil {
		return false
	}
	req.Laddr = sip.Addr{IP: net.IP(a.Addr().AsSlice()), Port: int(a.Port())}
	return true
}

// waitUDPListener waits (at most 2 s) until sipgo serves the UDP listening
// socket: a request sent from its address before that would make sipgo
// bind the address again, and fail. Trunks start as Run does, so their
// first REGISTER can be that early.
func (s *Server) waitUDPListener(ctx context.Context) {
	if s.trunks.udpServed.Load() {
		return
	}
	addr := s.boundAddr("udp")
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := s.ua.TransportLayer().GetConnection("udp", addr); err == nil && c != nil {
			c.TryClose()
			s.trunks.udpServed.Store(true)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// trunkRunner holds the server's trunks and runs them while the server
// runs; SetTrunks replaces them (a configuration reload) without a
// restart.
type trunkRunner struct {
	cur atomic.Pointer[[]trunk.Trunk]
	// udpServed is set once sipgo serves the UDP listener (see
	// waitUDPListener).
	udpServed atomic.Bool

	mu     sync.Mutex // serialises start, stop and replace
	parent context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newTrunkRunner(ts []trunk.Trunk) *trunkRunner {
	r := &trunkRunner{}
	r.cur.Store(&ts)
	return r
}

// list is the trunks now, in routing order.
func (r *trunkRunner) list() []trunk.Trunk { return *r.cur.Load() }

// startLocked runs the current trunks under r.parent; r.mu is held.
func (r *trunkRunner) startLocked(host trunkHost) {
	ctx, cancel := context.WithCancel(r.parent)
	r.cancel = cancel
	for _, t := range r.list() {
		r.wg.Go(func() {
			if err := t.Run(ctx, host); err != nil {
				host.s.log.Error("trunk stopped", "trunk", t.Name(), "error", err)
			}
		})
	}
}

// stopLocked ends the running trunks (each removes its registration) and
// waits for them; r.mu is held.
func (r *trunkRunner) stopLocked() {
	if r.cancel != nil {
		r.cancel()
		r.wg.Wait()
		r.cancel = nil
	}
}

// runTrunks starts every trunk; stop ends them and waits for them.
func (s *Server) runTrunks(ctx context.Context) (stop func()) {
	r := s.trunks
	r.mu.Lock()
	r.parent = ctx
	r.startLocked(trunkHost{s})
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		r.stopLocked()
		r.parent = nil
		r.mu.Unlock()
	}
}

// SetTrunks replaces the trunks: new calls use the new ones at once; the
// old ones unregister and stop (calls already through them go on), and
// the new ones start when the server is running.
func (s *Server) SetTrunks(ts []trunk.Trunk) {
	r := s.trunks
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cur.Store(&ts)
	r.stopLocked()
	if r.parent != nil && r.parent.Err() == nil {
		r.startLocked(trunkHost{s})
	}
	s.log.Info("trunks replaced", "trunks", len(ts))
}

// Trunks returns the state of every trunk, in configuration order.
func (s *Server) Trunks() []trunk.Status {
	ts := s.trunks.list()
	out := make([]trunk.Status, len(ts))
	for i, t := range ts {
		out[i] = t.Status()
	}
	return out
}

// inboundTrunkCall takes an INVITE that comes from a trunk's provider and
// rings the user its dialled number (DID) maps to. It returns false when
// req does not come from a trunk. The provider is trusted by its address,
// as providers do not answer digest challenges; a number that is not one
// of the trunk's gets 404, so nothing reaches further than the mapped
// users (no relaying).
func (s *Server) inboundTrunkCall(req *sip.Request, tx sip.ServerTransaction) bool {
	src, err := netip.ParseAddrPort(req.Source())
	ts := s.trunks.list()
	if err != nil || len(ts) == 0 {
		return false
	}
	for _, t := range ts {
		did := req.Recipient.User
		user, ours := t.Inbound(src, did)
		if user == "" && req.To() != nil {
			// Providers that call our registered Contact put our account
			// in the request URI and the DID in To.
			if u, ok := t.Inbound(src, req.To().Address.User); ok && u != "" {
				did, user, ours = req.To().Address.User, u, true
			}
		}
		if !ours {
			continue
		}
		s.inboundCall(req, tx, t, did, user)
		return true
	}
	return false
}

func (s *Server) inboundCall(req *sip.Request, tx sip.ServerTransaction, t trunk.Trunk, did, user string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if user == "" {
		s.log.Info("inbound call refused: number not mapped", "trunk", t.Name(), "number", did, "source", req.Source())
		s.respond(tx, req, 404, "Not Found")
		return
	}
	target, exists, err := s.users.get(ctx, user)
	if err != nil {
		s.respondErr(tx, req, err)
		return
	}
	if !exists {
		s.log.Warn("inbound call refused: the number maps to no user", "trunk", t.Name(), "number", did, "user", user)
		s.respond(tx, req, 404, "Not Found")
		return
	}
	// The user is held to the same limit as for a call from a phone
	// (handleInvite has applied drain and the total limit already).
	if !s.admitCallee(req, tx, user, true) {
		return
	}
	c := s.newTrunkCall(req, store.CallRecord{
		Caller: req.From().Address.User, Callee: user,
		CallerURI: req.From().Address.String(), CalleeURI: req.Recipient.String(),
		Direction: "inbound", Trunk: t.Name(), DID: did,
	}, t.Name())
	if _, _, _, err := parseSDP(req.Body()); err != nil || len(req.Body()) == 0 {
		s.respond(tx, req, 488, "Not Acceptable Here")
		return
	}
	bindings := s.reg.snapshot(user)
	if len(bindings) == 0 {
		c.log.Info("call failed: callee not registered")
		s.recordImmediate(ctx, c, 480, "unavailable", "callee not registered")
		s.respond(tx, req, 480, "Temporarily Unavailable")
		return
	}
	if pa, ok := t.(publicAddresser); ok {
		// Behind a NAT, our answers name the address the provider reaches
		// us at, so that its ACK, BYE and re-INVITEs come through the NAT.
		if pub := pa.Public(); pub.IsValid() && strings.EqualFold(req.Transport(), "udp") {
			ct := s.contactFor(req.Transport())
			ct.Address.Host, ct.Address.Port = pub.Addr().String(), int(pub.Port())
			c.aContact = ct // before other goroutines can see the call
		}
	}
	fromName := req.From().DisplayName
	s.runTrunkCall(ctx, c, req, tx, func(offerB []byte) {
		c.connect(bindings, offerB, fromName, target)
	})
}

// outboundTrunkCall sends an authenticated user's call to a number that
// is no user of ours out through the trunks whose outbound pattern
// matches, in configuration order. It returns false when no trunk takes
// the number.
func (s *Server) outboundTrunkCall(ctx context.Context, req *sip.Request, tx sip.ServerTransaction, u store.User, number string) bool {
	var ts []trunk.Trunk
	var routes []trunk.Route
	for _, t := range s.trunks.list() {
		if r, ok := t.Route(u.Name, number); ok {
			ts = append(ts, t)
			routes = append(routes, r)
		}
	}
	if len(ts) == 0 {
		return false
	}
	c := s.newTrunkCall(req, store.CallRecord{
		Caller: u.Name, Callee: number,
		CallerURI: req.From().Address.String(), CalleeURI: req.Recipient.String(),
		Direction: "outbound",
	}, "")
	if _, _, _, _, err := parseOffer(req.Body()); err != nil || len(req.Body()) == 0 {
		s.respond(tx, req, 488, "Not Acceptable Here", sip.NewHeader("Warning", `399 switchboard "an SDP offer is required in the INVITE"`))
		return true
	}
	// A trunk that is down is not even tried: the caller hears at once.
	var why []string
	for _, t := range ts {
		if err := t.Ready(); err != nil {
			why = append(why, t.Name()+": "+err.Error())
		}
	}
	if len(why) == len(ts) {
		reason := strings.Join(why, "; ")
		c.log.Info("call failed fast: no trunk available", "reason", reason)
		s.recordImmediate(ctx, c, 503, "failed", "no trunk available: "+reason)
		s.respond(tx, req, 503, "Service Unavailable", reasonHeader(503, "no trunk available: "+reason))
		return true
	}
	fromName := req.From().DisplayName
	if fromName == "" {
		fromName = quotedDisplayName(u.DisplayName)
	}
	s.runTrunkCall(ctx, c, req, tx, func(offerB []byte) {
		c.connectTrunks(ts, routes, offerB, fromName)
	})
	return true
}

// reasonHeader is a Reason header (RFC 3326) that says why a call failed.
func reasonHeader(code int, text string) sip.Header {
	text = strings.NewReplacer(`"`, "'", `\`, "/", "\r", " ", "\n", " ").Replace(text)
	if len(text) > 200 {
		text = text[:200]
	}
	return sip.NewHeader("Reason", fmt.Sprintf(`SIP;cause=%d;text="%s"`, code, text))
}

func (s *Server) newTrunkCall(req *sip.Request, rec store.CallRecord, trunkName string) *call {
	id, started := s.newCallID(req)
	c := &call{s: s, id: id, ended: make(chan struct{}), aKey: requestDialogKey(req), rec: rec, events: callEvents{invited: s.now()}}
	c.rec.ID = c.id
	c.rec.StartedAt = started
	c.log = s.log.With("call_id", c.id, "caller", rec.Caller, "callee", rec.Callee, "direction", rec.Direction)
	if trunkName != "" {
		c.log = c.log.With("trunk", trunkName)
	}
	return c
}

// runTrunkCall accepts the caller's INVITE, anchors its media in the relay
// and hands leg B's offer to connect, as handleInvite does for internal
// calls.
func (s *Server) runTrunkCall(ctx context.Context, c *call, req *sip.Request, tx sip.ServerTransaction, connect func(offerB []byte)) {
	// A browser's WebRTC offer ends in a bridge; the provider gets a plain
	// RTP offer from it (forkOffer), as a phone would.
	offer, audio, offerInfo, browserA, err := parseOffer(req.Body())
	if err != nil {
		s.respond(tx, req, 488, "Not Acceptable Here")
		return
	}
	c.browserA = browserA // before other goroutines can see the call
	if !s.admit(c, req, tx) {
		return
	}
	defer s.calls.wg.Done()
	media := c.media
	c.emit(ctx, recordStart, EventCallStarted)
	c.log.Info("call started", "codecs", strings.Join(offerInfo.Codecs, ","))
	_ = tx.Respond(sip.NewResponseFromRequest(req, 100, "Trying", nil))
	c.sdpVer = 1
	var offerB []byte
	if browserA {
		offerB, _, err = c.forkOffer(store.Binding{}, nil)
	} else {
		media.SetRemote(LegA, offerInfo.RTP, offerInfo.RTCP)
		offerB, err = rewriteSDP(offer, audio, media.Addr(), media.Port(LegB), c.sdpVer)
	}
	if err != nil {
		c.failSetup(488, "system", err.Error())
		return
	}
	connect(offerB)
}

// setupEnd is why a call's setup ended without an answer, other than the
// trunk's own failure.
type setupEnd struct {
	status     int
	by, reason string
}

// connectTrunks tries the trunks in order (failover): a trunk that is
// down or unregistered is skipped at once; one that does not answer
// within its timeout, or answers 408 or 5xx, passes the call to the next.
// Any other answer (busy, not found, …) is the callee's and is final.
func (c *call) connectTrunks(ts []trunk.Trunk, routes []trunk.Route, offerB []byte, fromName string) {
	ring := c.s.cfg.RingTimeout
	if ring <= 0 {
		ring = defaultRingTimeout
	}
	ringCtx, stopRing := context.WithTimeout(context.Background(), ring)
	defer stopRing()
	var rs ringState
	var why []string
	for i, t := range ts {
		if err := t.Ready(); err != nil {
			c.log.Info("trunk skipped", "trunk", t.Name(), "error", err)
			why = append(why, t.Name()+": "+err.Error())
			continue
		}
		// The record names the trunk being tried, so that call.ringing
		// and call.answered say which one carries the call.
		c.setTrunk(t.Name())
		d, status, err, end := c.tryTrunk(ringCtx, t, routes[i], offerB, fromName, &rs)
		switch {
		case d != nil:
			c.log.Info("call leaves through trunk", "trunk", t.Name(), "number", routes[i].Number)
			// Requests in the dialog keep the Contact of the INVITE,
			// which may name a public address (see trunkRequest).
			if ct := d.InviteRequest.Contact(); ct != nil {
				c.mu.Lock()
				c.bContact = ct.Clone()
				c.mu.Unlock()
			}
			c.bridge(d, nil)
			return
		case end != nil:
			c.failSetup(end.status, end.by, end.reason)
			return
		case !trunkFailover(status):
			c.failSetup(status, "callee", fmt.Sprintf("trunk %s: provider answered %d", t.Name(), status))
			return
		}
		what := fmt.Sprintf("provider answered %d", status)
		if status == 0 {
			what = err.Error()
		}
		c.log.Info("trunk failed, trying the next", "trunk", t.Name(), "error", what)
		why = append(why, t.Name()+": "+what)
	}
	// Whatever the trunks said, the caller learns that the way out is
	// unavailable now (RFC 3261 §21.5.4), and the Reason says why, naming
	// every trunk tried; no one trunk carried the call.
	c.setTrunk("")
	reason := "no trunk connected: " + strings.Join(why, "; ")
	res := c.withServer(sip.NewResponseFromRequest(c.a.InviteRequest, 503, reasonPhrase(503), nil), 0, "")
	res.AppendHeader(reasonHeader(503, reason))
	c.respondA(res)
	c.log.Info("call not connected", "status", 503, "reason", reason)
	c.finish(503, resultFor(503), "system", reason)
}

// publicAddresser is a trunk that knows the address its provider sees us
// at behind a NAT (trunk.Provider).
type publicAddresser interface {
	Public() netip.AddrPort
}

// setTrunk records the trunk the call goes through.
func (c *call) setTrunk(name string) {
	c.mu.Lock()
	c.rec.Trunk = name
	c.mu.Unlock()
}

// trunkFailover reports whether a trunk's answer means "try the next
// trunk": no answer at all, 408, a server failure, or our credentials
// refused (a trunk problem, not the callee's).
func trunkFailover(status int) bool {
	return status == 0 || status == 408 || status == 401 || status == 407 || (status >= 500 && status < 600)
}

// tryTrunk sends the call to one trunk and waits for its outcome: the
// answered dialog, or the trunk's final status (0 when it never answered,
// with err), or end when the call's setup is over for another reason
// (caller gone, ring timeout, shutdown). Provisional responses are
// relayed to the caller as they come.
func (c *call) tryTrunk(ringCtx context.Context, t trunk.Trunk, r trunk.Route, offerB []byte, fromName string, rs *ringState) (*sipgo.DialogClientSession, int, error, *setupEnd) {
	s := c.s
	req := c.trunkRequest(r, offerB, fromName)
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	prov := make(chan *sip.Response, 8)
	results := make(chan forkResult)
	setupDone := make(chan struct{})
	defer close(setupDone)
	s.calls.wg.Add(1)
	go c.trunkFork(ctx, req, r, prov, results, setupDone)

	// Until the provider answers at all, it may be black-holed: give up
	// after the trunk's timeout rather than the transaction's 32 s.
	noAnswer := time.NewTimer(r.Timeout)
	defer noAnswer.Stop()
	heard := false
	stop := func(end setupEnd) (*sipgo.DialogClientSession, int, error, *setupEnd) {
		if heard {
			cancel(nil) // CANCEL the INVITE
		} else {
			// RFC 3261 §9.1: no CANCEL before a provisional response.
			cancel(sipgo.WaitAnswerForceCancelErr)
		}
		return nil, 0, nil, &end
	}
	for {
		select {
		case res := <-prov:
			if !heard {
				heard = true
				noAnswer.Stop()
			}
			if res.StatusCode > 100 {
				c.provisional(res, rs)
			}
		case fr := <-results:
			if fr.d != nil {
				t.CallResult(200, nil)
				return fr.d, 200, nil, nil
			}
			status := 0
			var de *sipgo.ErrDialogResponse
			if errors.As(fr.err, &de) {
				status = de.Res.StatusCode
			}
			t.CallResult(status, fr.err)
			return nil, status, fr.err, nil
		case <-noAnswer.C:
			if heard {
				continue
			}
			cancel(sipgo.WaitAnswerForceCancelErr)
			err := fmt.Errorf("no answer within %s", r.Timeout)
			t.CallResult(0, err)
			return nil, 0, err, nil
		case <-c.a.Context().Done():
			return stop(setupEnd{487, "caller", "cancelled by caller"})
		case <-ringCtx.Done():
			return stop(setupEnd{480, "system", "no answer"})
		case <-c.ended:
			status := c.snapshot().Status
			if status < 400 {
				status = 487
			}
			return stop(setupEnd{status, "system", "ended"})
		case <-c.media.Done():
			return stop(setupEnd{503, "system", "media timeout"})
		}
	}
}

// trunkFork is fork for a trunk: it answers the provider's digest
// challenges with the trunk's credentials and passes every provisional
// response on, 100 Trying included (proof that the provider is alive).
func (c *call) trunkFork(ctx context.Context, req *sip.Request, r trunk.Route, prov chan<- *sip.Response, results chan<- forkResult, setupDone <-chan struct{}) {
	defer c.s.calls.wg.Done()
	d, err := c.s.dua.WriteInvite(ctx, req)
	if err == nil {
		err = d.WaitAnswer(ctx, sipgo.AnswerOptions{Username: r.Username, Password: r.Password,
			OnResponse: func(res *sip.Response) error {
				if res.IsProvisional() {
					select {
					case prov <- res:
					default:
					}
				}
				return nil
			}})
	}
	fr := forkResult{err: err}
	if err == nil {
		fr.d = d
	} else if d != nil && d.InviteResponse != nil && d.InviteResponse.IsSuccess() {
		c.dropLoser(d)
	}
	select {
	case results <- fr:
	case <-setupDone:
		if fr.d != nil {
			c.dropLoser(fr.d)
		}
	}
}

// trunkRequest builds the INVITE to the provider: the number at the
// provider, our caller ID in From and P-Asserted-Identity (RFC 3325).
func (c *call) trunkRequest(r trunk.Route, offerB []byte, fromName string) *sip.Request {
	s := c.s
	req := sip.NewRequest(sip.INVITE, r.URI)
	from := sip.FromHeader{DisplayName: fromName, Address: r.From, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(&from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: r.Number, Host: r.URI.Host}, Params: sip.NewParams()})
	cid := sip.CallIDHeader(uuid.NewString())
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.INVITE})
	contact := s.contactFor(r.Transport)
	if r.Public.IsValid() && strings.EqualFold(r.Transport, "udp") {
		// Behind a NAT: the address the provider reaches us at, as the
		// trunk registered it.
		contact.Address.Host, contact.Address.Port = r.Public.Addr().String(), int(r.Public.Port())
	}
	req.AppendHeader(contact)
	if r.AssertedIdentity != "" {
		req.AppendHeader(sip.NewHeader("P-Asserted-Identity", r.AssertedIdentity))
	}
	req.AppendHeader(sip.NewHeader("Allow", allowMethods))
	req.AppendHeader(sip.NewHeader("User-Agent", s.cfg.UserAgent))
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	forwardMaxForwards(c.a.InviteRequest, req)
	req.SetBody(offerB)
	req.SetDestination(r.Destination)
	req.SetTransport(strings.ToUpper(r.Transport))
	s.fromListener(req)
	return req
}
