package websocket

import (
	"time"

	"github.com/latchws/latch/internal/frame"
	"github.com/latchws/latch/internal/mask"
)

// Write coalescing. A peer that sends several messages without waiting
// (pipelined requests, a burst of chat lines) is answered with one system
// call, not one per message: while the reader has returned a message and
// the next complete frame is already in its buffer, WriteMessage holds its
// frame back in a pooled buffer instead of writing it. The held frames go
// out, in order and before anything else, with the next write of any kind,
// when the reader has to wait for the network, or at the latest
// maxHoldDelay after the first was held, so a handler that is slow between
// two buffered messages delays its answers by no more than that. A peer
// that waits for each answer never sees a frame held.

// maxHoldDelay bounds how long a held frame waits for company.
const maxHoldDelay = 200 * time.Microsecond

// holdFrame appends the frame to the held frames when it fits in one write
// buffer; arm starts the timer that bounds the wait. Caller holds frameMu.
func (c *Conn) holdFrame(h *frame.Header, data []byte, arm bool) bool {
	size := h.Size() + len(data)
	if c.held == nil {
		if size > c.writeBufSize+frame.MaxHeaderSize {
			return false
		}
		c.held = c.getWriteBuf()
		c.heldN = 0
		if arm {
			c.armHoldTimer()
		}
	}
	buf := *c.held
	if c.heldN+size > len(buf) {
		return false // the caller writes it together with the held frames
	}
	n := c.heldN + frame.Put(buf[c.heldN:], h)
	copy(buf[n:], data)
	if h.Masked {
		mask.Apply(h.Key, 0, buf[n:n+len(data)])
	}
	c.heldN += size
	c.outPending.Store(true)
	return true
}

// afterHold runs after a frame was held and frameMu released: if the
// reader went to the network in between, it saw nothing to flush yet.
func (c *Conn) afterHold() {
	if !c.inputPending.Load() {
		c.flushHeld()
	}
}

func (c *Conn) armHoldTimer() {
	if c.holdTimer == nil {
		c.holdTimer = time.AfterFunc(maxHoldDelay, c.flushHeld)
	} else {
		c.holdTimer.Reset(maxHoldDelay)
	}
}

// flushHeld writes the held frames, waiting for frameMu.
func (c *Conn) flushHeld() {
	if !c.outPending.Load() || c.lockFrameBy(time.Time{}) != nil {
		return
	}
	c.flushHeldLocked()
	c.unlockFrame()
}

// flushHeldLocked writes the held frames; a failure is sticky and reported
// by the next write. Caller holds frameMu.
func (c *Conn) flushHeldLocked() {
	if c.heldN == 0 {
		return
	}
	if c.writeErr != nil {
		c.releaseHeld()
		return
	}
	_ = c.writeVec(nil, nil)
}

// releaseHeld returns the held buffer to the pool. Caller holds frameMu.
func (c *Conn) releaseHeld() {
	if c.held == nil {
		return
	}
	c.putWriteBuf(c.held)
	c.held, c.heldN = nil, 0
	c.outPending.Store(false)
}

// beforeNetworkRead is called by the reader before it reads from the
// network: no more buffered input, so held frames must go now. The reader
// sends what the socket takes without waiting; the rest is left to the
// timer's goroutine, because a reader blocked on a peer that does not read
// could no longer read what that peer is sending. If a writer holds
// frameMu, that writer sends them (writeRaw, or afterHold).
func (c *Conn) beforeNetworkRead() {
	if c.inputPending.Load() {
		c.inputPending.Store(false)
	}
	if c.outPending.Load() {
		if c.frameMu.TryLock() {
			c.writeHeldNow()
			if c.heldN > 0 {
				c.armHoldTimer()
			}
			c.unlockFrame()
		}
	}
}

// noteInputPending is called when a read returns a message: frames may be
// held while the next one is already buffered. Frames the reader held (a
// pong) get the timer now, as the application may not read again soon.
func (c *Conn) noteInputPending() {
	b := c.rd.buffered()
	h, n, done, err := frame.Parse(b)
	pending := done && err == nil && int64(len(b)-n) >= h.Length
	if pending != c.inputPending.Load() {
		c.inputPending.Store(pending)
	}
	if c.outPending.Load() {
		if c.frameMu.TryLock() { // else a writer holds it and sends them
			if c.heldN > 0 {
				c.armHoldTimer()
			}
			c.unlockFrame()
		}
	}
}

// writeHeldNow writes as much of the held frames as the socket accepts
// without waiting; what is left stays held. Caller holds frameMu.
func (c *Conn) writeHeldNow() {
	if c.heldN == 0 || c.writeErr != nil || c.raw == nil {
		return // without a descriptor only a blocking write is possible
	}
	buf := *c.held
	entry := c.woutMode
	c.wout, c.woutMode = buf[:c.heldN], woutReturn
	err := c.raw.Write(c.writeFn)
	left := len(c.wout)
	c.wout, c.woutMode = nil, entry
	if err != nil || c.writeErr != nil {
		c.writeFailed(err)
	}
	// Keep the unwritten tail at the front: it continues the bytes on the wire.
	c.heldN = copy(buf, buf[c.heldN-left:c.heldN])
	if c.heldN == 0 {
		c.releaseHeld()
	}
}

// answerPing answers a ping with a pong carrying the same payload (RFC 6455
// §5.5.3). The pong joins the held frames and goes out before the reader
// next waits for the network: writing it from here, deep in the read path,
// would grow the goroutine's stack, which never shrinks again while it
// waits at that depth.
func (c *Conn) answerPing(payload []byte) {
	if c.rd.mem {
		// On an event loop the stack does not matter, and the pong joins
		// the loop's output, which goes out after this read. With output
		// already waiting at the queue's bound, the pongs queued before it
		// are unsent, so this one is not owed (RFC 6455 §5.5.3 lets an
		// endpoint answer only the latest ping): a peer that floods pings
		// and reads nothing cannot grow the queue, and the write stall
		// timeout ends it.
		if limit := c.QueueLimit(); limit > 0 && c.QueuedBytes() >= limit {
			return
		}
		c.answerPingSlowly(payload)
		return
	}
	if !c.frameMu.TryLock() {
		c.answerPingSlowly(payload) // a writer holds the connection
		return
	}
	h := frame.Header{Fin: true, Opcode: frame.OpPong, Length: int64(len(payload))}
	if !c.isServer {
		h.Masked = true
		h.Key = newMaskKey()
	}
	held := c.writeState() != nil || c.holdFrame(&h, payload, false)
	c.unlockFrame()
	if !held {
		c.answerPingSlowly(payload)
	}
}

// answerPingSlowly sends the pong itself, waiting a bounded time for a
// writer that holds the connection, as gorilla's default ping handler does.
func (c *Conn) answerPingSlowly(payload []byte) {
	_ = c.defaultPingHandler(string(payload))
}

// dropHeld discards held frames once the connection is closed.
func (c *Conn) dropHeld() {
	if c.frameMu.TryLock() { // else a writer holds it: its write fails and releases them
		if c.holdTimer != nil {
			c.holdTimer.Stop()
		}
		c.releaseHeld()
		c.unlockFrame()
	}
}
