package digest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"hash"
	"sync"
	"time"
)

// Nonces issues and checks stateless nonces: each carries its issue time and
// a random part, signed with a per-process key, so no table of issued nonces
// is kept and none can be forged or used after its lifetime.
type Nonces struct {
	key      [32]byte
	lifetime time.Duration
	now      func() time.Time
	macs     sync.Pool // of keyed HMAC-SHA256 states, reused after Reset
}

// NonceState is the result of checking a nonce.
type NonceState int

const (
	// NonceValid is a nonce we issued that is within its lifetime.
	NonceValid NonceState = iota
	// NonceStale is a nonce we issued whose lifetime is over.
	NonceStale
	// NonceUnknown is a nonce we did not issue (or issued before a restart).
	NonceUnknown
)

const nonceRaw = 8 + 8 + 16 // time, random, MAC

// NewNonces returns an issuer whose nonces live for lifetime. now may be nil
// for time.Now.
func NewNonces(lifetime time.Duration, now func() time.Time) *Nonces {
	n := &Nonces{lifetime: lifetime, now: now}
	if n.now == nil {
		n.now = time.Now
	}
	_, _ = rand.Read(n.key[:])
	return n
}

// Issue returns a fresh nonce.
func (n *Nonces) Issue() string {
	var raw [nonceRaw]byte
	binary.BigEndian.PutUint64(raw[:8], uint64(n.now().UnixMilli()))
	_, _ = rand.Read(raw[8:16])
	n.sign(raw[:16], raw[16:])
	return base64.RawURLEncoding.EncodeToString(raw[:])
}

func (n *Nonces) sign(msg, out []byte) {
	m, _ := n.macs.Get().(hash.Hash)
	if m == nil {
		m = hmac.New(sha256.New, n.key[:])
	}
	m.Reset()
	m.Write(msg)
	var sum [sha256.Size]byte
	copy(out, m.Sum(sum[:0]))
	n.macs.Put(m)
}

// Check reports whether nonce is ours and still fresh.
func (n *Nonces) Check(nonce string) NonceState {
	var raw [nonceRaw]byte
	if base64.RawURLEncoding.DecodedLen(len(nonce)) != nonceRaw {
		return NonceUnknown
	}
	if _, err := base64.RawURLEncoding.Decode(raw[:], []byte(nonce)); err != nil {
		return NonceUnknown
	}
	var mac [16]byte
	n.sign(raw[:16], mac[:])
	if !hmac.Equal(mac[:], raw[16:]) {
		return NonceUnknown
	}
	issued := time.UnixMilli(int64(binary.BigEndian.Uint64(raw[:8])))
	age := n.now().Sub(issued)
	if age < -time.Second || age >= n.lifetime {
		return NonceStale
	}
	return NonceValid
}
