package sip

import (
	"bytes"
	"errors"
	"net"
	"sync"

	"github.com/emiago/sipgo/sip"
)

// REGISTER over UDP is answered without a sipgo server transaction, as
// Kamailio's registrar answers it. A server transaction costs a state machine,
// its timers and a goroutine, and keeps the request and its response alive
// for 64·T1 (32 s) after the answer; under REGISTER load those live
// transactions were most of the heap the garbage collector had to scan
// (docs/bench/notes.md). A registration needs none of it:
//
//   - A retransmission that arrives while its REGISTER is still being
//     handled (for instance while the binding is committed) is absorbed:
//     registerInflight drops it.
//   - A retransmission that arrives after the answer (the answer was lost) is
//     handled again, which gives the same result: the 401 challenge again,
//     or, for credentials, the same binding refreshed (RFC 3261 §10.3 step 7
//     accepts a CSeq equal to the stored one) and 200 OK. The nonce is
//     stateless, so it is still valid.
//
// TCP, TLS and WebSocket REGISTERs, where the transport retransmits nothing,
// keep going through sipgo.

// registerInflight holds the REGISTERs being handled, by source and Via
// branch. An entry lives while its handler runs (bounded by the handler's
// own timeout) and is removed when it returns.
type registerInflight struct {
	mu sync.Mutex
	m  map[string]struct{}
	wg sync.WaitGroup // the handlers, waited for by Run
}

func (f *registerInflight) begin(key string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[string]struct{}{}
	}
	if _, ok := f.m[key]; ok {
		return false
	}
	f.m[key] = struct{}{}
	return true
}

func (f *registerInflight) end(key string) {
	f.mu.Lock()
	delete(f.m, key)
	f.mu.Unlock()
}

// statelessRegister returns the function badRequestConn hands a parsed UDP
// REGISTER to; conn is the socket the answers leave from. It reports false
// for a request it does not take (no Via branch to tell retransmissions by),
// which then goes through sipgo as before.
func (s *Server) statelessRegister(conn net.PacketConn) func(req *sip.Request, addr net.Addr) bool {
	h := s.guarded(s.handleRegister)
	return func(req *sip.Request, addr net.Addr) bool {
		via := req.Via()
		if via == nil {
			return false
		}
		branch, _ := via.Params.Get("branch")
		if branch == "" {
			return false
		}
		req.SetTransport("UDP")
		req.SetSource(addr.String())
		key := addr.String() + " " + branch
		if !s.regInflight.begin(key) {
			return true // a retransmission of a REGISTER being handled
		}
		s.regInflight.wg.Add(1)
		go func() {
			defer s.regInflight.wg.Done()
			defer s.regInflight.end(key)
			h(req, &statelessTx{conn: conn, addr: addr, done: func() { s.regInflight.end(key) }})
		}()
		return true
	}
}

// statelessTx is the sip.ServerTransaction a stateless REGISTER is handled
// with: Respond writes the response to the request's source at once.
type statelessTx struct {
	conn net.PacketConn
	addr net.Addr
	// done is called before a final response leaves: from then on a
	// retransmission is handled again, and so answered again.
	done func()
}

var (
	closedDone = func() chan struct{} { c := make(chan struct{}); close(c); return c }()
	// errResponseTooBig mirrors sipgo's refusal to send a UDP response
	// larger than the MTU allows (RFC 3261 §18.1.1).
	errResponseTooBig = errors.New("sip: response too large for UDP")
	respBufs          = sync.Pool{New: func() any { return new(bytes.Buffer) }}
)

func (t *statelessTx) Respond(res *sip.Response) error {
	buf := respBufs.Get().(*bytes.Buffer)
	defer respBufs.Put(buf)
	buf.Reset()
	res.StringWrite(buf)
	if buf.Len() > sip.UDPMTUSize-200 {
		return errResponseTooBig
	}
	if res.StatusCode >= 200 && t.done != nil {
		t.done()
	}
	_, err := t.conn.WriteTo(buf.Bytes(), t.addr)
	return err
}

func (t *statelessTx) Terminate()                         {}
func (t *statelessTx) OnTerminate(sip.FnTxTerminate) bool { return false }
func (t *statelessTx) Done() <-chan struct{}              { return closedDone }
func (t *statelessTx) Err() error                         { return nil }
func (t *statelessTx) Acks() <-chan *sip.Request          { return nil }
func (t *statelessTx) OnCancel(sip.FnTxCancel) bool       { return false }
