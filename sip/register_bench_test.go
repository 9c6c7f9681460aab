package sip

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/cputime"
	"github.com/switchboard/switchboard/internal/digest"
	"github.com/switchboard/switchboard/internal/store"
)

// benchServer runs a server with users 1001..1003 for a benchmark and
// returns its UDP address and a function that stops it.
func benchServer(b *testing.B) (string, func()) {
	st, err := store.Open(context.Background(), filepath.Join(b.TempDir(), "sb.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	var users []store.User
	for _, n := range []string{"1001", "1002", "1003"} {
		users = append(users, testUser(n, "pw-"+n))
	}
	if err := st.SyncConfigUsers(context.Background(), users); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := NewServer(ctx, testConfig(), Deps{Users: st, Bindings: st, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	addr, err := srv.Addr(ctx, "udp")
	if err != nil {
		b.Fatal(err)
	}
	return addr, func() {
		cancel()
		<-done
		st.Close()
	}
}

var nonceRe = regexp.MustCompile(`nonce="([^"]+)", algorithm=MD5`)

// regClient sends authenticated REGISTERs from one UDP socket, reusing one
// nonce with an increasing nonce count, as a phone refreshing does.
type regClient struct {
	conn  net.Conn
	user  string
	ha1   string
	nonce string
	nc    int
	cseq  int
	buf   []byte
}

func newRegClient(b testing.TB, server, user, pass string) *regClient {
	c, err := net.Dial("udp", server)
	if err != nil {
		b.Fatal(err)
	}
	rc := &regClient{conn: c, user: user, ha1: digest.HA1(digest.MD5, user, testDomain, pass), buf: make([]byte, 8192)}
	res := rc.send("")
	m := nonceRe.FindStringSubmatch(res)
	if m == nil {
		b.Fatalf("no MD5 challenge in %q", res)
	}
	rc.nonce = m[1]
	return rc
}

func (c *regClient) send(auth string) string {
	c.cseq++
	local := c.conn.LocalAddr().String()
	msg := "REGISTER sip:" + testDomain + " SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + local + ";branch=z9hG4bK" + fmt.Sprint(time.Now().UnixNano()) + ";rport\r\n" +
		"Max-Forwards: 70\r\n" +
		"From: <sip:" + c.user + "@" + testDomain + ">;tag=bench\r\n" +
		"To: <sip:" + c.user + "@" + testDomain + ">\r\n" +
		"Call-ID: bench-" + c.user + "\r\n" +
		"CSeq: " + fmt.Sprint(c.cseq) + " REGISTER\r\n" +
		"Contact: <sip:" + c.user + "@" + local + ">\r\n" +
		"Expires: 3600\r\n" + auth +
		"Content-Length: 0\r\n\r\n"
	if _, err := c.conn.Write([]byte(msg)); err != nil {
		return ""
	}
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.conn.Read(c.buf)
	if err != nil {
		return ""
	}
	return string(c.buf[:n])
}

func (c *regClient) register() string {
	c.nc++
	nc := fmt.Sprintf("%08x", c.nc)
	uri := "sip:" + testDomain
	ha2 := digest.H(digest.MD5, "REGISTER:"+uri)
	resp := digest.H(digest.MD5, c.ha1+":"+c.nonce+":"+nc+":cn:auth:"+ha2)
	auth := `Authorization: Digest username="` + c.user + `", realm="` + testDomain + `", nonce="` + c.nonce +
		`", uri="` + uri + `", response="` + resp + `", algorithm=MD5, qop=auth, nc=` + nc + `, cnonce="cn"` + "\r\n"
	return c.send(auth)
}

// BenchmarkRegister measures one authenticated REGISTER refresh through the
// real server on loopback: parse, digest check, durable store commit and
// the 200 OK, from 8 phones at once. Its time per operation is mostly the
// phones waiting for the store's group commit; cpu-µs/op is the CPU the
// process (server and phones) spent per REGISTER.
func BenchmarkRegister(b *testing.B) {
	addr, stop := benchServer(b)
	defer stop()
	var next atomic.Int32
	users := []string{"1001", "1002", "1003"}
	b.ReportAllocs()
	b.SetParallelism(4)
	cpu := cputime.Process()
	defer func() {
		b.ReportMetric(float64((cputime.Process()-cpu).Microseconds())/float64(b.N), "cpu-µs/op")
	}()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1))
		u := users[i%len(users)]
		c := newRegClient(b, addr, u, "pw-"+u)
		defer c.conn.Close()
		for pb.Next() {
			if res := c.register(); !strings.HasPrefix(res, "SIP/2.0 200") {
				b.Errorf("REGISTER answered %q", firstLine(res))
				return
			}
		}
	})
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\r\n")
	return l
}
