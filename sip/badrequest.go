package sip

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// badRequestConn sits between the UDP socket and sipgo's transport. sipgo
// drops a datagram it cannot parse without a word; this wrapper answers an
// unparseable request that still names where to reply (Via, Call-ID, CSeq)
// with 400 Bad Request (RFC 3261 §21.4.1), and drops anything else.
type badRequestConn struct {
	net.PacketConn
	parser *sip.Parser
	log    *slog.Logger
	guard  *guard // optional: drops datagrams from banned or flooding sources first
	// register, when set, takes a parsed REGISTER (answered without a
	// sipgo transaction, see stateless.go) and reports whether it did.
	register func(req *sip.Request, addr net.Addr) bool
	raw      *udpSocket // reads and writes the socket where it can (udpsocket_linux.go)
	// peers, when set, notes the source of each datagram handed to sipgo
	// (udppin.go).
	peers *udpPeers
}

func newBadRequestConn(c net.PacketConn, log *slog.Logger) *badRequestConn {
	return &badRequestConn{PacketConn: c, parser: sip.NewParser(), log: log, raw: newUDPSocket(c)}
}

// WriteTo sends p to addr through raw system calls where it can.
func (c *badRequestConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if c.raw != nil {
		if n, err, ok := c.raw.WriteTo(p, addr); ok {
			return n, err
		}
	}
	return c.PacketConn.WriteTo(p, addr)
}

func (c *badRequestConn) readFrom(p []byte) (int, net.Addr, error) {
	if c.raw != nil {
		return c.raw.ReadFrom(p)
	}
	return c.PacketConn.ReadFrom(p)
}

func (c *badRequestConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.readFrom(p)
		if err != nil || n == 0 {
			return n, addr, err
		}
		data := p[:n]
		if len(bytes.TrimSpace(bytes.Trim(data, "\x00"))) == 0 {
			continue // keep-alive
		}
		if n == len(p) {
			// The datagram filled the read buffer (sipgo's, 32768 bytes):
			// it was most likely longer and cut to fit, and a cut message
			// must not be parsed as if whole. It is dropped as too large.
			if c.guard != nil {
				c.guard.count(&c.guard.dropped, DropSize)
			}
			continue
		}
		if c.guard != nil && !c.guard.admitDatagram(addr, n) {
			continue
		}
		if msg, perr := c.parser.ParseSIP(data); perr == nil {
			if req, ok := msg.(*sip.Request); ok && req.Method == sip.REGISTER && c.register != nil && c.register(req, addr) {
				continue
			}
			if c.peers != nil {
				c.peers.heard(addr)
			}
			return n, addr, nil
		} else if res := badRequestResponse(data, perr); res != nil {
			if c.log.Enabled(context.Background(), slog.LevelDebug) {
				c.log.Debug("malformed request", "source", addr.String(), "error", perr)
			}
			_, _ = c.WriteTo(res, addr)
		} else if c.log.Enabled(context.Background(), slog.LevelDebug) {
			c.log.Debug("dropped unparseable datagram", "source", addr.String(), "bytes", n)
		}
	}
}

// badRequestResponse builds a 400 for data when its first line is a request
// line and it carries the headers a response must echo; otherwise nil.
func badRequestResponse(data []byte, perr error) []byte {
	head, _, _ := bytes.Cut(data, []byte("\r\n\r\n"))
	lines := strings.Split(strings.ReplaceAll(string(head), "\r\n", "\n"), "\n")
	if len(lines) < 2 {
		return nil
	}
	parts := strings.Fields(lines[0])
	if len(parts) != 3 || parts[2] != "SIP/2.0" || parts[0] == "ACK" || !isToken(parts[0]) {
		return nil
	}
	var via, from, to, callID, cseq []string
	for _, l := range lines[1:] {
		name, _, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "via", "v":
			via = append(via, l)
		case "from", "f":
			from = append(from, l)
		case "to", "t":
			to = append(to, l)
		case "call-id", "i":
			callID = append(callID, l)
		case "cseq":
			cseq = append(cseq, l)
		}
	}
	if len(via) == 0 || len(callID) != 1 || len(cseq) != 1 {
		return nil
	}
	res := badRequest(via, from, to, callID, cseq, perr)
	if res == nil {
		// A CSeq that cannot be read cannot be echoed either: answer with
		// the request's method and sequence 0, so that the client can
		// still match the answer to its request by Via branch and method.
		res = badRequest(via, from, to, callID, []string{"CSeq: 0 " + parts[0]}, perr)
	}
	return res
}

// badRequest writes a 400 echoing the given header lines, or nil when the
// result does not parse.
func badRequest(via, from, to, callID, cseq []string, perr error) []byte {
	msg := perr.Error()
	if strings.Contains(msg, "strconv.") {
		// A number that does not parse: say so, not how we found out.
		msg = "a header holds a malformed number"
	}
	reason := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, msg)
	if len(reason) > 100 {
		reason = reason[:100]
	}
	var b strings.Builder
	b.WriteString("SIP/2.0 400 Bad Request\r\n")
	for _, group := range [][]string{via, from, to, callID, cseq} {
		for _, l := range group {
			b.WriteString(l)
			b.WriteString("\r\n")
		}
	}
	b.WriteString("Warning: 399 switchboard \"")
	b.WriteString(strings.ReplaceAll(reason, "\"", "'"))
	b.WriteString("\"\r\nContent-Length: 0\r\n\r\n")
	res := []byte(b.String())
	// Echoed headers may be too broken to route a response by (an empty
	// Via): then there is no one to answer.
	if _, err := sip.NewParser().ParseSIP(res); err != nil {
		return nil
	}
	return res
}

func isToken(s string) bool {
	for _, r := range s {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("-.!%*_+`'~", r)) {
			return false
		}
	}
	return s != ""
}

// quietHandler passes on only sipgo's warnings and errors, and not the parse
// errors that badRequestConn already answers, nor its connection
// reference-count notes (a connection closed twice at teardown).
type quietHandler struct{ slog.Handler }

// SetLibraryLogger sends what sipgo logs outside any server (its package
// default logger: stray retransmitted responses, connection teardown) to
// log, filtered like the servers' own sipgo logging.
func SetLibraryLogger(log *slog.Logger) {
	sip.SetDefaultLogger(libraryLogger(log))
}

// libraryLogger is log filtered for sipgo's own logging.
func libraryLogger(log *slog.Logger) *slog.Logger {
	return slog.New(quietHandler{log.Handler()}).With("component", "sipgo")
}

func (h quietHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && h.Handler.Enabled(ctx, l)
}

func (h quietHandler) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "parse") || strings.Contains(r.Message, "ref went negative") {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h quietHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return quietHandler{h.Handler.WithAttrs(a)}
}

func (h quietHandler) WithGroup(g string) slog.Handler { return quietHandler{h.Handler.WithGroup(g)} }
