//go:build linux

package media

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
)

// The benchmarks in this file decide whether the relay should read and write
// with recvmmsg/sendmmsg (golang.org/x/net/ipv4 ReadBatch/WriteBatch) instead
// of one ReadFromUDPAddrPort/WriteToUDPAddrPort per packet. Both forwarders
// do the same work around the syscalls (no parsing or latching), the driver
// and sinks are identical, and each sub-benchmark reports wall time per
// packet (ns/op) and process CPU time per packet (cpu-ns/pkt, which is what
// matters for a relay that is mostly idle between 20 ms packets).
// Results are in docs/relay-bench.md.

// plainForward relays one packet per read and write syscall, like Leg.serve.
func plainForward(in, out *net.UDPConn, dst netip.AddrPort) {
	buf := make([]byte, readBufferSize)
	for {
		n, _, err := in.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		_, _ = out.WriteToUDPAddrPort(buf[:n], dst)
	}
}

// batchForward relays with recvmmsg/sendmmsg, up to size packets per call.
func batchForward(in, out *net.UDPConn, dst netip.AddrPort, size int) {
	pin, pout := ipv4.NewPacketConn(in), ipv4.NewPacketConn(out)
	to := net.UDPAddrFromAddrPort(dst)
	rd, wr := make([]ipv4.Message, size), make([]ipv4.Message, size)
	for i := range rd {
		rd[i].Buffers = [][]byte{make([]byte, readBufferSize)}
		wr[i].Buffers = [][]byte{nil}
		wr[i].Addr = to
	}
	for {
		n, err := pin.ReadBatch(rd, 0)
		if err != nil {
			return
		}
		for i := range n {
			wr[i].Buffers[0] = rd[i].Buffers[0][:rd[i].N]
		}
		for off := 0; off < n; {
			k, err := pout.WriteBatch(wr[off:n], 0)
			if err != nil {
				return
			}
			off += k
		}
	}
}

// cpuTime returns the process's user plus system CPU time.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// forwardModes are the forwarders compared. "none" sends straight from the
// driver to the sinks: its cost is the harness's, to subtract from the others.
var forwardModes = []struct {
	name  string
	batch int
}{{"none", -1}, {"plain", 0}, {"batch", 16}}

// forwardRig is streams forwarders, each with an input socket (a relay leg's
// socket facing the sender), an output socket (the other leg's) and its own
// sink socket (the far phone).
type forwardRig struct {
	driver *net.UDPConn
	ins    []netip.AddrPort
	sinks  []*net.UDPConn
	buf    []byte
	close  func()
}

func newForwardRig(b *testing.B, streams int, batch int) *forwardRig {
	b.Helper()
	var conns []*net.UDPConn
	listen := func() (*net.UDPConn, netip.AddrPort) {
		c, err := listenUDP(loopback, 0)
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c)
		return c, c.LocalAddr().(*net.UDPAddr).AddrPort()
	}
	rig := &forwardRig{}
	rig.driver, _ = listen()
	rig.buf = make([]byte, readBufferSize)
	var wg sync.WaitGroup
	for range streams {
		in, inAddr := listen()
		out, _ := listen()
		sink, sinkAddr := listen()
		if err := sink.SetReadDeadline(time.Now().Add(10 * time.Minute)); err != nil {
			b.Fatal(err)
		}
		rig.sinks = append(rig.sinks, sink)
		switch {
		case batch < 0: // no forwarder: measures the driver and sinks alone
			rig.ins = append(rig.ins, sinkAddr)
			continue
		default:
			rig.ins = append(rig.ins, inAddr)
		}
		if batch == 0 {
			wg.Go(func() { plainForward(in, out, sinkAddr) })
		} else {
			wg.Go(func() { batchForward(in, out, sinkAddr, batch) })
		}
	}
	rig.close = func() {
		for _, c := range conns {
			_ = c.Close()
		}
		wg.Wait()
	}
	return rig
}

// round sends burst packets to every stream, then reads them all at the
// sinks.
func (rig *forwardRig) round(b *testing.B, pkt []byte, burst int) {
	for _, in := range rig.ins {
		for range burst {
			if _, err := rig.driver.WriteToUDPAddrPort(pkt, in); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, sink := range rig.sinks {
		for range burst {
			if _, _, err := sink.ReadFromUDPAddrPort(rig.buf); err != nil {
				b.Fatalf("packet lost: %v", err)
			}
		}
	}
}

// BenchmarkBatchVsPlain compares per-packet syscalls with recvmmsg/sendmmsg.
// One op is one packet relayed.
//
//   - streams=1/burst=32: one saturated stream, the best case for batching.
//   - streams=200/burst=1: many streams, one packet each per round: at 50 pps
//     per stream each socket has a single packet waiting when its reader wakes.
func BenchmarkBatchVsPlain(b *testing.B) {
	pkt := make([]byte, 172)
	pkt[0] = 0x80
	for _, sc := range []struct{ streams, burst int }{{1, 32}, {200, 1}} {
		for _, mode := range forwardModes {
			b.Run(fmt.Sprintf("streams=%d/burst=%d/%s", sc.streams, sc.burst, mode.name), func(b *testing.B) {
				rig := newForwardRig(b, sc.streams, mode.batch)
				defer rig.close()
				rig.round(b, pkt, sc.burst) // warm up
				perRound := sc.streams * sc.burst
				b.ReportAllocs()
				b.SetBytes(int64(len(pkt)))
				b.ResetTimer()
				cpu := cpuTime(b)
				rounds := (b.N + perRound - 1) / perRound
				for range rounds {
					rig.round(b, pkt, sc.burst)
				}
				b.StopTimer()
				b.ReportMetric(float64(cpuTime(b)-cpu)/float64(rounds*perRound), "cpu-ns/pkt")
			})
		}
	}
}

// BenchmarkBatchVsPlainPaced is the production shape: streams at 50 packets
// per second each (one packet per stream every 20 ms). One op is one 20 ms
// tick; compare cpu-ns/pkt, since wall time is set by the pacing.
func BenchmarkBatchVsPlainPaced(b *testing.B) {
	const streams = 200
	pkt := make([]byte, 172)
	pkt[0] = 0x80
	for _, mode := range forwardModes {
		b.Run(fmt.Sprintf("streams=%d/%s", streams, mode.name), func(b *testing.B) {
			rig := newForwardRig(b, streams, mode.batch)
			defer rig.close()
			rig.round(b, pkt, 1)
			b.ReportAllocs()
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			b.ResetTimer()
			cpu := cpuTime(b)
			for range b.N {
				<-tick.C
				rig.round(b, pkt, 1)
			}
			b.StopTimer()
			b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N*streams), "cpu-ns/pkt")
		})
	}
}
