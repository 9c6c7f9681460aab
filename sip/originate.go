package sip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"

	"github.com/switchboard/switchboard/internal/digest"
	"github.com/switchboard/switchboard/internal/store"
)

// Click-to-call (originate): the server rings the first user's devices as
// a user agent of its own, and once one answers, places the call to the
// second user through its own INVITE handling, as if the first user had
// dialled. That call is an ordinary call (listed, recorded, its events
// sent, hung up like any other); this file only keeps the first user's
// device on one side and the server's call on the other, and relays their
// media through a relay session of its own.
//
//   device of A ⇄ [originate: relay session] ⇄ [call A → B: relay session] ⇄ device of B
//
// The INVITE to the server carries digest credentials computed from A's
// stored HA1 with a nonce the server issued itself, so it passes the same
// authentication as any call from A.

// Errors of Originate.
var (
	// ErrUnknownUser reports a caller that is not an account.
	ErrUnknownUser = errors.New("sip: no such user")
	// ErrNotRegistered reports a caller with no registered device.
	ErrNotRegistered = errors.New("sip: user has no registered device")
	// ErrNoRoute reports a number that is neither a user nor routed to a
	// trunk the caller may use.
	ErrNoRoute = errors.New("sip: no user or trunk for the number")
	// ErrStopping reports a server that no longer takes calls.
	ErrStopping = errors.New("sip: server is stopping")
)

// OriginateInfo describes a click-to-call in progress.
type OriginateInfo struct {
	ID    string
	From  string // the user whose devices ring first
	To    string // the user or number called once From answers
	State string // "ringing" (From's devices), "calling" (To), "answered"
	// CallID is the ID of the call From → To once it was placed.
	CallID    string
	StartedAt time.Time
}

// origTable holds the click-to-calls in progress.
type origTable struct {
	mu       sync.Mutex
	byID     map[string]*origCall
	byDialog map[string]*origCall // by dialogKey(Call-ID, far side's tag)
	// bySIPCallID maps the Call-ID of the INVITE a click-to-call sends the
	// server (From → To) to the click-to-call's ID, which that call takes
	// as its own: the ID the API answered with names the call throughout.
	bySIPCallID map[string]string
	wg          sync.WaitGroup
	closed      bool
}

func newOrigTable() *origTable {
	return &origTable{byID: map[string]*origCall{}, byDialog: map[string]*origCall{}, bySIPCallID: map[string]string{}}
}

// origCall is one click-to-call.
type origCall struct {
	s     *Server
	id    string
	from  string
	to    string
	log   *slog.Logger
	start time.Time
	media MediaSession
	// ctx ends when the click-to-call ends.
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	state  string
	callID string // the server's call, once placed
	a      *sipgo.DialogClientSession
	b      *sipgo.DialogClientSession
	keys   []string
	sipIDs []string // its keys in origTable.bySIPCallID
	by     string   // who ended it: "caller", "callee", "system" or "operator"
	// unlisted: the click-to-call is no longer shown as a ringing call of
	// its own, because the server's call under its ID was placed (that
	// call is listed while it lasts) or because it is over.
	unlisted bool
}

// get returns the click-to-call id.
func (t *origTable) get(id string) (*origCall, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	o, ok := t.byID[id]
	return o, ok
}

// all returns the click-to-calls in progress.
func (t *origTable) all() []*origCall {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*origCall, 0, len(t.byID))
	for _, o := range t.byID {
		out = append(out, o)
	}
	return out
}

// callInfo shows a click-to-call whose call is not placed yet as a call
// from its caller to its callee, ringing; false once it is not to be
// listed (see unlisted).
func (o *origCall) callInfo() (CallInfo, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return CallInfo{ID: o.id, Caller: o.from, Callee: o.to, State: "ringing", StartedAt: o.start}, !o.unlisted
}

// newCallID returns the ID of the call req starts, and when it started:
// the click-to-call's ID and start when a click-to-call sent it (its
// record then covers the ringing of the caller's devices too), otherwise
// a new ID and now.
func (s *Server) newCallID(req *sip.Request) (string, time.Time) {
	if cid := req.CallID(); cid != nil {
		t := s.orig
		t.mu.Lock()
		id, ok := t.bySIPCallID[cid.Value()]
		o := t.byID[id]
		t.mu.Unlock()
		if ok && o != nil {
			o.mu.Lock()
			o.unlisted = true
			o.mu.Unlock()
			return id, o.start
		}
	}
	return uuid.NewString(), s.now()
}

// Originate rings every device of the user from; when one answers, it
// calls to (a user or number) from that device and bridges the two. It
// returns at once: the rest happens on the server's goroutines.
func (s *Server) Originate(ctx context.Context, from, to string) (OriginateInfo, error) {
	if s.relay == nil {
		return OriginateInfo{}, errors.New("sip: no media relay")
	}
	u, ok, err := s.users.get(ctx, from)
	if err != nil {
		return OriginateInfo{}, err
	}
	if !ok {
		return OriginateInfo{}, fmt.Errorf("%w: %q", ErrUnknownUser, from)
	}
	bindings := s.reg.snapshot(from)
	if len(bindings) == 0 {
		return OriginateInfo{}, fmt.Errorf("%w: %q", ErrNotRegistered, from)
	}
	// Ringing the caller for a number nobody can reach would only end in
	// a dropped call: refuse it up front.
	if ok, err := s.routable(ctx, from, to); err != nil {
		return OriginateInfo{}, err
	} else if !ok {
		return OriginateInfo{}, fmt.Errorf("%w: %q", ErrNoRoute, to)
	}
	o := &origCall{s: s, id: "orig-" + uuid.NewString(), from: from, to: to, start: s.now(), state: "ringing"}
	o.log = s.log.With("originate_id", o.id, "from", from, "to", to)
	media, err := s.relay.Open(o.id)
	if err != nil {
		return OriginateInfo{}, fmt.Errorf("sip: no relay ports: %w", err)
	}
	o.media = media
	o.ctx, o.cancel = context.WithCancel(context.Background())
	t := s.orig
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		o.cancel()
		media.Close()
		return OriginateInfo{}, ErrStopping
	}
	t.byID[o.id] = o
	t.wg.Add(1)
	t.mu.Unlock()
	o.log.Info("click-to-call started", "devices", len(bindings))
	go func() {
		defer t.wg.Done()
		o.run(bindings, quotedDisplayName(u.DisplayName))
	}()
	return o.info(), nil
}

// routable tells whether a call from user to number has somewhere to go: a
// user of ours, or a trunk that takes the number from this user.
func (s *Server) routable(ctx context.Context, user, number string) (bool, error) {
	if _, ok, err := s.users.get(ctx, number); err != nil || ok {
		return ok, err
	}
	for _, t := range s.trunks.list() {
		if _, ok := t.Route(user, number); ok {
			return true, nil
		}
	}
	return false, nil
}

// Originates lists the click-to-calls in progress.
func (s *Server) Originates() []OriginateInfo {
	s.orig.mu.Lock()
	defer s.orig.mu.Unlock()
	out := make([]OriginateInfo, 0, len(s.orig.byID))
	for _, o := range s.orig.byID {
		out = append(out, o.info())
	}
	return out
}

func (o *origCall) info() OriginateInfo {
	o.mu.Lock()
	defer o.mu.Unlock()
	return OriginateInfo{ID: o.id, From: o.from, To: o.to, State: o.state, CallID: o.callID, StartedAt: o.start}
}

// closeAndEnd refuses new click-to-calls and ends those in progress.
func (t *origTable) closeAndEnd() {
	t.mu.Lock()
	t.closed = true
	all := make([]*origCall, 0, len(t.byID))
	for _, o := range t.byID {
		all = append(all, o)
	}
	t.mu.Unlock()
	for _, o := range all {
		o.end("system")
	}
	t.wg.Wait()
}

// lookup finds the click-to-call an in-dialog request belongs to.
func (t *origTable) lookup(req *sip.Request) (*origCall, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	o, ok := t.byDialog[requestDialogKey(req)]
	return o, ok
}

// track makes requests inside d (from the far side) reach o.
func (o *origCall) track(d *sipgo.DialogClientSession) {
	tag, _ := d.InviteResponse.To().Params.Get("tag")
	key := dialogKey(d.InviteRequest.CallID().Value(), tag)
	t := o.s.orig
	t.mu.Lock()
	t.byDialog[key] = o
	t.mu.Unlock()
	o.mu.Lock()
	o.keys = append(o.keys, key)
	o.mu.Unlock()
}

// end ends the click-to-call; by is who ended it. It is idempotent and
// does not wait for run.
func (o *origCall) end(by string) {
	o.mu.Lock()
	if o.by == "" {
		o.by = by
	}
	o.mu.Unlock()
	o.cancel()
}

// run is the click-to-call's goroutine: it rings From, calls To, waits for
// the end and hangs up what is left.
func (o *origCall) run(bindings []store.Binding, displayName string) {
	defer o.cleanup()
	a, sdpA, err := o.ringCaller(bindings)
	if err != nil {
		o.log.Info("click-to-call: caller did not answer", "error", err)
		o.recordUnanswered(err)
		return
	}
	o.mu.Lock()
	o.a, o.state = a, "calling"
	o.mu.Unlock()
	o.media.StartTimeout() // From answered: its leg carries media now
	o.track(a)
	b, err := o.callCallee(sdpA, displayName)
	if err != nil {
		o.log.Info("click-to-call: callee not reached", "error", err)
		o.end("system")
		return
	}
	o.mu.Lock()
	o.b, o.state = b, "answered"
	o.mu.Unlock()
	o.track(b)
	o.log.Info("click-to-call connected")
	select {
	case <-o.ctx.Done():
	case <-o.media.Done():
		// The server's call ends on the same timeout and says BYE.
		<-o.ctx.Done()
	}
}

// recordUnanswered leaves a call record, under the click-to-call's own ID,
// and a call.ended event for a click-to-call whose caller's devices never
// answered: otherwise the program that asked for it would never learn how
// it ended. (Once the caller answers, the call to To is an ordinary call
// with a record and events of its own.)
func (o *origCall) recordUnanswered(err error) {
	// Not listed as ringing once its record says how it ended.
	o.mu.Lock()
	o.unlisted = true
	o.mu.Unlock()
	status := 0
	var resp *sipgo.ErrDialogResponse
	var respv sipgo.ErrDialogResponse
	switch {
	case errors.As(err, &resp):
		status = resp.Res.StatusCode
	case errors.As(err, &respv):
		status = respv.Res.StatusCode
	case o.ctx.Err() != nil: // ended by the operator or a shutdown
		status = 487
	case errors.Is(err, context.DeadlineExceeded):
		status = 480
	default:
		status = 500
	}
	o.mu.Lock()
	by := o.by
	o.mu.Unlock()
	reason := "click-to-call: no device of " + o.from + " answered"
	if by == "operator" {
		status, by, reason = 487, "system", "hung up by operator"
	}
	now := o.s.now()
	rec := store.CallRecord{
		ID: o.id, Caller: o.from, Callee: o.to,
		CallerURI: "sip:" + o.from + "@" + o.s.cfg.Domain, CalleeURI: "sip:" + o.to + "@" + o.s.cfg.Domain,
		Direction: "internal", StartedAt: o.start, EndedAt: now,
		Result: resultFor(status), Status: status, HangupBy: by,
		Reason: reason,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := o.s.writeCall(ctx, true, rec, pendingEvent{EventCallEnded, callEvent(rec)}); err != nil {
		o.log.Error("store click-to-call record", "error", err)
	}
}

// cleanup hangs up the legs still up, releases the relay and forgets o.
func (o *origCall) cleanup() {
	o.cancel()
	o.mu.Lock()
	a, b, by, keys, sipIDs := o.a, o.b, o.by, o.keys, o.sipIDs
	o.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	if a != nil && by != "caller" {
		wg.Go(func() { _ = a.Bye(ctx) })
	}
	if b != nil && by != "callee" {
		wg.Go(func() { _ = b.Bye(ctx) })
	}
	wg.Wait()
	o.media.Close()
	t := o.s.orig
	t.mu.Lock()
	delete(t.byID, o.id)
	for _, k := range keys {
		delete(t.byDialog, k)
	}
	for _, k := range sipIDs {
		delete(t.bySIPCallID, k)
	}
	t.mu.Unlock()
	o.log.Info("click-to-call ended", "ended_by", by)
}

// idFor returns the ID of the call whose caller's dialog has Call-ID
// callID.
func (t *callTable) idFor(callID string) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range t.byID {
		if strings.HasPrefix(c.aKey, callID+"|") {
			return c.id, true
		}
	}
	return "", false
}

// ringCaller rings every device of From with an offer pointing at the
// relay, and returns the dialog of the first to answer, ACKed, and its
// answer.
func (o *origCall) ringCaller(bindings []store.Binding) (*sipgo.DialogClientSession, []byte, error) {
	s := o.s
	ring := s.cfg.RingTimeout
	if ring <= 0 {
		ring = defaultRingTimeout
	}
	ctx, cancel := context.WithTimeout(o.ctx, ring)
	defer cancel()
	offer := originateOffer(o.media.Addr(), o.media.Port(LegA))
	type result struct {
		d   *sipgo.DialogClientSession
		err error
	}
	results := make(chan result, len(bindings))
	fromTag := sip.GenerateTagN(16)
	n := 0
	for _, b := range bindings {
		req, err := o.inviteFor(b, offer, fromTag)
		if err != nil {
			continue
		}
		n++
		go func() {
			d, err := s.dua.WriteInvite(ctx, req)
			if err == nil {
				err = d.WaitAnswer(ctx, sipgo.AnswerOptions{})
			}
			results <- result{d, err}
		}()
	}
	if n == 0 {
		return nil, nil, errors.New("no usable device")
	}
	var winner *sipgo.DialogClientSession
	var firstErr error
	for range n {
		r := <-results
		switch {
		case r.err == nil && winner == nil:
			winner = r.d
			cancel() // CANCEL the others
		case r.err == nil:
			// Answered as well, crossing our CANCEL: hang it up.
			bctx, bcancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = r.d.Ack(bctx)
			_ = r.d.Bye(bctx)
			bcancel()
		case firstErr == nil:
			firstErr = r.err
		}
	}
	if winner == nil {
		return nil, nil, firstErr
	}
	if err := winner.Ack(o.ctx); err != nil {
		return nil, nil, fmt.Errorf("ack: %w", err)
	}
	answer := winner.InviteResponse.Body()
	_, _, info, err := parseSDP(answer)
	if err != nil {
		o.mu.Lock()
		o.a = winner // hung up by cleanup
		o.mu.Unlock()
		return nil, nil, err
	}
	o.media.SetRemote(LegA, info.RTP, info.RTCP)
	return winner, answer, nil
}

// inviteFor builds the INVITE to one device of From, shown as a call from
// To (what the device's user asked to be connected to).
func (o *origCall) inviteFor(b store.Binding, offer []byte, fromTag string) (*sip.Request, error) {
	s := o.s
	from := sip.Uri{Scheme: "sip", User: o.to, Host: s.cfg.Domain}
	to := sip.Uri{Scheme: "sip", User: o.from, Host: s.cfg.Domain}
	return s.deviceInvite(b, "Call "+o.to, from, fromTag, "", to, offer)
}

// callCallee places the call From → To through the server itself, with
// From's answer (pointed at the relay) as the offer, and returns its
// answered dialog, ACKed.
func (o *origCall) callCallee(answerA []byte, displayName string) (*sipgo.DialogClientSession, error) {
	s := o.s
	sd, audio, _, err := parseSDP(answerA)
	if err != nil {
		return nil, err
	}
	offer, err := rewriteSDP(sd, audio, o.media.Addr(), o.media.Port(LegB), 1)
	if err != nil {
		return nil, err
	}
	dst := s.boundAddr("udp")
	ruri := sip.Uri{Scheme: "sip", User: o.to, Host: s.cfg.Domain}
	req := sip.NewRequest(sip.INVITE, ruri)
	from := sip.FromHeader{DisplayName: displayName, Address: sip.Uri{Scheme: "sip", User: o.from, Host: s.cfg.Domain}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(&from)
	req.AppendHeader(&sip.ToHeader{Address: ruri, Params: sip.NewParams()})
	cid := sip.CallIDHeader(uuid.NewString())
	req.AppendHeader(&cid)
	t := s.orig
	t.mu.Lock()
	t.bySIPCallID[string(cid)] = o.id
	t.mu.Unlock()
	o.mu.Lock()
	o.sipIDs = append(o.sipIDs, string(cid))
	o.mu.Unlock()
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.INVITE})
	req.AppendHeader(s.contactFor("udp"))
	req.AppendHeader(sip.NewHeader("Allow", allowMethods))
	req.AppendHeader(sip.NewHeader("User-Agent", s.cfg.UserAgent))
	auth, err := s.selfCredentials(o.ctx, o.from, ruri.String())
	if err != nil {
		return nil, err
	}
	req.AppendHeader(sip.NewHeader("Proxy-Authorization", auth))
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(offer)
	req.SetDestination(dst)
	req.SetTransport("UDP")
	d, err := s.dua.WriteInvite(o.ctx, req)
	if err == nil {
		err = d.WaitAnswer(o.ctx, sipgo.AnswerOptions{OnResponse: func(res *sip.Response) error {
			if res.StatusCode == 100 {
				// The server's call exists from its 100 Trying on.
				o.noteCall(res)
			}
			return nil
		}})
	}
	if err != nil {
		return nil, err
	}
	if err := d.Ack(o.ctx); err != nil {
		return nil, fmt.Errorf("ack: %w", err)
	}
	_, _, info, err := parseSDP(d.InviteResponse.Body())
	if err != nil {
		o.mu.Lock()
		o.b = d // hung up by cleanup
		o.mu.Unlock()
		return nil, err
	}
	o.media.SetRemote(LegB, info.RTP, info.RTCP)
	o.noteCall(d.InviteResponse)
	return d, nil
}

// noteCall remembers the ID of the server's call From → To.
func (o *origCall) noteCall(res *sip.Response) {
	id, ok := o.s.calls.idFor(res.CallID().Value())
	if !ok {
		return
	}
	o.mu.Lock()
	o.callID = id
	o.mu.Unlock()
}

// selfCredentials returns a Proxy-Authorization value for a request of
// user to uri: digest credentials from the user's stored HA1 and a nonce of
// our own, as a phone with the password would send (RFC 7616 §3.4).
func (s *Server) selfCredentials(ctx context.Context, user, uri string) (string, error) {
	u, ok, err := s.users.get(ctx, user)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", fmt.Errorf("%w: %q", ErrUnknownUser, user)
	}
	alg := digest.MD5
	if len(s.cfg.AuthAlgorithms) > 0 {
		alg = s.cfg.AuthAlgorithms[0]
	}
	ha1 := u.HA1MD5
	if alg == digest.SHA256 {
		ha1 = u.HA1SHA256
	}
	c := digest.Credentials{Username: user, Realm: s.cfg.Domain, Nonce: s.nonces.Issue(), URI: uri,
		Algorithm: alg, QOP: "auth", NC: "00000001", CNonce: sip.GenerateTagN(16)}
	resp := c.ExpectedResponse(string(sip.INVITE), ha1)
	return fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=%s, qop=auth, nc=%s, cnonce="%s"`,
		c.Username, c.Realm, c.Nonce, c.URI, resp, c.Algorithm, c.NC, c.CNonce), nil
}

// handle serves a request inside one of o's dialogs.
func (o *origCall) handle(req *sip.Request, tx sip.ServerTransaction) {
	o.mu.Lock()
	a, b := o.a, o.b
	o.mu.Unlock()
	fromA := a != nil && requestDialogKey(req) == dialogKey(a.InviteRequest.CallID().Value(), toTag(a))
	switch req.Method {
	case sip.ACK:
	case sip.BYE:
		var err error
		by := "callee"
		if fromA {
			err = a.ReadBye(req, tx)
			by = "caller"
		} else if b != nil {
			err = b.ReadBye(req, tx)
		}
		if err != nil {
			o.s.respond(tx, req, 481, "Call/Transaction Does Not Exist")
		}
		o.end(by)
	case sip.INVITE, sip.UPDATE:
		// A session refresh or hold: keep the media as it is.
		res := sip.NewResponseFromRequest(req, 200, "OK", nil)
		if req.Method == sip.INVITE {
			port := o.media.Port(LegB)
			if fromA {
				port = o.media.Port(LegA)
			}
			res = sip.NewSDPResponseFromRequest(req, originateOffer(o.media.Addr(), port))
		}
		res.AppendHeader(o.s.contactFor(req.Transport()))
		_ = tx.Respond(res)
	default:
		o.s.respond(tx, req, 200, "OK")
	}
}

func toTag(d *sipgo.DialogClientSession) string {
	tag, _ := d.InviteResponse.To().Params.Get("tag")
	return tag
}

// originateOffer is the offer a device of From gets: G.711 both ways and
// RFC 4733 events, at the relay.
func originateOffer(addr netip.Addr, port int) []byte {
	ipv := "IP4"
	if addr.Is6() && !addr.Is4In6() {
		ipv = "IP6"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\no=switchboard %d 1 IN %s %s\r\ns=switchboard\r\nc=IN %s %s\r\nt=0 0\r\n", time.Now().Unix(), ipv, addr, ipv, addr)
	fmt.Fprintf(&b, "m=audio %d RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n", port)
	b.WriteString("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n")
	return []byte(b.String())
}
