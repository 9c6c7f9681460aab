package media

import (
	"testing"
	"time"
)

const testTimeout = 300 * time.Millisecond

// TestMediaTimeoutClosesSilentSession: a session with no packets closes
// itself after the timeout, not before, and releases its ports.
func TestMediaTimeoutClosesSilentSession(t *testing.T) {
	leakCheck(t)
	r := newTestRelay(t, 2, testTimeout)
	start := time.Now()
	s := newTestSession(t, r, "call-silent")
	select {
	case <-s.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("silent session did not time out")
	}
	if elapsed := time.Since(start); elapsed < testTimeout {
		t.Errorf("timed out after %v, before the %v timeout", elapsed, testTimeout)
	}
	if !s.TimedOut() {
		t.Error("TimedOut() = false after a media timeout")
	}
	if r.Sessions() != 0 || r.PortsInUse() != 0 {
		t.Errorf("after timeout: Sessions() = %d, PortsInUse() = %d, want 0, 0", r.Sessions(), r.PortsInUse())
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close after timeout: %v", err)
	}
}

// TestMediaTimeoutSparesActiveSession: media in one direction keeps a
// session alive for several timeouts; once it stops, the session times out
// counting from the last packet.
func TestMediaTimeoutSparesActiveSession(t *testing.T) {
	for name, useRTCP := range map[string]bool{"rtp": false, "rtcp only": true} {
		t.Run(name, func(t *testing.T) {
			leakCheck(t)
			r := newTestRelay(t, 4, testTimeout)
			active := newTestSession(t, r, "call-active")
			silent := newTestSession(t, r, "call-silent")
			alice, bob := newPhone(t), newPhone(t)
			connect(active, alice, bob)

			// Only bob talks (alice on mute, no comfort noise).
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for end := time.Now().Add(4 * testTimeout); time.Now().Before(end); <-tick.C {
				if useRTCP {
					send(t, bob.rtcp, legRTCPAddr(active.B()), rtcpReceiverReport(1))
				} else {
					send(t, bob.rtp, legAddr(active.B()), bob.nextRTP())
				}
				select {
				case <-active.Done():
					t.Fatal("active session timed out")
				default:
				}
			}
			select {
			case <-silent.Done():
			default:
				t.Fatal("silent session next to it did not time out")
			}
			last := active.B().Stats().LastPacket
			select {
			case <-active.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("session did not time out after media stopped")
			}
			if idle := time.Since(last); idle < testTimeout {
				t.Errorf("timed out %v after the last packet, before the %v timeout", idle, testTimeout)
			}
			if !active.TimedOut() {
				t.Error("TimedOut() = false")
			}
		})
	}
}

// TestCloseIsNotTimeout: a session closed by its owner did not time out.
func TestCloseIsNotTimeout(t *testing.T) {
	leakCheck(t)
	r := newTestRelay(t, 2, testTimeout)
	s := newTestSession(t, r, "call")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * testTimeout) // give the watcher a chance to misbehave
	if s.TimedOut() {
		t.Error("TimedOut() = true for a closed session")
	}
}

// TestHoldTimeout: a held session (a call still ringing) outlives the
// timeout however silent it is; once the timeout starts it counts from
// then, not from the session's opening.
func TestHoldTimeout(t *testing.T) {
	leakCheck(t)
	r := newTestRelay(t, 2, testTimeout)
	s := newTestSession(t, r, "call-ringing")
	s.HoldTimeout()
	time.Sleep(3 * testTimeout)
	select {
	case <-s.Done():
		t.Fatal("held session timed out")
	default:
	}
	started := time.Now()
	s.StartTimeout()
	select {
	case <-s.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("session did not time out after StartTimeout")
	}
	if elapsed := time.Since(started); elapsed < testTimeout {
		t.Errorf("timed out %v after StartTimeout, before the %v timeout", elapsed, testTimeout)
	}
	if !s.TimedOut() {
		t.Error("TimedOut() = false")
	}
}

// TestTimeoutDisabled: with Timeout 0 an idle session stays open.
func TestTimeoutDisabled(t *testing.T) {
	leakCheck(t)
	r := newTestRelay(t, 2, 0)
	s := newTestSession(t, r, "call")
	time.Sleep(10 * minScanInterval) // a watcher with timeout 0 would close it at its first scan
	select {
	case <-s.Done():
		t.Fatal("session closed with the timeout disabled")
	default:
	}
}

func TestScanInterval(t *testing.T) {
	tests := map[time.Duration]time.Duration{
		time.Millisecond:       minScanInterval,
		300 * time.Millisecond: 75 * time.Millisecond,
		time.Minute:            maxScanInterval,
	}
	for timeout, want := range tests {
		if got := scanInterval(timeout); got != want {
			t.Errorf("scanInterval(%v) = %v, want %v", timeout, got, want)
		}
	}
}
