package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// The epoll reader mode replaces the goroutine per phone socket with a few
// goroutines, each owning an epoll instance that watches its share of the
// sockets. The epoll descriptor is itself pollable, so it is handed to the Go
// runtime's netpoller: the goroutine parks until one of its sockets is
// readable, then collects every ready socket with a non-blocking
// epoll_wait(2) and reads each once. Per packet that is one read(2) and a
// share of one epoll_wait and one wake-up, against the goroutine mode's read,
// a second read returning EAGAIN before the goroutine parks, and a wake-up
// per packet. Blocking in epoll_wait directly would be worse: the runtime
// hands the goroutine's P to another thread whenever a system call blocks.

// epollBatch is the most events one epoll_wait returns.
const epollBatch = 256

// epollReader reads the phones registered on its epoll instance.
type epollReader struct {
	ep     *os.File
	phones []*phone // by the index stored in each event
}

// newEpollReader registers phones (level-triggered, readable) on a new epoll
// instance.
func newEpollReader(phones []*phone) (*epollReader, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("epoll: %w", err)
	}
	for i, p := range phones {
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(i)}
		if err := unix.EpollCtl(fd, unix.EPOLL_CTL_ADD, p.fd, &ev); err != nil {
			_ = unix.Close(fd)
			return nil, fmt.Errorf("epoll add phone %d: %w", p.index, err)
		}
	}
	// A non-blocking descriptor given to os.NewFile joins the netpoller.
	return &epollReader{ep: os.NewFile(uintptr(fd), "epoll"), phones: phones}, nil
}

// run reads until Close. The phones' sockets must stay open until it
// returns.
func (r *epollReader) run(clock func() time.Duration, winStart time.Duration, lat *histogram) {
	rc, err := r.ep.SyscallConn()
	if err != nil {
		return
	}
	events := make([]unix.EpollEvent, epollBatch)
	for {
		n := 0
		err := rc.Read(func(fd uintptr) bool {
			var werr error
			n, werr = unix.EpollWait(int(fd), events, 0)
			return werr != nil || n > 0 // false: wait for readiness
		})
		if err != nil {
			return // closed
		}
		for _, ev := range events[:n] {
			p := r.phones[ev.Fd]
			m, err := unix.Read(p.fd, p.buf)
			now := clock()
			switch {
			case err == nil:
				p.receive(p.buf[:m], now, winStart, lat)
			case errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR):
			default:
				p.readErrors++ // ECONNREFUSED after an ICMP error
			}
		}
	}
}

// Close closes the epoll instance, which ends run.
func (r *epollReader) Close() error { return r.ep.Close() }
