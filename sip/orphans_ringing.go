package sip

import (
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// A crash while a call rings leaves the caller hearing ringback and the
// devices ringing, for good: no dialog exists yet to BYE. So once a call
// rings, the INVITEs of its transactions are stored with it too; a server
// that starts and finds them answers the caller's with 500 and CANCELs
// the devices'. The answer replaces them with the answered call's dialogs
// (orphans.go).

const (
	endReject = "reject" // the caller's INVITE: answer it with 500
	endCancel = "cancel" // a device's INVITE: CANCEL it
)

// noteFork keeps what a CANCEL of a device's INVITE needs, once it is
// sent; if the call already rings, what is stored is brought up to date.
// Browsers are left out: their connection dies with the server.
func (c *call) noteFork(inv *sip.Request) {
	if inv == nil || isWebSocket(inv.Transport()) || inv.CallID() == nil {
		return
	}
	d := dialogEnd{Kind: endCancel, CallID: inv.CallID().Value(), Invite: inv.String(), Dest: inv.Destination(), Transport: inv.Transport()}
	c.dialogMu.Lock()
	c.ringForks = append(c.ringForks, d)
	resave := c.ringSaved
	c.dialogMu.Unlock()
	if resave {
		c.saveRinging()
	}
}

// saveRinging stores what ends the ringing call's transactions, unless the
// call is over or answered.
func (c *call) saveRinging() {
	ds, ok := c.s.records.(dialogStore)
	if !ok || c.a == nil || c.a.InviteRequest == nil {
		return
	}
	c.dialogMu.Lock()
	defer c.dialogMu.Unlock()
	if c.answerSaved {
		return
	}
	ends := append([]dialogEnd(nil), c.ringForks...)
	if inv := c.a.InviteRequest; !isWebSocket(inv.Transport()) && inv.CallID() != nil {
		ends = append(ends, dialogEnd{Kind: endReject, CallID: inv.CallID().Value(), Invite: inv.String(),
			Dest: responseDest(inv), Transport: inv.Transport()})
	}
	if c.storeEndsLocked(ds, ends, "ringing call not stored: a crash would leave its phones ringing") {
		c.ringSaved = true
	}
}

// responseDest is where a response to req goes: over UDP where it came
// from (rport, RFC 3581); over a connection, which a restart has closed,
// the address in its top Via (RFC 3261 §18.2.2).
func responseDest(req *sip.Request) string {
	if !isStream(req.Transport()) {
		return req.Source()
	}
	if v := req.Via(); v != nil && v.Host != "" {
		port := v.Port
		if port == 0 {
			port = 5060
			if v.Transport == "TLS" {
				port = 5061
			}
		}
		return net.JoinHostPort(v.Host, strconv.Itoa(port))
	}
	return req.Source()
}

// endRinging answers (endReject) or CANCELs (endCancel) a stored INVITE of
// a call the previous run left ringing. Neither side of it has a
// transaction here, so the message is sent as it is, a second time a
// moment later over UDP, where it may be lost. It reports whether it was
// sent.
func (s *Server) endRinging(d dialogEnd) bool {
	msg, err := sip.ParseMessage([]byte(d.Invite))
	inv, ok := msg.(*sip.Request)
	if err != nil || !ok || inv.CSeq() == nil || inv.Via() == nil {
		s.log.Warn("stored INVITE unusable", "call_id", d.CallID, "error", err)
		return false
	}
	var out sip.Message
	switch d.Kind {
	case endReject:
		res := sip.NewResponseFromRequest(inv, 500, "Server Internal Error", nil)
		res.AppendHeader(sip.NewHeader("Reason", `SIP;cause=500;text="server restarted"`))
		res.AppendHeader(sip.NewHeader("Retry-After", "5"))
		res.SetDestination(d.Dest)
		res.SetTransport(d.Transport)
		out = res
	case endCancel:
		// Over TCP or TLS the INVITE went on the device's connection,
		// which died with the previous run: the CANCEL goes to its
		// Contact, the INVITE's request URI (as deviceDestination does).
		if isStream(d.Transport) {
			d.Dest = uriHostPort(inv.Recipient, d.Transport)
		}
		out = cancelFor(inv, d)
		if isUDP(d.Transport) {
			s.pinUDP(d.Dest)
		}
	default:
		return false
	}
	// A response over UDP leaves from our SIP socket, where the caller
	// sent its INVITE; over TCP on a new connection to its Via address.
	// sipgo's transport layer sends responses only on connections it
	// knows, and knows none of the previous run's.
	write := s.ua.TransportLayer().WriteMsg
	if res, ok := out.(*sip.Response); ok {
		switch strings.ToUpper(d.Transport) {
		case "UDP":
			write = func(sip.Message) error { return s.writeUDP(res.String(), d.Dest) }
		case "TCP":
			// The Via address (RFC 3261 §18.2.2); a phone that put an
			// ephemeral port there listens at its Contact instead.
			write = func(sip.Message) error {
				err := writeTCP(res.String(), d.Dest)
				if ct := inv.Contact(); err != nil && ct != nil {
					if dest := uriHostPort(ct.Address, d.Transport); dest != d.Dest {
						err = writeTCP(res.String(), dest)
					}
				}
				return err
			}
		}
	}
	if err := write(out); err != nil {
		s.log.Info("ringing call left by the previous run not ended", "call_id", d.CallID, "to", d.Dest, "error", err)
		return false
	}
	if !isStream(d.Transport) {
		time.Sleep(500 * time.Millisecond)
		_ = write(out)
	}
	s.log.Info("ringing call left by the previous run ended", "call_id", d.CallID, "to", d.Dest, "sent", d.Kind)
	return true
}

// writeUDP sends msg from the server's UDP socket to dest.
func (s *Server) writeUDP(msg, dest string) error {
	s.readyMu.Lock()
	conn := s.udpConn
	s.readyMu.Unlock()
	if conn == nil {
		return errors.New("not listening on UDP")
	}
	addr, err := net.ResolveUDPAddr("udp", dest)
	if err != nil {
		return err
	}
	_, err = conn.WriteTo([]byte(msg), addr)
	return err
}

// writeTCP sends msg on a new TCP connection to dest, then closes it once
// the peer has (or a second has passed), so that it reads msg first.
func writeTCP(msg, dest string) error {
	c, err := net.DialTimeout("tcp", dest, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	_, _ = io.Copy(io.Discard, c)
	return nil
}

// uriHostPort is the host:port of u, with the transport's default port.
func uriHostPort(u sip.Uri, transport string) string {
	port := u.Port
	if port == 0 {
		port = 5060
		if strings.EqualFold(transport, "TLS") || u.Scheme == "sips" {
			port = 5061
		}
	}
	return net.JoinHostPort(strings.Trim(u.Host, "[]"), strconv.Itoa(port))
}

// cancelFor builds the CANCEL of inv (RFC 3261 §9.1): its request URI,
// top Via (so the device matches it to the INVITE), Route, From, To,
// Call-ID and CSeq number.
func cancelFor(inv *sip.Request, d dialogEnd) *sip.Request {
	req := sip.NewRequest(sip.CANCEL, inv.Recipient)
	req.AppendHeader(inv.Via().Clone())
	for _, r := range inv.GetHeaders("Route") {
		req.AppendHeader(sip.HeaderClone(r))
	}
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	req.AppendHeader(sip.HeaderClone(inv.From()))
	req.AppendHeader(sip.HeaderClone(inv.To()))
	req.AppendHeader(sip.HeaderClone(inv.CallID()))
	req.AppendHeader(&sip.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: sip.CANCEL})
	req.AppendHeader(sip.NewHeader("Reason", `SIP;cause=500;text="server restarted"`))
	req.SetBody(nil) // Content-Length: 0, which a stream needs
	req.SetDestination(d.Dest)
	req.SetTransport(d.Transport)
	return req
}

// isStream reports whether messages over transport go on a connection.
func isStream(transport string) bool {
	switch strings.ToUpper(transport) {
	case "TCP", "TLS", "WS", "WSS":
		return true
	}
	return false
}
