package sip

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// framedListener hands sipgo's stream transports (TCP, TLS) connections
// that answer malformed requests. sipgo closes a connection on the first
// message it cannot parse, so a phone that sent one bad request would
// lose its connection without an answer.
type framedListener struct {
	net.Listener
	max int // limits.max_message_size, or sipgo's default
	log *slog.Logger
}

// framed wraps a stream listener of the server's.
func (s *Server) framed(l net.Listener) net.Listener {
	max := s.cfg.Limits.MaxMessageSize
	if max <= 0 {
		max = sip.ParseMaxMessageLength
	}
	return framedListener{Listener: l, max: max, log: s.log}
}

func (l framedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &framedConn{Conn: c, parser: sip.NewParser(), max: l.max, log: l.log}, nil
}

// framedConn cuts the stream it reads into SIP messages itself (at the
// blank line after the headers, then Content-Length bytes of body) and
// parses each: a well-formed message is passed on to sipgo unchanged; a
// malformed request is answered with 400 Bad Request (RFC 3261 §21.4.1)
// and left out, so the stream stays in step and the connection open.
// What it cannot cut (no end of headers within the size limit, a
// Content-Length that does not parse or is over the limit) is passed on
// as it comes, and sipgo closes the connection as before.
type framedConn struct {
	net.Conn
	parser *sip.Parser
	max    int
	log    *slog.Logger

	buf  [16 << 10]byte
	in   []byte   // read, not yet cut into messages
	out  [][]byte // checked messages (or keep-alives), in order, for sipgo
	raw  bool     // cutting gave up: bytes pass through as they are read
	rerr error    // the read error to return once out is empty
}

func (c *framedConn) Read(p []byte) (int, error) {
	for len(c.out) == 0 {
		if c.rerr != nil {
			return 0, c.rerr
		}
		n, err := c.Conn.Read(c.buf[:])
		if n > 0 {
			c.in = append(c.in, c.buf[:n]...)
			c.cut()
		}
		if err != nil {
			if len(c.in) > 0 {
				// An unfinished message: sipgo sees it and the end.
				c.out = append(c.out, c.in)
				c.in = nil
			}
			c.rerr = err
		}
	}
	// One message (or keep-alive) per read at most: sipgo tells a
	// keep-alive from a message by reading it alone.
	n := copy(p, c.out[0])
	if n == len(c.out[0]) {
		c.out = c.out[1:]
	} else {
		c.out[0] = c.out[0][n:]
	}
	return n, nil
}

// cut moves every complete message from in to out, or answers it.
func (c *framedConn) cut() {
	for len(c.in) > 0 {
		if c.raw {
			c.out = append(c.out, c.in)
			c.in = nil
			return
		}
		// CRLF keep-alives between messages (RFC 5626 §3.5.1) pass as
		// they are.
		if k := leadingNewlines(c.in); k > 0 {
			c.out = append(c.out, c.in[:k:k])
			c.in = c.in[k:]
			continue
		}
		end := headerEnd(c.in)
		if end < 0 {
			if len(c.in) > c.max {
				c.raw = true
			}
			return
		}
		cl, ok := contentLength(c.in[:end])
		if !ok || cl > c.max {
			c.raw = true
			continue
		}
		if len(c.in) < end+cl {
			return
		}
		msg := c.in[: end+cl : end+cl]
		c.in = c.in[end+cl:]
		if _, err := c.parser.ParseSIP(msg); err != nil {
			c.answer(msg, err)
			continue
		}
		c.out = append(c.out, msg)
	}
	// What remains shares its array with the messages handed on: copy it
	// so that the next read appends to memory of its own.
	if len(c.in) > 0 {
		c.in = append([]byte(nil), c.in...)
	} else {
		c.in = nil
	}
}

// answer replies 400 to a malformed request, and drops anything else
// malformed (a response, or a request too broken to reply to).
func (c *framedConn) answer(msg []byte, perr error) {
	debug := c.log.Enabled(context.Background(), slog.LevelDebug)
	if res := badRequestResponse(msg, perr); res != nil {
		if debug {
			c.log.Debug("malformed request", "source", c.RemoteAddr().String(), "error", perr)
		}
		_, _ = c.Conn.Write(res)
		return
	}
	if debug {
		c.log.Debug("dropped unparseable message", "source", c.RemoteAddr().String(), "bytes", len(msg))
	}
}

func leadingNewlines(b []byte) int {
	i := 0
	for i < len(b) && (b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// headerEnd returns the length of b's headers including the blank line
// that ends them (CRLF CRLF, or bare LF LF), or -1 if it has not arrived.
func headerEnd(b []byte) int {
	for i := 0; i < len(b); i++ {
		if b[i] != '\n' {
			continue
		}
		switch {
		case i+1 < len(b) && b[i+1] == '\n':
			return i + 2
		case i+2 < len(b) && b[i+1] == '\r' && b[i+2] == '\n':
			return i + 3
		}
	}
	return -1
}

// contentLength reads Content-Length (or its compact form l) from head;
// a message without one has no body. false when it does not parse or
// appears twice with different values.
func contentLength(head []byte) (int, bool) {
	n, found := 0, false
	for line := range bytes.SplitSeq(head, []byte("\n")) {
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		name = bytes.TrimSpace(name)
		if !bytes.EqualFold(name, []byte("content-length")) && !bytes.EqualFold(name, []byte("l")) {
			continue
		}
		v, err := strconv.Atoi(strings.TrimSpace(string(value)))
		if err != nil || v < 0 || (found && v != n) {
			return 0, false
		}
		n, found = v, true
	}
	return n, true
}
