package websocket

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/latchws/latch/internal/frame"
)

// Close performs the closing handshake (RFC 6455 §7.1.2): it sends a close
// frame with [CloseNormalClosure] unless a close frame was already sent,
// waits for the peer's close frame — discarding data messages that arrive
// meanwhile — for at most the close timeout (see [Conn.SetCloseTimeout]),
// then closes the network connection. A client waits, within the same
// bound, for the server to close TCP first (§7.1.1).
//
// Close is safe to call concurrently with every other method and more than
// once; later calls wait for the first to finish and return nil. If a
// goroutine is blocked reading, it sees the peer's close frame as a
// *CloseError; otherwise Close reads it itself.
//
// gorilla's Close drops TCP without a close frame; use [Conn.CloseNow] for
// that.
func (c *Conn) Close() error {
	return c.closeHandshake(CloseNormalClosure, "")
}

// CloseWithCode is Close with a chosen status code and reason. The code must
// be one a close frame may carry (1000–1003, 1007–1014, 3000–4999) and the
// reason at most 123 bytes of UTF-8 (RFC 6455 §5.5.1).
func (c *Conn) CloseWithCode(code int, reason string) error {
	if code < 0 || code > 0xffff {
		return fmt.Errorf("websocket: close code %d cannot be sent", code)
	}
	if err := checkClosePayload(FormatCloseMessage(code, reason)); err != nil {
		return err
	}
	if code == CloseNoStatusReceived {
		return fmt.Errorf("websocket: close code %d cannot be sent", code)
	}
	return c.closeHandshake(code, reason)
}

// CloseNow closes the network connection at once, without a closing
// handshake. Blocked reads and writes return errors.
func (c *Conn) CloseNow() error {
	if c.rd.mem {
		c.conn.(*loopConn).abort()
	}
	return c.closeNetConn(nil)
}

func (c *Conn) closeHandshake(code int, reason string) error {
	if c.rd.mem {
		return c.closeOnLoop(code, reason)
	}
	if c.closeStarted.Swap(true) {
		<-c.doneChan() // the first call ends within the close timeout
		return nil
	}
	if c.closed.Load() {
		return nil
	}
	deadline := nowPlus(c.closeTimeoutDuration())
	if err := c.closeSentBy(code, reason); err != nil {
		c.closeNetConn(nil)
		return err
	}
	// Take the read side unless a reader sees the peer's close frame and
	// ends the connection first: nobody is reading, so wait for it here.
	if locked, _ := lockBy(&c.readMu, deadline, c.doneChan); locked {
		c.drainForClose(deadline)
		c.readMu.Unlock()
	}
	c.closeNetConn(nil)
	return nil
}

// closeSentBy sends a close frame unless one was sent already.
func (c *Conn) closeSentBy(code int, reason string) error {
	err := c.sendClose(code, reason, nowPlus(c.closeTimeoutDuration()))
	if err == ErrCloseSent {
		return nil
	}
	return err
}

func (c *Conn) sendClose(code int, reason string, deadline time.Time) error {
	var buf [frame.MaxControlPayload]byte
	payload := frame.AppendClose(buf[:0], uint16(code), reason)
	return c.writeControl(CloseMessage, payload, deadline)
}

// answerClose echoes the peer's close code (RFC 6455 §5.5.1).
func (c *Conn) answerClose(code int) {
	c.sendClose(code, "", nowPlus(c.closeTimeoutDuration()))
}

// drainForClose reads, discarding data, until the peer's close frame, an
// error or the deadline. The caller holds readMu.
func (c *Conn) drainForClose(deadline time.Time) {
	if c.readErr != nil {
		if failedPeer(c.readErr) {
			// failWith's goroutine drains the peer and closes; closing
			// under it would reset the connection and could destroy the
			// close frame before the peer reads it (RFC 6455 §7.1.7).
			t := time.NewTimer(time.Until(deadline))
			select {
			case <-c.doneChan():
			case <-t.C:
			}
			t.Stop()
		}
		return // a failed read already ended the connection or cannot go on
	}
	c.conn.SetReadDeadline(deadline)
	var scratch [512]byte
	for {
		if c.msgType != 0 {
			if _, err := c.readPayload(scratch[:]); err != nil && err != io.EOF {
				return
			}
			continue
		}
		switch err := c.advance(); err {
		case nil:
		case errNeedInput:
			if c.rd.fill() != nil {
				return
			}
		default:
			return
		}
	}
}

// awaitServerClose lets the server close TCP first (RFC 6455 §7.1.1),
// waiting no longer than the close timeout.
func (c *Conn) awaitServerClose() {
	deadline := nowPlus(c.closeTimeoutDuration())
	c.conn.SetReadDeadline(deadline)
	c.rd.discardToEOF(deadline)
}

func closeWrite(c *Conn) {
	if cw, ok := c.conn.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}

// closeNetConn closes the network connection once; cause, when set, is
// reported by reads that fail because of it.
func (c *Conn) closeNetConn(cause error) error {
	c.closeMu.Lock()
	if c.closed.Load() {
		c.closeMu.Unlock()
		return nil
	}
	if cause != nil {
		c.closeCause.Store(&cause)
	}
	c.stopHeartbeat()
	if sc, ok := c.conn.(streamConn); ok && !c.closeSent.Load() {
		// Dropped without a close frame: RST_STREAM, where TCP would
		// reset; after one, END_STREAM, where TCP sends FIN (RFC 8441 §5).
		sc.abortOnClose()
	}
	var err error
	if tc, ok := c.conn.(*tls.Conn); ok && isWriteFailure(cause) {
		// tls.Conn.Close would send close_notify first, waiting up to 5 s
		// on a socket that takes nothing: the failed write says it cannot.
		err = tc.NetConn().Close()
	} else {
		err = c.conn.Close()
	}
	c.closed.Store(true)
	if c.done != nil {
		close(c.done)
	}
	c.closeMu.Unlock()
	c.dropHeld()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

func isWriteFailure(err error) bool {
	_, ok := err.(*writeFailedError)
	return ok
}

// Done returns a channel that is closed once the connection is closed:
// after the closing handshake, a failure or CloseNow. Over HTTP/2 the
// handler that called [Upgrader.Upgrade] must not return before: net/http
// ends the stream when it does (see the package's HTTP/2 section).
func (c *Conn) Done() <-chan struct{} { return c.doneChan() }

// doneChan returns a channel that is closed once the network connection
// is closed. It is made on first use: most connections never wait on it,
// and an idle connection should not pay for it.
func (c *Conn) doneChan() <-chan struct{} {
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		if c.closed.Load() {
			close(c.done)
		}
	}
	return c.done
}

// fail drops the connection because of cause (a dead peer, a failed ping).
func (c *Conn) fail(cause error) { c.closeNetConn(cause) }

func (c *Conn) closeTimeoutDuration() time.Duration {
	return time.Duration(c.closeTimeout.Load())
}

func nowPlus(d time.Duration) time.Time { return time.Now().Add(d) }

// FormatCloseMessage formats closeCode and text as a WebSocket close message.
// An empty message is returned for code [CloseNoStatusReceived].
func FormatCloseMessage(closeCode int, text string) []byte {
	if closeCode == CloseNoStatusReceived {
		return []byte{}
	}
	return frame.AppendClose(make([]byte, 0, 2+len(text)), uint16(closeCode), text)
}

// checkClosePayload validates a close payload before it is sent, by the
// rules a receiver applies (frame.ParseClose).
func checkClosePayload(p []byte) error {
	if len(p) > frame.MaxControlPayload {
		return errControlTooLarge
	}
	if _, _, err := frame.ParseClose(p); err != nil {
		var fe *frame.Error
		if errors.As(err, &fe) {
			return errors.New("websocket: cannot send close frame: " + fe.Reason)
		}
		return err
	}
	return nil
}
