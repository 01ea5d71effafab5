package websocket

import (
	"math/bits"
	"sync"
)

// Size-class pools for the event engine's buffers that outlive one read:
// an unfinished message and a connection's output queue. Class k holds
// buffers of at least minClassBuf << k bytes; a buffer goes back to the
// largest class it fills, so any capacity can be pooled, and a message or
// a queue that grows takes its next buffer from the pools too. Idle
// connections hold none.
const (
	minClassBuf = 4 << 10
	classCount  = 13 // up to 16 MiB
)

var classBufs [classCount]sync.Pool // of *[]byte

// classGet returns an empty buffer with room for at least n bytes.
func classGet(n int) []byte {
	k := classFor(n)
	if k >= classCount {
		return make([]byte, 0, n)
	}
	if bp, ok := classBufs[k].Get().(*[]byte); ok {
		b := (*bp)[:0]
		*bp = nil
		boxes.Put(bp)
		return b
	}
	return make([]byte, 0, minClassBuf<<k)
}

// classPut pools b's memory.
func classPut(b []byte) {
	c := cap(b)
	if c < minClassBuf {
		return
	}
	k := bits.Len(uint(c/minClassBuf)) - 1
	if k >= classCount {
		return
	}
	bp := boxes.Get().(*[]byte)
	*bp = b[:0]
	classBufs[k].Put(bp)
}

// classGrow returns p's bytes in a buffer with room for n, pooling p.
func classGrow(p []byte, n int) []byte {
	q := append(classGet(n), p...)
	classPut(p)
	return q
}

// classFor is the smallest class whose buffers hold n bytes.
func classFor(n int) int {
	if n <= minClassBuf {
		return 0
	}
	return bits.Len(uint((n - 1) / minClassBuf))
}

// boxes recycles the *[]byte that carry buffers through the pools, so that
// pooling costs no allocation.
var boxes = sync.Pool{New: func() any { return new([]byte) }}
