package websocket

import (
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"time"

	"github.com/latchws/latch/internal/frame"
	"github.com/latchws/latch/internal/mask"
)

// beginRead makes the caller the connection's reader, or reports that
// another goroutine is reading.
func (c *Conn) beginRead() error {
	if !c.appReading.CompareAndSwap(false, true) {
		if c.rd.mem {
			return ErrEngineRead
		}
		return ErrConcurrentRead
	}
	// Close may be draining the connection; it gives the role back when done.
	c.readMu.Lock()
	return nil
}

// errNeedInput is advance's answer between messages when nothing is
// buffered: the read methods then wait in awaitInput and try again.
var errNeedInput = errors.New("websocket: no input buffered")

// awaitInput waits for the peer between messages, called by the read
// methods themselves so that the wait happens as high in the call stack as
// possible. An idle connection's goroutine parks here, and the runtime
// never shrinks a grown stack while the goroutine waits deep: keeping the
// wait and the deep work (control frames, pongs) apart keeps idle
// goroutines at the minimum 2 KiB stack instead of 4 KiB. A network error
// is kept in readErr for the read that follows. The caller holds the read
// role.
func (c *Conn) awaitInput() {
	if c.progressDeadline != 0 {
		c.endProgress() // between messages: no message bound
	}
	if c.readErr == nil && c.msgType == 0 && c.rd.r == c.rd.w {
		if err := c.rd.fill(); err != nil {
			c.netReadError(err)
		}
	}
}

func (c *Conn) endRead() {
	c.readMu.Unlock()
	c.appReading.Store(false)
}

// NextReader returns the next data message received from the peer. The
// returned messageType is either [TextMessage] or [BinaryMessage].
//
// There can be at most one open reader on a connection: NextReader discards
// the rest of the previous message, and a reader must not be used after the
// next call to NextReader.
//
// Control messages are handled inside the read methods by the ping, pong and
// close handlers. Once a read method returns an error, every later read
// returns the same error: applications must break out of their read loop.
func (c *Conn) NextReader() (messageType int, r io.Reader, err error) {
	if err := c.beginRead(); err != nil {
		return 0, nil, err
	}
	defer c.endRead()
	if err := c.startMessage(); err != nil {
		return 0, nil, err
	}
	return c.msgType, &c.reader, nil
}

// startMessage moves to the first frame of the next data message, handling
// control frames on the way. It waits for input itself (awaitInput) rather
// than deep in the frame reader, and is called straight from the read
// methods, so that both the wait and the control frame handling happen
// with a shallow stack. The caller holds the read role.
func (c *Conn) startMessage() error {
	for {
		c.awaitInput()
		if err := c.nextMessage(); err != errNeedInput {
			return err
		}
	}
}

// nextMessage skips what is left of the current message and reads up to the
// first frame of the next one. The caller holds readMu.
func (c *Conn) nextMessage() error {
	if c.readErr != nil {
		return c.readErr
	}
	if c.msgType != 0 {
		if err := c.skipMessage(); err != nil {
			return err
		}
	}
	return c.advance()
}

// skipMessage reads the rest of the current message, still validating it.
func (c *Conn) skipMessage() error {
	var scratch [512]byte
	for c.msgType != 0 {
		if _, err := c.readPayload(scratch[:]); err != nil && err != io.EOF {
			return err
		}
	}
	return nil
}

// messageReader is the io.Reader NextReader returns. It lives inside the
// Conn so that reading a message allocates nothing.
type messageReader struct{ c *Conn }

func (r *messageReader) Read(p []byte) (int, error) {
	c := r.c
	if err := c.beginRead(); err != nil {
		return 0, err
	}
	defer c.endRead()
	if c.readErr != nil {
		return 0, c.readErr
	}
	if c.msgType == 0 {
		return 0, io.EOF
	}
	return c.readPayload(p)
}

// readPayload reads message payload into p: inflated when the message is
// compressed, validated when it is text. It returns io.EOF, possibly with
// n > 0, when the message is complete. The caller holds readMu.
func (c *Conn) readPayload(p []byte) (int, error) {
	var n int
	var err error
	if c.msgCompressed {
		n, err = c.inflate(p)
	} else {
		n, err = c.readFrames(p)
	}
	if err != nil && err != io.EOF {
		return 0, err
	}
	if n > 0 {
		if err := c.checkText(p[:n]); err != nil {
			return 0, err
		}
	}
	if err == io.EOF {
		return n, c.endMessage()
	}
	return n, nil
}

// readFrames reads the unmasked payload of the current message as it is on
// the wire, crossing frame boundaries and handling control frames between
// them. It returns io.EOF, possibly with n > 0, at the end of the final
// frame. The caller holds readMu.
func (c *Conn) readFrames(p []byte) (int, error) {
	for c.frameLeft == 0 {
		if c.frameFin {
			return 0, io.EOF
		}
		if err := c.advance(); err != nil {
			return 0, err
		}
	}
	if len(p) == 0 {
		return 0, nil
	}
	if int64(len(p)) > c.frameLeft {
		p = p[:c.frameLeft]
	}
	n, err := c.rd.read(p)
	if err != nil {
		return 0, c.netReadError(err)
	}
	c.unmaskPayload(p[:n])
	if c.frameLeft == 0 && c.frameFin {
		return n, io.EOF
	}
	return n, nil
}

// unmaskPayload unmasks p, the next payload bytes of the current frame, in
// place, and counts them as read.
func (c *Conn) unmaskPayload(p []byte) {
	if c.frameMasked {
		c.maskPos = uint8(mask.Apply(c.frameKey, int(c.maskPos), p))
	}
	c.frameLeft -= int64(len(p))
}

// checkText validates p, the next payload bytes of the current message,
// when the message is text.
func (c *Conn) checkText(p []byte) error {
	if c.msgType == TextMessage && !c.utf8.Write(p) {
		// RFC 6455 §8.1: fail at once, not when the message ends.
		return c.failProtocol(frame.CloseInvalidPayload, "invalid UTF-8 in text message")
	}
	return nil
}

// endMessage finishes the current message and returns io.EOF.
func (c *Conn) endMessage() error {
	if c.msgType == TextMessage && !c.utf8.Complete() {
		return c.failProtocol(frame.CloseInvalidPayload, "text message ends inside a UTF-8 sequence")
	}
	c.msgType = 0
	if c.progressDeadline != 0 {
		c.endProgress()
	}
	c.rd.releaseIfIdle()
	return io.EOF
}

// advance reads frames until one that carries data of a message: the first
// frame of a new message when none is in progress, else a continuation.
// Control frames met on the way are handled. The caller holds readMu.
func (c *Conn) advance() error {
	for {
		if c.msgType == 0 && c.rd.r == c.rd.w {
			return errNeedInput // the caller waits higher up (awaitInput)
		}
		h, err := c.readHeader()
		if err != nil {
			return err
		}
		// RFC 6455 §5.2: RSV bits are 0 unless an extension gives them a
		// meaning; permessage-deflate marks a message's first frame with
		// RSV1 (RFC 7692 §6).
		if h.Rsv2 || h.Rsv3 {
			return c.failProtocol(frame.CloseProtocolError, "reserved bits set without a negotiated extension")
		}
		if h.Rsv1 && (c.deflate == nil || h.Opcode.IsControl() || h.Opcode == frame.OpContinuation) {
			return c.failProtocol(frame.CloseProtocolError, "RSV1 set on a frame that cannot be compressed")
		}
		// RFC 6455 §5.1: clients mask every frame, servers none.
		if h.Masked != c.isServer {
			if c.isServer {
				return c.failProtocol(frame.CloseProtocolError, "client frame is not masked")
			}
			return c.failProtocol(frame.CloseProtocolError, "server frame is masked")
		}
		if h.Opcode.IsControl() {
			if err := c.handleControl(&h); err != nil {
				return err
			}
			continue
		}
		// RFC 6455 §5.4: fragments of one message are not interleaved.
		if h.Opcode == frame.OpContinuation {
			if c.msgType == 0 {
				return c.failProtocol(frame.CloseProtocolError, "continuation frame outside a fragmented message")
			}
		} else {
			if c.msgType != 0 {
				return c.failProtocol(frame.CloseProtocolError, "new message started inside a fragmented message")
			}
			c.msgType = int(h.Opcode)
			c.msgRead = 0
			c.msgCompressed = h.Rsv1
			c.utf8.Reset()
		}
		if limit := c.readLimit.Load(); limit > 0 && h.Length > limit-c.msgRead {
			c.failWith(ErrReadLimit, frame.CloseTooBig, "message too big")
			return ErrReadLimit
		}
		c.msgRead += h.Length
		c.frameLeft = h.Length
		c.frameFin = h.Fin
		c.frameMasked = h.Masked
		c.frameKey = h.Key
		c.maskPos = 0
		return nil
	}
}

// readHeader reads one frame header.
func (c *Conn) readHeader() (frame.Header, error) {
	for {
		h, n, done, err := frame.Parse(c.rd.buffered())
		if err != nil {
			var fe *frame.Error
			if errors.As(err, &fe) {
				return h, c.failProtocol(int(fe.Code), fe.Reason)
			}
			return h, c.failProtocol(frame.CloseProtocolError, err.Error())
		}
		need := 2
		if done {
			// A control frame is taken with its payload (at most 125
			// bytes, RFC 6455 §5.5), so that handleControl never waits
			// after the header is consumed: an engine can stop between
			// any two frames and go on when more input arrives.
			if !h.Opcode.IsControl() || int64(len(c.rd.buffered())-n) >= h.Length {
				c.rd.consume(n)
				return h, nil
			}
			need = n + int(h.Length)
		} else if b := c.rd.buffered(); len(b) >= 2 {
			need = frameHeaderSize(b)
		}
		if err := c.rd.more(need); err != nil {
			return h, c.netReadError(err)
		}
	}
}

// frameHeaderSize is the header length announced by its first two bytes.
func frameHeaderSize(b []byte) int {
	n := 2
	switch b[1] & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b[1]&0x80 != 0 {
		n += 4
	}
	return n
}

// handleControl reads a control frame's payload and acts on it.
func (c *Conn) handleControl(h *frame.Header) error {
	// The payload (at most 125 bytes, RFC 6455 §5.5) is used in place in
	// the read buffer: no copy, and no stack space on this deep path. It
	// stays valid until the next read from the network. readHeader has
	// buffered it.
	p := c.rd.buffered()[:h.Length]
	c.rd.consume(len(p))
	if h.Masked {
		mask.Apply(h.Key, 0, p)
	}
	switch h.Opcode {
	case frame.OpPing:
		if c.closeSent.Load() {
			return nil
		}
		if c.handlePing == nil {
			c.answerPing(p)
			return nil
		}
		return c.handlerError(c.handlePing(string(p)))
	case frame.OpPong:
		if c.handlePong == nil {
			return nil
		}
		return c.handlerError(c.handlePong(string(p)))
	default: // frame.OpClose
		return c.handleCloseFrame(p)
	}
}

func (c *Conn) handlerError(err error) error {
	if err != nil {
		c.readErr = err
		c.rd.drop()
	}
	return err
}

// handleCloseFrame answers the peer's close (RFC 6455 §5.5.1) and ends the
// connection: a server closes TCP at once, a client waits for the server to
// do so first (§7.1.1).
func (c *Conn) handleCloseFrame(payload []byte) error {
	code, reason, err := frame.ParseClose(payload)
	if err != nil {
		var fe *frame.Error
		if errors.As(err, &fe) {
			return c.failProtocol(int(fe.Code), fe.Reason)
		}
		return c.failProtocol(frame.CloseProtocolError, err.Error())
	}
	c.closeReceived.Store(true)
	herr := c.CloseHandler()(int(code), reason)
	if !c.closeSent.Load() {
		c.answerClose(int(code))
	}
	if !c.isServer {
		c.awaitServerClose()
	}
	c.closeNetConn(nil)
	if herr != nil {
		c.readErr = herr
	} else {
		c.readErr = &CloseError{Code: int(code), Text: reason}
	}
	c.rd.drop()
	return c.readErr
}

// failProtocol fails the connection for a protocol violation by the peer:
// a close frame with code goes out and reads return the error from now on.
func (c *Conn) failProtocol(code int, reason string) error {
	err := &protocolError{code: code, reason: reason}
	c.failWith(err, code, reason)
	return err
}

// The connection is closed here, not left to the application's Close:
// RFC 6455 §7.1.7 has the endpoint that fails a connection send a close
// frame and then close TCP at once. It half-closes at once; a short-lived
// goroutine then takes what the peer still sends until the peer closes too
// (bounded by the close timeout), so that unread input does not turn the
// close into a reset that could destroy the close frame before the peer
// reads it. The read returns its error without waiting for that.
func (c *Conn) failWith(err error, code int, reason string) {
	c.readErr = err
	c.rd.drop()
	c.stopHeartbeat()
	if len(reason) > frame.MaxControlPayload-2 {
		reason = reason[:frame.MaxControlPayload-2]
	}
	deadline := nowPlus(c.closeTimeoutDuration())
	c.sendClose(code, reason, deadline)
	closeWrite(c)
	c.conn.SetReadDeadline(deadline)
	if c.rd.mem {
		c.lingerAndClose(deadline) // the event loop lingers (engine.go)
		return
	}
	go c.lingerAndClose(deadline)
}

// failedPeer reports whether err is what failWith left in readErr: the
// connection failed the peer and lingers.
func failedPeer(err error) bool {
	_, protocol := err.(*protocolError)
	return protocol || err == ErrReadLimit || err == ErrMessageTimeout
}

// lingerAndClose drains the input of a failed connection, then closes it.
// Nothing else reads once readErr is set.
func (c *Conn) lingerAndClose(deadline time.Time) {
	c.rd.discardToEOF(deadline)
	c.closeNetConn(nil)
}

// netReadError records a failed network read as the sticky read error.
func (c *Conn) netReadError(err error) error {
	switch err {
	case errNeedInput:
		return err // an engine's input ran out; it feeds more later (engine.go)
	case errEngineStop:
		if c.readErr != nil {
			return c.readErr // why the engine stopped this read
		}
		err = net.ErrClosed
	}
	if err == ErrMessageTimeout {
		// RFC 6455 §7.4.1: 1008 is the generic code for a policy the peer
		// broke, here the message bound (progress.go).
		c.failWith(err, frame.ClosePolicyViolation, "message arrived too slowly")
		return err
	}
	if cause := c.closeCause.Load(); cause != nil {
		err = fmt.Errorf("%w: %w", *cause, err)
	} else if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		err = &CloseError{Code: CloseAbnormalClosure, Text: io.ErrUnexpectedEOF.Error()}
	}
	c.readErr = err
	c.rd.drop()
	// Nothing more can be read, so there is no peer left to judge.
	c.stopHeartbeat()
	return err
}

// readAllocFloor is the largest message a read allocates for at once,
// before its bytes arrive. A larger one takes memory as its bytes come
// (readLarge), so that a header announcing 16 MiB and one byte behind it
// holds 64 KiB, not 16 MiB.
const readAllocFloor = 64 << 10

// ReadMessage reads the next data message: NextReader followed by reading
// the whole message. A message sent as one frame is read into one
// allocation of exactly its size. Memory follows the bytes received, not
// the length a frame header announces: a frame of more than 64 KiB is
// allocated for only once half of it has arrived.
func (c *Conn) ReadMessage() (messageType int, p []byte, err error) {
	if err := c.beginRead(); err != nil {
		return 0, nil, err
	}
	defer c.endRead()
	if err := c.startMessage(); err != nil {
		return 0, nil, err
	}
	return c.readMessage(nil, true)
}

// AppendMessage reads the next data message like ReadMessage and appends
// its payload to dst, returning the extended slice. A loop that hands the
// slice back (mt, buf, err = c.AppendMessage(buf[:0])) reads without
// allocating once buf has grown to its largest message; the price is that
// the connection's goroutine keeps that buffer while it waits. On error dst
// is returned unchanged.
func (c *Conn) AppendMessage(dst []byte) (messageType int, p []byte, err error) {
	if err := c.beginRead(); err != nil {
		return 0, dst, err
	}
	defer c.endRead()
	if err := c.startMessage(); err != nil {
		return 0, dst, err
	}
	return c.readMessage(dst, false)
}

// readMessage appends the message startMessage found to dst. exact asks
// for a result that holds no more memory than the message needs. Caller
// holds the read role.
func (c *Conn) readMessage(dst []byte, exact bool) (messageType int, p []byte, err error) {
	messageType = c.msgType
	if c.frameFin && !c.msgCompressed {
		// The size is known: read straight into place.
		size := c.frameLeft
		if size > readAllocFloor && int64(cap(dst)-len(dst)) < size {
			p, err = c.readLarge(dst, size)
		} else {
			p = slices.Grow(dst, int(size))[:len(dst)+int(size)]
			_, err = c.readFull(p[len(dst):])
		}
		if err != nil {
			return messageType, dst, err
		}
		c.noteInputPending()
		return messageType, p, nil
	}
	if c.msgCompressed && exact {
		// The inflated size is unknown: inflate into a pooled buffer and
		// return one allocation of the exact size.
		bp := inflateBufs.Get().(*[]byte)
		buf, err := c.readRest((*bp)[:0])
		if err == nil {
			p = append(dst, buf...)
			c.noteInputPending()
		} else {
			p = dst
		}
		if cap(buf) <= 1<<20 {
			*bp = buf[:0]
			inflateBufs.Put(bp)
		}
		return messageType, p, err
	}
	if cap(dst)-len(dst) < 512 {
		dst = slices.Grow(dst, int(min(max(512, c.frameLeft), readAllocFloor)))
	}
	p, err = c.readRest(dst)
	if err != nil {
		return messageType, dst, err
	}
	c.noteInputPending()
	return messageType, p, nil
}

// readFull reads message payload until p is full or the message ends. The
// caller holds the read role.
func (c *Conn) readFull(p []byte) (int, error) {
	off := 0
	for off < len(p) {
		n, err := c.readPayload(p[off:])
		off += n
		if err == io.EOF {
			break
		}
		if err != nil {
			return off, err
		}
	}
	return off, nil
}

// readLarge appends a single-frame message of size bytes to dst with one
// allocation of exactly the size it needs, made only once half the
// message has arrived. The first half goes into chunks, each twice the one
// before, so the memory held follows the bytes received: at most about
// three times them, for the moment of the copy. The caller holds the read
// role.
func (c *Conn) readLarge(dst []byte, size int64) ([]byte, error) {
	var chunks [len(chunkPools)]*[]byte
	half := (size + 1) / 2
	var got int64
	n := 0
	defer func() {
		for i, bp := range chunks[:n] {
			putChunk(i, bp)
		}
	}()
	for ; n < len(chunks) && got < half; n++ {
		bp := getChunk(n)
		chunks[n] = bp
		k, err := c.readFull((*bp)[:min(int64(len(*bp)), half-got)])
		got += int64(k)
		if err != nil {
			return nil, err
		}
	}
	p := slices.Grow(dst, int(size))[:len(dst)+int(size)]
	off := len(dst)
	for _, bp := range chunks[:n] {
		off += copy(p[off:int64(len(dst))+got], *bp)
	}
	if _, err := c.readFull(p[off:]); err != nil {
		return nil, err
	}
	return p, nil
}

// readRest appends the rest of the current message to p. It grows p but
// never past one byte over the read limit, so a compressed message cannot
// make it allocate more than the limit allows.
func (c *Conn) readRest(p []byte) ([]byte, error) {
	limit := c.readLimit.Load()
	bound := int64(len(p)) + limit + 1 // what p may hold before the limit fails the read
	for {
		if len(p) == cap(p) {
			newCap := 2*cap(p) + 512
			if limit > 0 && int64(newCap) > bound {
				newCap = int(max(bound, int64(cap(p))+1))
			}
			p = c.growRead(p, newCap)
		}
		n, err := c.readPayload(p[len(p):cap(p)])
		p = p[:len(p)+n]
		if err == io.EOF {
			return p, nil
		}
		if err == errNeedInput {
			return p, err // an engine goes on with p when more arrives
		}
		if err != nil {
			return nil, err
		}
	}
}
