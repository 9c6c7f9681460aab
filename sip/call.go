package sip

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"

	"github.com/switchboard/switchboard/internal/store"
)

// CallRecords persists call records.
type CallRecords interface {
	StartCall(ctx context.Context, r store.CallRecord) error
	UpdateCall(ctx context.Context, r store.CallRecord) error
}

// call is one call through the back-to-back user agent: the caller's
// dialog (leg A, we are its UAS), the callee's dialog (leg B, we are its
// UAC) and the relay session that carries its audio.
type call struct {
	s     *Server
	id    string
	log   *slog.Logger
	media MediaSession
	// ctx ends with the call; requests passed between the legs use it.
	ctx    context.Context
	cancel context.CancelFunc

	a    *sipgo.DialogServerSession
	aTx  sip.ServerTransaction // the caller's INVITE transaction
	aKey string

	// sending serialises the requests we pass into each leg's dialog.
	// sipgo numbers an ACK after the dialog's latest request, so an INFO
	// sent while a re-INVITE is pending would give the ACK the INFO's CSeq
	// and leave the re-INVITE unacknowledged.
	sending [2]sync.Mutex

	// ended is closed when the call is over; end runs once.
	ended   chan struct{}
	endOnce sync.Once

	mu       sync.Mutex
	b        *sipgo.DialogClientSession
	bKey     string
	answered bool
	// over is set when end begins: from then on no device may be bridged.
	over bool
	// dialogMu orders storing and deleting the call's dialogs (orphans.go);
	// dialogsSaved says they are stored.
	dialogMu     sync.Mutex
	dialogsSaved bool
	// ringing is what ends the call's transactions while it rings
	// (orphans_ringing.go): the forks sent so far; ringSaved says they
	// are stored, answerSaved that the answered call's dialogs replaced
	// them.
	ringForks              []dialogEnd
	ringSaved, answerSaved bool
	busy                   bool   // an offer/answer exchange is in progress (glare → 491)
	sdpVer                 uint64 // our o= session version, increased per offer
	// acks hands the ACK for the 2xx to a passed re-INVITE to the
	// goroutine that retransmits that 2xx.
	acks map[ackKey]chan *sip.Request
	rec  store.CallRecord

	// events orders the call's events and record writes (see emit).
	events callEvents
	// codecs are the audio formats of the caller's offer, then of the
	// callee's answer (the ones in use); guarded by mu.
	codecs []string
	// aContact and bContact, when set, are our Contact toward leg A or B
	// in place of contactFor's: a trunk's public address behind a NAT.
	// aContact is set before the call is shared; bContact is guarded by mu.
	aContact, bContact *sip.ContactHeader
	// browserA is set when the caller is a browser (a WebRTC offer);
	// browsers holds the bridges of the legs that face browsers.
	browserA bool
	browsers [2]BrowserLeg
	// plainSent is the last SDP a bridge answered a phone's offer with
	// (see phoneReoffer), per leg; guarded by mu.
	plainSent [2][]byte
	// sdes is each leg's SRTP keying (srtp.go); guarded by mu.
	sdes [2]sdesLeg
	// earlyAnswer is the answer a calling browser got with early media
	// (183); the 2xx repeats it.
	earlyAnswer []byte
}

// ackKey names the re-INVITE an ACK is for: its leg and CSeq.
type ackKey struct {
	leg  Leg
	cseq uint32
}

// callTable finds a call from any request inside one of its dialogs.
type callTable struct {
	mu       sync.Mutex
	byID     map[string]*call
	byDialog map[string]dialogRef
	wg       sync.WaitGroup // every call goroutine
	closed   bool
}

type dialogRef struct {
	c   *call
	leg Leg
}

func newCallTable() *callTable {
	return &callTable{byID: map[string]*call{}, byDialog: map[string]dialogRef{}}
}

// dialogKey identifies a dialog from the requests the far side sends in
// it: its Call-ID and its own tag (RFC 3261 §12).
func dialogKey(callID, remoteTag string) string { return callID + "|" + remoteTag }

func requestDialogKey(req *sip.Request) string {
	tag, _ := req.From().Params.Get("tag")
	return dialogKey(req.CallID().Value(), tag)
}

// add registers a new call and counts its setup goroutine in wg, under
// the lock so that closeAndEnd either refuses the call or waits for it. The
// caller calls t.wg.Done when setup returns.
func (t *callTable) add(c *call) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.byID[c.id] = c
	t.byDialog[c.aKey] = dialogRef{c, LegA}
	t.wg.Add(1)
	return true
}

// setB routes the callee's dialog to c, unless c has already been removed.
func (t *callTable) setB(c *call, key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.byID[c.id]; ok {
		t.byDialog[key] = dialogRef{c, LegB}
	}
}

func (t *callTable) remove(c *call) {
	t.mu.Lock()
	delete(t.byID, c.id)
	delete(t.byDialog, c.aKey)
	c.mu.Lock()
	if c.bKey != "" {
		delete(t.byDialog, c.bKey)
	}
	c.mu.Unlock()
	t.mu.Unlock()
}

func (t *callTable) lookup(req *sip.Request) (dialogRef, bool) {
	if req.From() == nil || req.CallID() == nil {
		return dialogRef{}, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok := t.byDialog[requestDialogKey(req)]
	return r, ok
}

func (t *callTable) all() []*call {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*call, 0, len(t.byID))
	for _, c := range t.byID {
		out = append(out, c)
	}
	return out
}

// closeAndEnd refuses new calls and ends every call at once: BYE on both
// legs of answered calls, a final response and CANCELs for ringing ones. It
// returns when every call goroutine has (see waitForks for force).
func (t *callTable) closeAndEnd(reason string, force func()) {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range t.all() {
		wg.Go(func() { c.end(503, "system", reason) })
	}
	wg.Wait()
	t.waitForks(shutdownForkGrace, force)
}

// shutdownForkGrace is how long shutdown waits for the devices that lost
// a call to stop ringing before it gives up on their INVITEs.
const shutdownForkGrace = 3 * time.Second

// waitForks waits for every call goroutine. A device that never answered
// our INVITE at all (a stale binding of a phone that is gone) keeps its
// fork waiting for the INVITE transaction to time out (64*T1, 32 s),
// since no CANCEL may be sent before a provisional response; after grace,
// force ends such transactions.
func (t *callTable) waitForks(grace time.Duration, force func()) {
	done := make(chan struct{})
	go func() {
		t.wg.Wait()
		close(done)
	}()
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-done:
		return
	case <-timer.C:
	}
	if force != nil {
		force()
	}
	<-done
}

// ActiveCalls returns the number of calls in progress.
func (s *Server) ActiveCalls() int {
	s.calls.mu.Lock()
	defer s.calls.mu.Unlock()
	return len(s.calls.byID)
}

// handleInvite starts a call, or passes a re-INVITE inside one.
func (s *Server) handleInvite(req *sip.Request, tx sip.ServerTransaction) {
	if req.To() == nil || req.From() == nil || req.CallID() == nil || req.CSeq() == nil {
		s.respond(tx, req, 400, "Missing Mandatory Header")
		return
	}
	if _, ok := req.To().Params.Get("tag"); ok {
		s.handleInDialog(req, tx)
		return
	}
	if s.refuseWhileDraining(req, tx) || !s.admitAnyCall(req, tx) || s.refuseTooManyHops(req, tx) {
		return
	}
	if s.inboundTrunkCall(req, tx) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if !s.isOurHost(req.Recipient.Host) {
		s.respond(tx, req, 403, "Relaying Denied")
		return
	}
	u, ok := s.authenticate(ctx, req, tx, true)
	if !ok {
		return
	}
	if req.From().Address.User != u.Name {
		s.log.Info("call refused: caller ID is not the authenticated user", "user", u.Name, "from", req.From().Address.User, "source", req.Source())
		s.respond(tx, req, 403, "Forbidden: From Is Not You")
		return
	}
	if !s.admitCall(req, tx, u.Name) {
		return
	}
	callee := req.Recipient.User
	if callee == "" {
		s.refuseNotFound(ctx, req, tx, u, callee)
		return
	}
	target, exists, err := s.users.get(ctx, callee)
	if err != nil {
		s.respondErr(tx, req, err)
		return
	}
	if !exists {
		if s.outboundTrunkCall(ctx, req, tx, u, callee) {
			return
		}
		s.refuseNotFound(ctx, req, tx, u, callee)
		return
	}
	if !s.admitCallee(req, tx, callee, false) {
		return
	}
	offer, audio, offerInfo, browserA, err := parseCallerOffer(req.Body())
	if len(req.Body()) == 0 {
		s.respond(tx, req, 488, "Not Acceptable Here", sip.NewHeader("Warning", `399 switchboard "an SDP offer is required in the INVITE"`))
		return
	}
	if err != nil {
		s.respond(tx, req, 488, "Not Acceptable Here", sip.NewHeader("Warning", `399 switchboard "`+strings.ReplaceAll(err.Error(), `"`, "'")+`"`))
		return
	}
	bindings := s.reg.snapshot(callee)
	c := s.newInternalCall(req, u, callee)
	// The caller is a browser: its media ends in a bridge.
	c.browserA = browserA

	if len(bindings) == 0 {
		c.log.Info("call failed: callee not registered")
		s.recordImmediate(ctx, c, 480, "unavailable", "callee not registered")
		s.respond(tx, req, 480, "Temporarily Unavailable")
		return
	}
	if !s.admit(c, req, tx) {
		return
	}
	defer s.calls.wg.Done()
	media := c.media
	c.emit(ctx, recordStart, EventCallStarted)
	c.mu.Lock()
	c.codecs = offerInfo.Codecs
	c.mu.Unlock()
	c.log.Info("call started", "devices", len(bindings), "codecs", strings.Join(offerInfo.Codecs, ","))
	// Stops the caller's retransmissions at once; sipgo would send it only
	// after 200 ms.
	_ = tx.Respond(sip.NewResponseFromRequest(req, 100, "Trying", nil))
	if !browserA {
		media.SetRemote(LegA, offerInfo.RTP, offerInfo.RTCP)
	}

	fromName := req.From().DisplayName
	if fromName == "" {
		fromName = quotedDisplayName(u.DisplayName)
	}
	c.sdpVer = 1
	var offerB []byte
	if !browserA {
		if err = c.secureSDP(LegA, LegB, offer, audio, offerInfo); err == nil {
			offerB, err = rewriteSDP(offer, audio, media.Addr(), media.Port(LegB), c.sdpVer)
		}
		if err != nil {
			c.failSetup(488, "system", err.Error())
			return
		}
	}
	c.connect(bindings, offerB, fromName, target)
}

// admit takes the caller's INVITE into a dialog and gives the call its
// relay ports and a place in the call table. When it returns false the
// caller has had its answer and nothing is left to undo; when it returns
// true the caller owes calls.wg.Done once the call is over.
func (s *Server) admit(c *call, req *sip.Request, tx sip.ServerTransaction) bool {
	a, err := s.dua.ReadInvite(req, tx)
	if err != nil {
		s.respond(tx, req, 400, "Bad Request")
		return false
	}
	c.a, c.aTx = a, tx
	media, err := s.relay.Open(c.id)
	if err != nil {
		c.log.Warn("no relay ports", "error", err)
		s.respond(tx, req, 503, "Service Unavailable", sip.NewHeader("Retry-After", "5"))
		return false
	}
	c.media = media
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if !s.calls.add(c) {
		c.cancel()
		media.Close()
		s.respond(tx, req, 503, "Service Unavailable", sip.NewHeader("Retry-After", "5"))
		return false
	}
	return true
}

// recordImmediate stores a record for a call that failed before ringing.
func (s *Server) recordImmediate(ctx context.Context, c *call, status int, result, reason string) {
	c.rec.EndedAt = s.now()
	c.rec.Status, c.rec.Result, c.rec.Reason, c.rec.HangupBy = status, result, reason, "system"
	c.emit(ctx, recordStart, EventCallEnded)
}

// defaultRingTimeout applies when Config.RingTimeout is not set: without
// it every call would fail at once.
const defaultRingTimeout = 60 * time.Second

// forkResult is how one device's INVITE ended: d is set when it answered.
type forkResult struct {
	d   *sipgo.DialogClientSession
	bl  BrowserLeg // the device's bridge when it is a browser
	err error
}

// connect rings every device of the callee at once (RFC 3261 §16.6
// forking, done by the B2BUA), bridges the first to answer and cancels the
// rest. It returns once leg A has its final response and, for an answered
// call, its ACK; the call then lives on in its own goroutines.
func (c *call) connect(bindings []store.Binding, offerB []byte, fromName string, target store.User) {
	s := c.s
	ring := s.cfg.RingTimeout
	if ring <= 0 {
		ring = defaultRingTimeout
	}
	ringCtx, stopRing := context.WithTimeout(context.Background(), ring)
	defer stopRing()
	// Cancelling forkCtx CANCELs every device still ringing. Closing
	// setupDone tells the forks that nobody takes results any more: a
	// device that answers after that is hung up by its own fork.
	forkCtx, cancelForks := context.WithCancel(context.Background())
	setupDone := make(chan struct{})
	stopForks := sync.OnceFunc(func() {
		cancelForks()
		close(setupDone)
	})
	defer stopForks()
	prov := make(chan *sip.Response, 8*len(bindings))
	results := make(chan forkResult) // unbuffered: a result is taken, or its fork cleans up

	fromTag := sip.GenerateTagN(16)
	pending := 0
	var codes []int
	var bridges []BrowserLeg
	for _, b := range bindings {
		body, bl, err := c.forkOffer(b, offerB)
		if err != nil {
			c.log.Warn("no offer for device", "contact", b.Contact, "transport", b.Transport, "error", err)
			codes = append(codes, 488)
			continue
		}
		if bl != nil {
			bridges = append(bridges, bl)
		}
		req, err := c.forkRequest(b, body, fromName, fromTag, target)
		if err != nil {
			c.log.Warn("bad binding", "contact", b.Contact, "error", err)
			codes = append(codes, 480)
			continue
		}
		// A phone without SRTP refuses an RTP/SAVP offer: it is offered
		// plain RTP/AVP next, and the relay encrypts on the caller's leg
		// only.
		var plain func() (*sip.Request, error)
		if bl == nil {
			if pb, ok := plainOffer(body); ok {
				plain = func() (*sip.Request, error) { return c.forkRequest(b, pb, fromName, fromTag, target) }
			}
		}
		pending++
		s.calls.wg.Add(1)
		go c.fork(forkCtx, req, plain, bl, prov, results, setupDone)
	}

	var rs ringState
	var winner *sipgo.DialogClientSession
	var winnerBridge BrowserLeg
	var failStatus int
	failBy, failReason := "system", ""
	// deviceCodes are the final responses devices sent themselves (busy,
	// decline, …): a call that ends on one was ended by the callee.
	var deviceCodes []int
	for pending > 0 && winner == nil && failStatus == 0 {
		select {
		case res := <-prov:
			c.provisional(res, &rs)
		case r := <-results:
			pending--
			if r.d != nil {
				winner, winnerBridge = r.d, r.bl
				break
			}
			var de *sipgo.ErrDialogResponse
			if errors.As(r.err, &de) {
				codes = append(codes, de.Res.StatusCode)
				deviceCodes = append(deviceCodes, de.Res.StatusCode)
				if de.Res.StatusCode >= 600 {
					// A global failure (busy everywhere, decline): the
					// other devices stop ringing (RFC 3261 §16.7).
					failStatus, failReason = pickFailure([]int{de.Res.StatusCode})
					failBy = "callee"
				}
			} else {
				c.log.Debug("device unreachable", "error", r.err)
				codes = append(codes, 408)
			}
		case <-c.a.Context().Done():
			// CANCEL: sipgo has already answered it, and the INVITE with 487.
			failStatus, failBy, failReason = 487, "caller", "cancelled by caller"
		case <-ringCtx.Done():
			failStatus, failReason = 480, "no answer"
		case <-c.ended:
			// Ended from outside (shutdown): tell the caller.
			failStatus = c.snapshot().Status
			if failStatus < 400 {
				failStatus = 487
			}
		case <-c.media.Done():
			select {
			case <-c.ended: // closed by end: handled above next time round
				continue
			default:
			}
			// The relay let the ports go (it is closing; the media
			// timeout waits for the answer): bridging now would make a
			// call without audio.
			failStatus, failReason = 503, "media timeout"
		}
	}
	// The other devices stop ringing now, not once the caller has ACKed.
	stopForks()
	c.closeBridges(bridges, winnerBridge)
	if winner == nil {
		if failStatus == 0 {
			failStatus, failReason = pickFailure(codes)
			if slices.Contains(deviceCodes, failStatus) {
				failBy = "callee"
			}
		}
		c.failSetup(failStatus, failBy, failReason)
		return
	}
	// The winner's 180/183 came before its 200: relay them first.
	for drained := false; !drained; {
		select {
		case res := <-prov:
			c.provisional(res, &rs)
		default:
			drained = true
		}
	}
	c.bridge(winner, winnerBridge)
}

// fork rings one device and reports how that ended on results, unless the
// call setup is over (setupDone). A device that answers then, or as it is
// being cancelled, is hung up here: ACK, then BYE.
func (c *call) fork(ctx context.Context, req *sip.Request, plain func() (*sip.Request, error), bl BrowserLeg, prov chan<- *sip.Response, results chan<- forkResult, setupDone <-chan struct{}) {
	defer c.s.calls.wg.Done()
	invite := func(req *sip.Request) (*sipgo.DialogClientSession, error) {
		d, err := c.s.dua.WriteInvite(ctx, req)
		if err == nil {
			c.noteFork(d.InviteRequest)
			err = d.WaitAnswer(ctx, sipgo.AnswerOptions{OnResponse: func(res *sip.Response) error {
				if res.StatusCode > 100 && res.StatusCode < 200 {
					select {
					case prov <- res:
					default: // more provisionals than anyone cares about
					}
				}
				return nil
			}})
		}
		return d, err
	}
	d, err := invite(req)
	var de *sipgo.ErrDialogResponse
	if plain != nil && errors.As(err, &de) && (de.Res.StatusCode == 488 || de.Res.StatusCode == 606) && ctx.Err() == nil {
		if req, rerr := plain(); rerr == nil {
			c.log.Debug("device refused SRTP: offering plain RTP", "status", de.Res.StatusCode)
			d, err = invite(req)
		}
	}
	r := forkResult{err: err, bl: bl}
	if err == nil {
		r.d = d
	} else if d != nil && d.InviteResponse != nil && d.InviteResponse.IsSuccess() {
		// The device's 200 crossed our CANCEL.
		c.dropLoser(d)
	}
	select {
	case results <- r:
	case <-setupDone:
		if r.d != nil {
			c.dropLoser(r.d)
		}
	}
}

// ringState is what the caller has been told while the devices ring.
type ringState struct {
	ringing, early, notified bool
}

// provisional relays a device's 18x to the caller: the first 183 with SDP
// as early media (its SDP pointed at the relay), otherwise one 180. The
// call.ringing event goes out once, with the first relayed response.
func (c *call) provisional(res *sip.Response, rs *ringState) {
	if !rs.notified {
		// Stored before the caller hears it ring: from then on a crash
		// ends the ringing (orphans_ringing.go).
		c.saveRinging()
	}
	relayed := false
	// Early media (ringback, announcements) comes from phones and
	// providers; a browser that rings sends none.
	if res.StatusCode == 183 && len(res.Body()) > 0 && !rs.early && !isConnectionTransport(res.Transport()) {
		answer := c.answerForA
		if c.browserA {
			answer = c.earlyForBrowser
		}
		if body, ok := answer(res.Body()); ok {
			rs.early, relayed = true, true
			c.respondA(c.withServer(sip.NewSDPResponseFromRequest(c.a.InviteRequest, body), 183, "Session Progress"))
		}
	}
	if !relayed && !rs.ringing && !rs.early {
		rs.ringing, relayed = true, true
		c.respondA(c.withServer(sip.NewResponseFromRequest(c.a.InviteRequest, 180, "Ringing", nil), 0, ""))
	}
	if relayed && !rs.notified {
		rs.notified = true
		c.emit(c.ctx, recordNone, EventCallRinging)
	}
}

// respondA sends a provisional or failure response to the caller. A
// failure goes through the transaction, which retransmits it and absorbs
// the ACK, so nothing waits for a caller that has gone away.
func (c *call) respondA(res *sip.Response) {
	if err := c.aTx.Respond(res); err != nil {
		c.log.Debug("response to caller failed", "code", res.StatusCode, "error", err)
	}
}

// forkRequest builds the INVITE to one device (see deviceInvite), with the
// caller's Max-Forwards less one.
func (c *call) forkRequest(b store.Binding, offerB []byte, fromName, fromTag string, target store.User) (*sip.Request, error) {
	from := sip.Uri{Scheme: "sip", User: c.rec.Caller, Host: c.s.cfg.Domain}
	to := sip.Uri{Scheme: "sip", User: c.rec.Callee, Host: c.s.cfg.Domain}
	req, err := c.s.deviceInvite(b, fromName, from, fromTag, quotedDisplayName(target.DisplayName), to, offerB)
	if err == nil {
		forwardMaxForwards(c.a.InviteRequest, req)
	}
	return req, err
}

// deviceInvite builds a new INVITE to one registered device: to its
// Contact, sent over the same transport to where its REGISTER came from
// (NAT), or to the Contact when that connection is gone
// (deviceDestination), with body as the SDP offer.
func (s *Server) deviceInvite(b store.Binding, fromName string, fromURI sip.Uri, fromTag, toName string, toURI sip.Uri, body []byte) (*sip.Request, error) {
	var ruri sip.Uri
	if err := sip.ParseUri(b.Contact, &ruri); err != nil {
		return nil, err
	}
	req := sip.NewRequest(sip.INVITE, ruri)
	from := sip.FromHeader{DisplayName: fromName, Address: fromURI, Params: sip.NewParams()}
	from.Params.Add("tag", fromTag)
	req.AppendHeader(&from)
	req.AppendHeader(&sip.ToHeader{DisplayName: toName, Address: toURI, Params: sip.NewParams()})
	cid := sip.CallIDHeader(uuid.NewString())
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.INVITE})
	req.AppendHeader(s.contactFor(wireTransport(b.Transport)))
	req.AppendHeader(sip.NewHeader("Allow", allowMethods))
	req.AppendHeader(sip.NewHeader("User-Agent", s.cfg.UserAgent))
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(body)
	dest := s.deviceDestination(b, ruri)
	if isUDP(b.Transport) {
		s.pinUDP(dest) // after a restart the registrar could not yet
	}
	req.SetDestination(dest)
	req.SetTransport(wireTransport(b.Transport))
	return req, nil
}

// contactFor is our Contact for a dialog over transport.
func (s *Server) contactFor(transport string) *sip.ContactHeader {
	host, port := s.cfg.Listen.Addr().String(), int(s.cfg.Listen.Port())
	bound := "udp"
	if strings.EqualFold(transport, "tls") {
		bound = "tls"
	}
	if a, err := netip.ParseAddrPort(s.boundAddr(bound)); err == nil {
		port = int(a.Port())
	}
	if ws, ok := s.wsContactAddr(transport); ok {
		// Over WebSocket we are reached at the HTTP listener (RFC 7118).
		host, port = ws.Addr().String(), int(ws.Port())
	}
	u := sip.Uri{Scheme: "sip", User: "switchboard", Host: host, Port: port}
	if t := strings.ToLower(transport); t != "" && t != "udp" {
		u.UriParams = sip.NewParams()
		u.UriParams.Add("transport", t)
	}
	return &sip.ContactHeader{Address: u}
}

// pickFailure chooses the caller's answer when no device took the call
// (RFC 3261 §16.7 step 6, simplified for a B2BUA).
func pickFailure(codes []int) (int, string) {
	has := func(want ...int) bool {
		for _, c := range codes {
			for _, w := range want {
				if c == w {
					return true
				}
			}
		}
		return false
	}
	switch {
	case has(600):
		return 600, "busy" // busy everywhere: the caller learns that too
	case has(486):
		return 486, "busy"
	case has(603):
		return 603, "declined"
	case len(codes) > 0 && allIn(codes, 408, 480):
		return 480, "no answer"
	}
	for _, c := range codes {
		if c >= 400 && c < 700 && c != 408 {
			return c, "failed"
		}
	}
	return 480, "unavailable"
}

func allIn(codes []int, set ...int) bool {
	for _, c := range codes {
		ok := false
		for _, s := range set {
			ok = ok || c == s
		}
		if !ok {
			return false
		}
	}
	return true
}

func resultFor(status int) string {
	switch status {
	case 486, 600:
		return "busy"
	case 487:
		return "cancelled"
	case 480, 408:
		return "no_answer"
	case 603:
		return "declined"
	case 404:
		return "not_found"
	}
	return "failed"
}

// failSetup answers leg A with a failure and records the call (unless it
// was already ended from outside).
func (c *call) failSetup(status int, by, reason string) {
	c.log.Info("call not connected", "status", status, "reason", reason)
	// The record and call.ended are written before the caller hears the
	// failure: a caller that calls again at once must not find its next
	// call's events ahead of this one's end.
	c.finish(status, resultFor(status), by, reason)
	if by != "caller" { // sipgo already answered a CANCELled INVITE with 487
		c.respondA(c.withServer(sip.NewResponseFromRequest(c.a.InviteRequest, status, reasonPhrase(status), nil), 0, ""))
	}
}

// answerForA rewrites a callee's SDP answer for the caller, and points the
// relay's B leg at the callee.
func (c *call) answerForA(body []byte) ([]byte, bool) {
	sd, audio, info, err := parseSDPSecure(body)
	if err == nil {
		err = c.secureSDP(LegB, LegA, sd, audio, info)
	}
	if err != nil {
		c.log.Warn("callee SDP unusable", "error", err)
		return nil, false
	}
	c.media.SetRemote(LegB, info.RTP, info.RTCP)
	c.mu.Lock()
	c.codecs = info.Codecs
	c.sdpVer++
	v := c.sdpVer
	c.mu.Unlock()
	out, err := rewriteSDP(sd, audio, c.media.Addr(), c.media.Port(LegA), v)
	if err != nil {
		return nil, false
	}
	return out, true
}

func (c *call) withServer(res *sip.Response, code int, reason string) *sip.Response {
	if code != 0 {
		res.StatusCode, res.Reason = code, reason
	}
	res.AppendHeader(sip.NewHeader("Server", c.s.cfg.UserAgent))
	if res.Contact() == nil && c.aContact != nil {
		res.AppendHeader(c.aContact.Clone())
	} else if res.Contact() == nil {
		res.AppendHeader(c.s.contactFor(c.a.InviteRequest.Transport()))
	}
	return res
}

// dropLoser ends a device's dialog that answered too late.
func (c *call) dropLoser(d *sipgo.DialogClientSession) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = d.Ack(ctx)
	_ = d.Bye(ctx)
}

// bridge connects the caller to the device that answered.
func (c *call) bridge(b *sipgo.DialogClientSession, bl BrowserLeg) {
	s := c.s
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// ACK first: until then the dialog cannot carry a BYE.
	if err := b.Ack(ctx); err != nil {
		c.log.Warn("ACK to callee failed", "error", err)
	}
	toTag, _ := b.InviteResponse.To().Params.Get("tag")
	key := dialogKey(b.InviteRequest.CallID().Value(), toTag)
	c.mu.Lock()
	over := c.over
	if !over {
		c.b, c.bKey = b, key
	}
	c.mu.Unlock()
	if over {
		// Ended (shutdown) just as the device answered.
		_ = b.Bye(ctx)
		c.rejectEnded()
		return
	}
	s.calls.setB(c, key)
	answer, ok := c.answerForCaller(b.InviteResponse.Body(), bl)
	if !ok {
		c.log.Warn("callee answered without usable SDP")
		c.end(488, "system", "callee SDP unusable")
		c.rejectEnded()
		return
	}
	// The codecs in use are those of the answer the caller gets (for a
	// browser, what its bridge agreed), not the caller's whole offer.
	if _, _, ai, _, err := parseCallerOffer(answer); err == nil && len(ai.Codecs) > 0 {
		c.mu.Lock()
		c.codecs = ai.Codecs
		c.mu.Unlock()
	}
	c.mu.Lock()
	over = c.over
	if !over {
		c.answered = true
		c.rec.AnsweredAt = s.now()
		c.rec.Status = 200
	}
	c.mu.Unlock()
	if !over {
		// Silence counts from the answer: ringing is bounded by the ring
		// timeout.
		c.media.StartTimeout()
	}
	if over {
		// The callee hung up at once, or shutdown.
		c.rejectEnded()
		return
	}
	// WriteResponse retransmits the 2xx until the caller ACKs it
	// (RFC 3261 §13.3.1.4) and fails when it never does.
	res := c.withServer(sip.NewSDPResponseFromRequest(c.a.InviteRequest, answer), 0, "")
	if err := c.a.WriteResponse(res); err != nil {
		c.log.Info("caller never confirmed the answer", "error", err)
		c.end(0, "system", "no ACK from caller")
		return
	}
	c.log.Info("call answered", "device", b.InviteResponse.Source())
	// The answer time is stored with the event, so that a crash later
	// leaves a record that says the call was answered.
	c.emit(c.ctx, recordUpdate, EventCallAnswered)
	s.calls.wg.Add(1)
	go c.watchMedia()
}

// rejectEnded gives the caller a final failure for a call that ended
// before it was answered, with the status its record got.
func (c *call) rejectEnded() {
	status := c.snapshot().Status
	if status < 400 {
		status = 480
	}
	c.respondA(c.withServer(sip.NewResponseFromRequest(c.a.InviteRequest, status, reasonPhrase(status), nil), 0, ""))
}

// watchMedia ends the call when its media stops both ways for the timeout.
func (c *call) watchMedia() {
	defer c.s.calls.wg.Done()
	select {
	case <-c.ended:
	case <-c.media.Done():
		if c.media.TimedOut() {
			c.log.Info("media timeout")
			c.end(0, "system", "media timeout")
		}
	case <-c.browserDone(LegA):
		c.browserMediaEnded(LegA)
	case <-c.browserDone(LegB):
		c.browserMediaEnded(LegB)
	}
}

// browserByeGrace is how long a call whose browser closed its peer
// connection waits for that browser's BYE. A browser hanging up sends BYE
// over its WebSocket and closes the peer connection at once; the DTLS close
// over UDP usually arrives first, and the call must still be recorded as
// hung up by that side, not as failed media.
const browserByeGrace = 2 * time.Second

// browserMediaEnded ends the call after the browser on leg closed its media,
// unless a BYE ends it within browserByeGrace.
func (c *call) browserMediaEnded(leg Leg) {
	t := time.NewTimer(browserByeGrace)
	defer t.Stop()
	select {
	case <-c.ended:
		return
	case <-t.C:
	}
	c.log.Info("browser media ended", "leg", leg.String())
	c.end(0, "system", "browser media failed")
}

// end hangs up: BYE to every answered leg but the one that hung up (by),
// both at once, then releases the media and stores the record. status is
// the setup status to record when the call was not answered (0 means 487).
// It runs once; later calls do nothing. A call still ringing is finished by
// its setup goroutine, which sees ended, answers the caller and CANCELs the
// devices.
func (c *call) end(status int, by, reason string) {
	c.endOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.mu.Lock()
		c.over = true
		b, answered := c.b, c.answered
		c.mu.Unlock()
		var wg sync.WaitGroup
		if by != "caller" && answered {
			wg.Go(func() {
				if err := c.a.Bye(ctx); err != nil {
					c.log.Debug("BYE to caller failed", "error", err)
				}
			})
		}
		if by != "callee" && b != nil {
			wg.Go(func() {
				if err := b.Bye(ctx); err != nil {
					c.log.Debug("BYE to callee failed", "error", err)
				}
			})
		}
		wg.Wait()
		result := "answered"
		if !answered {
			if status == 0 {
				status = 487
			}
			result = resultFor(status)
		}
		c.finishLocked(status, result, by, reason)
	})
}

// finish records the end of a call that never got past setup.
func (c *call) finish(status int, result, by, reason string) {
	c.endOnce.Do(func() { c.finishLocked(status, result, by, reason) })
}

func (c *call) finishLocked(status int, result, by, reason string) {
	s := c.s
	now := s.now()
	c.mu.Lock()
	c.rec.EndedAt = now
	if status != 0 && c.rec.Status == 0 {
		c.rec.Status = status
	}
	c.rec.Result, c.rec.HangupBy, c.rec.Reason = result, by, reason
	if !c.rec.AnsweredAt.IsZero() {
		c.rec.Duration = now.Sub(c.rec.AnsweredAt)
	}
	if c.media != nil {
		for _, leg := range []Leg{LegA, LegB} {
			st := c.media.Stats(leg)
			c.rec.Legs = append(c.rec.Legs, store.LegStats{Name: leg.String(), PacketsIn: st.PacketsIn, PacketsOut: st.PacketsOut,
				BytesIn: st.BytesIn, BytesOut: st.BytesOut, Lost: st.Lost, Jitter: st.JitterMS})
		}
	}
	rec := c.rec
	c.mu.Unlock()
	if c.media != nil {
		c.media.Close()
	}
	s.calls.remove(c)
	c.cancel()
	close(c.ended)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.emit(ctx, recordUpdate, EventCallEnded)
	c.forgetDialogs()
	c.log.Info("call ended", "result", result, "hangup_by", by, "reason", reason, "duration_s", int(rec.Duration/time.Second))
}

func (c *call) snapshot() store.CallRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rec
}

// handleInDialog routes a request inside an existing dialog.
func (s *Server) handleInDialog(req *sip.Request, tx sip.ServerTransaction) {
	ref, ok := s.calls.lookup(req)
	if !ok {
		if o, ok := s.orig.lookup(req); ok {
			o.handle(req, tx)
			return
		}
		if !req.IsAck() {
			s.respond(tx, req, 481, "Call/Transaction Does Not Exist")
		}
		return
	}
	c := ref.c
	switch req.Method {
	case sip.ACK:
		if c.takeAck(ref.leg, req) {
			return
		}
		if ref.leg == LegA {
			// The ACK for the 200 that answered the call; an ACK
			// whose CSeq does not match is a retransmission.
			_ = c.a.ReadAck(req, tx)
		}
	case sip.BYE:
		var err error
		if ref.leg == LegA {
			err = c.a.ReadBye(req, tx)
		} else {
			c.mu.Lock()
			b := c.b
			c.mu.Unlock()
			err = b.ReadBye(req, tx)
		}
		if errors.Is(err, sipgo.ErrDialogInvalidCseq) {
			// RFC 3261 §12.2.2: a CSeq lower than the last one.
			s.respond(tx, req, 500, "Server Internal Error")
			return
		}
		c.log.Info("hangup", "by", ref.leg.String())
		c.end(0, ref.leg.String(), "BYE")
	case sip.INVITE, sip.UPDATE:
		c.passOffer(ref.leg, req, tx)
	default:
		c.passThrough(ref.leg, req, tx)
	}
}

// dialogSender is a dialog of either side as a sender of in-dialog
// requests: sipgo fills in From, To, Call-ID, the next CSeq (the same one
// for an ACK) and sends to where the far side really is (RewriteContact).
type dialogSender interface {
	Do(ctx context.Context, req *sip.Request) (*sip.Response, error)
	WriteRequest(req *sip.Request) error
}

// sender returns the dialog of leg, nil while leg B is not bridged.
func (c *call) sender(leg Leg) dialogSender {
	c.mu.Lock()
	defer c.mu.Unlock()
	if leg == LegA {
		return c.a
	}
	if c.b == nil {
		return nil
	}
	return c.b
}

// target is the request URI for requests to leg's peer: its Contact.
func (c *call) target(leg Leg) sip.Uri {
	c.mu.Lock()
	defer c.mu.Unlock()
	if leg == LegA {
		return c.a.InviteRequest.Contact().Address
	}
	if ct := c.b.InviteResponse.Contact(); ct != nil {
		return ct.Address
	}
	return c.b.InviteRequest.Recipient
}

// contact is our Contact for the dialog of leg, on that leg's transport.
// (sipgo's default Contact is UDP, and has no port before Run binds.)
func (c *call) contact(leg Leg) *sip.ContactHeader {
	c.mu.Lock()
	defer c.mu.Unlock()
	if leg == LegA {
		if c.aContact != nil {
			return c.aContact.Clone()
		}
		return c.s.contactFor(c.a.InviteRequest.Transport())
	}
	if c.bContact != nil {
		return c.bContact.Clone()
	}
	return c.s.contactFor(c.b.InviteRequest.Transport())
}

// inDialogCtx bounds a request passed to the other leg by the transaction
// timeout and by the end of the call.
func (c *call) inDialogCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.ctx, 64*sip.T1)
}

// passOffer carries a re-INVITE or UPDATE (hold, resume, codec change)
// from one leg to the other, rewriting both SDPs so media stays anchored.
// We are a UA on each leg: the far leg's 2xx is ACKed by us, and the 2xx we
// send back is retransmitted until its ACK arrives (RFC 3261 §13.3.1.4). A
// re-INVITE without an offer gets the offer in the 2xx and the answer in
// the ACK, which is then carried over too (RFC 3261 §14.1).
func (c *call) passOffer(from Leg, req *sip.Request, tx sip.ServerTransaction) {
	if c.hasBrowser() {
		// A browser's media is bridged: its new offers are answered by
		// the bridge, not carried across.
		c.browserReoffer(from, req, tx)
		return
	}
	c.mu.Lock()
	if c.busy || !c.answered || c.over {
		c.mu.Unlock()
		// RFC 3261 §14.2 glare: an offer is already in flight.
		c.s.respond(tx, req, 491, "Request Pending")
		return
	}
	c.busy = true
	c.sdpVer++
	ver := c.sdpVer
	c.mu.Unlock()
	done := sync.OnceFunc(func() {
		c.mu.Lock()
		c.busy = false
		c.mu.Unlock()
	})
	defer done()
	to := from.other()
	out := sip.NewRequest(req.Method, c.target(to))
	out.AppendHeader(c.contact(to))
	offerless := len(req.Body()) == 0
	if !offerless {
		body, ok := c.rewriteFor(from, to, req.Body(), ver)
		if !ok {
			c.s.respond(tx, req, 488, "Not Acceptable Here")
			return
		}
		out.SetBody(body)
		out.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	}
	ctx, cancel := c.inDialogCtx()
	defer cancel()
	snd := c.sender(to)
	c.sending[to].Lock()
	sendDone := sync.OnceFunc(c.sending[to].Unlock) // once the ACK has gone
	defer sendDone()
	res, err := snd.Do(ctx, out)
	if err != nil {
		c.log.Info("offer not answered", "method", string(req.Method), "to", to.String(), "error", err)
		c.s.respond(tx, req, 408, "Request Timeout")
		return
	}
	fwd := sip.NewResponseFromRequest(req, res.StatusCode, res.Reason, nil)
	fwd.AppendHeader(c.contact(from))
	if res.IsSuccess() && len(res.Body()) > 0 {
		if body, ok := c.rewriteFor(to, from, res.Body(), ver); ok {
			fwd.SetBody(body)
			fwd.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		}
	}
	if req.Method != sip.INVITE || !res.IsSuccess() {
		if err := tx.Respond(fwd); err != nil {
			c.log.Debug("respond to offer failed", "error", err)
		}
		c.log.Info("session modified", "method", string(req.Method), "from", from.String(), "status", res.StatusCode)
		return
	}
	ack := sip.NewRequest(sip.ACK, c.target(to))
	ack.AppendHeader(c.contact(to))
	if !offerless {
		// The answer is complete: release the far side at once.
		if err := snd.WriteRequest(ack); err != nil {
			c.log.Debug("ACK failed", "to", to.String(), "error", err)
		}
		sendDone()
	}
	// With the answer in the 2xx the exchange is over once it is sent, even
	// if the ACK is overtaken by the next offer. Otherwise the answer
	// comes in the ACK.
	sent := done
	if offerless {
		sent = func() {}
	}
	theirAck := c.respond2xx(from, req, tx, fwd, sent)
	if offerless {
		if theirAck != nil && len(theirAck.Body()) > 0 {
			if body, ok := c.rewriteFor(from, to, theirAck.Body(), ver); ok {
				ack.SetBody(body)
				ack.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
			}
		}
		if err := snd.WriteRequest(ack); err != nil {
			c.log.Debug("ACK failed", "to", to.String(), "error", err)
		}
	}
	c.log.Info("session modified", "method", string(req.Method), "from", from.String(), "status", res.StatusCode)
}

// rewriteFor takes an SDP that the peer of leg from sent, points the relay
// at it, and rewrites it for the peer of leg to.
func (c *call) rewriteFor(from, to Leg, body []byte, ver uint64) ([]byte, bool) {
	sd, audio, info, err := parseSDPSecure(body)
	if err == nil {
		err = c.secureSDP(from, to, sd, audio, info)
	}
	if err != nil {
		c.log.Info("unusable SDP", "from", from.String(), "error", err)
		return nil, false
	}
	c.media.SetRemote(from, info.RTP, info.RTCP)
	out, err := rewriteSDP(sd, audio, c.media.Addr(), c.media.Port(to), ver)
	if err != nil {
		return nil, false
	}
	return out, true
}

// respond2xx calls sent, sends the 2xx to a re-INVITE from leg and, over
// UDP, retransmits the 2xx until the ACK comes (T1 doubling up to T2), for
// at most 64*T1. It returns the ACK, or nil when none came.
func (c *call) respond2xx(leg Leg, req *sip.Request, tx sip.ServerTransaction, res *sip.Response, sent func()) *sip.Request {
	key := ackKey{leg, req.CSeq().SeqNo}
	ch := make(chan *sip.Request, 1)
	c.mu.Lock()
	if c.acks == nil {
		c.acks = map[ackKey]chan *sip.Request{}
	}
	c.acks[key] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.acks, key)
		c.mu.Unlock()
	}()
	sent() // before: the caller may send its next offer the moment it has the 2xx
	if err := tx.Respond(res); err != nil {
		c.log.Debug("respond to offer failed", "error", err)
		return nil
	}
	reliable := sip.IsReliable(req.Transport())
	interval := sip.T1
	retransmit := time.NewTimer(interval)
	defer retransmit.Stop()
	giveUp := time.NewTimer(64 * sip.T1)
	defer giveUp.Stop()
	for {
		select {
		case ack := <-ch:
			return ack
		case <-retransmit.C:
			if !reliable {
				_ = tx.Respond(res)
			}
			interval = min(2*interval, sip.T2)
			retransmit.Reset(interval)
		case <-giveUp.C:
			c.log.Info("no ACK for a re-INVITE answer", "leg", leg.String())
			return nil
		case <-c.ended:
			return nil
		}
	}
}

// takeAck hands an ACK to a waiting respond2xx; false when nothing waits
// for it.
func (c *call) takeAck(leg Leg, ack *sip.Request) bool {
	if ack.CSeq() == nil {
		return false
	}
	c.mu.Lock()
	ch, ok := c.acks[ackKey{leg, ack.CSeq().SeqNo}]
	c.mu.Unlock()
	if !ok {
		return false
	}
	select {
	case ch <- ack:
	default: // a retransmitted ACK
	}
	return true
}

// passThrough relays INFO (DTMF) and other in-dialog requests to the other
// leg and its answer back.
func (c *call) passThrough(from Leg, req *sip.Request, tx sip.ServerTransaction) {
	to := from.other()
	snd := c.sender(to)
	if snd == nil {
		c.s.respond(tx, req, 481, "Call/Transaction Does Not Exist")
		return
	}
	out := sip.NewRequest(req.Method, c.target(to))
	out.AppendHeader(c.contact(to))
	if len(req.Body()) > 0 {
		out.SetBody(req.Body())
		if ct := req.ContentType(); ct != nil {
			out.AppendHeader(sip.NewHeader("Content-Type", ct.Value()))
		}
	}
	ctx, cancel := c.inDialogCtx()
	defer cancel()
	c.sending[to].Lock()
	res, err := snd.Do(ctx, out)
	c.sending[to].Unlock()
	if err != nil {
		c.s.respond(tx, req, 408, "Request Timeout")
		return
	}
	fwd := sip.NewResponseFromRequest(req, res.StatusCode, res.Reason, res.Body())
	if ct := res.ContentType(); ct != nil && len(res.Body()) > 0 {
		fwd.AppendHeader(sip.NewHeader("Content-Type", ct.Value()))
	}
	_ = tx.Respond(fwd)
}

// handleBye, handleAck and friends route requests that are always
// in-dialog.
func (s *Server) handleInDialogOnly(req *sip.Request, tx sip.ServerTransaction) {
	if req.To() == nil || req.From() == nil || req.CallID() == nil {
		if !req.IsAck() {
			s.respond(tx, req, 400, "Missing Mandatory Header")
		}
		return
	}
	s.handleInDialog(req, tx)
}

func reasonPhrase(code int) string {
	switch code {
	case 404:
		return "Not Found"
	case 408:
		return "Request Timeout"
	case 480:
		return "Temporarily Unavailable"
	case 486:
		return "Busy Here"
	case 487:
		return "Request Terminated"
	case 488:
		return "Not Acceptable Here"
	case 503:
		return "Service Unavailable"
	case 603:
		return "Decline"
	}
	return "Call Failed (" + strconv.Itoa(code) + ")"
}
