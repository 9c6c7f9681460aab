package sip

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// udpSocket carries datagrams both ways over IPv4 and IPv6 with the peer's
// address as package net gives it, leaves to net what it cannot send, and
// reports a closed socket as net does.
func TestUDPSocket(t *testing.T) {
	for _, tc := range []struct{ network, addr string }{{"udp4", "127.0.0.1:0"}, {"udp6", "[::1]:0"}, {"udp", "[::]:0"}} {
		t.Run(tc.network, func(t *testing.T) {
			c, err := net.ListenPacket(tc.network, tc.addr)
			if err != nil {
				t.Skipf("no %s loopback: %v", tc.network, err) // a host without IPv6
			}
			defer c.Close()
			u := newUDPSocket(c)
			if u == nil {
				t.Skip("raw socket access is Linux only")
			}
			peerAddr := "127.0.0.1:0"
			if tc.network == "udp6" {
				peerAddr = "[::1]:0"
			}
			peer, err := net.ListenPacket("udp", peerAddr)
			if err != nil {
				t.Fatal(err)
			}
			defer peer.Close()
			port := c.LocalAddr().(*net.UDPAddr).Port
			to := &net.UDPAddr{IP: peer.LocalAddr().(*net.UDPAddr).IP, Port: port}
			if _, err := peer.WriteTo([]byte("ping"), to); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 100)
			n, from, err := u.ReadFrom(buf)
			if err != nil || string(buf[:n]) != "ping" {
				t.Fatalf("ReadFrom: %q, %v", buf[:n], err)
			}
			ua, ok := from.(*net.UDPAddr)
			want := peer.LocalAddr().(*net.UDPAddr)
			if !ok || ua.Port != want.Port || !ua.IP.Equal(want.IP) {
				t.Fatalf("from %v, want %v", from, want)
			}
			if n, err, ok := u.WriteTo([]byte("pong"), from); !ok || err != nil || n != 4 {
				t.Fatalf("WriteTo: %d, %v, %v", n, err, ok)
			}
			_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, _, err = peer.ReadFrom(buf)
			if err != nil || string(buf[:n]) != "pong" {
				t.Fatalf("peer read %q, %v", buf[:n], err)
			}
			// A read that times out reports it as net does.
			_ = c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			if _, _, err := u.ReadFrom(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("ReadFrom past the deadline: %v", err)
			}
		})
	}

	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := newUDPSocket(c)
	if u == nil {
		c.Close()
		t.Skip("raw socket access is Linux only")
	}
	if _, _, ok := u.WriteTo([]byte("x"), &net.UDPAddr{IP: net.ParseIP("::1"), Port: 9}); ok {
		t.Error("an IPv4 socket took an IPv6 destination")
	}
	if _, _, ok := u.WriteTo([]byte("x"), &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}); ok {
		t.Error("took a TCP address")
	}
	c.Close()
	if _, _, err := u.ReadFrom(make([]byte, 10)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("ReadFrom a closed socket: %v, want net.ErrClosed", err)
	}
}
