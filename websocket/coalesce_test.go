package websocket

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchws/latch/internal/frame"
)

// writeCounter counts the writes that reach the network connection.
type writeCounter struct {
	net.Conn
	writes atomic.Int64
}

func (c *writeCounter) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (server, client *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close(); cc.Close() })
	return sc.(*net.TCPConn), cc.(*net.TCPConn)
}

// coalescePair returns a server Conn over loopback TCP, counting its
// writes, and the raw client socket.
func coalescePair(t *testing.T) (*Conn, *writeCounter, net.Conn, *bufio.Reader) {
	t.Helper()
	sc, client := tcpPair(t)
	wc := &writeCounter{Conn: sc}
	c := newConn(wc, connConfig{isServer: true})
	t.Cleanup(func() { c.CloseNow() })
	return c, wc, client, bufio.NewReader(client)
}

// readServerFrame reads one unmasked frame.
func readServerFrame(t *testing.T, br *bufio.Reader) (frame.Opcode, []byte) {
	t.Helper()
	var hdr [2]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		t.Fatalf("read frame: %v", err)
	}
	n := uint64(hdr[1] & 0x7f)
	switch n {
	case 126:
		var ext [2]byte
		io.ReadFull(br, ext[:])
		n = uint64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		io.ReadFull(br, ext[:])
		n = binary.BigEndian.Uint64(ext[:])
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(br, p); err != nil {
		t.Fatalf("read payload: %v", err)
	}
	return frame.Opcode(hdr[0] & 0x0f), p
}

func pipelined(n int) []byte {
	var b []byte
	for i := range n {
		b = append(b, maskedFrame(frame.OpText, false, fmt.Appendf(nil, "message %d", i))...)
	}
	return b
}

// TestPipelinedAnswersCoalesce: messages that arrive together are answered
// with a few writes, in order, each answer intact.
func TestPipelinedAnswersCoalesce(t *testing.T) {
	c, wc, client, br := coalescePair(t)
	const n = 50
	if _, err := client.Write(pipelined(n)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		var buf []byte
		for range n {
			mt, p, err := c.AppendMessage(buf[:0])
			if err == nil {
				err = c.WriteMessage(mt, p)
			}
			if err != nil {
				done <- err
				return
			}
			buf = p
		}
		done <- nil
	}()
	for i := range n {
		op, p := readServerFrame(t, br)
		if want := fmt.Sprintf("message %d", i); op != frame.OpText || string(p) != want {
			t.Fatalf("answer %d: op %v %q, want %q", i, op, p, want)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The 50 frames may arrive in more than one read; with one write per
	// message there would be 50 writes.
	if w := wc.writes.Load(); w > n/5 {
		t.Fatalf("%d writes for %d pipelined messages", w, n)
	}
}

// TestHeldAnswerIsNotDelayedBySlowHandler: a handler that works slowly
// between two buffered messages does not sit on its first answer.
func TestHeldAnswerIsNotDelayedBySlowHandler(t *testing.T) {
	c, _, client, br := coalescePair(t)
	if _, err := client.Write(pipelined(2)); err != nil {
		t.Fatal(err)
	}
	go func() {
		mt, p, err := c.ReadMessage()
		if err != nil {
			return
		}
		c.WriteMessage(mt, p) // held: the second message is buffered
		time.Sleep(2 * time.Second)
		c.ReadMessage()
	}()
	start := time.Now()
	readServerFrame(t, br)
	// maxHoldDelay is 200 µs; allow for a slow, shared machine.
	if d := time.Since(start); d > time.Second {
		t.Fatalf("held answer arrived after %v", d)
	}
}

// TestHeldFramesGoBeforeControlAndClose: a ping answered and the close
// frame follow the data frames written before them.
func TestHeldFramesGoBeforeControlAndClose(t *testing.T) {
	c, _, client, br := coalescePair(t)
	burst := append(pipelined(3), maskedFrame(frame.OpPing, false, []byte("p"))...)
	if _, err := client.Write(burst); err != nil {
		t.Fatal(err)
	}
	go func() {
		for range 3 {
			mt, p, err := c.ReadMessage()
			if err != nil {
				return
			}
			c.WriteMessage(mt, p)
		}
		c.CloseWithCode(CloseGoingAway, "bye")
	}()
	var got []string
	for range 5 {
		op, p := readServerFrame(t, br)
		got = append(got, fmt.Sprintf("%v:%s", op, p))
		if op == frame.OpClose {
			break
		}
	}
	want := []string{"text:message 0", "text:message 1", "text:message 2", "close:" + string(FormatCloseMessage(CloseGoingAway, "bye"))}
	if len(got) != len(want) {
		t.Fatalf("frames %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("frames %q, want %q", got, want)
		}
	}
}

// TestHeldFramesOrderAcrossGoroutines: writes from another goroutine while
// frames are held keep the order of the calls that returned.
func TestHeldFramesOrderAcrossGoroutines(t *testing.T) {
	c, _, client, br := coalescePair(t)
	if _, err := client.Write(pipelined(2)); err != nil {
		t.Fatal(err)
	}
	mt, p, err := c.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WriteMessage(mt, p); err != nil { // held
		t.Fatal(err)
	}
	other := make(chan error)
	go func() { other <- c.WriteMessage(BinaryMessage, bytes.Repeat([]byte("b"), 10000)) }()
	if err := <-other; err != nil {
		t.Fatal(err)
	}
	if op, p := readServerFrame(t, br); op != frame.OpText || string(p) != "message 0" {
		t.Fatalf("first frame %v %q", op, p)
	}
	if op, p := readServerFrame(t, br); op != frame.OpBinary || len(p) != 10000 {
		t.Fatalf("second frame %v len %d", op, len(p))
	}
}

// TestPongSentWhileApplicationIsBusy: a ping followed by a data message in
// the same segment is answered even though the application, after reading
// the data message, does not read again.
func TestPongSentWhileApplicationIsBusy(t *testing.T) {
	c, client := rawPair(t)
	burst := append(maskedFrame(frame.OpPing, false, []byte("are you there")), pipelined(1)...)
	if _, err := client.Write(burst); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		if _, _, err := c.ReadMessage(); err != nil {
			got <- err
			return
		}
		time.Sleep(2 * time.Second) // busy; not reading
		got <- nil
	}()
	client.SetReadDeadline(time.Now().Add(time.Second))
	op, p := readServerFrame(t, bufio.NewReader(client))
	if op != frame.OpPong || string(p) != "are you there" {
		t.Fatalf("got %v %q, want the pong", op, p)
	}
}
