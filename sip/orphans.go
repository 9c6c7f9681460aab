package sip

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// A crash leaves the phones of answered calls (and a trunk provider, which
// bills by the minute) in calls whose audio nobody relays any more. While a
// call is up, what it takes to end each of its SIP dialogs is stored with
// it; a server that starts and finds such dialogs (the previous run did
// not end them) sends each a BYE.

// dialogEnd is what a BYE ending one SIP dialog needs.
type dialogEnd struct {
	CallID    string   `json:"call_id"`
	From      string   `json:"from"` // our side, with our tag
	To        string   `json:"to"`   // the far side, with its tag
	Target    string   `json:"target"`
	Routes    []string `json:"routes,omitempty"`
	Dest      string   `json:"dest"` // host:port the far side is reached at
	Transport string   `json:"transport"`
	CSeq      uint32   `json:"cseq"`
	// Kind is empty for a dialog to end with BYE; for a call that was
	// still ringing, endReject (the caller's INVITE, to answer with 500)
	// or endCancel (a device's INVITE, to CANCEL). Invite is then that
	// INVITE as it was sent or received.
	Kind   string `json:"kind,omitempty"`
	Invite string `json:"invite,omitempty"`
}

// byeCSeqStep puts a BYE sent after a restart above any CSeq the dialog
// used before: the server's in-dialog counter is lost with the crash.
const byeCSeqStep = 100000

// dialogStore persists the dialogs of calls in progress (*store.Store).
type dialogStore interface {
	SetCallDialogs(ctx context.Context, callID, dialogs string) error
	DeleteCallDialogs(ctx context.Context, callID string) error
}

// uasDialog is the dialog of a call's caller, to whom we answered res.
// Browsers (WebSocket) are left out: their connection dies with us.
func uasDialog(inv *sip.Request, res *sip.Response) (dialogEnd, bool) {
	ct := inv.Contact()
	if ct == nil || isWebSocket(inv.Transport()) || inv.CSeq() == nil {
		return dialogEnd{}, false
	}
	d := dialogEnd{CallID: inv.CallID().Value(), From: res.To().Value(), To: inv.From().Value(),
		Target: ct.Address.String(), Dest: inv.Source(), Transport: inv.Transport(), CSeq: inv.CSeq().SeqNo + byeCSeqStep}
	for _, rr := range inv.GetHeaders("Record-Route") {
		d.Routes = append(d.Routes, rr.Value())
	}
	return d, true
}

// uacDialog is the dialog of a device or provider we called and that
// answered res.
func uacDialog(inv *sip.Request, res *sip.Response) (dialogEnd, bool) {
	ct := res.Contact()
	if ct == nil || isWebSocket(inv.Transport()) || inv.CSeq() == nil {
		return dialogEnd{}, false
	}
	d := dialogEnd{CallID: inv.CallID().Value(), From: inv.From().Value(), To: res.To().Value(),
		Target: ct.Address.String(), Dest: inv.Destination(), Transport: inv.Transport(), CSeq: inv.CSeq().SeqNo + byeCSeqStep}
	for _, rr := range res.GetHeaders("Record-Route") {
		d.Routes = append(d.Routes, rr.Value())
	}
	slices.Reverse(d.Routes)
	return d, true
}

func isWebSocket(transport string) bool {
	t := strings.ToUpper(transport)
	return t == "WS" || t == "WSS"
}

// saveDialogs stores the answered call's dialogs: the caller's and the
// callee's. Nothing is stored once the call is over.
func (c *call) saveDialogs() {
	ds, ok := c.s.records.(dialogStore)
	if !ok {
		return
	}
	c.mu.Lock()
	b := c.b
	c.mu.Unlock()
	var ends []dialogEnd
	if c.a != nil && c.a.InviteResponse != nil {
		if d, ok := uasDialog(c.a.InviteRequest, c.a.InviteResponse); ok {
			ends = append(ends, d)
		}
	}
	if b != nil && b.InviteResponse != nil {
		if d, ok := uacDialog(b.InviteRequest, b.InviteResponse); ok {
			ends = append(ends, d)
		}
	}
	c.dialogMu.Lock()
	defer c.dialogMu.Unlock()
	c.answerSaved = true
	c.storeEndsLocked(ds, ends, "dialogs not stored: a crash would leave this call's phones up")
}

// storeEndsLocked stores ends as the call's dialogs, in place of what was
// stored before, unless there are none or the call is over; warn is logged
// if the store fails. It reports whether they were stored. c.dialogMu must
// be held.
func (c *call) storeEndsLocked(ds dialogStore, ends []dialogEnd, warn string) bool {
	c.mu.Lock()
	over := c.over
	c.mu.Unlock()
	if over || len(ends) == 0 {
		return false
	}
	data, err := json.Marshal(ends)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ds.SetCallDialogs(ctx, c.id, string(data)); err != nil {
		c.log.Warn(warn, "error", err)
		return false
	}
	c.dialogsSaved = true
	return true
}

// forgetDialogs drops the stored dialogs of a call that ended.
func (c *call) forgetDialogs() {
	c.dialogMu.Lock()
	defer c.dialogMu.Unlock()
	if !c.dialogsSaved {
		return
	}
	c.dialogsSaved = false
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.s.records.(dialogStore).DeleteCallDialogs(ctx, c.id); err != nil {
		c.log.Warn("stored dialogs not deleted", "error", err)
	}
}

// EndOrphanDialogs sends BYE to every dialog in dialogs (call ID → what
// saveDialogs stored), the calls a previous run left up when it died, and
// waits up to timeout for the answers. It returns how many dialogs were
// ended (answered with any final response).
func (s *Server) EndOrphanDialogs(ctx context.Context, dialogs map[string]string, timeout time.Duration) int {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		ended int
	)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for id, data := range dialogs {
		var ends []dialogEnd
		if err := json.Unmarshal([]byte(data), &ends); err != nil {
			s.log.Warn("stored dialogs unreadable", "call_id", id, "error", err)
			continue
		}
		for _, d := range ends {
			if d.Kind != "" {
				wg.Go(func() {
					if s.endRinging(d) {
						mu.Lock()
						ended++
						mu.Unlock()
					}
				})
				continue
			}
			wg.Go(func() {
				req, err := d.bye()
				if err != nil {
					s.log.Warn("stored dialog unusable", "call_id", id, "error", err)
					return
				}
				if isUDP(d.Transport) {
					s.pinUDP(d.Dest)
				}
				res, err := s.client.Do(ctx, req)
				if err != nil {
					s.log.Info("BYE after restart not answered", "call_id", id, "to", d.Target, "error", err)
					return
				}
				s.log.Info("call left up by the previous run ended", "call_id", id, "to", d.Target, "status", res.StatusCode)
				mu.Lock()
				ended++
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	return ended
}

// bye builds the BYE that ends d.
func (d dialogEnd) bye() (*sip.Request, error) {
	var target sip.Uri
	if err := sip.ParseUri(d.Target, &target); err != nil {
		return nil, err
	}
	from := sip.FromHeader{Params: sip.NewParams()}
	to := sip.ToHeader{Params: sip.NewParams()}
	var err error
	if from.DisplayName, err = sip.ParseAddressValue(d.From, &from.Address, &from.Params); err != nil {
		return nil, err
	}
	if to.DisplayName, err = sip.ParseAddressValue(d.To, &to.Address, &to.Params); err != nil {
		return nil, err
	}
	req := sip.NewRequest(sip.BYE, target)
	req.AppendHeader(&from)
	req.AppendHeader(&to)
	cid := sip.CallIDHeader(d.CallID)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: d.CSeq, MethodName: sip.BYE})
	for _, r := range d.Routes {
		req.AppendHeader(sip.NewHeader("Route", r))
	}
	req.AppendHeader(sip.NewHeader("Reason", `SIP;cause=500;text="server restarted"`))
	req.SetDestination(d.Dest)
	req.SetTransport(d.Transport)
	return req, nil
}
