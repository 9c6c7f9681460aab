package sip

// SIP over WebSocket (RFC 7118) on the HTTP listener. The page and its
// WebSocket share an origin, so /ws is served by the web server: its
// handler takes over the HTTP connection and hands it to sipgo's WebSocket
// transport, which does the WebSocket handshake and framing and from then
// on treats the connection like one it accepted itself. A browser's
// bindings live only as long as its connection: closing it removes them.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard/switchboard/internal/store"
)

// wsHandoffTimeout bounds how long an upgraded connection waits for the SIP
// server to take it (it is not running yet, or is stopping).
const wsHandoffTimeout = 5 * time.Second

// WebSocketHandler returns the handler for GET /ws: SIP over WebSocket with
// the subprotocol "sip" (RFC 7118 §4). Requests that are not a WebSocket
// handshake for that subprotocol get a plain-text error.
func (s *Server) WebSocketHandler() http.Handler {
	return http.HandlerFunc(s.serveWebSocket)
}

func (s *Server) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	if !headerHasToken(r.Header, "Connection", "upgrade") || !headerHasToken(r.Header, "Upgrade", "websocket") {
		w.Header().Set("Upgrade", "websocket")
		http.Error(w, "this is the SIP over WebSocket endpoint (RFC 7118): connect with a WebSocket client and the subprotocol \"sip\"", http.StatusUpgradeRequired)
		return
	}
	if !headerHasToken(r.Header, "Sec-WebSocket-Protocol", "sip") {
		http.Error(w, "the WebSocket subprotocol \"sip\" is required (RFC 7118 §4)", http.StatusBadRequest)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "WebSocket upgrade is not possible on this connection", http.StatusInternalServerError)
		return
	}
	conn, rw, err := hj.Hijack()
	if err != nil {
		s.log.Warn("websocket hijack failed", "remote", r.RemoteAddr, "error", err)
		return
	}
	// sipgo answers the handshake itself, from the raw bytes: give it the
	// request line and headers again, then whatever the client sent after.
	var head bytes.Buffer
	fmt.Fprintf(&head, "GET %s HTTP/1.1\r\nHost: %s\r\n", r.URL.RequestURI(), r.Host)
	_ = r.Header.Write(&head)
	head.WriteString("\r\n")
	if n := rw.Reader.Buffered(); n > 0 {
		rest, _ := rw.Reader.Peek(n)
		head.Write(rest)
	}
	if a, ok := conn.LocalAddr().(*net.TCPAddr); ok {
		ap := a.AddrPort()
		s.wsLocal.Store(&ap)
	}
	wc := &wsConn{Conn: conn, r: io.MultiReader(&head, conn)}
	source := conn.RemoteAddr().String()
	if r.TLS != nil {
		// sipgo's transport sees plain WS: the HTTP server did the TLS.
		s.ws.secure.Store(source, struct{}{})
	}
	wc.onClose = func() {
		s.ws.secure.Delete(source)
		s.connectionClosed(source)
	}
	if !s.ws.hand(wc) {
		s.ws.secure.Delete(source)
		conn.Close()
	}
}

// bindingTransport is the transport a REGISTER came over as bindings
// record it: WSS for a WebSocket that came over TLS (wss://), which
// sipgo's WebSocket transport reports as WS.
func (s *Server) bindingTransport(req *sip.Request) string {
	t := strings.ToUpper(req.Transport())
	if t == "WS" {
		if _, ok := s.ws.secure.Load(req.Source()); ok {
			return "WSS"
		}
	}
	return t
}

// wireTransport is the sipgo transport that reaches a binding: a WSS
// binding's connection lives in the WebSocket transport like any other
// the HTTP listener handed over.
func wireTransport(binding string) string {
	if strings.EqualFold(binding, "WSS") {
		return "WS"
	}
	return binding
}

// wsContactAddr is where WebSocket clients reach us, for the Contact of
// dialogs over transport: the HTTP listener, as the clients' connections
// show it. ok is false for other transports, or before any connection.
func (s *Server) wsContactAddr(transport string) (netip.AddrPort, bool) {
	if !isConnectionTransport(transport) {
		return netip.AddrPort{}, false
	}
	ap := s.wsLocal.Load()
	if ap == nil {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
}

// headerHasToken reports whether a comma-separated header contains token,
// ignoring case.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// wsConn is a taken-over HTTP connection: reads start with the replayed
// handshake, and closing it runs onClose once.
type wsConn struct {
	net.Conn
	r         io.Reader
	onClose   func()
	closeOnce sync.Once
}

func (c *wsConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *wsConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(c.onClose)
	return err
}

// wsListener is the net.Listener sipgo's WebSocket transport accepts from:
// the connections the HTTP handler took over.
type wsListener struct {
	// secure holds the sources of the connections that came over TLS
	// (string → struct{}), until they close.
	secure    sync.Map
	conns     chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
	addr      net.Addr
}

func newWSListener(addr net.Addr) *wsListener {
	return &wsListener{conns: make(chan net.Conn), done: make(chan struct{}), addr: addr}
}

// hand passes c to the transport; false when the server is not serving.
func (l *wsListener) hand(c net.Conn) bool {
	t := time.NewTimer(wsHandoffTimeout)
	defer t.Stop()
	select {
	case l.conns <- c:
		return true
	case <-l.done:
	case <-t.C:
	}
	return false
}

func (l *wsListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *wsListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return nil
}

func (l *wsListener) Addr() net.Addr { return l.addr }

// isConnectionTransport reports whether a binding lives only as long as
// its connection: a browser's WebSocket cannot be reached once it closes.
func isConnectionTransport(transport string) bool {
	switch strings.ToUpper(transport) {
	case "WS", "WSS":
		return true
	}
	return false
}

// connectionClosed handles a WebSocket connection from source that has
// closed: its bindings are removed and its calls end at once, since
// nothing can reach that browser any more.
func (s *Server) connectionClosed(source string) {
	s.dropConnectionBindings(source)
	s.endConnectionCalls(source)
}

// endConnectionCalls hangs up the calls with a leg over the WebSocket
// connection from source: BYE to the other leg only. It runs on the
// closed connection's reader goroutine, which has nothing else to do.
func (s *Server) endConnectionCalls(source string) {
	for _, c := range s.calls.all() {
		var leg Leg = -1
		c.mu.Lock()
		switch {
		case c.a != nil && isConnectionTransport(c.a.InviteRequest.Transport()) && c.a.InviteRequest.Source() == source:
			leg = LegA
		case c.b != nil && isConnectionTransport(c.b.InviteRequest.Transport()) && c.b.InviteRequest.Destination() == source:
			leg = LegB
		}
		answered := c.answered
		c.mu.Unlock()
		if leg < 0 || !answered {
			// A call still ringing ends by its own setup: the caller's
			// transaction or the device's INVITE fails.
			continue
		}
		c.log.Info("hangup: websocket closed", "by", leg.String())
		c.end(0, leg.String(), "websocket closed")
	}
}

// dropConnectionBindings removes at once the bindings that arrived over the
// WebSocket connection from source, which has just closed.
func (s *Server) dropConnectionBindings(source string) {
	for _, b := range s.reg.snapshot("") {
		if b.Source != source || !isConnectionTransport(b.Transport) {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := s.reg.removeClosed(ctx, b)
		cancel()
		if err != nil {
			s.log.Warn("remove binding of closed websocket", "user", b.User, "source", source, "error", err)
			continue
		}
		s.log.Info("unregistered: websocket closed", "user", b.User, "contact", b.Contact, "source", source)
	}
}

// removeClosed deletes a binding of a closed connection, unless it has been
// refreshed from another connection meanwhile.
func (r *registrar) removeClosed(ctx context.Context, b store.Binding) error {
	l := r.lockUser(b.User)
	defer l.Unlock()
	r.mu.RLock()
	e := r.findLocked(b.User, b.ID)
	still := e != nil && e.b.Source == b.Source
	r.mu.RUnlock()
	if !still {
		return nil // refreshed from another connection meanwhile
	}
	// The event has the shape of every registration event and is written
	// in the same transaction as the removal.
	if err := r.s.applyBindings(ctx, nil, []string{b.ID}, pendingEvent{EventRegistrationRemoved, registrationEvent(b)}); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	r.mu.Lock()
	r.removeLocked(b.User, b.ID)
	r.mu.Unlock()
	return nil
}
