package media

import "time"

// Bounds of the timeout watcher's scan interval.
const (
	minScanInterval = 10 * time.Millisecond
	maxScanInterval = time.Second
)

// scanInterval returns how often the watcher scans for idle sessions: a
// quarter of the timeout, so a session outlives its timeout by at most 25%,
// between 10 ms and 1 s.
func scanInterval(timeout time.Duration) time.Duration {
	return min(max(timeout/4, minScanInterval), maxScanInterval)
}

// watchTimeouts closes sessions whose legs have both been silent for
// Config.Timeout. One goroutine per relay scans the sessions, so the
// forwarding path only stores a timestamp per packet and never resets a
// timer. It stops when Close closes r.stop.
func (r *Relay) watchTimeouts() {
	defer r.wg.Done()
	ticker := time.NewTicker(scanInterval(r.cfg.Timeout))
	defer ticker.Stop()
	var idle []*Session
	for {
		select {
		case <-r.stop:
			return
		case <-ticker.C:
			idle = r.expire(idle[:0])
			clear(idle) // drop references to closed sessions
		}
	}
}

// expire closes the sessions that have been idle for the timeout, using buf
// as scratch space, and returns it.
func (r *Relay) expire(buf []*Session) []*Session {
	now := r.now()
	r.mu.Lock()
	for s := range r.sessions {
		if !s.timeoutHeld() && now-s.lastActivity() >= r.cfg.Timeout {
			buf = append(buf, s)
		}
	}
	r.mu.Unlock()
	for _, s := range buf {
		if err := s.close(true, now-s.lastActivity()); err != nil {
			s.log.Warn("media timeout close failed", "error", err)
		}
	}
	return buf
}
