package websocket

import (
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/klauspost/compress/flate"

	"github.com/latchws/latch/internal/frame"
	"github.com/latchws/latch/internal/mask"
	"github.com/latchws/latch/internal/utf8stream"
)

// WriteMessage writes a message with the given type and payload as a single
// frame. Text must be valid UTF-8 (RFC 6455 §5.6): invalid text is refused
// with an error and nothing is sent. Control message types are sent as by
// [Conn.WriteControl] with the connection's write deadline.
//
// WriteMessage is safe to call from several goroutines at once.
func (c *Conn) WriteMessage(messageType int, data []byte) error {
	if messageType != BinaryMessage {
		return c.writeOther(messageType, data)
	}
	return c.writeMessage(frame.OpBinary, data)
}

// The write path is split so that the common case, a message that fits in
// one write buffer, runs through small stack frames: a goroutine that
// writes and then waits to read keeps the minimum 2 KiB stack only if no
// write ever grew it (see awaitInput).

// writeOther is WriteMessage for text, control and invalid message types.
func (c *Conn) writeOther(messageType int, data []byte) error {
	switch messageType {
	case TextMessage:
		if !utf8stream.Valid(data) {
			return errInvalidUTF8Write
		}
		return c.writeMessage(frame.OpText, data)
	case CloseMessage, PingMessage, PongMessage:
		return c.writeControl(messageType, data, time.Time{})
	}
	return errBadMessageType
}

// writeMessage writes one data message as one frame, compressed when
// compression applies.
func (c *Conn) writeMessage(op frame.Opcode, data []byte) error {
	if c.rd.mem {
		if err := c.engineRoom(); err != nil {
			return err
		}
	}
	c.msgMu.Lock()
	var err error
	if c.compressing(len(data)) {
		err = c.writeCompressed(op, data)
	} else {
		err = c.writeData(op, false, data)
	}
	c.msgMu.Unlock()
	return err
}

// writeCompressed is writeMessage's compressed path. The caller holds msgMu.
func (c *Conn) writeCompressed(op frame.Opcode, data []byte) error {
	cb, err := c.deflateMessage(data)
	if err != nil {
		return err
	}
	err = c.writeData(op, true, cb.b)
	putCompressedBuf(cb)
	return err
}

// writeData sends data as one whole frame; rsv1 marks it compressed. The
// caller holds msgMu.
func (c *Conn) writeData(op frame.Opcode, rsv1 bool, data []byte) error {
	h := frame.Header{Fin: true, Rsv1: rsv1, Opcode: op, Length: int64(len(data))}
	if !c.isServer {
		h.Masked = true
		h.Key = newMaskKey()
	}
	c.lockFrame()
	err := c.writeState()
	switch {
	case err != nil:
	case c.inputPending.Load() && c.holdFrame(&h, data, true):
		c.unlockFrame()
		c.afterHold()
		return nil
	case len(data) > c.writeBufSize:
		err = c.writeLargeFrame(&h, data)
	default:
		bp := c.getWriteBuf()
		buf := *bp
		n := frame.Put(buf, &h)
		copy(buf[n:], data)
		if h.Masked {
			mask.Apply(h.Key, 0, buf[n:n+len(data)])
		}
		err = c.writeRaw(buf[:n+len(data)])
		c.putWriteBuf(bp)
	}
	c.unlockFrame()
	return err
}

// writeLargeFrame sends a frame larger than the write buffer: unmasked, the
// header and the caller's slice go out together in one system call;
// masked, through the buffer a piece at a time, leaving the caller's bytes
// untouched. The caller holds frameMu.
func (c *Conn) writeLargeFrame(h *frame.Header, data []byte) error {
	bp := c.getWriteBuf()
	buf := *bp
	n := frame.Put(buf, h)
	var err error
	if !h.Masked {
		err = c.writeVec(buf[:n], data)
	} else {
		k := copy(buf[n:], data)
		pos := mask.Apply(h.Key, 0, buf[n:n+k])
		err = c.writeRaw(buf[:n+k])
		for rest := data[k:]; err == nil && len(rest) > 0; rest = rest[k:] {
			k = copy(buf, rest)
			pos = mask.Apply(h.Key, pos, buf[:k])
			err = c.writeRaw(buf[:k])
		}
	}
	c.putWriteBuf(bp)
	return err
}

// writeState reports why no frame may be written now. Caller holds frameMu.
func (c *Conn) writeState() error {
	if c.writeErr != nil {
		return c.writeErr
	}
	if c.closeSent.Load() {
		return ErrCloseSent
	}
	return nil
}

// writeRaw writes b to the network, after any frames held back (see
// holdFrame). A failure is sticky because a partial frame may have gone out.
// Caller holds frameMu.
func (c *Conn) writeRaw(b []byte) error {
	if c.heldN > 0 {
		held := *c.held
		if c.heldN+len(b) > len(held) {
			return c.writeVec(b, nil)
		}
		c.heldN += copy(held[c.heldN:], b)
		b = held[:c.heldN]
		defer c.releaseHeld()
	}
	return c.writeOut(b)
}

// writeOut writes b. On TCP and Unix sockets it writes to the descriptor
// through syscall.RawConn: the same system call as net.Conn.Write with a
// third of the stack, which matters to the goroutines that write and then
// wait to read (see awaitInput). When the socket is full, the stall bound
// becomes the write deadline before the write waits (progress.go), and
// again after each wait in which the socket took bytes. Caller holds
// frameMu.
func (c *Conn) writeOut(b []byte) error {
	raw := c.raw
	if raw == nil {
		return c.writeConn(b)
	}
	entry := c.woutMode
	stall := c.stallBound()
	c.wout, c.woutMode = b, woutWait
	if stall > 0 {
		c.woutMode = woutArm
	}
	var err error
	set, armed := false, false
	for {
		err = raw.Write(c.writeFn)
		if err != nil || c.writeErr != nil || len(c.wout) == 0 {
			break
		}
		armed, set = c.armWriteStall(stall), true
		c.woutMode = woutArmed
	}
	c.wout, c.woutMode = nil, entry
	if err != nil || c.writeErr != nil {
		return c.writeFailed(c.stalled(err, armed))
	}
	if set {
		c.restoreWriteDeadline()
	}
	return nil
}

// What writeFD does when the socket is full.
const (
	woutWait   uint8 = iota // wait until it takes more (or the deadline passes)
	woutReturn              // return: writeHeldNow writes only what fits now
	woutArm                 // return, so that writeOut sets the stall deadline
	woutArmed               // wait; bytes written turn it back into woutArm
	woutFixed               // set by writeControl around its write: its own deadline bounds it
)

// stallBound is the stall timeout of the write about to start: 0 when the
// bound is off or the write has a deadline of its own. Caller holds
// frameMu.
func (c *Conn) stallBound() int64 {
	if c.woutMode == woutFixed {
		return 0
	}
	return c.writeStall.Load()
}

// stallChunk is how much writeConn hands net.Conn.Write under one stall
// deadline: a TLS record's worth, so the bound asks for no more than about
// 16 KiB per stall timeout.
const stallChunk = 16 << 10

// writeConn writes b with net.Conn.Write. A conn without a descriptor
// gives no sign of a full socket, and a timed-out write cannot be resumed
// on every conn (tls.Conn cannot), so with the stall bound each piece of
// stallChunk bytes gets its own deadline. Caller holds frameMu.
func (c *Conn) writeConn(b []byte) error {
	stall := c.stallBound()
	if stall <= 0 {
		if _, err := c.conn.Write(b); err != nil {
			return c.writeFailed(err)
		}
		return nil
	}
	for len(b) > 0 {
		n := min(len(b), stallChunk)
		armed := c.armWriteStall(stall)
		if _, err := c.conn.Write(b[:n]); err != nil {
			return c.writeFailed(c.stalled(err, armed))
		}
		b = b[n:]
	}
	c.restoreWriteDeadline()
	return nil
}

// writeFailed keeps the error of a failed write, in net.Conn.Write's form,
// and closes the connection: part of a frame may have gone out, so nothing
// more can be sent, not even a close frame, and a peer that keeps sending
// must not keep the connection open (RFC 6455 §7.1.7 leaves closing TCP).
// A nil err means the write callback's system call error, in writeErr.
// Caller holds frameMu.
func (c *Conn) writeFailed(err error) error {
	if err == nil {
		err = &net.OpError{Op: "write", Net: c.conn.LocalAddr().Network(), Source: c.conn.LocalAddr(), Addr: c.conn.RemoteAddr(), Err: c.writeErr}
	}
	if oe, ok := err.(*net.OpError); ok && oe.Op == "raw-write" {
		oe.Op = "write"
	}
	c.writeErr = err
	c.closeNetConn(&writeFailedError{err})
	return err
}

// writeFD is the syscall.RawConn write callback: false asks the poller to
// wait until the socket takes more (or the write deadline passes).
func (c *Conn) writeFD(fd uintptr) bool {
	for len(c.wout) > 0 {
		n, err := sysWrite(fd, c.wout)
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.EAGAIN {
			return c.woutMode == woutReturn || c.woutMode == woutArm
		}
		if err != nil {
			c.writeErr = os.NewSyscallError("write", err)
			return true
		}
		c.wout = c.wout[n:]
		if c.woutMode == woutArmed {
			c.woutMode = woutArm // progress: the next wait gets a fresh deadline
		}
	}
	return true
}

// writeVec writes the frames held back, head and then body, in one system
// call where the connection supports vectored writes (writev on TCP and
// Unix sockets). Caller holds frameMu.
func (c *Conn) writeVec(head, body []byte) error {
	v := writeVectors.Get().(*writeVector)
	v.bufs = append(v.parts[:0], nil, head, body)
	err := c.writeBuffers(v)
	v.parts = [3][]byte{} // keep no caller memory in the pool
	writeVectors.Put(v)
	return err
}

// writeBuffers writes v.bufs, whose first entry is left empty for the
// frames held back, in one system call where the connection supports
// vectored writes (empty entries cost nothing). It consumes v.bufs and
// releases the held frames. Caller holds frameMu.
func (c *Conn) writeBuffers(v *writeVector) error {
	if c.heldN > 0 {
		v.bufs[0] = (*c.held)[:c.heldN]
	}
	var err error
	switch stall := c.stallBound(); {
	case c.rd.mem:
		// On an event loop: one writev, or the queue (engine_linux.go).
		if err = c.conn.(*loopConn).writeParts(v.bufs); err != nil {
			err = c.writeFailed(err)
		}
	case c.raw == nil:
		err = c.writeJoined(v.bufs)
	case stall > 0:
		err = c.writeVecBounded(v, stall)
	default:
		if _, err = v.bufs.WriteTo(c.conn); err != nil {
			err = c.writeFailed(err)
		}
	}
	c.releaseHeld()
	v.bufs = nil
	return err
}

// writeJoined writes parts on a conn without a descriptor, where each
// Write is a system call (and, under TLS, a record of its own): small
// parts are joined into pieces of up to stallChunk bytes first. Caller
// holds frameMu.
func (c *Conn) writeJoined(parts net.Buffers) error {
	if !joinable(parts) {
		for _, part := range parts {
			if len(part) > 0 {
				if err := c.writeConn(part); err != nil {
					return err
				}
			}
		}
		return nil
	}
	bp := joinBufs.Get().(*[]byte)
	defer joinBufs.Put(bp)
	joined := (*bp)[:0]
	for _, part := range parts {
		if len(joined)+len(part) > cap(joined) && len(joined) > 0 {
			if err := c.writeConn(joined); err != nil {
				return err
			}
			joined = joined[:0]
		}
		if len(part) >= cap(joined) {
			if err := c.writeConn(part); err != nil {
				return err
			}
			continue
		}
		joined = append(joined, part...)
	}
	if len(joined) > 0 {
		return c.writeConn(joined)
	}
	return nil
}

// joinable reports whether two parts next to each other (skipping empty
// ones) fit in one piece together.
func joinable(parts net.Buffers) bool {
	prev := -1
	for _, part := range parts {
		if len(part) == 0 {
			continue
		}
		if prev >= 0 && prev+len(part) <= stallChunk {
			return true
		}
		prev = len(part)
	}
	return false
}

var joinBufs = sync.Pool{New: func() any { b := make([]byte, 0, stallChunk); return &b }}

// writeVecBounded is writeBuffers under the stall bound: the deadline goes
// on before the write, and a timeout after some progress sets it again and
// goes on with what is left. Caller holds frameMu.
func (c *Conn) writeVecBounded(v *writeVector, stall int64) error {
	for {
		armed := c.armWriteStall(stall)
		n, err := v.bufs.WriteTo(c.conn)
		if err == nil {
			c.restoreWriteDeadline()
			return nil
		}
		if n == 0 || !armed || !isTimeout(err) {
			return c.writeFailed(c.stalled(err, armed))
		}
	}
}

// writeVector is pooled so that net.Buffers, which escapes into the
// connection's WriteTo, costs no allocation per message.
type writeVector struct {
	parts [3][]byte   // writeVec's: held frames, head, body
	batch [][]byte    // WritePreparedMessages's frames; its capacity is kept
	bufs  net.Buffers // what writeBuffers writes: parts or batch
}

var writeVectors = sync.Pool{New: func() any { return new(writeVector) }}

func (c *Conn) lockFrame()   { c.frameMu.Lock() }
func (c *Conn) unlockFrame() { c.frameMu.Unlock() }

// lockFrameBy takes frameMu, giving up at deadline (zero: no limit) or when
// the connection is closed.
func (c *Conn) lockFrameBy(deadline time.Time) error {
	locked, timedOut := lockBy(&c.frameMu, deadline, c.doneChan)
	switch {
	case locked:
		return nil
	case timedOut:
		return errWriteTimeout
	}
	return net.ErrClosed
}

// WriteControl writes a control message (CloseMessage, PingMessage or
// PongMessage) with the given deadline; a zero deadline means the
// connection's write deadline. Control messages may be sent between the
// frames of a message another goroutine is writing. After a close message
// has been sent, WriteControl returns [ErrCloseSent].
func (c *Conn) WriteControl(messageType int, data []byte, deadline time.Time) error {
	return c.writeControl(messageType, data, deadline)
}

func (c *Conn) writeControl(messageType int, data []byte, deadline time.Time) error {
	switch messageType {
	case CloseMessage:
		if err := checkClosePayload(data); err != nil {
			return err
		}
	case PingMessage, PongMessage:
	default:
		return errBadMessageType
	}
	if len(data) > frame.MaxControlPayload {
		return errControlTooLarge
	}
	if err := c.lockFrameBy(deadline); err != nil {
		return err
	}
	defer c.unlockFrame()
	if err := c.writeState(); err != nil {
		return err
	}
	h := frame.Header{Fin: true, Opcode: frame.Opcode(messageType), Length: int64(len(data))}
	if !c.isServer {
		h.Masked = true
		h.Key = newMaskKey()
	}
	var buf [frame.MaxHeaderSize + frame.MaxControlPayload]byte
	n := frame.Put(buf[:], &h)
	copy(buf[n:], data)
	if h.Masked {
		mask.Apply(h.Key, 0, buf[n:n+len(data)])
	}
	if messageType == CloseMessage {
		c.closeSent.Store(true)
	}
	if !deadline.IsZero() {
		c.conn.SetWriteDeadline(deadline)
		defer c.restoreWriteDeadline()
		c.woutMode = woutFixed
		defer func() { c.woutMode = woutWait }()
	}
	return c.writeRaw(buf[:n+len(data)])
}

func (c *Conn) restoreWriteDeadline() {
	var t time.Time
	if ns := c.writeDeadline.Load(); ns != 0 {
		t = time.Unix(0, ns)
	}
	c.conn.SetWriteDeadline(t)
}

// NextWriter returns a writer for the next message to send. The writer's
// Close method sends the last frame of the message. Messages written with
// Write calls larger than the write buffer go out as several frames.
//
// Only one message is written at a time: NextWriter waits until the writer
// of another goroutine is closed (gorilla closes it for you instead, which
// is a race between goroutines). A text message must be valid UTF-8.
func (c *Conn) NextWriter(messageType int) (io.WriteCloser, error) {
	switch messageType {
	case TextMessage, BinaryMessage, CloseMessage, PingMessage, PongMessage:
	default:
		return nil, errBadMessageType
	}
	if c.rd.mem {
		if err := c.engineRoom(); err != nil {
			return nil, err
		}
	}
	c.msgMu.Lock()
	c.lockFrame()
	err := c.writeState()
	c.unlockFrame()
	if err != nil {
		c.msgMu.Unlock()
		return nil, err
	}
	if c.writer == nil {
		c.writer = &messageWriter{c: c}
	}
	w := c.writer
	w.msgType = messageType
	w.op = frame.Opcode(messageType)
	w.n = frame.MaxHeaderSize
	w.flushed, w.closed, w.err = false, false, nil
	w.utf8.Reset()
	w.held = 0
	w.rsv1 = false
	w.fw = nil
	w.mayCompress = false
	if !isControl(messageType) && c.compressing(-1) {
		if c.deflate.threshold > 0 {
			// Decide once the message reaches the threshold; a shorter one
			// goes out uncompressed, as with WriteMessage.
			w.mayCompress = true
		} else {
			w.startCompression()
		}
	}
	return w, nil
}

// startCompression makes the rest of the message compressed, starting
// with what was buffered so far.
func (w *messageWriter) startCompression() {
	w.mayCompress = false
	w.rsv1 = true
	w.fw = w.c.getDeflater(compressSink{w})
	if w.bufp == nil || w.n == frame.MaxHeaderSize {
		return
	}
	// The compressed output fills a fresh buffer; the plain bytes are
	// compressed from the old one.
	plain, n := w.bufp, w.n
	w.bufp, w.n = w.c.getWriteBuf(), frame.MaxHeaderSize
	if _, err := w.fw.Write((*plain)[frame.MaxHeaderSize:n]); err != nil {
		w.err = err
	}
	w.c.putWriteBuf(plain)
}

// messageWriter is the writer NextWriter returns; it lives inside the Conn
// and holds msgMu from NextWriter until Close.
type messageWriter struct {
	c       *Conn
	msgType int
	bufp    *[]byte // nil until the first Write
	n       int     // end of the buffered payload; it starts after header room
	err     error
	op      frame.Opcode // opcode of the next frame
	flushed bool         // a frame of this message went out
	closed  bool
	utf8    utf8stream.Validator

	// Compression (RFC 7692): fw writes into the frames through
	// compressSink, which holds back the last 4 bytes of output because
	// the final flush's 00 00 ff ff must not be sent (§7.2.1).
	fw          *flate.Writer
	rsv1        bool // the next frame is the first of a compressed message
	mayCompress bool // compression waits for the message to reach the threshold
	tail        [4]byte
	held        int
}

type compressSink struct{ w *messageWriter }

func (s compressSink) Write(p []byte) (int, error) {
	w := s.w
	n := len(p)
	if w.held+len(p) <= len(w.tail) {
		w.held += copy(w.tail[w.held:], p)
		return n, nil
	}
	// Send what can no longer be among the last 4 bytes.
	keepFromP := min(len(p), len(w.tail))
	keepFromTail := len(w.tail) - keepFromP
	if out := w.held - keepFromTail; out > 0 {
		if err := w.appendPayload(w.tail[:out]); err != nil {
			return 0, err
		}
		copy(w.tail[:], w.tail[out:w.held])
		w.held = keepFromTail
	}
	if err := w.appendPayload(p[:len(p)-keepFromP]); err != nil {
		return 0, err
	}
	w.held += copy(w.tail[w.held:], p[len(p)-keepFromP:])
	return n, nil
}

func (w *messageWriter) Write(p []byte) (int, error) {
	if w.closed {
		return 0, errWriterClosed
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.msgType == TextMessage && !w.utf8.Write(p) {
		return 0, w.abort(errInvalidUTF8Write)
	}
	if isControl(w.msgType) && w.n-frame.MaxHeaderSize+len(p) > frame.MaxControlPayload {
		return 0, errControlTooLarge
	}
	// Decide before a first frame would go out: RSV1 marks only a
	// message's first frame (RFC 7692 §6).
	if total := w.n - frame.MaxHeaderSize + len(p); w.mayCompress && (total >= w.c.deflate.threshold || total > w.c.writeBufSize) {
		if w.startCompression(); w.err != nil {
			return 0, w.err
		}
	}
	if w.fw != nil {
		if _, err := w.fw.Write(p); err != nil {
			w.err = err
			return 0, err
		}
		return len(p), nil
	}
	if len(p) >= w.c.writeBufSize && !isControl(w.msgType) {
		// A large write becomes one frame sent from p itself, not a
		// series of buffer-sized frames.
		if w.bufp == nil {
			w.bufp = w.c.getWriteBuf()
		}
		if err := w.flushWith(false, p); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	if err := w.appendPayload(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// appendPayload adds bytes to the frame buffer, sending full frames.
func (w *messageWriter) appendPayload(p []byte) error {
	for len(p) > 0 {
		if w.bufp == nil {
			w.bufp = w.c.getWriteBuf()
		}
		buf := *w.bufp
		if w.n == len(buf) {
			if err := w.flush(false); err != nil {
				return err
			}
		}
		k := copy(buf[w.n:], p)
		w.n += k
		p = p[k:]
	}
	return nil
}

// flush sends the buffered payload as one frame.
func (w *messageWriter) flush(fin bool) error { return w.flushWith(fin, nil) }

// flushWith sends the buffered payload followed by extra as one frame;
// extra goes out from the caller's slice, without a copy when unmasked.
func (w *messageWriter) flushWith(fin bool, extra []byte) error {
	c := w.c
	var buf []byte
	if w.bufp != nil {
		buf = *w.bufp
	} else {
		var empty [frame.MaxHeaderSize]byte
		buf = empty[:]
	}
	payload := buf[frame.MaxHeaderSize:w.n]
	h := frame.Header{Fin: fin, Rsv1: w.rsv1, Opcode: w.op, Length: int64(len(payload) + len(extra))}
	w.rsv1 = false
	pos := 0
	if !c.isServer {
		h.Masked = true
		h.Key = newMaskKey()
		pos = mask.Apply(h.Key, 0, payload)
	}
	start := frame.MaxHeaderSize - h.Size()
	frame.Put(buf[start:], &h)
	c.lockFrame()
	err := c.writeState()
	if err == nil {
		if !h.Masked && len(extra) > 0 {
			err = c.writeVec(buf[start:w.n], extra)
			extra = nil
		} else {
			err = c.writeRaw(buf[start:w.n])
		}
	}
	for rest := extra; err == nil && len(rest) > 0; {
		// Mask through the buffer: the caller's bytes stay untouched.
		k := copy(buf[frame.MaxHeaderSize:], rest)
		chunk := buf[frame.MaxHeaderSize : frame.MaxHeaderSize+k]
		pos = mask.Apply(h.Key, pos, chunk)
		err = c.writeRaw(chunk)
		rest = rest[k:]
	}
	c.unlockFrame()
	w.op = frame.OpContinuation
	w.n = frame.MaxHeaderSize
	w.flushed = true
	if err != nil {
		w.err = err
	}
	return err
}

// abort gives up the message after the application wrote invalid text. If
// no frame went out the connection is untouched; otherwise the peer holds
// part of a message that can never be finished and the connection is
// failed with 1011.
func (w *messageWriter) abort(err error) error {
	w.err = err
	if w.flushed {
		c := w.c
		c.lockFrame()
		if c.writeErr == nil {
			c.writeErr = err
		}
		c.unlockFrame()
		// The close frame may still go out: writeErr only stops data.
		c.closeSentBy(CloseInternalServerErr, "invalid UTF-8 written")
	}
	return err
}

func (w *messageWriter) Close() error {
	if w.closed {
		return errWriterClosed
	}
	c := w.c
	err := w.err
	if err == nil {
		switch {
		case isControl(w.msgType):
			var payload []byte
			if w.bufp != nil {
				payload = (*w.bufp)[frame.MaxHeaderSize:w.n]
			}
			err = c.writeControl(w.msgType, payload, time.Time{})
		case w.msgType == TextMessage && !w.utf8.Complete():
			err = w.abort(errInvalidUTF8Write)
		default:
			if w.fw != nil {
				err = w.fw.Flush()
				// What is held back is the flush's 00 00 ff ff.
				w.held = 0
			}
			if err == nil {
				err = w.flush(true)
			}
		}
	}
	if w.fw != nil {
		c.putDeflater(w.fw)
		w.fw = nil
	}
	if w.bufp != nil {
		c.putWriteBuf(w.bufp)
		w.bufp = nil
	}
	w.closed = true
	c.msgMu.Unlock()
	return err
}

// ReadFrom copies r into the message through a pooled buffer, so that
// io.Copy allocates nothing and large reads become large frames.
func (w *messageWriter) ReadFrom(r io.Reader) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	return io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{r}, *bp)
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func isControl(messageType int) bool { return messageType >= CloseMessage }

// newMaskKey returns a fresh masking key. RFC 6455 §5.3 asks for an
// unpredictable key per frame: math/rand/v2's generator is ChaCha8, seeded
// from the system's entropy.
func newMaskKey() [4]byte {
	v := rand.Uint32()
	return [4]byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)}
}

// Write buffers hold a frame header in front of WriteBufferSize bytes of
// payload, and are pooled between messages so an idle connection holds none.
var writePools = sizedPools{defaultSize: defaultWriteBufferSize + frame.MaxHeaderSize}
