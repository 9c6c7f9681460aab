//go:build !linux

package media

import (
	"errors"
	"net/netip"
)

// Other systems read each socket from a goroutine of its own (Leg.serve);
// the reader pool is Linux's (readers_linux.go).

// pooledReaders has no effect on this system; the tests set it.
var pooledReaders = false

// readerPool is never created on this system.
type readerPool struct{}

// sessionPoll is empty on this system.
type sessionPoll struct{}

func newReaderPool(n, base, size int, inet6 bool) (*readerPool, error) { return nil, nil }

func (p *readerPool) close()               {}
func (p *readerPool) add(s *Session) error { return errors.New("media: no reader pool") }
func (p *readerPool) remove(s *Session)    {}
func (p *readerPool) sendTo(fd int, pkt []byte, dst netip.AddrPort) error {
	return errors.New("media: no reader pool")
}

// havePool reports whether this system has the reader pool.
const havePool = false
