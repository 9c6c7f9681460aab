package webhook

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	d := &Deliverer{cfg: Config{}.withDefaults()}
	for _, tc := range []struct {
		attempts int
		base     time.Duration
	}{
		{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {10, 512 * time.Second},
		{11, 10 * time.Minute}, {500, 10 * time.Minute},
	} {
		lo, hi := time.Duration(float64(tc.base)*0.8), time.Duration(float64(tc.base)*1.2)
		seen := map[time.Duration]bool{}
		for range 200 {
			b := d.backoff(tc.attempts)
			if b < lo || b >= hi {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v)", tc.attempts, b, lo, hi)
			}
			seen[b] = true
		}
		if len(seen) < 100 {
			t.Errorf("backoff(%d) took %d distinct values in 200 draws: no jitter?", tc.attempts, len(seen))
		}
	}
}
