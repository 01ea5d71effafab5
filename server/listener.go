package server

import (
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// descriptorReserve is how many descriptors the connection limit of
// [Server.Serve] leaves free below RLIMIT_NOFILE: for the files, DNS
// lookups, broker connections and 503 answers the process still needs.
const descriptorReserve = 64

// rejectWriteTimeout bounds the write of a 503 from the accept loop; the
// answer fits any fresh socket's send buffer, so it only bites a broken one.
const rejectWriteTimeout = 100 * time.Millisecond

// A refused connection lingers, on a goroutine of its own, for up to
// rejectLinger after its 503, reading and discarding what the client sends:
// closing a socket with unread input resets it (RFC 2525 §2.17), and a
// reset can destroy the 503 still in flight; net/http lingers likewise
// after an error answer. At most maxLingering linger at once, within
// descriptorReserve; beyond that, and on the spare descriptor, a refused
// connection is closed at once.
const (
	rejectLinger = time.Second
	maxLingering = 16
)

// rejectResponse is the whole answer to a connection refused for want of
// descriptors. It is sent without reading the request, which may not even
// have arrived (RFC 9110 §15.6.4 for 503 and §10.2.3 for Retry-After).
var rejectResponse = func() []byte {
	const body = "latch: too many open connections, retry later\n"
	return []byte("HTTP/1.1 503 Service Unavailable\r\n" +
		"Connection: close\r\n" +
		"Retry-After: 1\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
}()

// limitListener keeps the accepted connections below the descriptor limit:
// beyond max live connections, or when accept itself fails for want of a
// descriptor (EMFILE, ENFILE), a new connection is answered 503 at once and
// closed, instead of waiting in the backlog until the client times out.
// Accept is called from one goroutine (http.Server.Serve's loop).
type limitListener struct {
	net.Listener
	max      int64         // immutable; live connections allowed, 0: no bound
	live     atomic.Int64  // accepted connections not yet closed
	onReject func()        // immutable; counts one refused connection
	closed   atomic.Bool   // set by Close; the spare is not reopened after
	linger   chan struct{} // immutable; one token per lingering refused connection
	spareMu  sync.Mutex    // guards spare
	spare    *os.File      // a descriptor held back for refusing when none is left; nil if none
}

// newLimitListener wraps ln with a bound of max live connections (0: none)
// and a spare descriptor where the platform has descriptor limits.
func newLimitListener(ln net.Listener, max int64, onReject func()) *limitListener {
	l := &limitListener{Listener: ln, max: max, onReject: onReject, linger: make(chan struct{}, maxLingering)}
	if max > 0 {
		l.spare = openSpare()
	}
	return l
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if isDescriptorExhausted(err) && l.refuseWithSpare() {
				continue
			}
			return nil, err
		}
		if l.max > 0 && l.live.Load() >= l.max {
			l.refuse(c, true)
			continue
		}
		l.live.Add(1)
		return wrapCounted(c, l), nil
	}
}

// refuseWithSpare frees the spare descriptor to accept one connection,
// answers it 503 and takes the spare back. It reports false when it had no
// spare or could not accept: the caller then returns the error, and
// http.Server backs off before the next Accept. (Linux fails accept with
// EMFILE before it looks for a pending connection, so the Accept here may
// wait for the next client; that one is refused.)
func (l *limitListener) refuseWithSpare() bool {
	l.spareMu.Lock()
	defer l.spareMu.Unlock()
	if l.spare == nil {
		return false
	}
	l.spare.Close()
	l.spare = nil
	c, err := l.Listener.Accept()
	if err == nil {
		l.refuse(c, false) // the spare must come back now
	}
	if !l.closed.Load() {
		l.spare = openSpare()
	}
	return err == nil
}

// refuse answers c 503 without waiting for its request, and closes it,
// after a bounded linger if allowed and a slot is free.
func (l *limitListener) refuse(c net.Conn, linger bool) {
	if l.onReject != nil {
		l.onReject() // first: counted by the time the client reads the answer
	}
	_ = c.SetWriteDeadline(time.Now().Add(rejectWriteTimeout))
	if _, err := c.Write(rejectResponse); err != nil || !linger {
		_ = c.Close()
		return
	}
	select {
	case l.linger <- struct{}{}:
	default:
		_ = c.Close()
		return
	}
	go func() {
		defer func() { <-l.linger }()
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite() // FIN after the 503: the client sees the end
		}
		_ = c.SetReadDeadline(time.Now().Add(rejectLinger))
		_, _ = io.Copy(io.Discard, io.LimitReader(c, 64<<10))
		_ = c.Close()
	}()
}

// Close closes the listener first, which ends an Accept waiting in
// refuseWithSpare, then the spare.
func (l *limitListener) Close() error {
	l.closed.Store(true)
	err := l.Listener.Close()
	l.spareMu.Lock()
	if l.spare != nil {
		l.spare.Close()
		l.spare = nil
	}
	l.spareMu.Unlock()
	return err
}

// release is called once per accepted connection, when it closes.
func (l *limitListener) release() { l.live.Add(-1) }

// wrapCounted returns c, which calls l.release on its first Close. A TCP
// connection keeps its *net.TCPConn methods (SyscallConn for the websocket
// package's raw reads, CloseWrite for its closing handshake, ReadFrom for
// net/http's sendfile).
func wrapCounted(c net.Conn, l *limitListener) net.Conn {
	if tc, ok := c.(*net.TCPConn); ok {
		return &countedTCPConn{TCPConn: tc, l: l}
	}
	return &countedConn{Conn: c, l: l}
}

type countedTCPConn struct {
	*net.TCPConn
	l      *limitListener // immutable
	closed atomic.Bool
}

// WrappedSocket lets a websocket.Engine hold the connection on an event
// loop, which then owns it: the engine closes the socket and calls release
// when the WebSocket ends, so the count stays right, and keeps neither c
// nor its TCPConn.
func (c *countedTCPConn) WrappedSocket() (net.Conn, func()) {
	l := c.l
	return c.TCPConn, func() { l.release() }
}

func (c *countedTCPConn) Close() error {
	if c.closed.Swap(true) {
		return c.TCPConn.Close()
	}
	err := c.TCPConn.Close()
	c.l.release()
	return err
}

type countedConn struct {
	net.Conn
	l      *limitListener // immutable
	closed atomic.Bool
}

func (c *countedConn) Close() error {
	if c.closed.Swap(true) {
		return c.Conn.Close()
	}
	err := c.Conn.Close()
	c.l.release()
	return err
}
