package main

import (
	"encoding/binary"
	"fmt"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

// TestSharedSocketRouting checks how the shared socket mode tells the
// phones apart, with real sockets standing in for four relay legs: a packet
// goes to the phone its relay port faces and counts there only if the tag
// names that phone's peer; a packet from a port facing no phone behind the
// socket, or from an unknown port, counts as misrouted.
func TestSharedSocketRouting(t *testing.T) {
	defer goleak.VerifyNone(t)
	r := &loadRun{cfg: genConfig{Calls: 2, Senders: 1, Duration: time.Second}.withDefaults(), epoch: time.Now()}
	r.winEnd = time.Hour
	if err := r.makePhones(); err != nil {
		t.Fatal(err)
	}
	defer r.closePhones()
	if len(r.socks) != 2 || r.phones[0].sock != r.socks[0] || r.phones[1].sock != r.socks[1] || r.phones[2].sock != r.socks[0] {
		t.Fatalf("want phones 0 and 2 behind socket 0 and phones 1 and 3 behind socket 1")
	}
	legs := make([]*net.UDPConn, 5) // 0-3 face phones 0-3; 4 faces none
	for i := range legs {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		legs[i] = c
	}
	port := func(i int) int { return legs[i].LocalAddr().(*net.UDPAddr).Port }
	if err := r.connectPhones([]legPorts{{a: port(0), b: port(1)}, {a: port(2), b: port(3)}}); err != nil {
		t.Fatal(err)
	}

	// Sending: phone 0's packets leave socket 0 for leg 0 with its tag.
	// Queued twice (a sender a period behind), they still carry their own
	// sequence numbers.
	r.socks[0].queue(r, r.phones[0], r.now())
	r.socks[0].queue(r, r.phones[0], r.now())
	r.socks[0].flush(r)
	buf := make([]byte, readBufSize)
	_ = legs[0].SetReadDeadline(time.Now().Add(5 * time.Second))
	for seq := range uint32(2) {
		n, src, err := legs[0].ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("leg 0 read: %v", err)
		}
		sender, got := binary.BigEndian.Uint32(buf[tagSender:]), binary.BigEndian.Uint32(buf[tagSeq:])
		if src != r.socks[0].addr || n != r.cfg.Size || sender != 0 || got != seq {
			t.Fatalf("leg 0 got %d bytes from %s tagged %d seq %d, want %d from %s tagged 0 seq %d",
				n, src, sender, got, r.cfg.Size, r.socks[0].addr, seq)
		}
	}
	if r.phones[0].sentWindow != 2 {
		t.Fatalf("phone 0 sent %d, want 2", r.phones[0].sentWindow)
	}

	packet := func(sender uint32, seq uint32) []byte {
		b := make([]byte, r.cfg.Size)
		binary.BigEndian.PutUint64(b[tagSendTime:], uint64(r.now()))
		binary.BigEndian.PutUint32(b[tagSeq:], seq)
		binary.BigEndian.PutUint32(b[tagSender:], sender)
		return b
	}
	sends := []struct {
		leg  int
		to   *sharedSocket
		data []byte
	}{
		{1, r.socks[1], packet(0, 1)}, // phone 0 -> phone 1: right
		{1, r.socks[1], packet(0, 2)},
		{1, r.socks[1], packet(2, 1)}, // call 1's packet out of call 0's leg
		{0, r.socks[1], packet(1, 1)}, // leg facing phone 0 sends to socket 1
		{4, r.socks[0], packet(1, 1)}, // a port facing no phone
		{2, r.socks[0], []byte("short")},
		{3, r.socks[1], packet(2, 7)}, // phone 2 -> phone 3: right
	}
	for _, s := range sends {
		if _, err := legs[s.leg].WriteToUDPAddrPort(s.data, s.to.addr); err != nil {
			t.Fatal(err)
		}
	}
	// The packets wait in the sockets until the readers start; once both
	// queues are empty, stopping the readers waits for their last batch.
	stop, err := r.startReaders()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, s := range r.socks {
		for queued(t, s) && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
	stop()

	p := r.phones
	if p[1].rx.Received != 2 || p[1].misrouted != 1 || p[3].rx.Received != 1 || p[2].malformed != 1 {
		t.Errorf("phone 1 received %d misrouted %d, phone 3 received %d, phone 2 malformed %d; want 2, 1, 1, 1",
			p[1].rx.Received, p[1].misrouted, p[3].rx.Received, p[2].malformed)
	}
	if stray := r.socks[0].stray + r.socks[1].stray; stray != 2 || p[0].rx.Received != 0 || p[2].rx.Received != 0 {
		t.Errorf("stray %d, phone 0 received %d, phone 2 received %d; want 2, 0, 0", stray, p[0].rx.Received, p[2].rx.Received)
	}
	if r.latency.Count() != 3 {
		t.Errorf("latency has %d values, want 3", r.latency.Count())
	}
}

// queued reports whether a datagram waits in s.
func queued(t *testing.T, s *sharedSocket) bool {
	t.Helper()
	n, err := unix.IoctlGetInt(s.fd, unix.SIOCINQ)
	if err != nil {
		t.Fatalf("SIOCINQ: %v", err)
	}
	return n > 0
}

// TestSharedKernelTime checks where a packet's arrival time comes from: a
// packet is stamped, sent and left in the socket for 50 ms before the reader
// starts. Read at the reader's clock its latency includes the wait; with
// kernel receive times it does not.
func TestSharedKernelTime(t *testing.T) {
	defer goleak.VerifyNone(t)
	const wait = 50 * time.Millisecond
	for _, kernel := range []bool{false, true} {
		t.Run(fmt.Sprintf("kernel=%v", kernel), func(t *testing.T) {
			r := &loadRun{cfg: genConfig{Calls: 1, Senders: 1, Duration: time.Second, KernelTime: kernel}.withDefaults(), epoch: time.Now()}
			if err := r.cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			if err := r.makePhones(); err != nil {
				t.Fatal(err)
			}
			defer r.closePhones()
			// The kernel turns receive timestamps on from a work queue,
			// shortly after the first socket asks for them.
			time.Sleep(wait)
			leg, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer leg.Close()
			port := leg.LocalAddr().(*net.UDPAddr).Port
			if err := r.connectPhones([]legPorts{{a: port - 2, b: port}}); err != nil {
				t.Fatal(err)
			}
			b := make([]byte, r.cfg.Size)
			binary.BigEndian.PutUint64(b[tagSendTime:], uint64(r.now()))
			binary.BigEndian.PutUint32(b[tagSender:], 0)
			if _, err := leg.WriteToUDPAddrPort(b, r.socks[1].addr); err != nil {
				t.Fatal(err)
			}
			time.Sleep(wait)
			stop, err := r.startReaders()
			if err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for queued(t, r.socks[1]) && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			stop()
			if r.phones[1].rx.Received != 1 || r.latency.Count() != 1 {
				t.Fatalf("received %d, latencies %d; want 1", r.phones[1].rx.Received, r.latency.Count())
			}
			lat := r.latency.Max()
			if kernel && (lat >= wait/2 || r.socks[1].noKernTime != 0) {
				t.Errorf("latency %s with kernel receive times (%d without), want well under %s", lat, r.socks[1].noKernTime, wait)
			}
			if !kernel && lat < wait {
				t.Errorf("latency %s at the read, want at least %s", lat, wait)
			}
		})
	}
}
