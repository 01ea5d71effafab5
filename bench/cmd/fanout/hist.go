package main

import (
	"math/bits"
	"sync/atomic"
)

// hist is a log-linear latency histogram (128 steps per power of two, so
// a quantile is within 0.8% of the true value), safe for concurrent use:
// thousands of subscriber goroutines add to one histogram without a lock.
type hist struct {
	counts [256 + 56*128]atomic.Uint64
	max    atomic.Int64
	n      atomic.Uint64
}

func bucketOf(v uint64) int {
	if v < 256 {
		return int(v)
	}
	shift := bits.Len64(v) - 8 // v>>shift is in [128, 256)
	return 256 + (shift-1)*128 + int(v>>shift) - 128
}

// lowerBound is the smallest value that falls in bucket i.
func lowerBound(i int) uint64 {
	if i < 256 {
		return uint64(i)
	}
	i -= 256
	return uint64(i%128+128) << (i/128 + 1)
}

func (h *hist) add(ns int64) {
	if ns < 0 {
		ns = 0
	}
	h.counts[bucketOf(uint64(ns))].Add(1)
	h.n.Add(1)
	for {
		m := h.max.Load()
		if ns <= m || h.max.CompareAndSwap(m, ns) {
			return
		}
	}
}

// quantile returns the q-quantile (0 < q <= 1) in ns, 0 when empty.
func (h *hist) quantile(q float64) int64 {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(q * float64(n))
	if rank >= n {
		rank = n - 1
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen > rank {
			// The middle of the bucket, but never above the maximum seen.
			v := int64(lowerBound(i)+lowerBound(i+1)) / 2
			if i < 256 {
				v = int64(i)
			}
			return min(v, h.max.Load())
		}
	}
	return h.max.Load()
}
