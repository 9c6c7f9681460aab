package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

// Bounds of a load, so that a typo cannot flood the machine or run forever.
const (
	maxCalls     = 10000
	maxPPS       = 1000
	maxTotalPPS  = 1_000_000 // packets per second sent by all phones
	maxDuration  = 10 * time.Minute
	maxWarmup    = time.Minute
	maxDrain     = 10 * time.Second
	maxSenders   = 64
	setupBudget  = 2 * time.Minute // opening sessions, binding sockets, teardown
	startLead    = 20 * time.Millisecond
	minWindowLen = 100 * time.Millisecond
)

// genConfig describes one load run.
type genConfig struct {
	// Calls is the number of concurrent calls; each has two phones.
	Calls int `json:"calls"`
	// PPS is the packet rate of each phone (default 50: 20 ms packets).
	PPS int `json:"pps"`
	// Size is the UDP payload size of each packet, RTP header included
	// (default 172: 160 bytes of PCMU and the 12-byte header).
	Size int `json:"size"`
	// Warmup runs before the measurement window and is not counted
	// (default 2 s).
	Warmup time.Duration `json:"warmup_ns"`
	// Duration is the measurement window.
	Duration time.Duration `json:"duration_ns"`
	// Drain is how long to wait after the last packet for packets in
	// flight; later ones count as lost (default 500 ms).
	Drain time.Duration `json:"drain_ns"`
	// Slot, if not zero, rounds each phone's send time within the packet
	// period down to a multiple of it, so that a sender wakes at most once
	// per slot and sends the slot's packets together (in the shared mode
	// with one sendmmsg per socket). Each phone still sends once per
	// period; what changes is that the relay receives the calls' packets
	// in bursts of one slot's worth instead of evenly spread. Zero spreads
	// them evenly, as timers allow.
	Slot time.Duration `json:"slot_ns"`
	// Senders is the number of sender goroutines (default GOMAXPROCS).
	Senders int `json:"senders"`
	// Sockets is how the phones reach the network: "shared" (default: two
	// unconnected sockets per sender goroutine, batched system calls, see
	// shared.go) or "phone" (a connected socket per phone, one system call
	// per packet).
	Sockets string `json:"sockets"`
	// KernelTime, in the shared socket mode, takes a packet's arrival
	// time from the kernel (SO_TIMESTAMPNS: when the packet was queued on
	// the phone's socket, which on loopback is within the relay's send)
	// instead of the reader's clock after it read the packet, so that
	// latency leaves out the generator's own wake-up and reading. The
	// kernel turns receive timestamps on from a work queue shortly after
	// the first socket asks; a packet queued before then gets the time of
	// its read, which only the start of the warm-up can see.
	KernelTime bool `json:"kernel_time"`
	// Readers is how the phones read in the phone socket mode: "epoll"
	// (default: GOMAXPROCS goroutines on epoll instances) or "goroutine"
	// (one per socket). The shared mode has a reader per shared socket.
	Readers string `json:"readers"`
	// Direct connects the phones to each other, without a relay, to
	// measure what the generator alone sustains.
	Direct bool `json:"direct"`
	// Addr is the loopback address of the phones and the relay.
	Addr netip.Addr `json:"addr"`
	// Ports is the relay's port range, MIN-MAX.
	Ports string `json:"ports"`
	// RelayProcs, if not zero, is the relay child's GOMAXPROCS.
	RelayProcs int `json:"relay_gomaxprocs,omitempty"`
	// RelayCPUProfile, if set, is where the relay child writes a CPU
	// profile.
	RelayCPUProfile string `json:"-"`
	// Relay is the relay under test: "switchboard" (default: media.Relay
	// in an "rtpload relay" child) or "rtpengine" (userspace forwarding,
	// controlled over its ng protocol).
	Relay string `json:"relay"`
	// RTPEngine is the rtpengine executable (default "rtpengine").
	RTPEngine string `json:"-"`
	// RelayThreads, if not zero, is rtpengine's --num-threads.
	RelayThreads int `json:"relay_threads,omitempty"`
	// RelayArgv overrides the relay child's command line (tests).
	RelayArgv []string `json:"-"`
}

// Reader modes, see genConfig.Readers.
const (
	readersEpoll     = "epoll"
	readersGoroutine = "goroutine"
)

// Socket modes, see genConfig.Sockets.
const (
	socketsShared = "shared"
	socketsPhone  = "phone"
)

// withDefaults fills in the zero fields.
func (c genConfig) withDefaults() genConfig {
	if c.PPS == 0 {
		c.PPS = 50
	}
	if c.Size == 0 {
		c.Size = 172
	}
	if c.Drain == 0 {
		c.Drain = 500 * time.Millisecond
	}
	if c.Senders == 0 {
		c.Senders = runtime.GOMAXPROCS(0)
	}
	if c.Sockets == "" {
		c.Sockets = socketsShared
	}
	if c.Readers == "" {
		c.Readers = readersEpoll
	}
	if !c.Addr.IsValid() {
		c.Addr = netip.MustParseAddr("127.0.0.1")
	}
	if c.Ports == "" {
		c.Ports = defaultPorts
	}
	if c.Relay == "" {
		c.Relay = relayOwn
	}
	if c.RTPEngine == "" {
		c.RTPEngine = "rtpengine"
	}
	return c
}

// Validate checks that the run is bounded and stays on loopback.
func (c genConfig) Validate() error {
	var errs []error
	if c.Calls < 1 || c.Calls > maxCalls {
		errs = append(errs, fmt.Errorf("calls %d is outside 1-%d", c.Calls, maxCalls))
	}
	if c.PPS < 1 || c.PPS > maxPPS || rtpClockRate%c.PPS != 0 {
		errs = append(errs, fmt.Errorf("pps %d is outside 1-%d or does not divide %d", c.PPS, maxPPS, rtpClockRate))
	}
	if 2*c.Calls*c.PPS > maxTotalPPS {
		errs = append(errs, fmt.Errorf("%d calls at %d pps exceed %d packets/s", c.Calls, c.PPS, maxTotalPPS))
	}
	if c.Size < minSize || c.Size > maxSize {
		errs = append(errs, fmt.Errorf("size %d is outside %d-%d", c.Size, minSize, maxSize))
	}
	if c.Duration < minWindowLen || c.Duration > maxDuration {
		errs = append(errs, fmt.Errorf("duration %s is outside %s-%s", c.Duration, minWindowLen, maxDuration))
	}
	if c.Slot < 0 || (c.PPS >= 1 && c.Slot > c.period()) {
		errs = append(errs, fmt.Errorf("slot %s is outside 0-%s (the packet period)", c.Slot, c.period()))
	}
	if c.Warmup < 0 || c.Warmup > maxWarmup {
		errs = append(errs, fmt.Errorf("warmup %s is outside 0-%s", c.Warmup, maxWarmup))
	}
	if c.Drain < 0 || c.Drain > maxDrain {
		errs = append(errs, fmt.Errorf("drain %s is outside 0-%s", c.Drain, maxDrain))
	}
	if c.RelayProcs < 0 || c.RelayProcs > runtime.NumCPU() {
		errs = append(errs, fmt.Errorf("relay gomaxprocs %d is outside 0-%d", c.RelayProcs, runtime.NumCPU()))
	}
	if c.Senders < 1 || c.Senders > maxSenders {
		errs = append(errs, fmt.Errorf("senders %d is outside 1-%d", c.Senders, maxSenders))
	}
	if c.Sockets != socketsShared && c.Sockets != socketsPhone {
		errs = append(errs, fmt.Errorf("sockets %q is not %q or %q", c.Sockets, socketsShared, socketsPhone))
	}
	if c.KernelTime && c.Sockets != socketsShared {
		errs = append(errs, fmt.Errorf("kernel time needs sockets %q, not %q", socketsShared, c.Sockets))
	}
	if c.Readers != readersEpoll && c.Readers != readersGoroutine {
		errs = append(errs, fmt.Errorf("readers %q is not %q or %q", c.Readers, readersEpoll, readersGoroutine))
	}
	if c.Relay != relayOwn && c.Relay != relayRTPEngine {
		errs = append(errs, fmt.Errorf("relay %q is not %q or %q", c.Relay, relayOwn, relayRTPEngine))
	}
	if c.RelayThreads < 0 || c.RelayThreads > 64 {
		errs = append(errs, fmt.Errorf("relay threads %d is outside 0-64", c.RelayThreads))
	}
	if !c.Addr.Unmap().Is4() || !c.Addr.IsLoopback() {
		errs = append(errs, fmt.Errorf("addr %s is not an IPv4 loopback address", c.Addr))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("gen config: %w", err)
	}
	return nil
}

// period is the time between two packets of a phone.
func (c genConfig) period() time.Duration { return time.Second / time.Duration(c.PPS) }

// relayControl is what a run needs from the relay under test. relayProc
// implements it for "rtpload relay" and ngRelay for rtpengine, driven
// through its ng control protocol.
type relayControl interface {
	Pid() int
	// Open creates one session per call, given the addresses of its two
	// phones (as signalling would from their SDP), and returns the relay
	// ports each phone sends to.
	Open(calls []callAddrs) ([]legPorts, error)
	Stats() (relayStats, error)
	Close() error
}

// callAddrs are the addresses of a call's phones A and B.
type callAddrs struct{ a, b netip.AddrPort }

// Relays under test, see genConfig.Relay.
const (
	relayOwn       = "switchboard"
	relayRTPEngine = "rtpengine"
)

var (
	_ relayControl = (*relayProc)(nil)
	_ relayControl = (*ngRelay)(nil)
)

// sample is what is read at the edges of the measurement window.
type sample struct {
	at       time.Duration
	relayCPU time.Duration
	genCPU   time.Duration
	machine  machineCPU
	relay    relayStats
}

// loadRun is one run of the generator.
type loadRun struct {
	cfg      genConfig
	epoch    time.Time
	start    time.Duration // first send of the schedule
	winStart time.Duration
	winEnd   time.Duration
	phones   []*phone
	socks    []*sharedSocket // shared mode: sender k's A and B sockets are 2k and 2k+1
	router   sharedRouter    // shared mode
	relay    relayControl    // nil in direct mode

	latency histogram // one way, phone to phone, packets in the window
	lag     histogram // how late sends were against the schedule
}

// now is the run's clock: monotonic time since the epoch.
func (r *loadRun) now() time.Duration { return time.Since(r.epoch) }

// runGen runs one load and returns its result. The relay child's stderr goes
// to stderr.
func runGen(ctx context.Context, cfg genConfig, stderr io.Writer) (res result, retErr error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return result{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Warmup+cfg.Duration+cfg.Drain+setupBudget)
	defer cancel()
	r := &loadRun{cfg: cfg, epoch: time.Now()}
	res.Config = cfg
	udpBefore, err := readUDPCounters()
	if err != nil {
		return res, err
	}

	if !cfg.Direct {
		relay, err := startRelayUnderTest(ctx, cfg, stderr)
		if err != nil {
			return res, err
		}
		r.relay = relay
		defer func() {
			if err := relay.Close(); err != nil && retErr == nil {
				retErr = err
			}
		}()
		if res.relayBefore, err = relay.Stats(); err != nil {
			return res, err
		}
		if res.RSSBeforeKiB, err = procRSS(relay.Pid()); err != nil {
			return res, err
		}
	}
	if err := r.makePhones(); err != nil {
		r.closePhones()
		return res, err
	}
	defer r.closePhones()
	var ports []legPorts
	if r.relay != nil {
		calls := make([]callAddrs, cfg.Calls)
		for i := range calls {
			calls[i] = callAddrs{r.phones[2*i].addr, r.phones[2*i+1].addr}
		}
		if ports, err = r.relay.Open(calls); err != nil {
			return res, err
		}
		if res.RSSOpenKiB, err = procRSS(r.relay.Pid()); err != nil {
			return res, err
		}
		if res.relayOpen, err = r.relay.Stats(); err != nil {
			return res, err
		}
	}
	if err := r.connectPhones(ports); err != nil {
		return res, err
	}

	s0, s1, err := r.drive(ctx)
	if err != nil {
		return res, err
	}
	if r.relay != nil {
		if res.RSSEndKiB, err = procRSS(r.relay.Pid()); err != nil {
			return res, err
		}
	}
	udpAfter, err := readUDPCounters()
	if err != nil {
		return res, err
	}
	res.UDP = udpAfter.sub(udpBefore)
	res.fill(r, s0, s1)
	return res, nil
}

// senderOf returns the sender goroutine of phone i: in the shared mode that
// of its call's sockets, in the phone mode every Senders-th phone.
func (r *loadRun) senderOf(i int) int {
	if r.cfg.Sockets == socketsShared {
		return i / 2 % r.cfg.Senders
	}
	return i % r.cfg.Senders
}

// slotted rounds a send time within the period down to sender k's slot
// grid (see Slot). The senders' grids are staggered by Slot/Senders, so
// that their bursts take turns instead of coinciding.
func (c genConfig) slotted(offset time.Duration, k int) time.Duration {
	if c.Slot <= 0 {
		return offset
	}
	phase := c.Slot * time.Duration(k) / time.Duration(c.Senders)
	if offset < phase {
		return offset // before the sender's first slot: sent on time
	}
	return offset - (offset-phase)%c.Slot
}

// makePhones makes two phones per call, A (index 2i) and B (2i+1), and
// spreads their send times evenly over the packet period. In the phone
// socket mode each binds a socket; in the shared mode call i's phones are
// behind sender i%Senders's A and B sockets.
func (r *loadRun) makePhones() error {
	n := 2 * r.cfg.Calls
	period := r.cfg.period()
	if r.cfg.Sockets == socketsShared {
		for range 2 * r.cfg.Senders {
			s, err := newSharedSocket(r.cfg.Addr, r.cfg.KernelTime)
			if err != nil {
				return err
			}
			r.socks = append(r.socks, s)
		}
	}
	for i := range n {
		var p *phone
		if r.socks != nil {
			s := r.socks[2*r.senderOf(i)+i%2]
			p = newSharedPhone(s, uint32(i), uint32(i^1), r.cfg.Size, r.cfg.PPS, rand.Uint32())
		} else {
			var err error
			if p, err = newPhone(r.cfg.Addr, uint32(i), uint32(i^1), r.cfg.Size, r.cfg.PPS, rand.Uint32()); err != nil {
				return err
			}
		}
		p.offset = r.cfg.slotted(period*time.Duration(i)/time.Duration(n), r.senderOf(i))
		r.phones = append(r.phones, p)
	}
	return nil
}

// connectPhones points each phone at its relay leg, or with no ports
// (direct mode) at the other phone: it connects the phone's socket, or in
// the shared mode sets the phone's destination and notes which phone the
// relay port faces.
func (r *loadRun) connectPhones(ports []legPorts) error {
	if r.socks != nil {
		r.router = sharedRouter{phones: r.phones, relay: r.cfg.Addr.Unmap().As4()}
		if ports != nil {
			r.router.byPort = make([]int32, 1<<16)
		}
	}
	for i, p := range r.phones {
		dst := r.phones[i^1].addr
		if ports != nil {
			port := ports[i/2].a
			if i%2 == 1 {
				port = ports[i/2].b
			}
			if port <= 0 || port >= 1<<16 {
				return fmt.Errorf("phone %d: relay port %d is out of range", i, port)
			}
			dst = netip.AddrPortFrom(r.cfg.Addr, uint16(port))
		}
		if p.sock == nil {
			if err := p.connect(dst); err != nil {
				return err
			}
			continue
		}
		p.setDst(dst)
		if r.router.byPort != nil {
			if j := r.router.byPort[dst.Port()]; j != 0 {
				return fmt.Errorf("phones %d and %d: the relay gave both port %d", j-1, i, dst.Port())
			}
			r.router.byPort[dst.Port()] = int32(i) + 1
		}
	}
	return nil
}

// startRelayUnderTest starts the relay cfg names.
func startRelayUnderTest(ctx context.Context, cfg genConfig, stderr io.Writer) (relayControl, error) {
	if cfg.Relay == relayRTPEngine {
		return startNGRelay(ctx, cfg, stderr)
	}
	argv := cfg.RelayArgv
	if argv == nil {
		var err error
		if argv, err = relayArgv(cfg.Addr, cfg.Ports, cfg.RelayCPUProfile); err != nil {
			return nil, err
		}
	}
	var env []string
	if cfg.RelayProcs > 0 {
		env = append(os.Environ(), "GOMAXPROCS="+strconv.Itoa(cfg.RelayProcs))
	}
	return startRelay(ctx, argv, env, stderr)
}

// closePhones closes every phone's socket and every shared socket, which
// ends their readers.
func (r *loadRun) closePhones() {
	for _, p := range r.phones {
		if p.conn != nil {
			_ = p.conn.Close()
		}
	}
	for _, s := range r.socks {
		_ = s.Close()
	}
}

// drive sends the schedule, samples CPU and counters at the edges of the
// measurement window, waits for packets in flight and stops the readers.
func (r *loadRun) drive(ctx context.Context) (s0, s1 sample, err error) {
	cfg := r.cfg
	r.start = r.now() + startLead
	r.winStart = r.start + cfg.Warmup
	r.winEnd = r.winStart + cfg.Duration

	stopReaders, err := r.startReaders()
	if err != nil {
		return s0, s1, err
	}
	var senders sync.WaitGroup
	for k := range cfg.Senders {
		if r.socks != nil {
			senders.Go(func() { r.sendLoopShared(ctx, k) })
		} else {
			senders.Go(func() { r.sendLoop(ctx, k) })
		}
	}
	defer func() {
		senders.Wait()
		stopReaders()
	}()

	timer := time.NewTimer(0)
	<-timer.C
	if !sleepUntil(ctx, timer, r.now, r.winStart) {
		return s0, s1, ctx.Err()
	}
	if s0, err = r.sample(); err != nil {
		return s0, s1, err
	}
	if !sleepUntil(ctx, timer, r.now, r.winEnd) {
		return s0, s1, ctx.Err()
	}
	if s1, err = r.sample(); err != nil {
		return s0, s1, err
	}
	senders.Wait()
	if !sleepUntil(ctx, timer, r.now, r.now()+cfg.Drain) {
		return s0, s1, ctx.Err()
	}
	return s0, s1, nil
}

// startReaders starts reading the phones' sockets and returns the function
// that stops the readers, closes the sockets and waits.
func (r *loadRun) startReaders() (stop func(), err error) {
	var wg sync.WaitGroup
	if r.socks != nil {
		for _, s := range r.socks {
			wg.Go(func() { s.readLoop(&r.router, r.epoch, r.winStart, &r.latency) })
		}
		return func() {
			for _, s := range r.socks {
				s.stopReader()
			}
			wg.Wait()
			r.closePhones()
		}, nil
	}
	if r.cfg.Readers == readersGoroutine {
		for _, p := range r.phones {
			wg.Go(func() { p.read(r.now, r.winStart, &r.latency) })
		}
		return func() {
			r.closePhones()
			wg.Wait()
		}, nil
	}
	var eps []*epollReader
	stop = func() {
		for _, ep := range eps {
			_ = ep.Close()
		}
		wg.Wait()
		r.closePhones()
	}
	n := runtime.GOMAXPROCS(0)
	for k := range n {
		var mine []*phone
		for i := k; i < len(r.phones); i += n {
			mine = append(mine, r.phones[i])
		}
		ep, err := newEpollReader(mine)
		if err != nil {
			stop()
			return nil, err
		}
		eps = append(eps, ep)
		wg.Go(func() { ep.run(r.now, r.winStart, &r.latency) })
	}
	return stop, nil
}

// sendLoop sends the packets of phones k, k+Senders, k+2*Senders, … on
// schedule until the end of the window: each phone at its offset in every
// period. A timer wakes it for the next packet; it then sends every packet
// that is due. How soon a short timer fires depends on the process: the
// runtime's poller sleeps in whole milliseconds unless a packet arriving
// wakes it first, which under load happens every few microseconds. A sender
// that falls behind sends late (see the lag histogram) and does not skip
// packets; what it has not sent when the window ends is not sent.
func (r *loadRun) sendLoop(ctx context.Context, k int) {
	var mine []*phone
	for i := k; i < len(r.phones); i += r.cfg.Senders {
		mine = append(mine, r.phones[i])
	}
	period := r.cfg.period()
	timer := time.NewTimer(0)
	<-timer.C
	for base := r.start; ; base += period {
		for _, p := range mine {
			due := base + p.offset
			if due >= r.winEnd {
				return
			}
			if !sleepUntil(ctx, timer, r.now, due) {
				return
			}
			// The window is decided by the send time stamped in the
			// packet, as the reader decides it, so a late sender
			// neither gains nor loses packets at the window's edges.
			now := r.now()
			if now >= r.winEnd {
				return
			}
			inWindow := now >= r.winStart
			if inWindow {
				r.lag.Record(now - due)
			}
			p.send(now, inWindow)
		}
	}
}

// sendLoopShared is sendLoop for the shared socket mode: it sends the
// phones of calls k, k+Senders, k+2*Senders, … through sockets 2k and
// 2k+1, queueing every packet that is due and sending the queues (one
// sendmmsg per socket, see sharedSocket.flush) before it sleeps.
func (r *loadRun) sendLoopShared(ctx context.Context, k int) {
	var mine []*phone
	for i := 2 * k; i < len(r.phones); i += 2 * r.cfg.Senders {
		mine = append(mine, r.phones[i], r.phones[i+1])
	}
	a, b := r.socks[2*k], r.socks[2*k+1]
	defer func() {
		a.flush(r)
		b.flush(r)
	}()
	period := r.cfg.period()
	timer := time.NewTimer(0)
	<-timer.C
	for base := r.start; ; base += period {
		for _, p := range mine {
			due := base + p.offset
			if due >= r.winEnd {
				return
			}
			if due > r.now() {
				a.flush(r)
				b.flush(r)
				if !sleepUntil(ctx, timer, r.now, due) {
					return
				}
			}
			p.sock.queue(r, p, due)
		}
	}
}

// sleepUntil waits until clock reaches t, using timer (which must be stopped
// and drained). It reports false if ctx ended first.
func sleepUntil(ctx context.Context, timer *time.Timer, clock func() time.Duration, t time.Duration) bool {
	d := t - clock()
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer.Reset(d)
	select {
	case <-ctx.Done():
		timer.Stop()
		return false
	case <-timer.C:
		return true
	}
}

// sample reads the CPU times and relay counters.
func (r *loadRun) sample() (s sample, err error) {
	s.at = r.now()
	if s.genCPU, err = procCPU(os.Getpid()); err != nil {
		return s, err
	}
	if s.machine, err = readMachineCPU(); err != nil {
		return s, err
	}
	if r.relay != nil {
		if s.relayCPU, err = procCPU(r.relay.Pid()); err != nil {
			return s, err
		}
		if s.relay, err = r.relay.Stats(); err != nil {
			return s, err
		}
	}
	return s, nil
}
