package websocket

import (
	"errors"
	"math"
	"os"
	"time"
)

// Progress bounds. A peer that has begun a message must finish it at a
// reasonable pace, and a peer must take what is written to it: otherwise
// one byte every few seconds, or a window that never opens, would hold the
// connection, its buffers and the goroutines that serve it for good.
//
// Reads: a message (or a frame between messages: a header, a control
// frame) that has begun must arrive within the message timeout, extended
// by one second for every minRate bytes received. A rate rule rather than
// a fixed bound, so that a large message on a slow link passes; a timeout
// on top, so that a short message cannot trickle. The bound is a read
// deadline set only while the reader waits for the network in the middle
// of a message, combined with the application's own deadline: a message
// that arrives in one piece costs nothing, and between messages the
// application's deadline (gorilla's ping/pong pattern) is all there is.
//
// Writes: a write that makes no progress (the socket takes no byte) for
// the write stall timeout fails, and the connection is closed. On a socket
// with a descriptor the deadline is set only when the socket is full.

const (
	// DefaultMessageTimeout is how long a server connection gives a message
	// that has begun before [DefaultMinMessageRate] decides: a message of
	// under about 10 KiB must arrive within it.
	DefaultMessageTimeout = 10 * time.Second

	// DefaultMinMessageRate, in bytes per second, extends the message
	// timeout of a server connection by one second per that many bytes
	// received: a large message must average at least this rate.
	DefaultMinMessageRate = 1024

	// DefaultWriteStallTimeout is how long a write to a server connection
	// may wait without the peer taking a single byte.
	DefaultWriteStallTimeout = 10 * time.Second
)

var (
	// ErrMessageTimeout is returned by reads when a message that had begun
	// did not arrive within the connection's message timeout (see
	// [Conn.SetMessageTimeout]). The peer is sent close 1008.
	ErrMessageTimeout = errors.New("websocket: message did not arrive in time")

	// ErrWriteStalled is returned by writes that made no progress for the
	// write stall timeout (see [Conn.SetWriteStallTimeout]); the connection
	// is closed. It is a timeout: errors.Is(err, os.ErrDeadlineExceeded)
	// holds, and so does Timeout() on a net.Error.
	ErrWriteStalled error = &stallError{}
)

type stallError struct{}

func (*stallError) Error() string   { return "websocket: write made no progress" }
func (*stallError) Timeout() bool   { return true }
func (*stallError) Temporary() bool { return true }
func (*stallError) Is(target error) bool {
	return target == os.ErrDeadlineExceeded
}

// SetMessageTimeout bounds how slowly the peer may send a message that has
// begun: it must arrive within timeout, extended by one second for every
// minRate bytes received (minRate <= 0: no extension). Otherwise the
// connection fails with close 1008 (Policy Violation) and the read returns
// [ErrMessageTimeout]. A timeout <= 0 turns the bound off.
//
// The bound counts only while a read waits for the network in the middle
// of a message (or of a frame header or control frame); it never ends an
// idle connection, which is the heartbeat's and the read deadline's job.
// An earlier read deadline of the application still applies.
//
// Server connections start with [DefaultMessageTimeout] and
// [DefaultMinMessageRate] (see [Upgrader.MessageTimeout]); client
// connections with the bound off unless [Dialer.MessageTimeout] is set.
func (c *Conn) SetMessageTimeout(timeout time.Duration, minRate int) {
	c.msgTimeoutMs.Store(durationMs(timeout))
	var nsPerByte int32
	if minRate > 0 {
		nsPerByte = int32(min(int64(time.Second)/int64(minRate), math.MaxInt32))
		nsPerByte = max(nsPerByte, 1)
	}
	c.msgNsPerByte.Store(nsPerByte)
}

// SetWriteStallTimeout fails a write that makes no progress for d: the
// peer takes not a single byte (its receive window stays closed). The
// write returns an error matching [ErrWriteStalled] and the connection is
// closed, since part of a frame may already have gone out. A d <= 0 turns
// the bound off. The application's write deadline still applies.
//
// Server connections start with [DefaultWriteStallTimeout] (see
// [Upgrader.WriteStallTimeout]); client connections with the bound off
// unless [Dialer.WriteStallTimeout] is set.
func (c *Conn) SetWriteStallTimeout(d time.Duration) {
	c.writeStall.Store(int64(max(d, 0)))
}

// messageRate applies the Upgrader's and Dialer's convention: 0 is the
// default, < 0 no extension.
func messageRate(r int) int {
	if r == 0 {
		return DefaultMinMessageRate
	}
	return r
}

// durationMs is d in whole milliseconds, at least 1 when d > 0; 0 when
// d <= 0.
func durationMs(d time.Duration) int32 {
	if d <= 0 {
		return 0
	}
	return int32(min(max(d.Milliseconds(), 1), math.MaxInt32))
}

// Read side. The fields are owned by the reader (readMu), except the
// settings, which are atomics.

// armProgress sets the message bound as the read deadline before the
// reader waits for the network in the middle of a message. The first wait
// of a message starts its clock.
func (c *Conn) armProgress() {
	if c.progressArmed {
		return // the deadline is set; progressTimeout moves it when it fires
	}
	ms := c.msgTimeoutMs.Load()
	if ms == 0 || c.closeStarted.Load() {
		return // off, or Close bounds the reads now
	}
	now := monoNow()
	if c.progressDeadline == 0 {
		c.progressDeadline = now + int64(ms)*int64(time.Millisecond)
	}
	c.setProgressDeadline(now)
}

// setProgressDeadline puts the earlier of the message's deadline and the
// application's read deadline on the connection.
func (c *Conn) setProgressDeadline(now int64) {
	d := time.Now().Add(time.Duration(c.progressDeadline - now))
	if app := c.readDeadline.Load(); app != 0 && app <= d.UnixNano() {
		if c.progressArmed {
			c.conn.SetReadDeadline(time.Unix(0, app))
			c.progressArmed = false
		}
		return // the application's deadline comes first
	}
	c.conn.SetReadDeadline(d)
	c.progressArmed = true
}

// creditProgress extends the message's deadline for n bytes received.
func (c *Conn) creditProgress(n int) {
	if c.progressDeadline != 0 {
		c.progressDeadline = min(c.progressDeadline+int64(n)*int64(c.msgNsPerByte.Load()), math.MaxInt64/2)
		if _, ok := c.conn.(streamConn); ok && c.progressArmed {
			// A passed deadline ends an HTTP/2 stream's body for good:
			// move it now rather than retry after it fires early.
			c.setProgressDeadline(monoNow())
		}
	}
}

// progressTimeout looks at a failed network read: retry when the message's
// deadline fired early (bytes arrived since it was set, extending it),
// ErrMessageTimeout when it passed, and err itself otherwise.
func (c *Conn) progressTimeout(err error) (retry bool, _ error) {
	if !c.progressArmed || !isTimeout(err) {
		return false, err
	}
	if app := c.readDeadline.Load(); app != 0 && time.Now().UnixNano() >= app {
		return false, err // the application's deadline
	}
	if now := monoNow(); now < c.progressDeadline {
		c.setProgressDeadline(now)
		return true, nil
	}
	return false, ErrMessageTimeout
}

// endProgress ends the bound of the message that has arrived and gives the
// connection back the application's read deadline.
func (c *Conn) endProgress() {
	c.progressDeadline = 0
	if c.progressArmed {
		c.progressArmed = false
		var t time.Time
		if app := c.readDeadline.Load(); app != 0 {
			t = time.Unix(0, app)
		}
		c.conn.SetReadDeadline(t)
	}
}

// Write side, guarded by frameMu.

// armWriteStall sets the stall bound as the write deadline before a write
// waits for the socket, unless the write deadline in force comes first.
// It reports whether the deadline on the connection is now the stall
// bound.
func (c *Conn) armWriteStall(stall int64) bool {
	d := time.Now().Add(time.Duration(stall))
	if app := c.writeDeadline.Load(); app != 0 && app <= d.UnixNano() {
		c.conn.SetWriteDeadline(time.Unix(0, app))
		return false
	}
	c.conn.SetWriteDeadline(d)
	return true
}

// stallError turns the timeout of a write whose stall deadline was set
// into ErrWriteStalled, unless the application's deadline has passed.
func (c *Conn) stalled(err error, armed bool) error {
	if !armed || !isTimeout(err) {
		return err
	}
	if app := c.writeDeadline.Load(); app != 0 && time.Now().UnixNano() >= app {
		return err
	}
	return ErrWriteStalled
}
