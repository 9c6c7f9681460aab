package main

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/cpu"
	"golang.org/x/sys/unix"
)

// The shared socket mode (the default) puts many phones behind a few
// unconnected UDP sockets: each sender goroutine owns two, one for the A
// phones of its calls and one for the B phones, so the two ends of a call
// still have different addresses. A sender collects the packets that are due
// and hands them to the kernel with one sendmmsg(2) per socket, each packet
// addressed to its phone's relay leg; a reader goroutine per socket takes
// what arrived with recvmmsg(2). The receiving phone is the one the relay
// port a packet came from faces (the generator knows which relay port faces
// which phone); the sender is the tag in the payload, so a packet the relay
// forwards out of the wrong leg, or from the wrong call, still counts as
// misrouted. In direct mode (no relay) the source is the far phone's shared
// socket, which does not tell the phone, so the receiving phone is the
// sender's peer named by the tag, provided it is behind this socket.
//
// What a relay sees per call does not change: each leg receives one phone's
// packets, at the same rate and size, from one address. What changes is that
// the A phones of many calls share that address, and that packets due
// together (those a sender finds due when it wakes, all of a slot's with
// genConfig.Slot) reach the kernel in one sendmmsg instead of one system
// call each; they left back to back before as well.
//
// The sockets are not handed to Go's poller, which would watch them for
// writing as well: on loopback every datagram sent gives its send buffer
// back at once, and each time that would signal the socket writable and
// wake the poller for nothing. Each socket is instead watched for reading
// only, by an epoll instance of its own, and that instance is what joins the
// poller (as in epoll.go).

// mmsgBatch is the most datagrams one sendmmsg or recvmmsg moves.
const mmsgBatch = 64

// sharedSocketBuffer is the receive buffer a shared socket asks for: it
// queues for hundreds of phones, and a reader that loses its core for a few
// milliseconds must not cost packets (the kernel caps it at
// net.core.rmem_max).
const sharedSocketBuffer = 4 << 20

// sharedSocket is one socket of the shared mode. A sender goroutine writes
// through it and a reader goroutine reads from it; their fields are kept on
// separate cache lines. The message arrays are allocated once, so a packet
// costs no allocation either way.
type sharedSocket struct {
	fd     int             // the socket, non-blocking; closed after the reader ends
	ep     *os.File        // epoll instance watching fd for reading, in Go's poller
	epConn syscall.RawConn // ep's
	addr   netip.AddrPort
	closed atomic.Bool

	// Used by the sender goroutine.
	out      mmsgs
	outPhone [mmsgBatch]*phone
	outDue   [mmsgBatch]time.Duration
	nOut     int
	inWindow bool // the queued packets are stamped in the measurement window
	sendFrom int  // first message sendmmsg has not taken
	_        cpu.CacheLinePad

	// Used by the reader goroutine.
	in         mmsgs
	from       [mmsgBatch]unix.RawSockaddrInet4
	bufs       []byte // mmsgBatch buffers of readBufSize
	ctrl       []byte // mmsgBatch control buffers of ctrlSize, with kernel receive times
	noKernTime uint64 // packets that came without a kernel receive time
	nIn        int
	inErr      syscall.Errno
	recv       func(epfd uintptr) bool
	stray      uint64 // packets no phone behind this socket expects: misrouted
	malformed  uint64 // too short to tell their phone
	readErrors uint64
}

// ctrlSize is the control buffer of one received message: room for one
// SCM_TIMESTAMPNS message (a struct timespec).
var ctrlSize = unix.CmsgSpace(int(unsafe.Sizeof(unix.Timespec{})))

// mmsgs is the message vector of one sendmmsg or recvmmsg.
type mmsgs struct {
	hdrs [mmsgBatch]unix.Mmsghdr
	iovs [mmsgBatch]unix.Iovec
}

// newSharedSocket binds an unconnected socket on an ephemeral port of addr.
// With kernelTime, the kernel stamps each datagram it queues on the socket
// with its receive time (SO_TIMESTAMPNS).
func newSharedSocket(addr netip.Addr, kernelTime bool) (*sharedSocket, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, fmt.Errorf("shared socket: %w", err)
	}
	s := &sharedSocket{fd: fd}
	if err := s.setup(addr, kernelTime); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("shared socket: %w", err)
	}
	s.recv = s.doRecv
	s.recv = s.doRecv
	s.bufs = make([]byte, mmsgBatch*readBufSize)
	for j := range mmsgBatch {
		h := &s.out.hdrs[j].Hdr
		h.Iov, h.Iovlen = &s.out.iovs[j], 1
		h.Namelen = unix.SizeofSockaddrInet4

		s.in.iovs[j].Base = &s.bufs[j*readBufSize]
		s.in.iovs[j].SetLen(readBufSize)
		h = &s.in.hdrs[j].Hdr
		h.Iov, h.Iovlen = &s.in.iovs[j], 1
		h.Name, h.Namelen = (*byte)(unsafe.Pointer(&s.from[j])), unix.SizeofSockaddrInet4
	}
	if kernelTime {
		s.ctrl = make([]byte, mmsgBatch*ctrlSize)
		for j := range mmsgBatch {
			h := &s.in.hdrs[j].Hdr
			h.Control = &s.ctrl[j*ctrlSize]
			h.SetControllen(ctrlSize)
		}
	}
	return s, nil
}

// setup binds the socket, sizes its receive buffer and creates its epoll
// instance; on error the caller closes fd (and setup what it made).
func (s *sharedSocket) setup(addr netip.Addr, kernelTime bool) error {
	if err := unix.Bind(s.fd, &unix.SockaddrInet4{Addr: addr.Unmap().As4()}); err != nil {
		return fmt.Errorf("bind %s: %w", addr, err)
	}
	sa, err := unix.Getsockname(s.fd)
	if err != nil {
		return err
	}
	sa4, ok := sa.(*unix.SockaddrInet4)
	if !ok {
		return fmt.Errorf("bound to %v, not an IPv4 address", sa)
	}
	s.addr = netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), uint16(sa4.Port))
	if err := unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_RCVBUF, sharedSocketBuffer); err != nil {
		return fmt.Errorf("%s: SO_RCVBUF: %w", s.addr, err)
	}
	if kernelTime {
		if err := unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
			return fmt.Errorf("%s: SO_TIMESTAMPNS: %w", s.addr, err)
		}
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("epoll: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	if err := unix.SetNonblock(epfd, true); err == nil {
		err = unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, s.fd, &ev)
	}
	if err != nil {
		_ = unix.Close(epfd)
		return fmt.Errorf("epoll: %w", err)
	}
	// A non-blocking descriptor given to os.NewFile joins the poller.
	s.ep = os.NewFile(uintptr(epfd), "epoll")
	if s.epConn, err = s.ep.SyscallConn(); err != nil {
		_ = s.ep.Close()
		return fmt.Errorf("epoll: %w", err)
	}
	return nil
}

// setDst makes p send to dst.
func (p *phone) setDst(dst netip.AddrPort) {
	p.dst = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: dst.Addr().Unmap().As4()}
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&p.dst.Port))[:], dst.Port())
}

// queue adds p's next packet, due at due, to the socket's next sendmmsg,
// and sends the batch when it is full. A sender more than a period behind
// could queue a phone twice; since the kernel reads both packets from the
// phone's one buffer at the send, the batch holding the first goes first.
func (s *sharedSocket) queue(r *loadRun, p *phone, due time.Duration) {
	if p.queued {
		s.flush(r)
	}
	j := s.nOut
	s.out.iovs[j].Base = &p.pkt[0]
	s.out.iovs[j].SetLen(len(p.pkt))
	s.out.hdrs[j].Hdr.Name = (*byte)(unsafe.Pointer(&p.dst))
	s.outPhone[j], s.outDue[j] = p, due
	p.queued = true
	if s.nOut++; s.nOut == mmsgBatch {
		s.flush(r)
	}
}

// flush stamps the queued packets with the run's time and sends them, unless
// the measurement window has ended (as in sendLoop, what is not sent by then
// is not sent). Stamping here rather than when queueing keeps the time a
// packet waits for the batch out of its latency; the send lag is measured
// here too. A packet the kernel refuses counts as a send error of its phone,
// and the rest are still sent.
func (s *sharedSocket) flush(r *loadRun) {
	if s.nOut == 0 {
		return
	}
	now := r.now()
	if now < r.winEnd {
		s.inWindow = now >= r.winStart
		for j, p := range s.outPhone[:s.nOut] {
			p.stamp(now)
			if s.inWindow {
				r.lag.Record(now - s.outDue[j])
			}
		}
		s.sendFrom = 0
		s.doSend()
	}
	for j, p := range s.outPhone[:s.nOut] {
		p.queued = false
		s.outPhone[j] = nil
	}
	s.nOut = 0
}

// doSend hands the queued packets to sendmmsg until it has taken them all.
// The socket is not in the poller, and a loopback socket's send buffer does
// not fill up, so a send that would block (EAGAIN) is not waited for: its
// packets count as send errors.
func (s *sharedSocket) doSend() {
	for s.sendFrom < s.nOut {
		r1, _, e := syscall.RawSyscall6(unix.SYS_SENDMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&s.out.hdrs[s.sendFrom])),
			uintptr(s.nOut-s.sendFrom), 0, 0, 0)
		switch e {
		case 0:
			n := s.sendFrom + int(r1)
			if s.inWindow {
				for _, p := range s.outPhone[s.sendFrom:n] {
					p.sentWindow++
				}
			}
			s.sendFrom = n
		case syscall.EINTR:
		case syscall.EAGAIN:
			for _, p := range s.outPhone[s.sendFrom:s.nOut] {
				p.sendErrors++
			}
			return
		default: // the first message failed: skip it
			s.outPhone[s.sendFrom].sendErrors++
			s.sendFrom++
		}
	}
}

// doRecv is called by the epoll instance's RawConn.Read until it returns
// true; false waits until the socket is readable.
func (s *sharedSocket) doRecv(uintptr) bool {
	for {
		r1, _, e := syscall.RawSyscall6(unix.SYS_RECVMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&s.in.hdrs[0])), mmsgBatch, 0, 0, 0)
		switch e {
		case 0:
			s.nIn = int(r1)
			return true
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			s.inErr = e
			return true
		}
	}
}

// sharedRouter tells which phone a packet that arrived at a shared socket
// is for.
type sharedRouter struct {
	phones []*phone
	relay  [4]byte // the relay's address
	// byPort maps a relay port to 1 + the index of the phone it faces; nil
	// in direct mode.
	byPort []int32
}

// phoneFor returns the phone behind s that a packet b from src is for, or
// nil.
func (rt *sharedRouter) phoneFor(s *sharedSocket, src *unix.RawSockaddrInet4, b []byte) *phone {
	var i int
	if rt.byPort != nil {
		if src.Addr != rt.relay {
			return nil
		}
		i = int(rt.byPort[binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&src.Port))[:])]) - 1
	} else {
		if len(b) < minSize {
			return nil
		}
		i = int(binary.BigEndian.Uint32(b[tagSender:]) ^ 1)
	}
	if i < 0 || i >= len(rt.phones) || rt.phones[i].sock != s {
		return nil
	}
	return rt.phones[i]
}

// readLoop reads the socket until it is stopped. A packet arrives when the
// reader has it (clock after recvmmsg returns) or, with kernel receive
// times, when the kernel queued it on the socket, converted to the run's
// clock (epoch is the run's start).
func (s *sharedSocket) readLoop(rt *sharedRouter, epoch time.Time, winStart time.Duration, lat *histogram) {
	failures := 0
	for {
		s.nIn, s.inErr = 0, 0
		if err := s.epConn.Read(s.recv); err != nil {
			return // stopped
		}
		t := time.Now()
		now := t.Sub(epoch)
		if s.inErr != 0 {
			s.readErrors++
			if failures++; failures > maxReadFails {
				time.Sleep(readBackoff)
			}
			continue
		}
		failures = 0
		for j := range s.nIn {
			b := s.bufs[j*readBufSize : j*readBufSize+int(s.in.hdrs[j].Len)]
			s.in.hdrs[j].Hdr.Namelen = unix.SizeofSockaddrInet4
			at := now
			if s.ctrl != nil {
				at = s.kernelTime(j, t, now)
			}
			p := rt.phoneFor(s, &s.from[j], b)
			switch {
			case p != nil:
				p.receive(b, at, winStart, lat)
			case len(b) < minSize:
				s.malformed++
			default:
				s.stray++
			}
		}
	}
}

// kernelTime returns message j's kernel receive time on the run's clock,
// given the wall and run clocks read together after the read (t, now): the
// kernel's time is wall-clock time, so the run's clock is now minus how long
// ago that was. A message without it arrived at now.
func (s *sharedSocket) kernelTime(j int, t time.Time, now time.Duration) time.Duration {
	h := &s.in.hdrs[j].Hdr
	n := int(h.Controllen)
	h.SetControllen(ctrlSize)
	c := s.ctrl[j*ctrlSize : (j+1)*ctrlSize]
	if n < unix.CmsgLen(int(unsafe.Sizeof(unix.Timespec{}))) || n > len(c) {
		s.noKernTime++
		return now
	}
	cm := (*unix.Cmsghdr)(unsafe.Pointer(&c[0]))
	if cm.Level != unix.SOL_SOCKET || cm.Type != unix.SCM_TIMESTAMPNS {
		s.noKernTime++
		return now
	}
	ts := (*unix.Timespec)(unsafe.Pointer(&c[unix.CmsgLen(0)]))
	return now - time.Duration(t.UnixNano()-ts.Nano())
}

// stopReader closes the epoll instance, which ends readLoop.
func (s *sharedSocket) stopReader() { _ = s.ep.Close() }

// Close closes the socket and its epoll instance. The reader must have
// ended (the descriptor could be reused under it) and the sender too.
func (s *sharedSocket) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	s.stopReader()
	return unix.Close(s.fd)
}
