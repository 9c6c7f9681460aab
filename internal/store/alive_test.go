package store

import (
	"context"
	"testing"
	"time"
)

// TestLastAlive: zero before the first MarkAlive, then the latest time
// recorded (in one row, however often it is written), and kept across a
// reopen, which is when it is read.
func TestLastAlive(t *testing.T) {
	path := t.TempDir() + "/sb.db"
	ctx := context.Background()
	s, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if at, err := s.LastAlive(ctx); err != nil || !at.IsZero() {
		t.Fatalf("LastAlive before any mark = %v, %v; want zero", at, err)
	}
	for i := range 3 {
		if err := s.MarkAlive(ctx, baseTime.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if at, err := s.LastAlive(ctx); err != nil || !at.Equal(baseTime.Add(2*time.Second).Truncate(time.Millisecond)) {
		t.Fatalf("LastAlive = %v, %v; want %v", at, err, baseTime.Add(2*time.Second))
	}
	var rows int
	if err := s.rdb.QueryRowContext(ctx, `SELECT count(*) FROM alive`).Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("alive rows = %d, %v; want 1", rows, err)
	}
}
