package media

import (
	"encoding/binary"
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestManySessions creates 200 sessions concurrently, relays a packet
// through each, closes them concurrently, and checks that goroutines and
// ports return to where they started.
func TestManySessions(t *testing.T) {
	leakCheck(t)
	const sessions, workers = 200, 8
	r := newTestRelay(t, 2*sessions, 0)
	alice, bob := newPhone(t), newPhone(t)
	baseline := runtime.NumGoroutine()

	all := make([]*Session, sessions)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < sessions; i += workers {
				s, err := r.NewSession("call")
				if err != nil {
					errs <- err
					return
				}
				s.A().SetRemote(alice.rtpAddr)
				s.B().SetRemote(bob.rtpAddr)
				all[i] = s
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("NewSession: %v", err)
	}
	if r.Sessions() != sessions || r.PortsInUse() != 4*sessions {
		t.Fatalf("Sessions() = %d, PortsInUse() = %d, want %d, %d", r.Sessions(), r.PortsInUse(), sessions, 4*sessions)
	}
	// The creating workers have called Done but may not have exited yet.
	want := goroutinesPerSession() * sessions
	for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine()-baseline != want && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if got := runtime.NumGoroutine() - baseline; got != want {
		t.Errorf("%d goroutines for %d sessions, want %d", got, sessions, want)
	}

	// One packet through every session, tagged with its index; each must
	// arrive from that session's B leg.
	for i, s := range all {
		pkt := rtpPacket(t, 0, uint16(i), 0, uint32(i), make([]byte, 160))
		send(t, alice.rtp, legAddr(s.A()), pkt)
	}
	seen := make([]bool, sessions)
	buf := make([]byte, 1500)
	for range sessions {
		pkt, src := mustRecv(t, bob.rtp, buf)
		i := binary.BigEndian.Uint32(pkt[8:])
		if i >= sessions || seen[i] || src != legAddr(all[i].B()) {
			t.Fatalf("unexpected packet for session %d from %s", i, src)
		}
		seen[i] = true
	}

	for _, s := range all {
		wg.Go(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	wg.Wait()
	if r.Sessions() != 0 || r.PortsInUse() != 0 {
		t.Fatalf("after Close: Sessions() = %d, PortsInUse() = %d", r.Sessions(), r.PortsInUse())
	}
	eventually(t, "goroutines back to baseline", func() bool { return runtime.NumGoroutine() <= baseline })
}
