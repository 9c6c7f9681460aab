package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/sys/cpu"
	"golang.org/x/sys/unix"
)

// Packet layout: a 12-byte RTP header (RFC 3550 §5.1) with payload type 0
// (PCMU, RFC 3551 §6), then a 16-byte tag at the start of the payload, then
// PCMU silence up to the packet size.
const (
	rtpHeaderLen = 12
	tagSendTime  = rtpHeaderLen    // 8 bytes: monotonic send time, ns since the run's epoch
	tagSeq       = tagSendTime + 8 // 4 bytes: sequence number without wrap
	tagSender    = tagSeq + 4      // 4 bytes: index of the sending phone
	minSize      = tagSender + 4   // smallest packet that holds the tag
	maxSize      = 1472            // largest UDP payload in one Ethernet frame
	pcmuSilence  = 0xff            // µ-law zero
	rtpClockRate = 8000            // PCMU, RFC 3551 §4.5.14
	payloadPCMU  = 0               // RTP payload type
	readBufSize  = 2048            // phone receive buffer, larger than maxSize
	rtpVersion2  = 2 << 6          // first header octet: V=2, no P, X, CC
	maxReadFails = 3               // consecutive read errors before backing off
	readBackoff  = 10 * time.Millisecond
)

// phone plays one end of a call. In the phone socket mode it has a UDP
// socket of its own on 127.0.0.1, connected to the relay leg facing it (or,
// in direct mode, to the far phone); in the shared mode it sends and receives
// through a socket it shares with other phones (sock, see shared.go) and
// sends to dst. One sender goroutine writes its packets and one reader
// goroutine reads what the far phone sent; their fields are kept on separate
// cache lines.
type phone struct {
	conn   *net.UDPConn  // phone mode; nil in the shared mode
	fd     int           // conn's descriptor, for the epoll readers; valid until conn is closed
	sock   *sharedSocket // shared mode; nil in the phone mode
	dst    unix.RawSockaddrInet4
	addr   netip.AddrPort
	index  uint32        // this phone
	peer   uint32        // the far phone, the only valid sender of what arrives here
	offset time.Duration // when in each packet period this phone sends

	// Used by the sender goroutine.
	pkt        []byte
	seq        uint32
	tsStep     uint32 // RTP timestamp increment per packet
	sentWindow uint64 // packets written in the measurement window
	queued     bool   // shared mode: the packet in pkt waits in a batch
	sendErrors uint64
	_          cpu.CacheLinePad

	// Used by the reader goroutine.
	buf        []byte
	rx         rxStream // packets sent in the measurement window
	misrouted  uint64   // packets from a phone other than peer
	malformed  uint64   // too short to hold the tag
	readErrors uint64
}

// newPhone binds a phone's socket on an ephemeral port of addr (the phone
// socket mode).
func newPhone(addr netip.Addr, index, peer uint32, size, pps int, ssrc uint32) (*phone, error) {
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
	if err != nil {
		return nil, fmt.Errorf("phone %d: %w", index, err)
	}
	p := newPhoneState(index, peer, size, pps, ssrc)
	p.conn = conn
	p.addr = conn.LocalAddr().(*net.UDPAddr).AddrPort()
	p.buf = make([]byte, readBufSize)
	rc, err := conn.SyscallConn()
	if err == nil {
		err = rc.Control(func(fd uintptr) { p.fd = int(fd) })
	}
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("phone %d: %w", index, err)
	}
	return p, nil
}

// newSharedPhone returns a phone that sends and receives through sock (the
// shared socket mode).
func newSharedPhone(sock *sharedSocket, index, peer uint32, size, pps int, ssrc uint32) *phone {
	p := newPhoneState(index, peer, size, pps, ssrc)
	p.sock = sock
	p.addr = sock.addr
	return p
}

// newPhoneState returns a phone without a socket, its packet template
// filled in.
func newPhoneState(index, peer uint32, size, pps int, ssrc uint32) *phone {
	p := &phone{
		index:  index,
		peer:   peer,
		pkt:    make([]byte, size),
		tsStep: uint32(rtpClockRate / pps),
	}
	p.pkt[0] = rtpVersion2
	p.pkt[1] = payloadPCMU
	binary.BigEndian.PutUint32(p.pkt[8:], ssrc)
	binary.BigEndian.PutUint32(p.pkt[tagSender:], index)
	for i := minSize; i < size; i++ {
		p.pkt[i] = pcmuSilence
	}
	return p
}

// connect connects the phone's socket to dst, so that writes need no address
// and the kernel drops datagrams from anywhere else.
func (p *phone) connect(dst netip.AddrPort) error {
	rc, err := p.conn.SyscallConn()
	if err != nil {
		return fmt.Errorf("phone %d: %w", p.index, err)
	}
	sa := &unix.SockaddrInet4{Port: int(dst.Port()), Addr: dst.Addr().Unmap().As4()}
	var cerr error
	if err := rc.Control(func(fd uintptr) { cerr = unix.Connect(int(fd), sa) }); err != nil {
		return fmt.Errorf("phone %d: %w", p.index, err)
	}
	if cerr != nil {
		return fmt.Errorf("phone %d: connect %s: %w", p.index, dst, cerr)
	}
	return nil
}

// stamp fills in the phone's next packet, sent at now.
func (p *phone) stamp(now time.Duration) {
	b := p.pkt
	binary.BigEndian.PutUint16(b[2:], uint16(p.seq))
	binary.BigEndian.PutUint32(b[4:], p.seq*p.tsStep)
	binary.BigEndian.PutUint64(b[tagSendTime:], uint64(now))
	binary.BigEndian.PutUint32(b[tagSeq:], p.seq)
	p.seq++
}

// send writes the phone's next packet, stamped with now, on its own socket.
func (p *phone) send(now time.Duration, inWindow bool) {
	p.stamp(now)
	if _, err := p.conn.Write(p.pkt); err != nil {
		p.sendErrors++
		return
	}
	if inWindow {
		p.sentWindow++
	}
}

// read receives packets in its own goroutine until the socket is closed
// (the goroutine reader mode).
func (p *phone) read(clock func() time.Duration, winStart time.Duration, lat *histogram) {
	failures := 0
	for {
		n, err := p.conn.Read(p.buf)
		now := clock()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// ECONNREFUSED from an ICMP error, typically when the relay
			// went away: count, and back off so it cannot spin.
			p.readErrors++
			if failures++; failures > maxReadFails {
				time.Sleep(readBackoff)
			}
			continue
		}
		failures = 0
		p.receive(p.buf[:n], now, winStart, lat)
	}
}

// receive accounts for a packet that arrived at now. Packets sent at or after
// winStart count; their latency (arrival minus send time, both on the run's
// clock) goes to lat.
func (p *phone) receive(b []byte, now, winStart time.Duration, lat *histogram) {
	if len(b) < minSize {
		p.malformed++
		return
	}
	if binary.BigEndian.Uint32(b[tagSender:]) != p.peer {
		p.misrouted++
		return
	}
	sent := time.Duration(binary.BigEndian.Uint64(b[tagSendTime:]))
	if sent < winStart {
		return
	}
	if p.rx.Add(binary.BigEndian.Uint32(b[tagSeq:])) {
		lat.Record(now - sent)
	}
}
