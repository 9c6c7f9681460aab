package sip

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

	a    *sipgo.DialogServerSession
	aKey string

	// ended is closed when the call is over; end runs once.
	ended   chan struct{}
	endOnce sync.Once

	mu       sync.Mutex
	b        *sipgo.DialogClientSession
	bKey     string
	answered bool
	busy     bool   // an offer/answer exchange is in progress (glare → 491)
	sdpVer   uint64 // our o= session version, increased per offer
	rec      store.CallRecord
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

func (t *callTable) add(c *call) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.byID[c.id] = c
	t.byDialog[c.aKey] = dialogRef{c, LegA}
	return true
}

func (t *callTable) setB(c *call, key string) {
	t.mu.Lock()
	t.byDialog[key] = dialogRef{c, LegB}
	t.mu.Unlock()
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

// closeAndEnd refuses new calls and ends every call with BYE on both legs.
func (t *callTable) closeAndEnd(reason string) {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	for _, c := range t.all() {
		c.end(0, "system", reason)
	}
	t.wg.Wait()
}

// Count returns the number of calls in progress.
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
	callee := req.Recipient.User
	if callee == "" {
		s.respond(tx, req, 404, "Not Found")
		return
	}
	target, exists, err := s.users.get(ctx, callee)
	if err != nil {
		s.respondErr(tx, req, err)
		return
	}
	if !exists {
		s.respond(tx, req, 404, "Not Found")
		return
	}
	offer, audio, offerInfo, err := parseSDP(req.Body())
	if len(req.Body()) == 0 {
		s.respond(tx, req, 488, "Not Acceptable Here", sip.NewHeader("Warning", `399 switchboard "an SDP offer is required in the INVITE"`))
		return
	}
	if err != nil {
		s.respond(tx, req, 488, "Not Acceptable Here", sip.NewHeader("Warning", `399 switchboard "`+strings.ReplaceAll(err.Error(), `"`, "'")+`"`))
		return
	}
	bindings := s.reg.snapshot(callee)
	now := s.now()
	c := &call{
		s:     s,
		id:    uuid.NewString(),
		ended: make(chan struct{}),
		aKey:  requestDialogKey(req),
		rec: store.CallRecord{
			Caller: u.Name, Callee: callee,
			CallerURI: req.From().Address.String(), CalleeURI: req.Recipient.String(),
			Direction: "internal", StartedAt: now,
		},
	}
	c.rec.ID = c.id
	c.log = s.log.With("call_id", c.id, "caller", u.Name, "callee", callee)
	if len(bindings) == 0 {
		c.log.Info("call failed: callee not registered")
		s.recordImmediate(ctx, c, 480, "unavailable", "callee not registered")
		s.respond(tx, req, 480, "Temporarily Unavailable")
		return
	}
	a, err := s.dua.ReadInvite(req, tx)
	if err != nil {
		s.respondErr(tx, req, err)
		return
	}
	c.a = a
	media, err := s.relay.Open(c.id)
	if err != nil {
		c.log.Warn("no relay ports", "error", err)
		s.respond(tx, req, 503, "Service Unavailable", sip.NewHeader("Retry-After", "5"))
		return
	}
	c.media = media
	if !s.calls.add(c) {
		media.Close()
		s.respond(tx, req, 503, "Service Unavailable", sip.NewHeader("Retry-After", "5"))
		return
	}
	s.calls.wg.Add(1)
	defer s.calls.wg.Done()
	if err := s.records.StartCall(ctx, c.rec); err != nil {
		c.log.Error("store call record", "error", err)
	}
	s.events.Notify("call.started", c.snapshot())
	c.log.Info("call started", "devices", len(bindings), "codecs", strings.Join(offerInfo.Codecs, ","))
	_ = a.Respond(100, "Trying", nil)
	media.SetRemote(LegA, offerInfo.RTP, offerInfo.RTCP)

	fromName := req.From().DisplayName
	if fromName == "" {
		fromName = u.DisplayName
	}
	c.sdpVer = 1
	offerB, err := rewriteSDP(offer, audio, media.Addr(), media.Port(LegB), c.sdpVer)
	if err != nil {
		c.end(488, "system", err.Error())
		return
	}
	c.connect(bindings, offerB, fromName, target)
}

// recordImmediate stores a record for a call that failed before ringing.
func (s *Server) recordImmediate(ctx context.Context, c *call, status int, result, reason string) {
	c.rec.EndedAt = s.now()
	c.rec.Status, c.rec.Result, c.rec.Reason, c.rec.HangupBy = status, result, reason, "system"
	if err := s.records.StartCall(ctx, c.rec); err != nil {
		c.log.Error("store call record", "error", err)
	}
	s.events.Notify("call.ended", c.rec)
}

// forkResult is how one device answered.
type forkResult struct {
	d   *sipgo.DialogClientSession
	err error
}

// connect rings every device of the callee at once (RFC 3261 §16.6
// forking, done by the B2BUA), bridges the first to answer and cancels the
// rest. It returns once leg A has its final response and, for an answered
// call, its ACK; the call then lives on in its own goroutines.
func (c *call) connect(bindings []store.Binding, offerB []byte, fromName string, target store.User) {
	s := c.s
	ringCtx, stopRing := context.WithTimeout(context.Background(), s.cfg.RingTimeout)
	defer stopRing()

	type provisional struct {
		res *sip.Response
	}
	prov := make(chan provisional, 8*len(bindings))
	results := make(chan forkResult, len(bindings))
	forkCtx, cancelForks := context.WithCancel(context.Background())
	defer cancelForks()
	var won atomic.Bool

	fromTag := sip.GenerateTagN(16)
	for _, b := range bindings {
		req, err := c.forkRequest(b, offerB, fromName, fromTag, target)
		if err != nil {
			c.log.Warn("bad binding", "contact", b.Contact, "error", err)
			results <- forkResult{err: err}
			continue
		}
		s.calls.wg.Add(1)
		go func() {
			defer s.calls.wg.Done()
			d, err := s.dua.WriteInvite(forkCtx, req)
			if err != nil {
				results <- forkResult{err: err}
				return
			}
			err = d.WaitAnswer(forkCtx, sipgo.AnswerOptions{OnResponse: func(res *sip.Response) error {
				if res.StatusCode == 180 || res.StatusCode == 183 {
					select {
					case prov <- provisional{res}:
					default:
					}
				}
				return nil
			}})
			if err == nil && forkCtx.Err() != nil && !won.CompareAndSwap(false, false) {
				// Answered after another device won: hang it up.
				c.dropLoser(d)
				return
			}
			if err != nil && d.InviteResponse != nil && d.InviteResponse.IsSuccess() {
				c.dropLoser(d)
				err = errors.New("answered while being cancelled")
			}
			results <- forkResult{d: d, err: err}
		}()
	}

	pending := len(bindings)
	var codes []int
	ringing, early := false, false
	var winner *sipgo.DialogClientSession
	var failStatus int
	var failReason string
wait:
	for pending > 0 {
		select {
		case p := <-prov:
			if p.res.StatusCode == 183 && len(p.res.Body()) > 0 && !early {
				if body, ok := c.answerForA(p.res.Body()); ok {
					early = true
					_ = c.a.WriteResponse(c.withServer(sip.NewSDPResponseFromRequest(c.a.InviteRequest, body), 183, "Session Progress"))
				}
			}
			if !ringing && !early {
				ringing = true
				_ = c.a.WriteResponse(c.withServer(sip.NewResponseFromRequest(c.a.InviteRequest, 180, "Ringing", nil), 0, ""))
			}
			if !c.rec.AnsweredAt.IsZero() || ringing || early {
				s.events.Notify("call.ringing", c.snapshot())
			}
		case r := <-results:
			pending--
			if r.err == nil && r.d != nil {
				if won.CompareAndSwap(false, true) {
					winner = r.d
					break wait
				}
				c.dropLoser(r.d)
				continue
			}
			var de *sipgo.ErrDialogResponse
			if errors.As(r.err, &de) {
				codes = append(codes, de.Res.StatusCode)
			} else {
				codes = append(codes, 408)
			}
		case <-c.a.Context().Done():
			failStatus, failReason = 487, "cancelled by caller"
			break wait
		case <-ringCtx.Done():
			failStatus, failReason = 480, "no answer"
			break wait
		}
	}
	cancelForks()
	if winner == nil {
		if failStatus == 0 {
			failStatus, failReason = pickFailure(codes)
		}
		c.failSetup(failStatus, failReason)
		return
	}
	c.bridge(winner)
}

// forkRequest builds the INVITE to one device, sent to where its REGISTER
// came from (NAT) over the same transport.
func (c *call) forkRequest(b store.Binding, offerB []byte, fromName, fromTag string, target store.User) (*sip.Request, error) {
	s := c.s
	var ruri sip.Uri
	if err := sip.ParseUri(b.Contact, &ruri); err != nil {
		return nil, err
	}
	req := sip.NewRequest(sip.INVITE, ruri)
	from := sip.FromHeader{DisplayName: fromName, Address: sip.Uri{Scheme: "sip", User: c.rec.Caller, Host: s.cfg.Domain}, Params: sip.NewParams()}
	from.Params.Add("tag", fromTag)
	req.AppendHeader(&from)
	to := sip.ToHeader{DisplayName: target.DisplayName, Address: sip.Uri{Scheme: "sip", User: c.rec.Callee, Host: s.cfg.Domain}, Params: sip.NewParams()}
	req.AppendHeader(&to)
	cid := sip.CallIDHeader(uuid.NewString())
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.INVITE})
	req.AppendHeader(s.contactFor(b.Transport))
	req.AppendHeader(sip.NewHeader("Allow", allowMethods))
	req.AppendHeader(sip.NewHeader("User-Agent", s.cfg.UserAgent))
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(offerB)
	req.SetDestination(b.Source)
	req.SetTransport(b.Transport)
	return req, nil
}

// contactFor is our Contact for a dialog over transport.
func (s *Server) contactFor(transport string) *sip.ContactHeader {
	host, port := s.cfg.Listen.Addr().String(), int(s.cfg.Listen.Port())
	if a, err := netip.ParseAddrPort(s.boundAddr("udp")); err == nil {
		port = int(a.Port())
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
	case has(486, 600):
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
	case 486:
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

// failSetup answers leg A with a failure and records the call.
func (c *call) failSetup(status int, reason string) {
	if status != 487 { // sipgo already answered a CANCELled INVITE with 487
		_ = c.a.WriteResponse(c.withServer(sip.NewResponseFromRequest(c.a.InviteRequest, status, reasonPhrase(status), nil), 0, ""))
	}
	c.log.Info("call not connected", "status", status, "reason", reason)
	c.finish(status, resultFor(status), "system", reason)
}

// answerForA rewrites a callee's SDP answer for the caller, and points the
// relay's B leg at the callee.
func (c *call) answerForA(body []byte) ([]byte, bool) {
	sd, audio, info, err := parseSDP(body)
	if err != nil {
		c.log.Warn("callee SDP unusable", "error", err)
		return nil, false
	}
	c.media.SetRemote(LegB, info.RTP, info.RTCP)
	c.mu.Lock()
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
	if res.Contact() == nil {
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
func (c *call) bridge(b *sipgo.DialogClientSession) {
	s := c.s
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.Ack(ctx); err != nil {
		c.log.Warn("ACK to callee failed", "error", err)
	}
	toTag, _ := b.InviteResponse.To().Params.Get("tag")
	key := dialogKey(b.InviteRequest.CallID().Value(), toTag)
	c.mu.Lock()
	c.b, c.bKey = b, key
	c.mu.Unlock()
	s.calls.setB(c, key)
	answer, ok := c.answerForA(b.InviteResponse.Body())
	if !ok {
		c.log.Warn("callee answered without usable SDP")
		_ = b.Bye(ctx)
		c.failSetup(488, "callee SDP unusable")
		return
	}
	c.mu.Lock()
	c.answered = true
	c.rec.AnsweredAt = s.now()
	c.rec.Status = 200
	c.mu.Unlock()
	// WriteResponse retransmits the 2xx until the caller ACKs it
	// (RFC 3261 §13.3.1.4) and fails when it never does.
	res := c.withServer(sip.NewSDPResponseFromRequest(c.a.InviteRequest, answer), 0, "")
	if err := c.a.WriteResponse(res); err != nil {
		c.log.Info("caller never confirmed the answer", "error", err)
		c.end(0, "system", "no ACK from caller")
		return
	}
	c.log.Info("call answered", "device", b.InviteResponse.Source())
	s.events.Notify("call.answered", c.snapshot())
	s.calls.wg.Add(1)
	go c.watchMedia()
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
	}
}

// end hangs up: BYE to every leg but the one that hung up (by), release the
// media, and store the record. It runs once; later calls do nothing.
func (c *call) end(status int, by, reason string) {
	c.endOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.mu.Lock()
		b, answered := c.b, c.answered
		c.mu.Unlock()
		if by != "caller" && c.a != nil && answered {
			if err := c.a.Bye(ctx); err != nil {
				c.log.Debug("BYE to caller failed", "error", err)
			}
		}
		if by != "callee" && b != nil {
			if err := b.Bye(ctx); err != nil {
				c.log.Debug("BYE to callee failed", "error", err)
			}
		}
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
	close(c.ended)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.records.UpdateCall(ctx, rec); err != nil {
		c.log.Error("store call record", "error", err)
	}
	c.log.Info("call ended", "result", result, "hangup_by", by, "reason", reason, "duration_s", int(rec.Duration/time.Second))
	s.events.Notify("call.ended", rec)
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
		if !req.IsAck() {
			s.respond(tx, req, 481, "Call/Transaction Does Not Exist")
		}
		return
	}
	c := ref.c
	switch req.Method {
	case sip.ACK:
		if ref.leg == LegA {
			_ = c.a.ReadAck(req, tx)
		}
	case sip.BYE:
		if ref.leg == LegA {
			_ = c.a.ReadBye(req, tx)
		} else {
			c.mu.Lock()
			b := c.b
			c.mu.Unlock()
			_ = b.ReadBye(req, tx)
		}
		c.log.Info("hangup", "by", ref.leg.String())
		c.end(0, ref.leg.String(), "BYE")
	case sip.INVITE, sip.UPDATE:
		c.passOffer(ref.leg, req, tx)
	default:
		c.passThrough(ref.leg, req, tx)
	}
}

// dialogOf returns the dialog of leg as a request sender.
func (c *call) sender(leg Leg) interface {
	Do(ctx context.Context, req *sip.Request) (*sip.Response, error)
	WriteRequest(req *sip.Request) error
} {
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

// passOffer carries a re-INVITE or UPDATE (hold, resume, codec change)
// from one leg to the other, rewriting both SDPs so media stays anchored.
func (c *call) passOffer(from Leg, req *sip.Request, tx sip.ServerTransaction) {
	c.mu.Lock()
	if c.busy || !c.answered {
		c.mu.Unlock()
		// RFC 3261 §14.2 glare: an offer is already in flight.
		c.s.respond(tx, req, 491, "Request Pending")
		return
	}
	c.busy = true
	c.sdpVer++
	ver := c.sdpVer
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.busy = false
		c.mu.Unlock()
	}()
	to := from.other()
	out := sip.NewRequest(req.Method, c.target(to))
	if len(req.Body()) > 0 {
		sd, audio, info, err := parseSDP(req.Body())
		if err != nil {
			c.s.respond(tx, req, 488, "Not Acceptable Here")
			return
		}
		c.media.SetRemote(from, info.RTP, info.RTCP)
		body, err := rewriteSDP(sd, audio, c.media.Addr(), c.media.Port(to), ver)
		if err != nil {
			c.s.respond(tx, req, 488, "Not Acceptable Here")
			return
		}
		out.SetBody(body)
		out.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 32*time.Second)
	defer cancel()
	snd := c.sender(to)
	res, err := snd.Do(ctx, out)
	if err != nil {
		c.s.respond(tx, req, 408, "Request Timeout")
		return
	}
	if req.Method == sip.INVITE && res.IsSuccess() {
		ack := sip.NewRequest(sip.ACK, c.target(to))
		_ = snd.WriteRequest(ack)
	}
	fwd := sip.NewResponseFromRequest(req, res.StatusCode, res.Reason, nil)
	fwd.AppendHeader(c.s.contactFor(req.Transport()))
	if res.IsSuccess() && len(res.Body()) > 0 {
		sd, audio, info, err := parseSDP(res.Body())
		if err == nil {
			c.media.SetRemote(to, info.RTP, info.RTCP)
			if body, err := rewriteSDP(sd, audio, c.media.Addr(), c.media.Port(from), ver); err == nil {
				fwd.SetBody(body)
				fwd.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
			}
		}
	}
	if err := tx.Respond(fwd); err != nil {
		c.log.Debug("respond to offer failed", "error", err)
	}
	c.log.Info("session modified", "method", string(req.Method), "from", from.String(), "status", res.StatusCode)
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
	if len(req.Body()) > 0 {
		out.SetBody(req.Body())
		if ct := req.ContentType(); ct != nil {
			out.AppendHeader(sip.NewHeader("Content-Type", ct.Value()))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 32*time.Second)
	defer cancel()
	res, err := snd.Do(ctx, out)
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
