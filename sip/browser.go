package sip

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/pion/sdp/v3"

	"github.com/switchboard/switchboard/internal/store"
)

// Calls with a browser on one side: the browser's media (ICE, DTLS-SRTP,
// RFC 8829) ends in the media plane, which bridges it to the plain RTP of
// the other leg. The signalling plane only decides which leg is a browser —
// a WebRTC offer from the caller, a binding over WebSocket for a callee —
// and passes SDP bodies; the media plane builds them.

// BrowserMedia is implemented by a MediaSession that can terminate a
// browser's WebRTC media on one of its legs. Without it, calls from or to
// browsers are refused with 488.
type BrowserMedia interface {
	// PlainOffer turns a browser's SDP offer into the plain RTP/AVP offer
	// for a phone reached through leg: only the codecs a bridge carries
	// that phones use (G.711, G.722, telephone-event), at the relay's
	// port for leg.
	PlainOffer(browserOffer []byte, leg Leg, version uint64) ([]byte, error)
	// OfferBrowser bridges leg to a browser that is being called and
	// returns the SDP offer for it. peerSDP is the other side's SDP (a
	// phone's offer or a calling browser's): its codecs and payload types.
	OfferBrowser(ctx context.Context, leg Leg, peerSDP []byte) (BrowserLeg, []byte, error)
	// AnswerBrowser terminates a calling browser's offer on leg, bridged
	// to the other side whose codecs peerSDP lists, and returns the SDP
	// answer for the browser.
	AnswerBrowser(ctx context.Context, leg Leg, offer, peerSDP []byte) (BrowserLeg, []byte, error)
}

// BrowserLeg is one browser's peer connection bridged to a relay leg.
type BrowserLeg interface {
	// Accept applies the answer of a called browser, makes this bridge
	// the one its leg uses (several browsers may ring at once), and
	// returns the plain RTP answer for the other side, at the relay's
	// port for the other leg.
	Accept(answer []byte, version uint64) ([]byte, error)
	// Renegotiate answers the browser's new offer within the call (hold,
	// resume, ICE restart) without involving the other side.
	Renegotiate(ctx context.Context, offer []byte) ([]byte, error)
	// AnswerPeer answers, for the browser, a new offer from the phone on
	// the other side (hold, resume, a session refresh, a new address;
	// direction is the offer's, RFC 3264 §8): the codecs in use that the
	// offer still lists, at the relay's port for the phone, in the
	// answering direction. From then on the bridge forwards only what
	// that direction lets through. An offer that drops the codec in use
	// is refused: the browser would have to renegotiate.
	AnswerPeer(offer []byte, direction string, version uint64) ([]byte, error)
	// Done is closed when the browser's media has ended or failed.
	Done() <-chan struct{}
	// Close ends the peer connection; it is idempotent.
	Close() error
}

// browserSetupTimeout bounds building a browser bridge (ICE gathering).
const browserSetupTimeout = 10 * time.Second

// isWebRTCOffer reports whether body's first active audio stream is
// WebRTC's (UDP/TLS/RTP/SAVPF, RFC 8834 §5.1.2): a browser.
func isWebRTCOffer(body []byte) bool {
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(string(body)); err != nil {
		return false
	}
	for _, m := range sd.MediaDescriptions {
		if m.MediaName.Media != "audio" || m.MediaName.Port.Value == 0 {
			continue
		}
		return strings.Contains(strings.Join(m.MediaName.Protos, "/"), "SAVPF")
	}
	return false
}

// parseOffer reads a caller's offer, plain or WebRTC. A WebRTC offer has
// no parsed description to rewrite: the media plane answers it.
func parseOffer(body []byte) (*sdp.SessionDescription, int, mediaInfo, bool, error) {
	if !isWebRTCOffer(body) {
		sd, audio, info, err := parseSDP(body)
		return sd, audio, info, false, err
	}
	info := mediaInfo{Direction: "sendrecv"}
	var sd sdp.SessionDescription
	_ = sd.UnmarshalString(string(body))
	for _, m := range sd.MediaDescriptions {
		if m.MediaName.Media == "audio" && m.MediaName.Port.Value != 0 {
			rtpmap := map[string]string{}
			for _, a := range m.Attributes {
				if a.Key == "rtpmap" {
					if pt, enc, ok := strings.Cut(a.Value, " "); ok {
						rtpmap[pt] = enc
					}
				}
			}
			for _, f := range m.MediaName.Formats {
				if n := rtpmap[f]; n != "" {
					info.Codecs = append(info.Codecs, n)
				} else if n := staticPayloads[f]; n != "" {
					info.Codecs = append(info.Codecs, n)
				}
			}
			break
		}
	}
	return nil, 0, info, true, nil
}

// isBrowserBinding reports whether a device is a browser: it registered
// over a WebSocket.
func isBrowserBinding(b store.Binding) bool { return isConnectionTransport(b.Transport) }

func (c *call) browserMedia() (BrowserMedia, bool) {
	bm, ok := c.media.(BrowserMedia)
	return bm, ok
}

// forkOffer is the offer for one device: a WebRTC offer from a new bridge
// for a browser, a plain offer for a phone.
func (c *call) forkOffer(b store.Binding, offerB []byte) ([]byte, BrowserLeg, error) {
	if !isBrowserBinding(b) && !c.browserA {
		return offerB, nil, nil
	}
	bm, ok := c.browserMedia()
	if !ok {
		return nil, nil, &StatusError{Code: 488, Reason: "Not Acceptable Here"}
	}
	offerA := c.a.InviteRequest.Body()
	if !isBrowserBinding(b) {
		c.mu.Lock()
		v := c.sdpVer
		c.mu.Unlock()
		body, err := bm.PlainOffer(offerA, LegB, v)
		return body, nil, err
	}
	ctx, cancel := context.WithTimeout(c.ctx, browserSetupTimeout)
	defer cancel()
	bl, body, err := bm.OfferBrowser(ctx, LegB, offerA)
	return body, bl, err
}

// answerForCaller builds the caller's SDP answer from the answer of the
// device that took the call (bl is its bridge when it is a browser), and
// points the relay at the callee.
func (c *call) answerForCaller(body []byte, bl BrowserLeg) ([]byte, bool) {
	if bl == nil && !c.browserA {
		return c.answerForA(body)
	}
	bm, ok := c.browserMedia()
	if !ok {
		return nil, false
	}
	c.mu.Lock()
	c.sdpVer++
	v := c.sdpVer
	early := c.earlyAnswer
	c.mu.Unlock()
	if early != nil {
		// The calling browser's media was bridged at the 183: the answer
		// stands, only the callee's address may have changed.
		if bl != nil {
			c.log.Warn("a browser answered after early media from another device: the caller keeps the early codecs")
			if _, err := bl.Accept(body, v); err != nil {
				return nil, false
			}
			c.setBrowser(LegB, bl)
			return early, true
		}
		_, _, info, err := parseSDP(body)
		if err != nil {
			c.log.Warn("callee SDP unusable", "error", err)
			return nil, false
		}
		c.media.SetRemote(LegB, info.RTP, info.RTCP)
		return early, true
	}
	var plain []byte // the callee as the caller's leg sees it
	if bl != nil {
		ans, err := bl.Accept(body, v)
		if err != nil {
			c.log.Warn("browser answer unusable", "error", err)
			return nil, false
		}
		c.setBrowser(LegB, bl)
		if !c.browserA {
			c.mu.Lock()
			c.plainSent[LegA] = ans
			c.mu.Unlock()
			return ans, true
		}
		plain = ans
	} else {
		_, _, info, err := parseSDP(body)
		if err != nil {
			c.log.Warn("callee SDP unusable", "error", err)
			return nil, false
		}
		c.media.SetRemote(LegB, info.RTP, info.RTCP)
		plain = body
	}
	ctx, cancel := context.WithTimeout(c.ctx, browserSetupTimeout)
	defer cancel()
	bla, ans, err := bm.AnswerBrowser(ctx, LegA, c.a.InviteRequest.Body(), plain)
	if err != nil {
		c.log.Warn("cannot bridge the calling browser", "error", err)
		return nil, false
	}
	c.setBrowser(LegA, bla)
	return ans, true
}

func (c *call) setBrowser(leg Leg, bl BrowserLeg) {
	c.mu.Lock()
	c.browsers[leg] = bl
	c.mu.Unlock()
}

// browserDone is closed when the browser on leg has lost its media; nil
// (never ready) when leg is not a browser.
func (c *call) browserDone(leg Leg) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.browsers[leg] == nil {
		return nil
	}
	return c.browsers[leg].Done()
}

// hasBrowser reports whether either leg is a browser.
func (c *call) hasBrowser() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.browserA || c.browsers[LegA] != nil || c.browsers[LegB] != nil
}

// closeBridges ends the bridges of devices that did not take the call.
func (c *call) closeBridges(bls []BrowserLeg, keep BrowserLeg) {
	for _, bl := range bls {
		if bl != keep {
			c.s.calls.wg.Go(func() { _ = bl.Close() })
		}
	}
}

// earlyForBrowser bridges a calling browser to the early media of a
// device's 183 and returns the SDP answer for the browser's 183.
func (c *call) earlyForBrowser(body []byte) ([]byte, bool) {
	bm, ok := c.browserMedia()
	if !ok {
		return nil, false
	}
	_, _, info, err := parseSDP(body)
	if err != nil {
		c.log.Info("early media SDP unusable", "error", err)
		return nil, false
	}
	c.media.SetRemote(LegB, info.RTP, info.RTCP)
	ctx, cancel := context.WithTimeout(c.ctx, browserSetupTimeout)
	defer cancel()
	bla, ans, err := bm.AnswerBrowser(ctx, LegA, c.a.InviteRequest.Body(), body)
	if err != nil {
		c.log.Info("cannot bridge the calling browser to early media", "error", err)
		return nil, false
	}
	c.setBrowser(LegA, bla)
	c.mu.Lock()
	c.earlyAnswer = ans
	c.mu.Unlock()
	return ans, true
}

// browserReoffer handles a re-INVITE or UPDATE on a call with a browser. A
// browser's new offer (hold, resume, ICE restart) is answered by its
// bridge, and the other side keeps its media as it is; a phone's is
// answered by the bridge of the browser it talks to (phoneReoffer); other
// session changes are refused with 488.
func (c *call) browserReoffer(from Leg, req *sip.Request, tx sip.ServerTransaction) {
	c.mu.Lock()
	bl := c.browsers[from]
	peer := c.browsers[from.other()]
	ok := c.answered && !c.over
	c.mu.Unlock()
	if ok && bl == nil && peer != nil {
		c.phoneReoffer(from, peer, req, tx)
		return
	}
	if !ok || bl == nil || len(req.Body()) == 0 {
		c.s.respond(tx, req, 488, "Not Acceptable Here", sip.NewHeader("Warning", `399 switchboard "this session change is not supported on calls with a browser"`))
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, browserSetupTimeout)
	defer cancel()
	answer, err := bl.Renegotiate(ctx, req.Body())
	if err != nil {
		c.log.Info("browser re-offer refused", "leg", from.String(), "error", err)
		c.s.respond(tx, req, 488, "Not Acceptable Here")
		return
	}
	res := sip.NewSDPResponseFromRequest(req, answer)
	res.AppendHeader(sip.NewHeader("Server", c.s.cfg.UserAgent))
	res.AppendHeader(c.contact(from))
	if err := tx.Respond(res); err != nil {
		c.log.Debug("respond to browser re-offer failed", "error", err)
	}
	c.log.Info("session modified", "method", string(req.Method), "from", from.String(), "answered_by", "bridge")
}

// phoneReoffer answers a re-INVITE or UPDATE from the phone on a call whose
// other side is a browser: hold, resume, a session refresh, or a new RTP
// address. The browser's bridge answers for it and enforces the phone's
// direction. The browser is not re-INVITEd: its media ends in the bridge,
// which keeps its peer connection as it is, so a hold needs nothing from
// the browser, and not asking it avoids an offer of our own racing the
// browser's (491) and depending on how each browser client handles an
// incoming re-offer. Its page does not show that the phone put it on hold.
func (c *call) phoneReoffer(from Leg, peer BrowserLeg, req *sip.Request, tx sip.ServerTransaction) {
	c.mu.Lock()
	if c.busy {
		c.mu.Unlock()
		// RFC 3261 §14.2 glare: an offer is already in flight.
		c.s.respond(tx, req, 491, "Request Pending")
		return
	}
	c.busy = true
	next := c.sdpVer + 1
	last := c.plainSent[from]
	c.mu.Unlock()
	done := sync.OnceFunc(func() {
		c.mu.Lock()
		c.busy = false
		c.mu.Unlock()
	})
	// done runs before each answer: the phone may send its next request
	// the moment it has the answer.
	defer done()
	if len(req.Body()) == 0 {
		c.phoneRefresh(from, peer, req, tx, done)
		return
	}
	_, _, info, err := parseSDP(req.Body())
	if err != nil {
		c.log.Info("phone re-offer unusable", "leg", from.String(), "error", err)
		done()
		c.s.respond(tx, req, 488, "Not Acceptable Here")
		return
	}
	dir := phoneDirection(info)
	answer, err := peer.AnswerPeer(req.Body(), dir, next)
	if err != nil {
		c.log.Info("phone re-offer refused", "leg", from.String(), "error", err)
		done()
		c.s.respond(tx, req, 488, "Not Acceptable Here", sip.NewHeader("Warning", `399 switchboard "the browser on this call cannot follow this session change"`))
		return
	}
	c.media.SetRemote(from, info.RTP, info.RTCP)
	c.mu.Lock()
	if last != nil && sameButVersion(last, answer) {
		// Unchanged: the same o= version (RFC 3264 §8).
		answer = last
	} else {
		c.sdpVer = max(c.sdpVer, next)
		c.plainSent[from] = answer
	}
	c.mu.Unlock()
	res := sip.NewSDPResponseFromRequest(req, answer)
	res.AppendHeader(sip.NewHeader("Server", c.s.cfg.UserAgent))
	res.AppendHeader(c.contact(from))
	c.log.Info("session modified", "method", string(req.Method), "from", from.String(), "direction", dir, "answered_by", "bridge")
	if req.Method != sip.INVITE {
		done()
		if err := tx.Respond(res); err != nil {
			c.log.Debug("respond to phone re-offer failed", "error", err)
		}
		return
	}
	c.respond2xx(from, req, tx, res, done)
}

// sameButVersion reports whether two SDP bodies differ at most in their o=
// line.
func sameButVersion(a, b []byte) bool {
	strip := func(body []byte) string {
		var out []string
		for _, l := range strings.Split(string(body), "\n") {
			if !strings.HasPrefix(l, "o=") {
				out = append(out, l)
			}
		}
		return strings.Join(out, "\n")
	}
	return strip(a) == strip(b)
}

// phoneDirection is the direction of a phone's SDP, with a stream held the
// old way, c=0.0.0.0 (RFC 3264 §8.4), taken as not wanting media.
func phoneDirection(info mediaInfo) string {
	dir := info.Direction
	if !info.RTP.IsValid() {
		switch dir {
		case "sendrecv":
			dir = "sendonly"
		case "recvonly":
			dir = "inactive"
		}
	}
	return dir
}

// phoneRefresh answers a phone's request without an offer on a call with
// a browser. An UPDATE without SDP only refreshes the session (RFC 4028
// §10) and gets a plain 200. A re-INVITE without SDP asks for an offer
// (RFC 3261 §14.2): the 200 repeats the last SDP the phone got from us,
// and the phone's answer in the ACK is applied like a re-offer (its
// address and direction); an answer the browser's side cannot follow is
// logged and the call goes on as it was.
func (c *call) phoneRefresh(from Leg, peer BrowserLeg, req *sip.Request, tx sip.ServerTransaction, done func()) {
	if req.Method != sip.INVITE {
		done()
		c.s.respond(tx, req, 200, "OK")
		c.log.Info("session refreshed", "method", string(req.Method), "from", from.String())
		return
	}
	c.mu.Lock()
	offer := c.plainSent[from]
	if offer == nil && from == LegB && c.b != nil {
		offer = c.b.InviteRequest.Body() // what the phone was called with
	}
	c.mu.Unlock()
	if offer == nil {
		done()
		c.s.respond(tx, req, 488, "Not Acceptable Here", sip.NewHeader("Warning", `399 switchboard "no offer to make on this call"`))
		return
	}
	res := sip.NewSDPResponseFromRequest(req, offer)
	res.AppendHeader(sip.NewHeader("Server", c.s.cfg.UserAgent))
	res.AppendHeader(c.contact(from))
	ack := c.respond2xx(from, req, tx, res, func() {})
	done()
	if ack == nil || len(ack.Body()) == 0 {
		c.log.Info("no answer to our offer in the ACK", "leg", from.String())
		return
	}
	_, _, info, err := parseSDP(ack.Body())
	if err == nil {
		_, err = peer.AnswerPeer(ack.Body(), phoneDirection(info), 0)
	}
	if err != nil {
		c.log.Warn("phone answer in ACK unusable: media stays as it was", "leg", from.String(), "error", err)
		return
	}
	c.media.SetRemote(from, info.RTP, info.RTCP)
	c.log.Info("session modified", "method", string(req.Method), "from", from.String(), "direction", phoneDirection(info), "answered_by", "phone")
}
