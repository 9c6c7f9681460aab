package media

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"
)

// Relay allocates relay ports and owns the media sessions using them. Its
// methods are safe for concurrent use.
type Relay struct {
	cfg   Config
	log   *slog.Logger
	ports *portPool
	epoch time.Time   // origin of the relay clock, see now
	pool  *readerPool // nil: a goroutine per socket (Leg.serve)

	mu       sync.Mutex
	sessions map[*Session]struct{}
	closed   bool

	stop      chan struct{} // closed by Close to stop the timeout watcher
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// New validates cfg and returns a relay. It checks that cfg.Address can be
// bound. A nil logger discards logs.
func New(cfg Config, log *slog.Logger) (*Relay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Address = cfg.Address.Unmap()
	cfg.PublicAddress = cfg.PublicAddress.Unmap()
	probe, err := listenUDP(cfg.Address, 0)
	if err != nil {
		return nil, fmt.Errorf("media: bind %s: %w", cfg.Address, err)
	}
	_ = probe.Close()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Relay{
		cfg:      cfg,
		log:      log,
		ports:    newPortPool(cfg.PortMin, cfg.PortMax),
		epoch:    time.Now(),
		sessions: make(map[*Session]struct{}),
		stop:     make(chan struct{}),
	}
	if pooledReaders {
		r.pool, err = newReaderPool(0, cfg.PortMin, cfg.PortMax-cfg.PortMin+1, !cfg.Address.Is4())
		if err != nil {
			return nil, err
		}
	}
	if cfg.Timeout > 0 {
		r.wg.Add(1)
		go r.watchTimeouts()
	}
	return r, nil
}

// now returns the relay clock: monotonic time since the relay started. It
// does not allocate, so the forwarding path uses it for every packet.
func (r *Relay) now() time.Duration { return time.Since(r.epoch) }

// AdvertisedAddr returns the address to put in SDP: [Config.PublicAddress],
// or [Config.Address] when that is not set.
func (r *Relay) AdvertisedAddr() netip.Addr { return r.cfg.advertised() }

// NewSession allocates two legs (four ports) for a call and starts relaying
// between them. It returns an error wrapping [ErrNoPorts] when the port range
// is exhausted and [ErrClosed] after [Relay.Close].
func (r *Relay) NewSession(callID string) (*Session, error) {
	if r.isClosed() {
		return nil, ErrClosed
	}
	a, err := r.newLeg()
	if err != nil {
		return nil, fmt.Errorf("media: new session %q: %w", callID, err)
	}
	b, err := r.newLeg()
	if err != nil {
		a.release(r)
		return nil, fmt.Errorf("media: new session %q: %w", callID, err)
	}
	s := newSession(r, callID, a, b)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		a.release(r)
		b.release(r)
		return nil, ErrClosed
	}
	if err := s.run(); err != nil {
		r.mu.Unlock()
		a.release(r)
		b.release(r)
		return nil, fmt.Errorf("media: new session %q: %w", callID, err)
	}
	r.sessions[s] = struct{}{}
	r.mu.Unlock()
	s.log.Info("media session opened", "port_a", a.port, "port_b", b.port)
	return s, nil
}

// newLeg binds a port pair for a leg.
func (r *Relay) newLeg() (*Leg, error) {
	rtp, rtcp, port, err := r.ports.bindPair(r.cfg.Address)
	if err != nil {
		return nil, err
	}
	return &Leg{rtpConn: rtp, rtcpConn: rtcp, port: port, rtpFD: -1, rtcpFD: -1}, nil
}

// release closes the sockets of a leg that never ran and frees its ports.
func (l *Leg) release(r *Relay) {
	_ = l.rtpConn.Close()
	_ = l.rtcpConn.Close()
	r.ports.put(l.port)
}

// forget removes a closing session from the relay.
func (r *Relay) forget(s *Session) {
	r.mu.Lock()
	delete(r.sessions, s)
	r.mu.Unlock()
}

func (r *Relay) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// Sessions returns the number of live sessions.
func (r *Relay) Sessions() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sessions)
}

// PortsInUse returns the number of allocated ports, RTP and RTCP, counting
// four per session.
func (r *Relay) PortsInUse() int { return r.ports.portsInUse() }

// Close closes every session, stops the timeout watcher and the socket
// readers, and waits for all goroutines. It is idempotent; later sessions fail with [ErrClosed].
func (r *Relay) Close() error {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed = true
		r.mu.Unlock()
		close(r.stop)
		r.wg.Wait()

		r.mu.Lock()
		sessions := make([]*Session, 0, len(r.sessions))
		for s := range r.sessions {
			sessions = append(sessions, s)
		}
		r.mu.Unlock()
		var errs []error
		for _, s := range sessions {
			errs = append(errs, s.Close())
		}
		if r.pool != nil {
			r.pool.close()
		}
		r.closeErr = errors.Join(errs...)
	})
	return r.closeErr
}
