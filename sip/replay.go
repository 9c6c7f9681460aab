package sip

import (
	"hash/maphash"
	"strconv"
	"sync"
	"time"
)

// nonceUses stops a captured call request from being replayed. Nonces are
// stateless (signed, with their time), so a nonce is valid for its whole
// lifetime, and the same credentials, copied from a request seen on the
// wire, would authenticate new calls until it ends. RFC 7616 §3.4 has the
// server remember the nonce count (nc) a client used with each nonce: a
// request whose count is not above the last one is a replay. nonceUses keeps
// that count for the nonces of authenticated calls (REGISTERs are not
// checked: a replayed REGISTER can only restate a binding its owner made,
// and they are the server's most frequent request).
//
// Entries live in two generations rotated every period, which is longer
// than a nonce lives, so an entry outlives its nonce and memory holds only
// the calls of the last two periods (about 24 bytes of map per call).
type nonceUses struct {
	seed   maphash.Seed
	period time.Duration

	mu        sync.Mutex
	cur, prev map[uint64]uint32
	rotated   time.Time
}

func newNonceUses(lifetime time.Duration) *nonceUses {
	return &nonceUses{seed: maphash.MakeSeed(), period: lifetime + time.Minute, cur: map[uint64]uint32{}}
}

// fresh reports whether nonce with count nc (hexadecimal, "" without qop,
// which allows one use) is used for the first time or with a higher count
// than before, and records it.
func (n *nonceUses) fresh(nonce, nc string, now time.Time) bool {
	count := uint64(0)
	if nc != "" {
		c, err := strconv.ParseUint(nc, 16, 32)
		if err != nil {
			return false
		}
		count = c
	}
	key := maphash.String(n.seed, nonce)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.rotated.IsZero() {
		n.rotated = now
	}
	if gap := now.Sub(n.rotated); gap >= n.period {
		n.prev = n.cur
		if gap >= 2*n.period {
			n.prev = nil // nothing in it can still be valid
		}
		n.cur, n.rotated = map[uint64]uint32{}, now
	}
	last, seen := n.cur[key]
	if !seen {
		last, seen = n.prev[key]
	}
	// Stored as count+1, so that a nonce used without a count (0) is used up.
	if seen && count+1 <= uint64(last) {
		return false
	}
	n.cur[key] = uint32(min(count+1, 1<<32-1))
	return true
}
