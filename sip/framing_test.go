package sip

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// readStreamMessage reads one SIP message (headers and Content-Length
// bytes of body) from a stream connection.
func readStreamMessage(t *testing.T, c net.Conn, r *bufio.Reader) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var head strings.Builder
	cl := 0
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading a message: %v (so far %q)", err, head.String())
		}
		head.WriteString(line)
		if line == "\r\n" {
			break
		}
		if name, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(name), "content-length") {
			cl, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	body := make([]byte, cl)
	if _, err := io.ReadFull(r, body); err != nil {
		t.Fatal(err)
	}
	return head.String() + string(body)
}

// TestMalformedOverTCP: a malformed request on a TCP connection gets 400
// on that connection, which stays open and in step: the next request on
// it, sent in pieces, is answered, and so is a keep-alive.
func TestMalformedOverTCP(t *testing.T) {
	e := newEnv(t)
	c, err := netDial("tcp", e.tcp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	local := c.LocalAddr().String()
	options := func(n int, cseq string) string {
		return "OPTIONS sip:switchboard.local SIP/2.0\r\n" +
			fmt.Sprintf("Via: SIP/2.0/TCP %s;branch=z9hG4bKtcp-%d\r\n", local, n) +
			"From: <sip:probe@switchboard.local>;tag=a\r\n" +
			"To: <sip:switchboard.local>\r\n" +
			fmt.Sprintf("Call-ID: tcp-%d\r\n", n) +
			"CSeq: " + cseq + "\r\n" +
			"Max-Forwards: 70\r\n" +
			"Content-Length: 0\r\n\r\n"
	}
	if _, err := c.Write([]byte(options(1, "abc OPTIONS"))); err != nil {
		t.Fatal(err)
	}
	res := readStreamMessage(t, c, r)
	if !strings.HasPrefix(res, "SIP/2.0 400 ") || !strings.Contains(res, "Call-ID: tcp-1") || !strings.Contains(res, "Warning: 399 switchboard") {
		t.Fatalf("malformed request over TCP answered with %q", res)
	}
	// The next request, in three writes with pauses between them.
	good := options(2, "1 OPTIONS")
	for _, part := range []string{good[:20], good[20:90], good[90:]} {
		if _, err := c.Write([]byte(part)); err != nil {
			t.Fatalf("the connection was closed after the malformed request: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if res := readStreamMessage(t, c, r); !strings.HasPrefix(res, "SIP/2.0 200 ") || !strings.Contains(res, "Call-ID: tcp-2") {
		t.Fatalf("well-formed request after the malformed one answered with %q", res)
	}
	// A malformed and a well-formed request in one write: each answered.
	if _, err := c.Write([]byte(options(3, "x3 OPTIONS") + options(4, "2 OPTIONS"))); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for range 2 {
		res := readStreamMessage(t, c, r)
		for _, id := range []string{"tcp-3", "tcp-4"} {
			if strings.Contains(res, "Call-ID: "+id+"\r\n") {
				got[id], _, _ = strings.Cut(res, "\r\n")
			}
		}
	}
	if got["tcp-3"] != "SIP/2.0 400 Bad Request" || got["tcp-4"] != "SIP/2.0 200 OK" {
		t.Fatalf("two requests in one write answered with %q", got)
	}
	// A double-CRLF keep-alive gets its single-CRLF pong (RFC 5626).
	if _, err := c.Write([]byte("\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := r.ReadString('\n'); err != nil || line != "\r\n" {
		t.Fatalf("keep-alive answered with %q, %v", line, err)
	}
}

// chunkConn is a connection whose reads return data in pieces of size n.
type chunkConn struct {
	net.Conn // nil: only Read, Write and RemoteAddr are used
	data     []byte
	n        int
	wrote    strings.Builder
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	k := min(c.n, len(c.data), len(p))
	copy(p, c.data[:k])
	c.data = c.data[k:]
	return k, nil
}

func (c *chunkConn) Write(p []byte) (int, error) { c.wrote.Write(p); return len(p), nil }
func (c *chunkConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5999}
}

// readFramed returns everything a framedConn over data, read in pieces of
// size n, passes on, one read per element, and what it wrote back.
func readFramed(data []byte, n, max int) ([]string, string) {
	cc := &chunkConn{data: data, n: n}
	fc := &framedConn{Conn: cc, parser: sip.NewParser(), max: max, log: slog.New(slog.DiscardHandler)}
	var out []string
	buf := make([]byte, 64<<10)
	for range len(data) + 2 {
		k, err := fc.Read(buf)
		if k > 0 {
			out = append(out, string(buf[:k]))
		}
		if err != nil {
			break
		}
	}
	return out, cc.wrote.String()
}

const framingOK = "MESSAGE sip:1001@switchboard.local SIP/2.0\r\n" +
	"Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bKf1\r\n" +
	"From: <sip:1002@switchboard.local>;tag=a\r\nTo: <sip:1001@switchboard.local>\r\n" +
	"Call-ID: f1\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\nl: 5\r\n\r\nhello"

const framingBad = "OPTIONS sip:switchboard.local SIP/2.0\r\n" +
	"Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bKf2\r\n" +
	"From: <sip:1002@switchboard.local>;tag=a\r\nTo: <sip:switchboard.local>\r\n" +
	"Call-ID: f2\r\nCSeq: one OPTIONS\r\nContent-Length: 0\r\n\r\n"

// TestFramedConnPieces: however the stream is cut into reads, the good
// messages (bodies included) and keep-alives come out whole, one per read
// and in order, and the malformed request between them is answered.
func TestFramedConnPieces(t *testing.T) {
	stream := framingOK + "\r\n\r\n" + framingBad + framingOK
	for n := 1; n <= len(stream); n += 7 {
		out, wrote := readFramed([]byte(stream), n, 4096)
		// A keep-alive cut by the reads is passed on in its pieces, as
		// they come: join them.
		var joined []string
		for _, o := range out {
			if k := len(joined) - 1; k >= 0 && strings.Trim(o, "\r\n") == "" && strings.Trim(joined[k], "\r\n") == "" {
				joined[k] += o
				continue
			}
			joined = append(joined, o)
		}
		out = joined
		if want := []string{framingOK, "\r\n\r\n", framingOK}; fmt.Sprint(out) != fmt.Sprint(want) {
			t.Fatalf("reads of %d bytes: passed on %q", n, out)
		}
		if !strings.HasPrefix(wrote, "SIP/2.0 400 ") || !strings.Contains(wrote, "Call-ID: f2\r\n") || strings.Count(wrote, "SIP/2.0 400") != 1 {
			t.Fatalf("reads of %d bytes: wrote back %q", n, wrote)
		}
	}
}

// TestFramedConnGivesUp: what cannot be cut into messages (headers with no
// end within the limit, an unreadable Content-Length) is passed on as it
// is, for sipgo to refuse; an unfinished message at the end of the stream
// is passed on too.
func TestFramedConnGivesUp(t *testing.T) {
	for name, data := range map[string]string{
		"endless headers": "OPTIONS sip:x SIP/2.0\r\nX: " + strings.Repeat("a", 600),
		"bad length":      "OPTIONS sip:x SIP/2.0\r\nContent-Length: many\r\n\r\nabc",
		"length too big":  "OPTIONS sip:x SIP/2.0\r\nContent-Length: 100000\r\n\r\nabc",
		"cut short":       framingOK[:len(framingOK)-2],
	} {
		out, wrote := readFramed([]byte(data), 100, 512)
		if strings.Join(out, "") != data || wrote != "" {
			t.Errorf("%s: passed on %q, wrote %q", name, out, wrote)
		}
	}
}

func FuzzFramedConn(f *testing.F) {
	f.Add([]byte(framingOK+framingBad), uint8(10))
	f.Add([]byte("\r\n\r\n"+framingOK+"\n\n"), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, n uint8) {
		out, _ := readFramed(data, int(n)+1, 1024)
		if got := len(strings.Join(out, "")); got > len(data) {
			t.Fatalf("passed on %d bytes of %d", got, len(data))
		}
	})
}
