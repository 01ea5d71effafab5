package websocket

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
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
	conn net.Conn
	raw  syscall.RawConn // nil: plain conn.Read, buffer held while waiting
	size int             // immutable buffer size
	buf  []byte          // nil while idle on a raw connection
	bufp *[]byte         // pool handle of buf
	r, w int

	// State for the raw read callback, set before raw.Read.
	rawFn     func(fd uintptr) bool // bound once: a closure per read would allocate
	dst       []byte                // where the callback reads: nil = the buffer
	rawN      int
	rawErr    error
	waitingAt int64 // when this read started to wait; 0 = has not waited
}

func (nr *netReader) init(c *Conn, conn net.Conn, size int, buffered []byte) {
	nr.c = c
	nr.conn = conn
	nr.size = size
	if sc, ok := conn.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			nr.raw = raw
			nr.rawFn = nr.rawRead
		}
	}
	if len(buffered) > 0 {
		countBuffer(&readBufsOut, 1)
		nr.bufp = getReadBuf(max(size, len(buffered)))
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

// ensure makes at least n (<= size) bytes available in the buffer.
func (nr *netReader) ensure(n int) error {
	for nr.w-nr.r < n {
		if nr.buf != nil && nr.r > 0 && len(nr.buf)-nr.r < n {
			nr.w = copy(nr.buf, nr.buf[nr.r:nr.w])
			nr.r = 0
		}
		if err := nr.fill(); err != nil {
			return err
		}
	}
	return nil
}

// fill reads once from the network into the free part of the buffer.
func (nr *netReader) fill() error {
	nr.c.beforeNetworkRead()
	if nr.raw != nil {
		nr.dst = nil
		n, err := nr.rawReadOnce()
		if err != nil {
			return err
		}
		nr.w += n
		return nil
	}
	if nr.buf == nil {
		nr.take()
	}
	nr.c.hb.waitStart.Store(monoNow())
	n, err := nr.conn.Read(nr.buf[nr.w:])
	nr.c.hb.waitStart.Store(0)
	nr.w += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// read reads into p: from the buffer when it holds data, straight from the
// network when p is at least a buffer long.
func (nr *netReader) read(p []byte) (int, error) {
	if nr.r < nr.w {
		n := copy(p, nr.buf[nr.r:nr.w])
		nr.consume(n)
		return n, nil
	}
	if len(p) >= nr.size {
		nr.c.beforeNetworkRead()
		if nr.raw != nil {
			nr.dst = p
			return nr.rawReadOnce()
		}
		nr.c.hb.waitStart.Store(monoNow())
		n, err := nr.conn.Read(p)
		nr.c.hb.waitStart.Store(0)
		if n > 0 {
			return n, nil
		}
		if err == nil {
			err = io.ErrNoProgress
		}
		return 0, err
	}
	if err := nr.fill(); err != nil {
		return 0, err
	}
	n := copy(p, nr.buf[nr.r:nr.w])
	nr.consume(n)
	return n, nil
}

// rawReadOnce reads at least one byte through the raw connection, waiting
// for readability in the runtime poller with no buffer held.
func (nr *netReader) rawReadOnce() (int, error) {
	nr.rawN, nr.rawErr, nr.waitingAt = 0, nil, 0
	err := nr.raw.Read(nr.rawFn)
	if nr.waitingAt != 0 {
		nr.c.hb.waitStart.Store(0)
	}
	if err != nil {
		return 0, err
	}
	if nr.rawErr != nil {
		return 0, &net.OpError{Op: "read", Net: nr.conn.LocalAddr().Network(), Source: nr.conn.LocalAddr(), Addr: nr.conn.RemoteAddr(), Err: nr.rawErr}
	}
	if nr.rawN == 0 {
		return 0, io.EOF
	}
	return nr.rawN, nil
}

// rawRead is the syscall.RawConn read callback: false asks the poller to
// wait for readability and call again.
func (nr *netReader) rawRead(fd uintptr) bool {
	dst := nr.dst
	if dst == nil {
		if nr.buf == nil {
			nr.take()
		}
		dst = nr.buf[nr.w:]
	}
	for {
		n, err := syscall.Read(int(fd), dst)
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.EAGAIN {
			if nr.buf != nil && nr.r == nr.w {
				// Idle: give the buffer back while the poller waits.
				nr.give()
			}
			if nr.waitingAt == 0 {
				nr.waitingAt = monoNow()
				nr.c.hb.waitStart.Store(nr.waitingAt)
			}
			return false
		}
		if err != nil {
			nr.rawErr = err
			return true
		}
		nr.rawN = n
		return true
	}
}

func (nr *netReader) take() {
	countBuffer(&readBufsOut, 1)
	nr.bufp = getReadBuf(nr.size)
	nr.buf = *nr.bufp
	nr.r, nr.w = 0, 0
}

func (nr *netReader) give() {
	countBuffer(&readBufsOut, -1)
	putReadBuf(nr.bufp)
	nr.buf, nr.bufp = nil, nil
	nr.r, nr.w = 0, 0
}

// releaseIfIdle returns an empty buffer to the pool between messages. A
// plain net.Conn would hold one again while it waits, so it keeps its own.
func (nr *netReader) releaseIfIdle() {
	if nr.raw != nil && nr.buf != nil && nr.r == nr.w {
		nr.give()
	}
}

// drop returns the buffer to the pool for good: the connection is done.
func (nr *netReader) drop() {
	if nr.buf != nil {
		nr.give()
	}
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

func getReadBuf(size int) *[]byte { return readPools.get(size) }

func putReadBuf(b *[]byte) {
	if b == nil {
		return
	}
	*b = (*b)[:cap(*b)]
	readPools.put(b)
}

// sizedPools pools *[]byte by length. The default size has a pool of its
// own, found without the map lookup that every other size costs.
type sizedPools struct {
	defaultSize int
	def         sync.Pool
	other       sync.Map // int -> *sync.Pool
}

func (sp *sizedPools) pool(size int, create bool) *sync.Pool {
	if size == sp.defaultSize {
		return &sp.def
	}
	if p, ok := sp.other.Load(size); ok {
		return p.(*sync.Pool)
	}
	if !create {
		return nil
	}
	p, _ := sp.other.LoadOrStore(size, new(sync.Pool))
	return p.(*sync.Pool)
}

func (sp *sizedPools) get(size int) *[]byte {
	if p := sp.pool(size, false); p != nil {
		if b, ok := p.Get().(*[]byte); ok {
			return b
		}
	}
	b := make([]byte, size)
	return &b
}

func (sp *sizedPools) put(b *[]byte) { sp.pool(len(*b), true).Put(b) }

// discardToEOF reads and drops input until end of stream, an error, the
// deadline, or maxLingerBytes — whichever comes first. The caller has set
// the deadline on the connection too; checking it here as well bounds the
// loop for connections whose deadlines do nothing.
func (nr *netReader) discardToEOF(deadline time.Time) {
	nr.drop()
	var scratch [512]byte
	for total := 0; total < maxLingerBytes && time.Now().Before(deadline); {
		var n int
		var err error
		if nr.raw != nil {
			nr.dst = scratch[:]
			n, err = nr.rawReadOnce()
		} else {
			n, err = nr.conn.Read(scratch[:])
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
