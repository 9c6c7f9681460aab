package main

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// childEnv makes the test binary act as rtpload when gen re-executes it as
// the relay child.
const childEnv = "RTPLOAD_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	goleak.VerifyTestMain(m)
}

// freePorts returns a range of n ports on 127.0.0.1 that were all free a
// moment ago, at a random place below the kernel's ephemeral range.
func freePorts(tb testing.TB, n int) (lo, hi int) {
	tb.Helper()
	for range 100 {
		base := 10000 + 2*rand.IntN((32000-10000-n)/2)
		var conns []*net.UDPConn
		ok := true
		for p := base; p < base+n; p++ {
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p})
			if err != nil {
				ok = false
				break
			}
			conns = append(conns, c)
		}
		for _, c := range conns {
			_ = c.Close()
		}
		if ok {
			return base, base + n - 1
		}
	}
	tb.Fatalf("no %d free ports found", n)
	return 0, 0
}

var loopback = netip.MustParseAddr("127.0.0.1")

// putSendTime overwrites the send time in a packet's tag.
func putSendTime(b []byte, ns int64) { binary.BigEndian.PutUint64(b[tagSendTime:], uint64(ns)) }
