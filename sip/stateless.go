package sip

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// REGISTER over UDP is answered without a sipgo server transaction, as
// Kamailio's registrar answers it. A server transaction costs a state machine,
// its timers and a goroutine, and keeps the parsed request and response (a
// few dozen pointer-rich objects) alive for 64·T1 (32 s) after the answer;
// under REGISTER load those live transactions were most of the heap the
// garbage collector had to scan (docs/bench/notes.md). What a non-INVITE
// server transaction does for a retransmission (RFC 3261 §17.2.2) is kept:
//
//   - A retransmission that arrives while its REGISTER is still being
//     handled (for instance while the binding is committed) is absorbed:
//     registerInflight drops it.
//   - A retransmission that arrives after the answer gets the same answer,
//     byte for byte, from answerCache, which keeps each final response as
//     bytes for 16 to 32 s (Timer J is 32 s).
//   - Past that, a retransmission is handled again, which gives an
//     equivalent answer: the challenge again, or, for credentials, the same
//     binding refreshed (RFC 3261 §10.3 step 7 accepts a CSeq equal to the
//     stored one). The nonce is stateless, so it is still valid.
//
// TCP, TLS and WebSocket REGISTERs, where the transport retransmits nothing,
// keep going through sipgo.

// registerInflight holds the REGISTERs being handled, by source and Via
// branch. An entry lives while its handler runs (bounded by the handler's
// own timeout) and is removed when it returns.
type registerInflight struct {
	mu sync.Mutex
	m  map[string]struct{}
	wg sync.WaitGroup // the workers (registerWorker) and pending commits, waited for by Run
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

// answerCache keeps the final responses sent to UDP REGISTERs, as bytes, by
// source and Via branch, in two generations: an entry lives from one to two
// generations (answerGeneration), then goes with its generation. Rotation
// happens on use and, for an idle server, from Run (expireAnswers).
type answerCache struct {
	mu        sync.Mutex
	cur, prev map[string][]byte
	rotated   time.Time
}

const answerGeneration = 16 * time.Second

func (c *answerCache) rotate(now time.Time) {
	switch age := now.Sub(c.rotated); {
	case age >= 2*answerGeneration:
		c.cur, c.prev, c.rotated = nil, nil, now
	case age >= answerGeneration:
		c.cur, c.prev, c.rotated = nil, c.cur, now
	}
}

func (c *answerCache) get(key string, now time.Time) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rotate(now)
	if b, ok := c.cur[key]; ok {
		return b
	}
	return c.prev[key]
}

func (c *answerCache) put(key string, b []byte, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rotate(now)
	if c.cur == nil {
		c.cur = map[string][]byte{}
	}
	c.cur[key] = b
}

// expire drops the generations that are past, so that an idle server does
// not keep the last answers; Run calls it every answerGeneration.
func (c *answerCache) expire(now time.Time) {
	c.mu.Lock()
	c.rotate(now)
	c.mu.Unlock()
}

// expireAnswers runs answerCache.expire until ctx ends.
func (s *Server) expireAnswers(ctx context.Context) error {
	return every(ctx, answerGeneration/2, s.regAnswers.expire)
}

// statelessRegister returns the function badRequestConn hands a parsed UDP
// REGISTER to; conn is the socket the answers leave from. It reports false
// for a request it does not take (no Via branch to tell retransmissions by),
// which then goes through sipgo as before.
//
// It runs on the goroutine that reads the socket, which handles what it can
// without waiting (registerOnReader): a REGISTER without credentials gets
// its challenge at once, and an authenticated one has its binding's write
// queued in the store and its 200 OK sent by the store's writer goroutine
// after the commit. No goroutine is woken for either, where a worker per
// REGISTER cost two wake-ups (the reader handing it over, the writer
// reporting the commit). What would wait (a user not in the user cache,
// another REGISTER of the same user being committed) goes to a worker.
func (s *Server) statelessRegister(ctx context.Context, conn net.PacketConn) func(req *sip.Request, addr net.Addr) bool {
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
		source := addr.String()
		req.SetSource(source)
		key := source + " " + branch
		if b := s.regAnswers.get(key, time.Now()); b != nil {
			_, _ = conn.WriteTo(b, addr) // a retransmission: the same answer
			return true
		}
		if !hasHeader(req, "Authorization") {
			// Without credentials the answer is a challenge, computed
			// from the request alone. The reader reads the next datagram
			// once it is sent, so a retransmission finds the answer in
			// the cache.
			h(req, &statelessTx{conn: conn, addr: addr, final: func(b []byte) {
				s.regAnswers.put(key, b, time.Now())
			}})
			return true
		}
		if !s.regInflight.begin(key) {
			return true // a retransmission of a REGISTER being handled
		}
		end := func() { s.regInflight.end(key) }
		tx := &statelessTx{conn: conn, addr: addr, final: func(b []byte) {
			s.regAnswers.put(key, b, time.Now())
			end()
		}}
		taken := false
		s.guarded(func(req *sip.Request, tx sip.ServerTransaction) {
			taken = true
			// Run waits for a REGISTER whose commit is pending as it
			// waits for the workers.
			s.regInflight.wg.Add(1)
			if s.registerOnReader(req, tx, func() { end(); s.regInflight.wg.Done() }) {
				return
			}
			s.regInflight.wg.Done()
			s.guard.pending.Add(1) // until answered, as on the reader
			s.toRegisterWorker(ctx, func() {
				defer end()
				defer s.guard.pending.Add(-1)
				s.handleRegister(req, tx)
			})
		})(req, tx)
		if !taken {
			end() // the guard answered or dropped it
		}
		return true
	}
}

// toRegisterWorker hands job to a REGISTER worker waiting for one, or else
// starts a new worker with it.
func (s *Server) toRegisterWorker(ctx context.Context, job func()) {
	select {
	case s.regWorkers <- job: // an idle worker takes it
	default:
		s.regInflight.wg.Add(1)
		go s.registerWorker(ctx, job)
	}
}

// registerWorkerIdle is how long a REGISTER worker waits for more work
// before it ends.
const registerWorkerIdle = 10 * time.Second

// registerWorker runs job, then the jobs handed to it while it waits in
// s.regWorkers, until it has waited registerWorkerIdle for one or ctx ends.
// A REGISTER is handed to a worker that is waiting, or else gets a new one,
// so REGISTERs are handled as concurrently as with a goroutine each (their
// store writes share commits), but a worker's stack, grown by its first
// REGISTER, serves the next ones. With a new goroutine per REGISTER,
// starting it and growing its stack (runtime.newproc, runtime.morestack)
// took 9% of the server's CPU samples at 1,000 REGISTER scenarios/s.
func (s *Server) registerWorker(ctx context.Context, job func()) {
	defer s.regInflight.wg.Done()
	idle := time.NewTimer(registerWorkerIdle)
	defer idle.Stop()
	for {
		job()
		idle.Reset(registerWorkerIdle)
		select {
		case job = <-s.regWorkers:
		case <-idle.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// statelessTx is the sip.ServerTransaction a stateless REGISTER is handled
// with: Respond writes the response to the request's source at once.
type statelessTx struct {
	conn net.PacketConn
	addr net.Addr
	// final is given a copy of a final response before it leaves: from
	// then on a retransmission is answered with it.
	final func([]byte)
}

var (
	closedDone = func() chan struct{} { c := make(chan struct{}); close(c); return c }()
	// errResponseTooBig is an answer larger than a UDP datagram holds.
	errResponseTooBig = errors.New("sip: response too large for UDP")
	respBufs          = sync.Pool{New: func() any { return new(bytes.Buffer) }}
)

func (t *statelessTx) Respond(res *sip.Response) error {
	buf := respBufs.Get().(*bytes.Buffer)
	defer respBufs.Put(buf)
	buf.Reset()
	res.StringWrite(buf)
	if buf.Len() > maxUDPMessage {
		return errResponseTooBig
	}
	if res.StatusCode >= 200 && t.final != nil {
		t.final(bytes.Clone(buf.Bytes()))
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
