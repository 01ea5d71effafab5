package websocket

import (
	"math/bits"
	"sync"
	"sync/atomic"

	"github.com/latchws/latch/internal/frame"
)

// The buffer pools of both directions and both drivers. Buffers are held
// only while a message is in flight, so that an idle connection holds
// none: read buffers (bufSlots in front of sizedPools), write buffers,
// the chunks of large reads, and the engine's size classes.

// bufSlots caches buffers in fixed slots, one atomic operation per take or
// give, with no lock and no allocation, so the read callbacks can use it at
// the bottom of the stack. A connection starts at its own slot and probes a
// few neighbours; when they are all empty (or all full) the caller falls
// back to the pool one frame up. At most len(slots) buffers stay cached.
type bufSlots struct {
	slots [256]struct {
		p atomic.Pointer[[]byte]
		_ [56]byte // one slot per cache line: connections on other CPUs do not collide
	}
}

const (
	slotProbes = 4
	slotStride = 7 // consecutive connections start apart
)

var nextSlot atomic.Uint32

func (bs *bufSlots) take(start uint32) *[]byte {
	for i := range uint32(slotProbes) {
		s := &bs.slots[(start+i)%uint32(len(bs.slots))].p
		if s.Load() != nil {
			if b := s.Swap(nil); b != nil {
				return b
			}
		}
	}
	return nil
}

func (bs *bufSlots) give(start uint32, b *[]byte) bool {
	for i := range uint32(slotProbes) {
		s := &bs.slots[(start+i)%uint32(len(bs.slots))].p
		if s.Load() == nil && s.CompareAndSwap(nil, b) {
			return true
		}
	}
	return false
}

// readBufsOut and writeBufsOut count the buffers connections hold, so that
// tests can check that idle connections hold none. Counting is off unless a
// test turns it on: shared counters would make every message of every
// connection contend for one cache line.
var (
	countBuffers              bool // set once, before any connection exists
	readBufsOut, writeBufsOut atomic.Int64
)

func countBuffer(n *atomic.Int64, delta int64) {
	if countBuffers {
		n.Add(delta)
	}
}

// Read buffers are pooled by size: most programs use one or two sizes.
var readPools = sizedPools{defaultSize: defaultReadBufferSize}

// sizedPools pools *[]byte by length. The default size has a bufSlots
// cache and a pool of its own, found without the map lookup that every
// other size costs. hint is the caller's start in the cache.
type sizedPools struct {
	defaultSize int
	slots       bufSlots
	def         sync.Pool
	other       sync.Map // int -> *sync.Pool
}

// cached takes a default-size buffer from the cache only: nil when empty.
func (sp *sizedPools) cached(size int, hint uint32) *[]byte {
	if size != sp.defaultSize {
		return nil
	}
	return sp.slots.take(hint)
}

// cache puts a default-size buffer into the cache if it has room.
func (sp *sizedPools) cache(b *[]byte, hint uint32) bool {
	return cap(*b) == sp.defaultSize && sp.slots.give(hint, b)
}

func (sp *sizedPools) pool(size int, create bool) *sync.Pool {
	if p, ok := sp.other.Load(size); ok {
		return p.(*sync.Pool)
	}
	if !create {
		return nil
	}
	p, _ := sp.other.LoadOrStore(size, new(sync.Pool))
	return p.(*sync.Pool)
}

func (sp *sizedPools) get(size int, hint uint32) *[]byte {
	if b := sp.cached(size, hint); b != nil {
		return b
	}
	p := &sp.def
	if size != sp.defaultSize {
		if p = sp.pool(size, false); p == nil {
			b := make([]byte, size)
			return &b
		}
	}
	if b, ok := p.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, size)
	return &b
}

func (sp *sizedPools) put(b *[]byte, hint uint32) {
	if sp.cache(b, hint) {
		return
	}
	if cap(*b) == sp.defaultSize {
		sp.def.Put(b)
		return
	}
	sp.pool(cap(*b), true).Put(b)
}

// Write buffers.

func (c *Conn) getWriteBuf() *[]byte {
	countBuffer(&writeBufsOut, 1)
	size := c.writeBufSize + frame.MaxHeaderSize
	if c.writePool != nil {
		if b, ok := c.writePool.Get().(*[]byte); ok && len(*b) == size {
			return b
		}
		b := make([]byte, size)
		return &b
	}
	// The cache comes first: taking a buffer for a pong deep in the read
	// path must not reach the pool's slow paths (see awaitInput).
	return writePools.get(size, c.rd.slot)
}

func (c *Conn) putWriteBuf(b *[]byte) {
	countBuffer(&writeBufsOut, -1)
	if c.writePool != nil {
		c.writePool.Put(b)
		return
	}
	writePools.put(b, c.rd.slot)
}

// readLarge's chunks, by size: chunk i holds readAllocFloor << i bytes, up
// to 8 MiB. The four smallest (up to 512 KiB, under 2 MiB for two of each)
// are kept in slots the garbage collector does not empty, so that a loop
// reading 1 MiB messages does not allocate them again after every
// collection; the larger ones are pooled.
var (
	chunkSlots [4][2]atomic.Pointer[[]byte]
	chunkPools [8]sync.Pool
)

func getChunk(i int) *[]byte {
	if i < len(chunkSlots) {
		for j := range chunkSlots[i] {
			if bp := chunkSlots[i][j].Swap(nil); bp != nil {
				return bp
			}
		}
	}
	if bp, ok := chunkPools[i].Get().(*[]byte); ok {
		return bp
	}
	b := make([]byte, readAllocFloor<<i)
	return &b
}

func putChunk(i int, bp *[]byte) {
	if i < len(chunkSlots) {
		for j := range chunkSlots[i] {
			if chunkSlots[i][j].CompareAndSwap(nil, bp) {
				return
			}
		}
	}
	chunkPools[i].Put(bp)
}

var inflateBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// growRead moves p into a buffer of capacity newCap. An event loop's
// connection takes it from the engine's pools, where it goes back once
// the message is delivered (classBufs).
func (c *Conn) growRead(p []byte, newCap int) []byte {
	if c.rd.mem {
		return classGrow(p, newCap)
	}
	q := make([]byte, len(p), newCap)
	copy(q, p)
	return q
}

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
