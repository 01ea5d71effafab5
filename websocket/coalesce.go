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
// buffer. Caller holds frameSem.
func (c *Conn) holdFrame(h *frame.Header, data []byte) bool {
	size := h.Size() + len(data)
	if c.held == nil {
		if size > c.writeBufSize+frame.MaxHeaderSize {
			return false
		}
		c.held = c.getWriteBuf()
		c.heldN = 0
		c.armHoldTimer()
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

// afterHold runs after a frame was held and frameSem released: if the
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

// flushHeld writes the held frames, waiting for frameSem.
func (c *Conn) flushHeld() {
	if !c.outPending.Load() || c.lockFrameBy(time.Time{}) != nil {
		return
	}
	c.flushHeldLocked()
	c.unlockFrame()
}

// flushHeldLocked writes the held frames; a failure is sticky and reported
// by the next write. Caller holds frameSem.
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

// releaseHeld returns the held buffer to the pool. Caller holds frameSem.
func (c *Conn) releaseHeld() {
	if c.held == nil {
		return
	}
	c.putWriteBuf(c.held)
	c.held, c.heldN = nil, 0
	c.outPending.Store(false)
}

// beforeNetworkRead is called by the reader before it reads from the
// network: no more buffered input, so held frames must go now. If a writer
// holds frameSem, that writer sends them (writeRaw, or afterHold).
func (c *Conn) beforeNetworkRead() {
	if c.inputPending.Load() {
		c.inputPending.Store(false)
	}
	if c.outPending.Load() {
		select {
		case c.frameSem <- struct{}{}:
			c.flushHeldLocked()
			c.unlockFrame()
		default:
		}
	}
}

// noteInputPending is called when a read returns a message: frames may be
// held while the next one is already buffered.
func (c *Conn) noteInputPending() {
	b := c.rd.buffered()
	h, n, done, err := frame.Parse(b)
	pending := done && err == nil && int64(len(b)-n) >= h.Length
	if pending != c.inputPending.Load() {
		c.inputPending.Store(pending)
	}
}

// dropHeld discards held frames once the connection is closed.
func (c *Conn) dropHeld() {
	select {
	case c.frameSem <- struct{}{}:
		if c.holdTimer != nil {
			c.holdTimer.Stop()
		}
		c.releaseHeld()
		c.unlockFrame()
	default: // a writer holds it: its write fails and releases them
	}
}
