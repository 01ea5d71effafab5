package websocket

import (
	"bufio"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/latchws/latch/internal/frame"
)

// rawPair returns a server Conn on a real TCP socket (so writes take the
// syscall.RawConn path) and the raw client socket.
func rawPair(t *testing.T) (*Conn, *net.TCPConn) {
	t.Helper()
	sc, client := tcpPair(t)
	c := newConn(sc, connConfig{isServer: true})
	if c.raw == nil || c.writeFn == nil {
		t.Fatal("TCP connection without the raw read/write path")
	}
	t.Cleanup(func() { c.CloseNow() })
	return c, client
}

// TestRawWritesWaitForTheSocket: messages written while the peer does not
// read fill the socket; the writes wait and all arrive intact, in order,
// once it reads.
func TestRawWritesWaitForTheSocket(t *testing.T) {
	c, client := rawPair(t)
	// Fixed socket buffers (no autotuning): 3000 × 1 KiB cannot fit.
	client.SetReadBuffer(32 << 10)
	c.conn.(*net.TCPConn).SetWriteBuffer(32 << 10)
	const n = 3000
	msg := make([]byte, 1024)
	done := make(chan error, 1)
	go func() {
		for i := range n {
			msg[0], msg[1] = byte(i), byte(i>>8)
			if err := c.WriteMessage(BinaryMessage, msg); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		t.Fatalf("all writes returned before the peer read (err %v): the socket never filled", err)
	case <-time.After(200 * time.Millisecond):
	}
	br := bufio.NewReader(client)
	for i := range n {
		op, p := readServerFrame(t, br)
		if op != frame.OpBinary || len(p) != 1024 || int(p[0])|int(p[1])<<8 != i&0xffff {
			t.Fatalf("message %d: op %v, %d bytes, index %d", i, op, len(p), int(p[0])|int(p[1])<<8)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestRawWriteDeadline: a write blocked on a peer that does not read fails
// at the write deadline with an error net.Conn would give, and the failure
// is sticky.
func TestRawWriteDeadline(t *testing.T) {
	c, _ := rawPair(t)
	c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	msg := make([]byte, 1024)
	var err error
	for i := 0; i < 100000 && err == nil; i++ {
		err = c.WriteMessage(BinaryMessage, msg)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) || !isTimeout(err) {
		t.Fatalf("err = %v, want a timeout matching os.ErrDeadlineExceeded", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "write" {
		t.Fatalf("err = %#v, want a *net.OpError with Op write", err)
	}
	c.SetWriteDeadline(time.Time{})
	if err2 := c.WriteMessage(BinaryMessage, msg); err2 == nil {
		t.Fatal("write after a timed-out write succeeded")
	}
}

// TestRawWriteToResetPeer: writing to a peer that reset the connection
// returns an error, not a panic or a signal.
func TestRawWriteToResetPeer(t *testing.T) {
	c, client := rawPair(t)
	client.SetLinger(0)
	client.Close()
	var err error
	for i := 0; i < 1000 && err == nil; i++ {
		err = c.WriteMessage(TextMessage, []byte("hello"))
		time.Sleep(time.Millisecond)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "write" {
		t.Fatalf("err = %v, want a *net.OpError with Op write", err)
	}
}
