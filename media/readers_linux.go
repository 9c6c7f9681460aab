//go:build linux

package media

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// On Linux a relay reads its sessions' sockets from a small fixed pool of
// reader goroutines (GOMAXPROCS of them) instead of one goroutine per socket.
// Each reader owns an epoll instance holding the sockets of its share of the
// sessions (all four sockets of a session on the same reader). The epoll
// descriptor is itself pollable and is handed to Go's netpoller, so an idle
// reader is a parked goroutine, not a thread blocked in epoll_wait(2). When
// it is readable the reader collects the ready sockets with a non-blocking
// epoll_wait, reads one datagram from each with recvfrom(2) (MSG_DONTWAIT)
// and hands it to handleRTP or handleRTCP, which write with sendto(2).
// The epoll set is level-triggered, so a socket with more datagrams queued
// is simply reported again by the next epoll_wait.
//
// Per packet that is one recvfrom, one sendto and a share of one epoll_wait
// and one wake-up, against the goroutine reader's wake-up, recvfrom, a
// second recvfrom returning EAGAIN before it parks, and sendto. The system
// calls are raw (no runtime bookkeeping around them): none of them blocks.
//
// The sockets are bound through package net as for the goroutine readers,
// then taken out of it (takeFD): the pool keeps a duplicate descriptor and
// closes the *net.UDPConn, so that the runtime's own netpoller, which no
// goroutine waits on for these sockets, is not woken by every datagram.
//
// Lifetime: a socket is read or written by number only while its session
// is registered. Session.Close first takes the session's sockets out of the
// reader's table and epoll set and then waits for the reader to acknowledge
// (it does so between two batches of events, so nothing of the session runs
// any more); only then are the descriptors closed, so their numbers cannot
// be reused by the kernel while a reader could still use them.

// pooledReaders chooses how relays created afterwards read their sockets:
// true for the reader pool, false for a goroutine per socket. The tests run
// with both. docs/relay-bench.md has the measurements.
var pooledReaders = true

// epollBatch is the most events one epoll_wait returns.
const epollBatch = 128

// wakeIndex is the event data of a reader's eventfd, which is not a socket.
const wakeIndex = -1

// readerPool is a relay's set of readers and the table that maps the event
// data of a socket (its port's offset in the relay's range) to the socket.
type readerPool struct {
	readers []*epollReader
	base    int                          // Config.PortMin
	socks   []atomic.Pointer[pollSocket] // by port - base
	inet6   bool                         // the relay's sockets are AF_INET6
	wg      sync.WaitGroup               // run goroutines
}

// pollSocket is one socket of a session registered on a reader.
type pollSocket struct {
	leg      *Leg
	conn     *net.UDPConn // closed by takeFD; kept for its local address
	fd       int          // the duplicate descriptor, closed by closeFDs
	port     int
	rtcp     bool
	failures int // consecutive read errors, owned by the reader
}

// sessionPoll is a session's registration on its reader.
type sessionPoll struct {
	reader *epollReader
	socks  [4]pollSocket
}

// epollReader reads the sockets registered on its epoll instance.
type epollReader struct {
	pool *readerPool
	ep   *os.File // the epoll instance, in the runtime's netpoller
	epfd int
	wake int // eventfd: written to wake the reader for acks

	load atomic.Int64 // sessions registered

	mu      sync.Mutex
	pending []*Session // waiting for an acknowledgement
	closing bool       // the epoll instance is being closed
	exited  bool       // run returned: nothing is read any more

	// Owned by the run goroutine.
	events  []unix.EpollEvent
	n       int   // events returned by the last epoll_wait
	waitErr error // its error
	waitFn  func(fd uintptr) bool
	acks    []*Session
	buf     []byte
	sc      readerScratch
	rsa     syscall.RawSockaddrAny
	salen   uint32
}

// newReaderPool starts n readers for a relay whose ports start at base and
// number size.
func newReaderPool(n, base, size int, inet6 bool) (*readerPool, error) {
	if n < 1 {
		n = runtime.GOMAXPROCS(0)
	}
	p := &readerPool{base: base, socks: make([]atomic.Pointer[pollSocket], size), inet6: inet6}
	for range n {
		r, err := newEpollReader(p)
		if err != nil {
			p.close()
			return nil, err
		}
		p.readers = append(p.readers, r)
	}
	for _, r := range p.readers {
		p.wg.Add(1)
		go r.run()
	}
	return p, nil
}

func newEpollReader(p *readerPool) (*epollReader, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("media: epoll: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		_ = unix.Close(epfd)
		return nil, fmt.Errorf("media: eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: wakeIndex}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		_ = unix.Close(epfd)
		_ = unix.Close(wake)
		return nil, fmt.Errorf("media: epoll add eventfd: %w", err)
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		_ = unix.Close(epfd)
		_ = unix.Close(wake)
		return nil, fmt.Errorf("media: epoll: %w", err)
	}
	r := &epollReader{
		pool:   p,
		ep:     os.NewFile(uintptr(epfd), "epoll"), // non-blocking: joins the netpoller
		epfd:   epfd,
		wake:   wake,
		events: make([]unix.EpollEvent, epollBatch),
		buf:    make([]byte, readBufferSize),
	}
	r.waitFn = r.epollWait
	return r, nil
}

// close stops the readers once every session is closed (or being closed:
// an acknowledgement still pending is given when a reader returns).
func (p *readerPool) close() {
	for _, r := range p.readers {
		r.mu.Lock()
		r.closing = true
		r.mu.Unlock()
		_ = r.ep.Close()
	}
	p.wg.Wait()
	for _, r := range p.readers {
		_ = unix.Close(r.wake)
	}
}

// add registers the four sockets of s on the least loaded reader. On error
// nothing of s is registered any more and no reader uses its sockets.
func (p *readerPool) add(s *Session) error {
	r := p.readers[0]
	for _, o := range p.readers[1:] {
		if o.load.Load() < r.load.Load() {
			r = o
		}
	}
	sp := &s.poll
	sp.reader = r
	i := 0
	for _, l := range []*Leg{s.a, s.b} {
		for _, rtcp := range []bool{false, true} {
			conn, port := l.rtpConn, l.port
			if rtcp {
				conn, port = l.rtcpConn, l.port+1
			}
			fd, err := takeFD(conn)
			if err != nil {
				p.closeFDs(s)
				return err
			}
			if rtcp {
				l.rtcpFD = fd
			} else {
				l.rtpFD = fd
			}
			sp.socks[i] = pollSocket{leg: l, conn: conn, fd: fd, port: port, rtcp: rtcp}
			i++
		}
	}
	r.load.Add(1)
	for i := range sp.socks {
		ps := &sp.socks[i]
		p.socks[ps.port-p.base].Store(ps)
		if err := r.ctl(unix.EPOLL_CTL_ADD, ps); err != nil {
			p.remove(s)
			return fmt.Errorf("media: epoll add port %d: %w", ps.port, err)
		}
	}
	return nil
}

// takeFD takes the socket of conn out of package net: it returns a
// duplicate of its descriptor and closes conn, which removes the socket from
// the runtime's netpoller (that would otherwise be woken by every datagram,
// with no goroutine waiting for it). The socket itself stays open until the
// duplicate is closed, by closeFDs.
func takeFD(conn *net.UDPConn) (int, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd, derr := -1, error(nil)
	if err := rc.Control(func(f uintptr) { fd, derr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, fmt.Errorf("media: dup socket: %w", derr)
	}
	if err := conn.Close(); err != nil {
		_ = unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// closeFDs closes the descriptors add took, once no reader uses them.
func (p *readerPool) closeFDs(s *Session) {
	for _, l := range []*Leg{s.a, s.b} {
		for _, fd := range []*int{&l.rtpFD, &l.rtcpFD} {
			if *fd >= 0 {
				_ = unix.Close(*fd)
				*fd = -1
			}
		}
	}
}

// ctl adds or deletes a socket on the reader's epoll instance, unless the
// instance is closed (then its registrations are gone anyway).
func (r *epollReader) ctl(op int, ps *pollSocket) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing {
		if op == unix.EPOLL_CTL_ADD {
			return ErrClosed
		}
		return nil
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(ps.port - r.pool.base)}
	return unix.EpollCtl(r.epfd, op, ps.fd, &ev)
}

// remove takes the sockets of s out of its reader and returns once the
// reader has acknowledged, so that no packet of s is being handled and none
// will be: the sockets may then be closed.
func (p *readerPool) remove(s *Session) {
	sp := &s.poll
	r := sp.reader
	for i := range sp.socks {
		ps := &sp.socks[i]
		if ps.conn == nil {
			continue
		}
		p.socks[ps.port-p.base].CompareAndSwap(ps, nil)
		_ = r.ctl(unix.EPOLL_CTL_DEL, ps) // ENOENT for one never added
	}
	r.load.Add(-1)
	s.wg.Add(1)
	r.mu.Lock()
	if r.exited {
		r.mu.Unlock()
		s.wg.Done()
	} else {
		r.pending = append(r.pending, s)
		if !r.closing {
			one := uint64(1)
			_, _ = unix.Write(r.wake, (*[8]byte)(unsafe.Pointer(&one))[:])
		}
		r.mu.Unlock()
	}
	s.wg.Wait()
	p.closeFDs(s)
}

// epollWait is called by RawConn.Read until it returns true; false parks
// the reader until the epoll instance is readable.
func (r *epollReader) epollWait(fd uintptr) bool {
	for {
		n, err := unix.EpollWait(int(fd), r.events, 0)
		if err == unix.EINTR {
			continue
		}
		r.n, r.waitErr = n, err
		return err != nil || n > 0
	}
}

// run reads until the epoll instance is closed.
func (r *epollReader) run() {
	defer r.pool.wg.Done()
	defer r.exit()
	rc, err := r.ep.SyscallConn()
	if err != nil {
		return
	}
	for {
		if err := rc.Read(r.waitFn); err != nil {
			return // closed by readerPool.close
		}
		if r.waitErr != nil {
			// epoll_wait fails only for a bad descriptor or buffer; do not
			// spin if it ever does.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		wake := false
		for _, ev := range r.events[:r.n] {
			if ev.Fd == wakeIndex {
				wake = true
				continue
			}
			if ps := r.pool.socks[ev.Fd].Load(); ps != nil {
				r.read(ps)
			}
		}
		// Acknowledge after the batch: a session removed meanwhile may
		// have had events in it.
		if wake {
			r.acknowledge()
		}
	}
}

// acknowledge tells the sessions waiting in remove that the reader is done
// with them.
func (r *epollReader) acknowledge() {
	var cnt [8]byte
	_, _ = unix.Read(r.wake, cnt[:]) // reset the eventfd before taking the list
	r.mu.Lock()
	r.acks = append(r.acks[:0], r.pending...)
	clear(r.pending)
	r.pending = r.pending[:0]
	r.mu.Unlock()
	for i, s := range r.acks {
		s.wg.Done()
		r.acks[i] = nil
	}
}

// exit marks the reader as gone and acknowledges what is pending.
func (r *epollReader) exit() {
	r.mu.Lock()
	r.exited = true
	pending := r.pending
	r.pending = nil
	r.mu.Unlock()
	for _, s := range pending {
		s.wg.Done()
	}
}

// testHookRead, when set (by tests, before the relay is created), runs
// before each read.
var testHookRead func(*pollSocket)

// read reads one datagram from ps and handles it.
func (r *epollReader) read(ps *pollSocket) {
	if testHookRead != nil {
		testHookRead(ps)
	}
	var n uintptr
	var e syscall.Errno
	for {
		r.salen = syscall.SizeofSockaddrAny
		n, _, e = syscall.RawSyscall6(syscall.SYS_RECVFROM, uintptr(ps.fd), uintptr(unsafe.Pointer(&r.buf[0])), uintptr(len(r.buf)),
			syscall.MSG_DONTWAIT, uintptr(unsafe.Pointer(&r.rsa)), uintptr(unsafe.Pointer(&r.salen)))
		if e != syscall.EINTR {
			break
		}
	}
	l := ps.leg
	switch e {
	case 0:
	case syscall.EAGAIN:
		return
	default:
		// An unconnected UDP socket reports an ICMP error once and then
		// reads on; log once per streak. No back-off here: sleeping would
		// stall every socket of the reader.
		ps.failures++
		if ps.failures == 1 {
			l.log.Warn("media read failed", "leg", l.name, "local", ps.conn.LocalAddr().String(), "error", os.NewSyscallError("recvfrom", e))
		}
		return
	}
	ps.failures = 0
	if int(n) >= len(r.buf) {
		l.dropped.Add(1)
		return
	}
	src := addrPortFromRaw(&r.rsa)
	if ps.rtcp {
		l.handleRTCP(&r.sc, r.buf[:n], src, l.sess.relay.now())
	} else {
		l.handleRTP(&r.sc, r.buf[:n], src, l.sess.relay.now())
	}
}

// addrPortFromRaw converts the source address recvfrom filled in, as
// ReadFromUDPAddrPort would return it.
func addrPortFromRaw(rsa *syscall.RawSockaddrAny) netip.AddrPort {
	switch rsa.Addr.Family {
	case syscall.AF_INET:
		sa := (*syscall.RawSockaddrInet4)(unsafe.Pointer(rsa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), ntohs(sa.Port))
	case syscall.AF_INET6:
		sa := (*syscall.RawSockaddrInet6)(unsafe.Pointer(rsa))
		addr := netip.AddrFrom16(sa.Addr)
		if sa.Scope_id != 0 {
			addr = addr.WithZone(zoneName(int(sa.Scope_id)))
		}
		return netip.AddrPortFrom(addr, ntohs(sa.Port))
	}
	return netip.AddrPort{}
}

// ntohs reads a port stored in network byte order.
func ntohs(p uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(&p))
	return uint16(b[0])<<8 | uint16(b[1])
}

// htons stores a port in network byte order.
func htons(p uint16) uint16 {
	var v uint16
	b := (*[2]byte)(unsafe.Pointer(&v))
	b[0], b[1] = byte(p>>8), byte(p)
	return v
}

// zoneName names an IPv6 scope (link-local peers only).
func zoneName(index int) string {
	if ifi, err := net.InterfaceByIndex(index); err == nil {
		return ifi.Name
	}
	return strconv.Itoa(index)
}

// zoneIndex is zoneName's inverse.
func zoneIndex(zone string) uint32 {
	if zone == "" {
		return 0
	}
	if ifi, err := net.InterfaceByName(zone); err == nil {
		return uint32(ifi.Index)
	}
	n, _ := strconv.Atoi(zone)
	return uint32(n)
}

var errNotIPv4 = errors.New("non-IPv4 address")

// sendTo writes pkt to dst out of the socket fd without blocking: a
// datagram that finds the socket's send buffer full (EAGAIN) is not sent,
// which the caller counts as dropped, rather than stalling the reader and
// every other socket it serves.
func (p *readerPool) sendTo(fd int, pkt []byte, dst netip.AddrPort) error {
	var sa4 syscall.RawSockaddrInet4
	var sa6 syscall.RawSockaddrInet6
	var sa unsafe.Pointer
	var sl uintptr
	if p.inet6 {
		sa6.Family = syscall.AF_INET6
		sa6.Port = htons(dst.Port())
		sa6.Addr = dst.Addr().As16()
		sa6.Scope_id = zoneIndex(dst.Addr().Zone())
		sa, sl = unsafe.Pointer(&sa6), unsafe.Sizeof(sa6)
	} else {
		a := dst.Addr().Unmap()
		if !a.Is4() {
			return &net.OpError{Op: "write", Net: "udp4", Err: errNotIPv4}
		}
		sa4.Family = syscall.AF_INET
		sa4.Port = htons(dst.Port())
		sa4.Addr = a.As4()
		sa, sl = unsafe.Pointer(&sa4), unsafe.Sizeof(sa4)
	}
	var zero byte
	buf := unsafe.Pointer(&zero)
	if len(pkt) > 0 {
		buf = unsafe.Pointer(&pkt[0])
	}
	for {
		_, _, e := syscall.RawSyscall6(syscall.SYS_SENDTO, uintptr(fd), uintptr(buf), uintptr(len(pkt)), syscall.MSG_DONTWAIT, uintptr(sa), sl)
		switch e {
		case 0:
			return nil
		case syscall.EINTR:
			continue
		}
		return &net.OpError{Op: "write", Net: "udp", Err: os.NewSyscallError("sendto", e)}
	}
}

// havePool reports whether this system has the reader pool.
const havePool = true
