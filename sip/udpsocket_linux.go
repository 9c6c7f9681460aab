//go:build linux

package sip

import (
	"encoding/binary"
	"net"
	"os"
	"strconv"
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

func (r *udpSocket) ReadFrom(p []byte) (int, net.Addr, error) {
	if len(p) == 0 {
		return 0, nil, &net.OpError{Op: "read", Net: "udp", Err: syscall.EINVAL}
	}
	var (
		rsa   syscall.RawSockaddrAny
		n     int
		errno syscall.Errno
	)
	err := r.rc.Read(func(fd uintptr) bool {
		for {
			l := uint32(syscall.SizeofSockaddrAny)
			r1, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), 0,
				uintptr(unsafe.Pointer(&rsa)), uintptr(unsafe.Pointer(&l)))
			switch e {
			case 0:
				n = int(r1)
				return true
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false // wait until readable
			}
			errno = e
			return true
		}
	})
	if err != nil {
		return 0, nil, err
	}
	if errno != 0 {
		return 0, nil, &net.OpError{Op: "read", Net: "udp", Err: os.NewSyscallError("recvfrom", errno)}
	}
	return n, rawToUDPAddr(&rsa), nil
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
	var (
		sa4 syscall.RawSockaddrInet4
		sa6 syscall.RawSockaddrInet6
		ptr unsafe.Pointer
		sl  uintptr
	)
	ip4 := ua.IP.To4()
	switch {
	case !r.inet6 && ip4 != nil:
		sa4.Family = syscall.AF_INET
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa4.Port))[:], uint16(ua.Port))
		copy(sa4.Addr[:], ip4)
		ptr, sl = unsafe.Pointer(&sa4), unsafe.Sizeof(sa4)
	case r.inet6 && len(ua.IP) == net.IPv6len || r.inet6 && ip4 != nil:
		if ua.Zone != "" {
			return 0, nil, false
		}
		sa6.Family = syscall.AF_INET6
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa6.Port))[:], uint16(ua.Port))
		copy(sa6.Addr[:], ua.IP.To16())
		ptr, sl = unsafe.Pointer(&sa6), unsafe.Sizeof(sa6)
	default:
		return 0, nil, false
	}
	var errno syscall.Errno
	var zero byte
	buf := unsafe.Pointer(&zero)
	if len(p) > 0 {
		buf = unsafe.Pointer(&p[0])
	}
	werr := r.rc.Write(func(fd uintptr) bool {
		for {
			r1, _, e := syscall.RawSyscall6(syscall.SYS_SENDTO, fd, uintptr(buf), uintptr(len(p)), 0, uintptr(ptr), sl)
			switch e {
			case 0:
				n = int(r1)
				return true
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false // wait until writable
			}
			errno = e
			return true
		}
	})
	if werr != nil {
		return 0, werr, true
	}
	if errno != 0 {
		return 0, &net.OpError{Op: "write", Net: "udp", Addr: addr, Err: os.NewSyscallError("sendto", errno)}, true
	}
	return n, nil, true
}
