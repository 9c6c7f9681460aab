package main

// rxStream accounts for the packets one phone receives from its far phone,
// by the 32-bit sequence number rtpload puts in the payload. It recognises
// duplicates among the last 64 sequence numbers with a sliding bitmap, like
// the anti-replay window of RFC 4303 §3.4.3. Loss is what the far phone sent
// minus Received. It is used by one goroutine.
type rxStream struct {
	started bool
	top     uint32 // highest sequence number seen
	mask    uint64 // bit i set: top-i seen

	// Received counts distinct packets.
	Received uint64
	// Duplicates counts packets seen before (within the window).
	Duplicates uint64
	// Reordered counts packets that arrived after a higher sequence number.
	Reordered uint64
}

// rxWindow is the duplicate detection window in packets.
const rxWindow = 64

// Add accounts for a packet with sequence number seq and reports whether it
// is new (not a duplicate). A packet older than the window cannot be checked
// and counts as new.
func (s *rxStream) Add(seq uint32) bool {
	switch {
	case !s.started:
		s.started, s.top, s.mask = true, seq, 1
	case seq > s.top:
		if d := seq - s.top; d < rxWindow {
			s.mask = s.mask<<d | 1
		} else {
			s.mask = 1
		}
		s.top = seq
	default:
		s.Reordered++
		if d := s.top - seq; d < rxWindow {
			if s.mask&(1<<d) != 0 {
				s.Reordered--
				s.Duplicates++
				return false
			}
			s.mask |= 1 << d
		}
	}
	s.Received++
	return true
}
