package main

import "testing"

func TestRxStream(t *testing.T) {
	tests := map[string]struct {
		seqs                      []uint32
		sent                      uint64 // what the far phone sent
		received, dup, reord, new uint64
		lost                      uint64
	}{
		"in order":          {seqs: []uint32{0, 1, 2, 3}, sent: 4, received: 4, new: 4},
		"start mid-stream":  {seqs: []uint32{100, 101, 102}, sent: 3, received: 3, new: 3},
		"gap is loss":       {seqs: []uint32{0, 1, 3, 4}, sent: 5, received: 4, new: 4, lost: 1},
		"tail loss":         {seqs: []uint32{0, 1, 2}, sent: 5, received: 3, new: 3, lost: 2},
		"duplicate":         {seqs: []uint32{0, 1, 1, 2}, sent: 3, received: 3, dup: 1, new: 3},
		"duplicate of top":  {seqs: []uint32{5, 5}, sent: 1, received: 1, dup: 1, new: 1},
		"reordered":         {seqs: []uint32{0, 2, 1, 3}, sent: 4, received: 4, reord: 1, new: 4},
		"late dup reorder":  {seqs: []uint32{0, 2, 1, 1}, sent: 3, received: 3, reord: 1, dup: 1, new: 3},
		"jump past window":  {seqs: []uint32{0, 200, 1}, sent: 201, received: 3, reord: 1, new: 3, lost: 198},
		"edge of window":    {seqs: []uint32{0, 63, 0}, sent: 64, received: 2, dup: 1, new: 2, lost: 62},
		"older than window": {seqs: []uint32{0, 64, 0}, sent: 65, received: 3, reord: 1, new: 3, lost: 62},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			var s rxStream
			var fresh uint64
			for _, seq := range tt.seqs {
				if s.Add(seq) {
					fresh++
				}
			}
			lost := uint64(0)
			if tt.sent > s.Received {
				lost = tt.sent - s.Received
			}
			if s.Received != tt.received || s.Duplicates != tt.dup || s.Reordered != tt.reord || fresh != tt.new || lost != tt.lost {
				t.Fatalf("received=%d dup=%d reordered=%d new=%d lost=%d, want %d %d %d %d %d",
					s.Received, s.Duplicates, s.Reordered, fresh, lost, tt.received, tt.dup, tt.reord, tt.new, tt.lost)
			}
		})
	}
}

// TestPhoneReceive checks the accounting of whole packets: the window, the
// sender check and latency recording.
func TestPhoneReceive(t *testing.T) {
	sender, err := newPhone(loopback, 0, 1, 172, 50, 7)
	if err != nil {
		t.Fatal(err)
	}
	defer sender.conn.Close()
	rcv, err := newPhone(loopback, 1, 0, 172, 50, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.conn.Close()
	stranger, err := newPhone(loopback, 5, 4, 172, 50, 9)
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.conn.Close()

	var lat histogram
	const winStart = 1000
	packet := func(p *phone, sentAt int64) []byte {
		p.send(0, false) // fills the header and tag; the write fails (not connected)
		b := append([]byte(nil), p.pkt...)
		putSendTime(b, sentAt)
		return b
	}
	rcv.receive(packet(sender, winStart-1), 5000, winStart, &lat)    // warm-up: ignored
	rcv.receive(packet(sender, winStart), 1100, winStart, &lat)      // 100 ns: exact histogram buckets
	rcv.receive(packet(sender, winStart+10), 1210, winStart, &lat)   // 200 ns
	rcv.receive(packet(stranger, winStart+20), 9999, winStart, &lat) // wrong sender
	rcv.receive([]byte{0x80, 0}, 9999, winStart, &lat)               // short
	if rcv.rx.Received != 2 || rcv.misrouted != 1 || rcv.malformed != 1 {
		t.Fatalf("received=%d misrouted=%d malformed=%d, want 2 1 1", rcv.rx.Received, rcv.misrouted, rcv.malformed)
	}
	if lat.Count() != 2 || lat.Max() != 200 || lat.Quantile(0.5) != 100 {
		t.Fatalf("latency count=%d p50=%v max=%v, want 2 100ns 200ns", lat.Count(), lat.Quantile(0.5), lat.Max())
	}
	if sender.seq != 3 || sender.sentWindow != 0 {
		t.Fatalf("sender seq=%d sentWindow=%d, want 3 0 (failed writes do not count as sent)", sender.seq, sender.sentWindow)
	}
}
