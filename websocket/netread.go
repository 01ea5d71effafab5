package websocket

import (
	"errors"
	"io"
	"net"
	"syscall"
	"time"
)

// netReader buffers reads from the network connection. On a socket whose
// descriptor is reachable (TCP, Unix) it waits for data through
// syscall.RawConn with no buffer held, so an idle connection pins no read
// buffer: the buffer is taken from a pool when bytes arrive and returned
// when the connection would block again with nothing left in it.
type netReader struct {
	c    *Conn
	buf  []byte  // nil while idle on a raw connection
	bufp *[]byte // pool handle of buf
	r, w int

	// State for the raw read callbacks, set before raw.Read.
	rawFn     func(fd uintptr) bool // bound once: a closure per read would allocate
	waitFn    func(fd uintptr) bool
	dst       []byte // where the callback reads: nil = the buffer
	rawErr    error
	waitingAt int64  // when this read started to wait; 0 = has not waited
	rawN      int32  // bytes the callback read
	size      int32  // immutable buffer size
	slot      uint32 // where this connection starts looking in the bufSlots caches
	needBuf   bool   // the callback found no cached buffer
	idle      bool   // the callback could not cache its buffer before waiting
	peeked    bool   // waitFn has looked for data once

	// mem: an event loop owns the connection (engine.go) and lends buf,
	// its bytes, before each run of the reader. A read that needs more
	// returns errNeedInput instead of waiting; buf is never pooled here.
	mem bool
}

func (nr *netReader) init(c *Conn, conn net.Conn, size int, buffered []byte) {
	nr.c = c
	nr.size = int32(size)
	nr.slot = nextSlot.Add(1) * slotStride
	if sc, ok := conn.(syscall.Conn); ok && rawIO {
		if raw, err := sc.SyscallConn(); err == nil {
			c.raw = raw
			nr.rawFn = nr.rawRead
			nr.waitFn = nr.rawWait
		}
	}
	if len(buffered) > 0 {
		countBuffer(&readBufsOut, 1)
		nr.bufp = readPools.get(max(size, len(buffered)), nr.slot)
		nr.buf = *nr.bufp
		nr.w = copy(nr.buf, buffered)
	}
}

// buffered returns the bytes read but not yet consumed.
func (nr *netReader) buffered() []byte { return nr.buf[nr.r:nr.w] }

// consume marks n buffered bytes as used.
func (nr *netReader) consume(n int) {
	nr.r += n
	if nr.r == nr.w {
		nr.r, nr.w = 0, 0
	}
}

// more reads once more, with room in the buffer for n (<= size) bytes
// from the read position. The caller parses again after each read, so a
// header is judged by every byte that has come, however the reads split
// it. A frame has begun, so its bound applies (progress.go).
func (nr *netReader) more(n int) error {
	if nr.buf != nil && nr.r > 0 && len(nr.buf)-nr.r < n {
		nr.w = copy(nr.buf, nr.buf[nr.r:nr.w])
		nr.r = 0
	}
	nr.c.armProgress()
	return nr.fill()
}

// fill reads once from the network into the free part of the buffer.
func (nr *netReader) fill() error {
	nr.c.beforeNetworkRead()
	for {
		n, err := nr.fillOnce()
		if err == nil {
			nr.w += n
			nr.c.creditProgress(n)
			return nil
		}
		if retry, err := nr.c.progressTimeout(err); !retry {
			return err
		}
	}
}

func (nr *netReader) fillOnce() (int, error) {
	if nr.c.raw != nil {
		nr.dst = nil
		for {
			n, err := nr.rawReadOnce()
			switch err {
			case errNeedBuffer:
				nr.take()
			case errIdle:
				nr.give()
				if err := nr.waitIdle(); err != nil {
					return 0, err
				}
			default:
				return n, err
			}
		}
	}
	if nr.mem {
		return 0, nr.c.needInput()
	}
	if nr.buf == nil {
		nr.take()
	}
	nr.c.hb.waitStart.Store(monoNow())
	n, err := nr.c.conn.Read(nr.buf[nr.w:])
	nr.c.hb.waitStart.Store(0)
	if n > 0 {
		return n, nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return 0, err
}

// read reads message payload into p: from the buffer when it holds data,
// straight from the network when p is at least a buffer long.
func (nr *netReader) read(p []byte) (int, error) {
	if nr.r < nr.w {
		n := copy(p, nr.buf[nr.r:nr.w])
		nr.consume(n)
		return n, nil
	}
	nr.c.armProgress()
	if len(p) < int(nr.size) || nr.mem {
		if err := nr.fill(); err != nil {
			return 0, err
		}
		n := copy(p, nr.buf[nr.r:nr.w])
		nr.consume(n)
		return n, nil
	}
	nr.c.beforeNetworkRead()
	for {
		n, err := nr.readOnce(p)
		if err == nil {
			nr.c.creditProgress(n)
			return n, nil
		}
		if retry, err := nr.c.progressTimeout(err); !retry {
			return 0, err
		}
	}
}

// readOnce reads into p straight from the network.
func (nr *netReader) readOnce(p []byte) (int, error) {
	if nr.c.raw != nil {
		nr.dst = p
		n, err := nr.rawReadOnce()
		for err == errIdle {
			nr.give()
			if err = nr.waitIdle(); err == nil {
				n, err = nr.rawReadOnce()
			}
		}
		return n, err
	}
	nr.c.hb.waitStart.Store(monoNow())
	n, err := nr.c.conn.Read(p)
	nr.c.hb.waitStart.Store(0)
	if n > 0 {
		return n, nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return 0, err
}

// rawReadOnce reads at least one byte through the raw connection, waiting
// for readability in the runtime poller with no buffer held.
//
// The callbacks run at the bottom of the goroutine's stack, and an idle
// connection's goroutine waits there: anything deep they call (a pool's
// slow path, an allocation) grows the stack past its 2 KiB minimum for
// good. So they only read and trade buffers through the bufSlots cache, one atomic
// operation each; the pool, allocation and the rare fallbacks happen here,
// one frame up from the wait.
func (nr *netReader) rawReadOnce() (int, error) {
	nr.rawN, nr.rawErr, nr.waitingAt = 0, nil, 0
	nr.needBuf, nr.idle = false, false
	err := nr.c.raw.Read(nr.rawFn)
	if err == nil && nr.idle {
		// The cache was full: the caller pools the buffer, then this waits
		// holding none. waitFn looks for data before it waits, because
		// starting a raw read forgets readiness the poller saw before it.
		return 0, errIdle
	}
	if nr.waitingAt != 0 {
		nr.c.hb.waitStart.Store(0)
	}
	if err != nil {
		return 0, err
	}
	if nr.needBuf {
		return 0, errNeedBuffer
	}
	if nr.rawErr != nil {
		return 0, &net.OpError{Op: "read", Net: nr.c.conn.LocalAddr().Network(), Source: nr.c.conn.LocalAddr(), Addr: nr.c.conn.RemoteAddr(), Err: nr.rawErr}
	}
	if nr.rawN == 0 {
		return 0, io.EOF
	}
	return int(nr.rawN), nil
}

// rawRead is the syscall.RawConn read callback: false asks the poller to
// wait for readability and call again; true with needBuf or idle set asks
// rawReadOnce for help.
func (nr *netReader) rawRead(fd uintptr) bool {
	dst := nr.dst
	if dst == nil {
		if nr.buf == nil && !nr.takeCached() {
			nr.needBuf = true
			return true
		}
		dst = nr.buf[nr.w:]
	}
	for {
		n, err := sysRead(fd, dst)
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.EAGAIN {
			if nr.waitingAt == 0 {
				nr.waitingAt = monoNow()
				nr.c.hb.waitStart.Store(nr.waitingAt)
			}
			if nr.buf != nil && nr.r == nr.w && !nr.giveCached() {
				nr.idle = true
				return true
			}
			return false
		}
		if err != nil {
			nr.rawErr = err
			return true
		}
		nr.rawN = int32(n)
		return true
	}
}

// rawReadOnce's answers that ask its caller for help: the take and give of
// the pool (and any allocation) happen one or two frames further from the
// bottom of the stack than the callbacks.
var (
	errNeedBuffer = errors.New("websocket: read needs a buffer")
	errIdle       = errors.New("websocket: read waits without a buffer")
)

// waitIdle waits, holding no buffer, until the peer sends something.
func (nr *netReader) waitIdle() error {
	nr.peeked = false
	err := nr.c.raw.Read(nr.waitFn)
	if nr.waitingAt != 0 {
		nr.c.hb.waitStart.Store(0)
	}
	return err
}

// rawWait is the callback that waits for data without a buffer: it peeks
// once, then reports readiness when the poller wakes it.
func (nr *netReader) rawWait(fd uintptr) bool {
	if nr.peeked {
		return true // woken; the read that follows finds out what came
	}
	nr.peeked = true
	return sysPeek(fd)
}

// take and give trade the buffer with the cache or, failing that, the
// pool. The RawConn callbacks use takeCached and giveCached, which never
// reach the pool (see rawReadOnce).
func (nr *netReader) take() {
	if !nr.takeCached() {
		nr.hold(readPools.get(int(nr.size), nr.slot))
	}
}

func (nr *netReader) give() {
	if !nr.giveCached() {
		readPools.put(nr.release(), nr.slot)
	}
}

func (nr *netReader) takeCached() bool {
	b := readPools.cached(int(nr.size), nr.slot)
	if b != nil {
		nr.hold(b)
	}
	return b != nil
}

func (nr *netReader) giveCached() bool {
	if !readPools.cache(nr.bufp, nr.slot) {
		return false
	}
	nr.release()
	return true
}

func (nr *netReader) hold(b *[]byte) {
	countBuffer(&readBufsOut, 1)
	nr.bufp, nr.buf = b, (*b)[:cap(*b)]
	nr.r, nr.w = 0, 0
}

func (nr *netReader) release() *[]byte {
	countBuffer(&readBufsOut, -1)
	b := nr.bufp
	nr.buf, nr.bufp = nil, nil
	nr.r, nr.w = 0, 0
	return b
}

// releaseIfIdle returns an empty buffer to the pool between messages. A
// plain net.Conn would hold one again while it waits, so it keeps its own.
func (nr *netReader) releaseIfIdle() {
	if nr.c.raw != nil && nr.buf != nil && nr.r == nr.w {
		nr.give()
	}
}

// drop returns the buffer to the pool for good: the connection is done.
func (nr *netReader) drop() {
	if nr.mem {
		nr.buf, nr.r, nr.w = nil, 0, 0 // the loop's, not ours
		return
	}
	if nr.buf != nil {
		nr.give()
	}
}

// discardToEOF reads and drops input until end of stream, an error, the
// deadline, or maxLingerBytes — whichever comes first. The caller has set
// the deadline on the connection too; checking it here as well bounds the
// loop for connections whose deadlines do nothing.
func (nr *netReader) discardToEOF(deadline time.Time) {
	nr.drop()
	if nr.mem {
		nr.c.conn.(*loopConn).lingerUntil(deadline) // the loop discards
		return
	}
	var scratch [512]byte
	for total := 0; total < maxLingerBytes && time.Now().Before(deadline); {
		var n int
		var err error
		if nr.c.raw != nil {
			nr.dst = scratch[:]
			n, err = nr.rawReadOnce()
		} else {
			n, err = nr.c.conn.Read(scratch[:])
		}
		if err != nil {
			return
		}
		total += n
	}
}

// maxLingerBytes bounds what a closing connection reads from a peer that
// keeps sending.
const maxLingerBytes = 1 << 20
