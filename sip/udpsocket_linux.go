//go:build linux

package sip

import (
	"encoding/binary"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"unsafe"
)

// udpSocket reads and writes the SIP UDP socket's datagrams with raw system
// calls (syscall.RawSyscall6) instead of through package net. The socket is
// non-blocking, so recvfrom and sendto return at once (EAGAIN when they
// would block, and then the runtime's poller waits, as it does for net).
// What a raw call skips is the runtime's bookkeeping around a system call
// that might block: a datagram that found every thread idle had its
// recvfrom wake the runtime's monitor thread (sysmon), which then polled at
// 20 µs intervals; sysmon's sleeps and wake-ups took about 15% of the
// server's CPU under REGISTER load.
type udpSocket struct {
	rc    syscall.RawConn
	inet6 bool // an AF_INET6 socket: IPv4 peers are sent to as v4-mapped
}

// newUDPSocket returns nil when c is not a UDP socket it can use.
func newUDPSocket(c net.PacketConn) *udpSocket {
	uc, ok := c.(*net.UDPConn)
	if !ok {
		return nil
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil
	}
	var sa syscall.Sockaddr
	var serr error
	if err := rc.Control(func(fd uintptr) { sa, serr = syscall.Getsockname(int(fd)) }); err != nil || serr != nil {
		return nil
	}
	switch sa.(type) {
	case *syscall.SockaddrInet4:
		return &udpSocket{rc: rc}
	case *syscall.SockaddrInet6:
		return &udpSocket{rc: rc, inet6: true}
	}
	return nil
}

// udpOp is one read or write: its state and the functions RawConn runs,
// bound to it once, so that a datagram costs no allocation for them.
type udpOp struct {
	p     []byte
	rsa   syscall.RawSockaddrAny // a read's source
	sa4   syscall.RawSockaddrInet4
	sa6   syscall.RawSockaddrInet6
	v6    bool // a write goes to sa6, else sa4
	n     int
	errno syscall.Errno

	read, write func(fd uintptr) bool
}

var udpOps = sync.Pool{New: func() any {
	o := new(udpOp)
	o.read, o.write = o.doRead, o.doWrite
	return o
}}

func getUDPOp(p []byte) *udpOp {
	o := udpOps.Get().(*udpOp)
	o.p, o.n, o.errno = p, 0, 0
	return o
}

func (o *udpOp) release() {
	o.p = nil
	udpOps.Put(o)
}

// result records the outcome of a system call: the byte count, or the
// error. retry is true when a signal interrupted it (EINTR); done is false
// when the socket is not ready (EAGAIN), so that RawConn waits for it.
func (o *udpOp) result(r1 uintptr, e syscall.Errno) (done, retry bool) {
	switch e {
	case 0:
		o.n = int(r1)
		return true, false
	case syscall.EINTR:
		return false, true
	case syscall.EAGAIN:
		return false, false
	}
	o.errno = e
	return true, false
}

// doRead is called by RawConn.Read until it returns true; false waits
// until the socket is readable.
func (o *udpOp) doRead(fd uintptr) bool {
	for {
		l := uint32(syscall.SizeofSockaddrAny)
		r1, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&o.p[0])), uintptr(len(o.p)), 0,
			uintptr(unsafe.Pointer(&o.rsa)), uintptr(unsafe.Pointer(&l)))
		if done, retry := o.result(r1, e); !retry {
			return done
		}
	}
}

// doWrite is doRead's counterpart for RawConn.Write.
func (o *udpOp) doWrite(fd uintptr) bool {
	sa, sl := unsafe.Pointer(&o.sa4), unsafe.Sizeof(o.sa4)
	if o.v6 {
		sa, sl = unsafe.Pointer(&o.sa6), unsafe.Sizeof(o.sa6)
	}
	var zero byte
	buf := unsafe.Pointer(&zero)
	if len(o.p) > 0 {
		buf = unsafe.Pointer(&o.p[0])
	}
	for {
		r1, _, e := syscall.RawSyscall6(syscall.SYS_SENDTO, fd, uintptr(buf), uintptr(len(o.p)), 0, uintptr(sa), sl)
		if done, retry := o.result(r1, e); !retry {
			return done
		}
	}
}

func (r *udpSocket) ReadFrom(p []byte) (int, net.Addr, error) {
	if len(p) == 0 {
		return 0, nil, &net.OpError{Op: "read", Net: "udp", Err: syscall.EINVAL}
	}
	o := getUDPOp(p)
	defer o.release()
	if err := r.rc.Read(o.read); err != nil {
		return 0, nil, err
	}
	if o.errno != 0 {
		return 0, nil, &net.OpError{Op: "read", Net: "udp", Err: os.NewSyscallError("recvfrom", o.errno)}
	}
	return o.n, rawToUDPAddr(&o.rsa), nil
}

func rawToUDPAddr(rsa *syscall.RawSockaddrAny) *net.UDPAddr {
	switch rsa.Addr.Family {
	case syscall.AF_INET:
		sa := (*syscall.RawSockaddrInet4)(unsafe.Pointer(rsa))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
		return &net.UDPAddr{IP: net.IP(append([]byte(nil), sa.Addr[:]...)), Port: int(port)}
	case syscall.AF_INET6:
		sa := (*syscall.RawSockaddrInet6)(unsafe.Pointer(rsa))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
		a := &net.UDPAddr{IP: net.IP(append([]byte(nil), sa.Addr[:]...)), Port: int(port)}
		if sa.Scope_id != 0 {
			if ifi, err := net.InterfaceByIndex(int(sa.Scope_id)); err == nil {
				a.Zone = ifi.Name
			} else {
				a.Zone = strconv.Itoa(int(sa.Scope_id))
			}
		}
		return a
	}
	return &net.UDPAddr{}
}

// WriteTo sends p to addr, which must be a *net.UDPAddr; ok=false when it
// cannot (another kind of address, or an IPv6 one on an IPv4 socket), and
// the caller sends it through package net.
func (r *udpSocket) WriteTo(p []byte, addr net.Addr) (n int, err error, ok bool) {
	ua, isUDP := addr.(*net.UDPAddr)
	if !isUDP {
		return 0, nil, false
	}
	o := getUDPOp(p)
	defer o.release()
	ip4 := ua.IP.To4()
	switch {
	case !r.inet6 && ip4 != nil:
		o.v6 = false
		o.sa4 = syscall.RawSockaddrInet4{Family: syscall.AF_INET}
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&o.sa4.Port))[:], uint16(ua.Port))
		copy(o.sa4.Addr[:], ip4)
	case r.inet6 && (len(ua.IP) == net.IPv6len || ip4 != nil) && ua.Zone == "":
		o.v6 = true
		o.sa6 = syscall.RawSockaddrInet6{Family: syscall.AF_INET6}
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&o.sa6.Port))[:], uint16(ua.Port))
		copy(o.sa6.Addr[:], ua.IP.To16())
	default:
		return 0, nil, false
	}
	if err := r.rc.Write(o.write); err != nil {
		return 0, err, true
	}
	if o.errno != 0 {
		return 0, &net.OpError{Op: "write", Net: "udp", Addr: addr, Err: os.NewSyscallError("sendto", o.errno)}, true
	}
	return o.n, nil, true
}
