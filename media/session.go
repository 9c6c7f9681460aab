package media

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Session is the media of one call: leg A faces the caller and leg B the
// callee. Packets from A's peer go out to B's peer and the other way round.
// It owns four sockets, read by the relay's reader pool (Linux) or by one
// reader goroutine per socket, all stopped by [Session.Close], by the media
// timeout or by [Relay.Close].
type Session struct {
	relay  *Relay
	callID string
	log    *slog.Logger
	a, b   *Leg
	// start is when the media timeout starts counting (relay clock); while
	// held is set the timeout does not apply at all.
	start atomic.Int64
	held  atomic.Bool

	wg       sync.WaitGroup // socket readers, or the pool's acknowledgement
	poll     sessionPoll    // registration on the reader pool
	once     sync.Once
	closeErr error
	timedOut atomic.Bool
	done     chan struct{}
}

// newSession wires two legs whose sockets are already bound and starts their
// readers.
func newSession(r *Relay, callID string, a, b *Leg) *Session {
	s := &Session{
		relay:  r,
		callID: callID,
		log:    r.log.With("call_id", callID),
		a:      a,
		b:      b,
		done:   make(chan struct{}),
	}
	s.start.Store(int64(r.now()))
	a.sess, a.other, a.name, a.log = s, b, "a", s.log
	b.sess, b.other, b.name, b.log = s, a, "b", s.log
	return s
}

// run registers the sockets on the relay's reader pool, or starts one
// reader per socket.
func (s *Session) run() error {
	if p := s.relay.pool; p != nil {
		return p.add(s)
	}
	for _, l := range []*Leg{s.a, s.b} {
		s.wg.Add(2)
		go l.serve(l.rtpConn, (*Leg).handleRTP)
		go l.serve(l.rtcpConn, (*Leg).handleRTCP)
	}
	return nil
}

// CallID returns the call ID the session was created with.
func (s *Session) CallID() string { return s.callID }

// A returns the leg facing the caller.
func (s *Session) A() *Leg { return s.a }

// B returns the leg facing the callee.
func (s *Session) B() *Leg { return s.b }

// Done returns a channel that is closed once the session is closed: by
// [Session.Close], by [Relay.Close], or by itself after the media timeout
// (see [Session.TimedOut]). When it is closed the session's ports are
// already released.
func (s *Session) Done() <-chan struct{} { return s.done }

// TimedOut reports whether the session closed itself because neither leg
// received a packet for [Config.Timeout].
func (s *Session) TimedOut() bool { return s.timedOut.Load() }

// HoldTimeout keeps the media timeout from closing the session until
// [Session.StartTimeout]: a call that is still ringing has no media to wait
// for, and its ring timeout bounds it instead.
func (s *Session) HoldTimeout() { s.held.Store(true) }

// StartTimeout makes the media timeout apply, counting silence from now:
// packets before (early media, or none) do not count against the session.
func (s *Session) StartTimeout() {
	s.start.Store(int64(s.relay.now()))
	s.held.Store(false)
}

// timeoutHeld reports whether [Session.HoldTimeout] is in force.
func (s *Session) timeoutHeld() bool { return s.held.Load() }

// Close stops forwarding, closes the four sockets, waits for the session's
// goroutines and releases its ports. It is idempotent and safe for
// concurrent use; every call returns the first call's result.
func (s *Session) Close() error {
	return s.close(false, 0)
}

// lastActivity returns the relay clock time of the latest packet accepted on
// either leg, or the time the timeout started counting.
func (s *Session) lastActivity() time.Duration {
	last := time.Duration(s.start.Load())
	for _, l := range []*Leg{s.a, s.b} {
		if t := time.Duration(l.lastPacket.Load()); t > last {
			last = t
		}
	}
	return last
}

// close tears the session down once. The first caller decides whether it
// counts as a media timeout.
func (s *Session) close(timeout bool, idle time.Duration) error {
	s.once.Do(func() {
		if timeout {
			s.timedOut.Store(true)
		}
		s.relay.forget(s)
		if p := s.relay.pool; p != nil {
			// The sockets may be closed only once the pool no longer
			// uses their descriptors.
			p.remove(s)
		}
		var errs []error
		for _, c := range []*net.UDPConn{s.a.rtpConn, s.a.rtcpConn, s.b.rtpConn, s.b.rtcpConn} {
			if err := c.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				errs = append(errs, err)
			}
		}
		s.wg.Wait()
		s.relay.ports.put(s.a.port)
		s.relay.ports.put(s.b.port)
		if err := errors.Join(errs...); err != nil {
			s.closeErr = errors.Join(errors.New("media: close session"), err)
		}
		s.logClosed(timeout, idle)
		close(s.done)
	})
	return s.closeErr
}

// logClosed logs the end of the session with a summary of both legs.
func (s *Session) logClosed(timeout bool, idle time.Duration) {
	a, b := s.a.Stats(), s.b.Stats()
	attrs := []any{
		"timed_out", timeout,
		slog.Group("leg_a", "packets_in", a.PacketsIn, "packets_out", a.PacketsOut, "lost", a.Lost, "jitter_ms", a.Jitter, "dropped", a.Dropped),
		slog.Group("leg_b", "packets_in", b.PacketsIn, "packets_out", b.PacketsOut, "lost", b.Lost, "jitter_ms", b.Jitter, "dropped", b.Dropped),
	}
	if timeout {
		s.log.Info("media session timed out", append(attrs, "idle", idle)...)
		return
	}
	s.log.Info("media session closed", attrs...)
}
