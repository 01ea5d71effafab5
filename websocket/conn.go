package websocket

import (
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/latchws/latch/internal/utf8stream"
)

const (
	defaultReadBufferSize  = 4096
	defaultWriteBufferSize = 4096

	// DefaultReadLimit bounds the size of a received message when the
	// application sets no limit of its own (see [Conn.SetReadLimit]). gorilla
	// has no default limit, which lets one peer exhaust server memory.
	DefaultReadLimit = 16 << 20

	// DefaultCloseTimeout bounds how long [Conn.Close] waits for the peer's
	// close frame before dropping the connection.
	DefaultCloseTimeout = 5 * time.Second

	// DefaultHeartbeatInterval is how long a server connection's read may wait
	// without hearing from the peer before the peer is pinged.
	DefaultHeartbeatInterval = 30 * time.Second

	// pongWait bounds the write of a pong answering a ping.
	pongWait = time.Second
)

// Conn represents a WebSocket connection.
//
// One goroutine at a time may read (NextReader, ReadMessage, ReadJSON and the
// io.Reader they return); a second concurrent read returns
// [ErrConcurrentRead]. Every write method, [Conn.Close] and [Conn.CloseNow]
// may be called from any number of goroutines at once: writes are serialised
// inside, one message at a time, and control frames may be sent between the
// frames of a message being written.
type Conn struct {
	conn        net.Conn // immutable (but for Engine.Serve, which takes it over)
	subprotocol string   // immutable
	// raw reaches the descriptor of a TCP or Unix connection, for reads
	// (netReader) and writes (writeOut); nil without one (TLS, HTTP/2).
	raw syscall.RawConn

	// Read side. Fields below readMu are owned by whoever holds readMu:
	// the application's reading goroutine, or Close draining the connection.
	// (Small fields are grouped to keep the struct, which every idle
	// connection holds, in a smaller allocation class.)
	readMu        sync.Mutex
	appReading    atomic.Bool // an application read call is in progress
	isServer      bool        // immutable
	msgCompressed bool        // the message being read is compressed (RFC 7692)
	frameFin      bool
	frameMasked   bool
	frameKey      [4]byte
	inputPending  atomic.Bool // the last message read has a complete frame behind it (coalesce.go)
	outPending    atomic.Bool // frames are held (coalesce.go)
	utf8          utf8stream.Validator
	woutMode      uint8 // guarded by frameMu: what writeFD does when the socket is full
	maskPos       uint8 // position in frameKey of the next payload byte
	progressArmed bool  // the message bound is the read deadline on conn (progress.go)
	rd            netReader
	readErr       error // sticky: every read after a failure returns it
	readLimit     atomic.Int64
	msgType       int   // type of the message being read; 0 between messages
	msgRead       int64 // payload bytes of the current message so far
	frameLeft     int64 // payload bytes of the current frame not yet read
	reader        messageReader

	// Progress bounds (progress.go). The settings are atomics; the
	// deadline of the message in progress is the reader's.
	progressDeadline int64        // monoNow by which the message in progress must have arrived; 0 = none
	readDeadline     atomic.Int64 // the application's read deadline, UnixNano; 0 = none
	msgTimeoutMs     atomic.Int32 // SetMessageTimeout's timeout; 0 = off
	msgNsPerByte     atomic.Int32 // SetMessageTimeout's extension per byte received
	writeStall       atomic.Int64 // SetWriteStallTimeout, in ns; 0 = off

	// nil: the default handlers, which cost an idle connection nothing.
	handlePing  func(string) error
	handlePong  func(string) error
	handleClose func(int, string) error

	// Write side. msgMu serialises data messages (held from NextWriter until
	// the writer's Close); frameMu serialises frames on the wire, so control
	// frames can be sent between the frames of a message.
	msgMu         sync.Mutex
	frameMu       sync.Mutex
	writeErr      error          // guarded by frameMu; sticky
	writeDeadline atomic.Int64   // the application's write deadline, UnixNano; 0 = none
	writeBufSize  int            // immutable
	writePool     BufferPool     // immutable; nil = package pool
	writer        *messageWriter // guarded by msgMu; made by the first NextWriter (most connections never stream)

	// Write coalescing (coalesce.go), guarded by frameMu.
	heldN     int
	held      *[]byte // frames not yet written
	holdTimer *time.Timer

	// Raw writes (writeOut), guarded by frameMu. A failure of the write
	// callback goes straight to writeErr.
	writeFn func(fd uintptr) bool // bound once: a closure per write would allocate
	wout    []byte

	compressWrite atomic.Bool
	compressLevel atomic.Int32
	deflate       *deflateState // nil unless permessage-deflate was negotiated

	// Closing handshake state.
	closeSent     atomic.Bool // a close frame went out (or failed to)
	closeReceived atomic.Bool // the peer's close frame was read
	closeMu       sync.Mutex  // guards closing the network connection and done
	closed        atomic.Bool // the network connection is closed
	closeStarted  atomic.Bool // Close/CloseWithCode was called
	closeTimeout  atomic.Int64
	done          chan struct{} // see doneChan; nil until first asked for
	closeCause    atomic.Pointer[error]

	hb heartbeat
}

// connConfig collects what Upgrader and Dialer decide for a new Conn.
type connConfig struct {
	isServer          bool
	subprotocol       string
	readBufSize       int
	writeBufSize      int
	writePool         BufferPool
	readLimit         int64
	closeTimeout      time.Duration
	heartbeatInterval time.Duration // <= 0: off
	heartbeatTimeout  time.Duration
	messageTimeout    time.Duration      // <= 0: off
	minMessageRate    int                // <= 0: no extension
	writeStall        time.Duration      // <= 0: off
	buffered          []byte             // bytes read past the handshake
	compression       *compressionConfig // nil: not negotiated
}

func newConn(nc net.Conn, cfg connConfig) *Conn {
	c := &Conn{
		conn:         nc,
		isServer:     cfg.isServer,
		subprotocol:  cfg.subprotocol,
		writeBufSize: cfg.writeBufSize,
		writePool:    cfg.writePool,
	}
	if c.writeBufSize <= 0 {
		c.writeBufSize = defaultWriteBufferSize
	}
	// Room for a header in front of a full buffer of payload.
	if c.writeBufSize < 64 {
		c.writeBufSize = 64
	}
	readBufSize := cfg.readBufSize
	if readBufSize <= 0 {
		readBufSize = defaultReadBufferSize
	}
	if readBufSize < 256 {
		readBufSize = 256
	}
	limit := cfg.readLimit
	if limit == 0 {
		limit = DefaultReadLimit
	}
	c.readLimit.Store(limit)
	timeout := cfg.closeTimeout
	if timeout <= 0 {
		timeout = DefaultCloseTimeout
	}
	c.closeTimeout.Store(int64(timeout))
	c.compressLevel.Store(defaultCompressionLevel)
	c.compressWrite.Store(true)
	if cfg.compression != nil {
		c.deflate = newDeflateState(c, cfg.compression)
		if cfg.compression.level != 0 {
			c.compressLevel.Store(int32(cfg.compression.level))
		}
	}
	c.rd.init(c, nc, readBufSize, cfg.buffered)
	if c.raw != nil {
		c.writeFn = c.writeFD
	}
	c.reader.c = c
	if cfg.heartbeatInterval > 0 {
		c.SetHeartbeat(cfg.heartbeatInterval, cfg.heartbeatTimeout)
	}
	c.SetMessageTimeout(cfg.messageTimeout, cfg.minMessageRate)
	c.SetWriteStallTimeout(cfg.writeStall)
	return c
}

// Subprotocol returns the negotiated protocol for the connection.
func (c *Conn) Subprotocol() string { return c.subprotocol }

// LocalAddr returns the local network address.
func (c *Conn) LocalAddr() net.Addr { return c.conn.LocalAddr() }

// RemoteAddr returns the remote network address.
func (c *Conn) RemoteAddr() net.Addr { return c.conn.RemoteAddr() }

// NetConn returns the underlying connection that is wrapped by c. Reading
// from or writing to it directly corrupts the WebSocket connection.
func (c *Conn) NetConn() net.Conn { return c.conn }

// UnderlyingConn returns the internal net.Conn.
//
// Deprecated: Use the NetConn method.
func (c *Conn) UnderlyingConn() net.Conn { return c.conn }

// SetReadDeadline sets the read deadline on the underlying network
// connection. After a read has timed out, the connection is failed and all
// future reads return the same error. While a message is arriving, the
// message bound (see [Conn.SetMessageTimeout]) may end the read earlier.
func (c *Conn) SetReadDeadline(t time.Time) error {
	var ns int64
	if !t.IsZero() {
		ns = t.UnixNano()
	}
	c.readDeadline.Store(ns)
	return c.conn.SetReadDeadline(t)
}

// SetWriteDeadline sets the write deadline on the underlying network
// connection. After a write has timed out, all future writes return an
// error and the connection is closed (part of a frame may have gone out).
func (c *Conn) SetWriteDeadline(t time.Time) error {
	var ns int64
	if !t.IsZero() {
		ns = t.UnixNano()
	}
	c.writeDeadline.Store(ns)
	return c.conn.SetWriteDeadline(t)
}

// SetReadLimit sets the maximum size in bytes for a message read from the
// peer. A larger message fails the connection with close 1009 and the read
// returns [ErrReadLimit]. A limit <= 0 removes the limit. The default is
// [DefaultReadLimit].
func (c *Conn) SetReadLimit(limit int64) {
	if limit <= 0 {
		limit = -1
	}
	c.readLimit.Store(limit)
}

// SetCloseTimeout sets how long Close waits for the peer's close frame, and
// a client for the server to close TCP, before dropping the connection.
func (c *Conn) SetCloseTimeout(d time.Duration) {
	if d <= 0 {
		d = DefaultCloseTimeout
	}
	c.closeTimeout.Store(int64(d))
}

// CloseHandler returns the current close handler.
func (c *Conn) CloseHandler() func(code int, text string) error {
	if c.handleClose == nil {
		return c.defaultCloseHandler
	}
	return c.handleClose
}

// SetCloseHandler sets the handler for close messages received from the
// peer. The code argument is the received close code or
// [CloseNoStatusReceived]. The handler is called from the read methods.
//
// Whatever the handler does, the connection answers the peer's close with
// the same code if the handler did not send a close frame itself (RFC 6455
// §5.5.1), and the read methods then return a *CloseError. The default
// handler does nothing else.
func (c *Conn) SetCloseHandler(h func(code int, text string) error) { c.handleClose = h }

func (c *Conn) defaultCloseHandler(code int, _ string) error {
	c.answerClose(code)
	return nil
}

// PingHandler returns the current ping handler.
func (c *Conn) PingHandler() func(appData string) error {
	if c.handlePing == nil {
		return c.defaultPingHandler
	}
	return c.handlePing
}

// SetPingHandler sets the handler for ping messages received from the peer.
// The default handler sends a pong with the same application data. The
// handler is called from the read methods.
func (c *Conn) SetPingHandler(h func(appData string) error) { c.handlePing = h }

func (c *Conn) defaultPingHandler(message string) error {
	err := c.WriteControl(PongMessage, []byte(message), time.Now().Add(pongWait))
	if err == ErrCloseSent || isTimeout(err) {
		// Closing, or a slow writer holds the connection: the pong is not owed.
		return nil
	}
	return err
}

// PongHandler returns the current pong handler.
func (c *Conn) PongHandler() func(appData string) error {
	if c.handlePong == nil {
		return func(string) error { return nil }
	}
	return c.handlePong
}

// SetPongHandler sets the handler for pong messages received from the peer.
// The default handler does nothing. The handler is called from the read
// methods.
func (c *Conn) SetPongHandler(h func(appData string) error) { c.handlePong = h }

func isTimeout(err error) bool {
	ne, ok := err.(interface{ Timeout() bool })
	return ok && ne.Timeout()
}

var epoch = time.Now()

// monoNow is a monotonic clock reading in nanoseconds, never 0.
func monoNow() int64 { return int64(time.Since(epoch)) + 1 }
