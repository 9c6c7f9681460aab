package main

import (
	"testing"
	"time"
)

// TestHistBuckets checks that buckets are contiguous, that every value falls
// in a bucket whose bounds hold it, and that bucket widths stay within the
// promised relative error.
func TestHistBuckets(t *testing.T) {
	prevUpper := int64(-1)
	for i := range histBuckets {
		up := histUpper(i)
		if int64(up) <= prevUpper {
			t.Fatalf("bucket %d: upper %d not above previous %d", i, up, prevUpper)
		}
		lower := uint64(prevUpper + 1)
		if histIndex(lower) != i || histIndex(up) != i {
			t.Fatalf("bucket %d [%d, %d]: index(lower) = %d, index(upper) = %d", i, lower, up, histIndex(lower), histIndex(up))
		}
		if lower >= histSub && float64(up-lower+1)/float64(lower) > 1.0/histHalf {
			t.Fatalf("bucket %d [%d, %d] wider than 1/%d of its values", i, lower, up, histHalf)
		}
		prevUpper = int64(up)
	}
	if got := histIndex(1 << 62); got != histBuckets-1 {
		t.Fatalf("index(2^62) = %d, want the last bucket %d", got, histBuckets-1)
	}
}

func TestHistogramQuantile(t *testing.T) {
	tests := map[string]struct {
		values []time.Duration
		q      float64
		want   time.Duration
	}{
		"empty":           {nil, 0.5, 0},
		"one value":       {[]time.Duration{42 * time.Microsecond}, 0.99, 42 * time.Microsecond},
		"exact small":     {[]time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0.5, 5},
		"p90 of 10":       {[]time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0.9, 9},
		"p100 is max":     {[]time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 1, 10},
		"negative is 0":   {[]time.Duration{-5}, 0.5, 0},
		"capped at max":   {[]time.Duration{time.Millisecond + 1}, 0.5, time.Millisecond + 1},
		"tail one of 100": {append(repeat(100*time.Microsecond, 99), time.Second), 0.99, 100 * time.Microsecond},
		"tail beyond p99": {append(repeat(100*time.Microsecond, 99), time.Second), 0.995, time.Second},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			var h histogram
			for _, v := range tt.values {
				h.Record(v)
			}
			got := h.Quantile(tt.q)
			// Within one bucket above the true value.
			if got < tt.want || float64(got-tt.want) > float64(tt.want)/histHalf+1 {
				t.Fatalf("Quantile(%v) = %v, want %v (+1 bucket)", tt.q, got, tt.want)
			}
			if h.Count() != uint64(len(tt.values)) {
				t.Fatalf("Count() = %d, want %d", h.Count(), len(tt.values))
			}
		})
	}
}

func repeat(d time.Duration, n int) []time.Duration {
	s := make([]time.Duration, n)
	for i := range s {
		s[i] = d
	}
	return s
}

func TestHistogramRecordAllocs(t *testing.T) {
	var h histogram
	if n := testing.AllocsPerRun(1000, func() { h.Record(123 * time.Microsecond) }); n != 0 {
		t.Fatalf("Record allocates %v times", n)
	}
}
