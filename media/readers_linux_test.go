package media

import (
	"bytes"
	"sync/atomic"
	"testing"
	"time"
)

// TestCloseWaitsForPoolReader holds the reader pool inside a packet of a
// session and closes the session: Close must not return (and so must not
// close the sockets, whose descriptor numbers the reader still uses) until
// the reader is done with it. The packet being handled is still forwarded.
func TestCloseWaitsForPoolReader(t *testing.T) {
	saved := pooledReaders
	pooledReaders = true
	entered, release := make(chan struct{}), make(chan struct{})
	var once atomic.Bool
	testHookRead = func(*pollSocket) {
		if once.CompareAndSwap(false, true) {
			close(entered)
			<-release
		}
	}
	t.Cleanup(func() { testHookRead, pooledReaders = nil, saved }) // after the relay's Close
	leakCheck(t)
	r := newTestRelay(t, 2, 0)
	s := newTestSession(t, r, "call-hold")
	alice, bob := newPhone(t), newPhone(t)
	connect(s, alice, bob)
	pkt := alice.nextRTP()
	send(t, alice.rtp, legAddr(s.A()), pkt)
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		close(release)
		t.Fatal("the reader did not read the packet")
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case <-closed:
		close(release)
		t.Fatal("Close returned while the reader was handling a packet of the session")
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return once the reader was done")
	}
	got, _ := mustRecv(t, bob.rtp, make([]byte, 2048))
	if !bytes.Equal(got, pkt) {
		t.Fatalf("relayed %x, want %x", got, pkt)
	}
	if r.PortsInUse() != 0 {
		t.Fatalf("PortsInUse() = %d after Close", r.PortsInUse())
	}
}
