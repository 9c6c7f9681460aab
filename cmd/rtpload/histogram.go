package main

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// The histogram is log-linear like HdrHistogram: values below histSub are
// counted exactly, and every further power of two is split into histHalf
// equal buckets, so a bucket's width is at most 1/histHalf (0.8%) of its
// values. Values are nanoseconds; those of 2^41 ns (36 minutes) and more
// land in the last bucket.
const (
	histSubBits  = 8
	histSub      = 1 << histSubBits // 256
	histHalf     = histSub / 2      // 128
	histMaxShift = 41 - histSubBits // values below 2^41
	histBuckets  = histSub + histMaxShift*histHalf
)

// histogram counts durations in fixed buckets without allocating. Record is
// safe for concurrent use (many reader goroutines share one histogram);
// Quantile, Count and Max are meant for after the writers are done.
type histogram struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	max    atomic.Uint64
}

// histIndex returns the bucket of v.
func histIndex(v uint64) int {
	if v < histSub {
		return int(v)
	}
	shift := bits.Len64(v) - histSubBits
	if shift > histMaxShift {
		return histBuckets - 1
	}
	return histSub + (shift-1)*histHalf + int(v>>shift) - histHalf
}

// histUpper returns the largest value that falls in bucket i.
func histUpper(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	shift := (i-histSub)/histHalf + 1
	m := uint64((i-histSub)%histHalf + histHalf)
	return (m+1)<<shift - 1
}

// Record counts one duration; negative durations count as zero.
func (h *histogram) Record(d time.Duration) {
	v := uint64(max(d, 0))
	h.counts[histIndex(v)].Add(1)
	h.n.Add(1)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// Count returns the number of recorded values.
func (h *histogram) Count() uint64 { return h.n.Load() }

// Max returns the largest recorded value.
func (h *histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Quantile returns the value at or below which a fraction q (0-1) of the
// recorded values lie, rounded up to its bucket's upper bound but never above
// the maximum: an over-estimate by at most 0.8%. It returns 0 when nothing
// was recorded.
func (h *histogram) Quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(q * float64(n))
	if float64(rank) < q*float64(n) {
		rank++ // ceil
	}
	rank = max(rank, 1)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			return time.Duration(min(histUpper(i), h.max.Load()))
		}
	}
	return h.Max()
}
