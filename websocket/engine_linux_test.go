//go:build linux

package websocket

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/latchws/latch/internal/deflate"
	"github.com/latchws/latch/internal/frame"
)

// outcome names how a read ended, for comparing the two drivers.
func outcome(err error) string {
	var ce *CloseError
	var pe *protocolError
	switch {
	case errors.As(err, &ce):
		return fmt.Sprintf("close %d", ce.Code)
	case errors.As(err, &pe):
		return fmt.Sprintf("protocol %d", pe.code)
	case err == ErrReadLimit:
		return "limit"
	}
	return "error " + err.Error()
}

func messageEvent(mt int, p []byte) string {
	return fmt.Sprintf("msg %d %d %x", mt, len(p), sha256.Sum256(p))
}

func fuzzConnConfig(mode byte, limit uint16) connConfig {
	cfg := connConfig{isServer: mode&1 == 0, readLimit: int64(limit) + 1, heartbeatInterval: -1}
	if mode&2 != 0 {
		cfg.compression = &compressionConfig{params: deflate.Params{
			ServerNoContextTakeover: mode&4 != 0, ClientNoContextTakeover: mode&4 != 0,
			ServerMaxWindowBits: 15, ClientMaxWindowBits: 15,
		}}
	}
	return cfg
}

// readBlocking is what a blocking Conn makes of the stream, delivered in
// the chunks given.
func readBlocking(stream, chunks []byte, mode byte, limit uint16) []string {
	c := newConn(&chunkConn{in: stream, sizes: chunks}, fuzzConnConfig(mode, limit))
	defer c.CloseNow()
	var events []string
	for range 10000 {
		mt, p, err := c.ReadMessage()
		if err != nil {
			return append(events, outcome(err))
		}
		events = append(events, messageEvent(mt, p))
	}
	return events
}

// readEngine is what an event loop makes of the same stream, fed to it
// chunk by chunk as reads would deliver it. The loop does not run: the
// test calls it as its epoll events would.
func readEngine(t *testing.T, stream, chunks []byte, mode byte, limit uint16) []string {
	e := &Engine{cfg: EngineConfig{MaxQueuedBytes: 1 << 30}}
	l, err := newEventLoop(e)
	if err != nil {
		t.Fatal(err)
	}
	e.loops = []*eventLoop{l}
	defer l.closeFds()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fds[1])
	f := os.NewFile(uintptr(fds[0]), "engine-end")
	nc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	var events []string
	c := newConn(nc, fuzzConnConfig(mode, limit))
	e.conns.Add(1)
	h := Callbacks{
		OnMessage: func(c *Conn, mt int, p []byte) { events = append(events, messageEvent(mt, p)) },
		OnClose:   func(c *Conn, err error) { events = append(events, outcome(err)) },
	}
	if err := l.adopt(c, nc, nil, h); err != nil {
		t.Fatal(err)
	}
	l.servePending()
	lc := c.conn.(*loopConn)
	defer func() {
		lc.abort()
		l.closeFd(lc)
	}()
	for len(stream) > 0 && !lc.readDone {
		n := len(stream)
		if len(chunks) > 0 {
			n = min(n, int(chunks[0])+1)
			chunks = chunks[1:]
		}
		start := l.takeRest(lc)
		n = copy(l.buf[start:], stream[:n])
		stream = stream[n:]
		l.received(lc, start, n)
	}
	if !lc.readDone {
		l.readFailed(lc, io.EOF)
	}
	return events
}

// FuzzEngineMatchesBlocking feeds the same bytes, split anywhere, to a
// blocking Conn and to an event loop's connection: both must deliver the
// same messages and end the same way. The loop drives the Conn's own read
// path, so this checks the driver: where it stops and resumes, what it
// keeps between reads, compressed messages inflated across reads.
func FuzzEngineMatchesBlocking(f *testing.F) {
	text := maskedFrame(frame.OpText, false, []byte("hello"))
	bin := maskedFrame(frame.OpBinary, false, bytes.Repeat([]byte{0xfe}, 300))
	ping := maskedFrame(frame.OpPing, false, []byte("p"))
	frag := append(append([]byte{}, maskedFrame(frame.OpText, false, []byte("hé"))...), maskedFrame(frame.OpContinuation, false, []byte("llo"))...)
	frag[0] &^= 0x80
	closeFrame := maskedFrame(frame.OpClose, false, []byte{0x03, 0xe8})
	z := maskedFrame(frame.OpText, true, deflateForTest([]byte("compressed compressed compressed")))
	zbad := maskedFrame(frame.OpText, true, deflateForTest([]byte("bad \xff utf-8 in a compressed message")))
	zdata := deflateForTest([]byte(strings.Repeat("a compressed message in two frames, ", 20)))
	zfrag := maskedFrame(frame.OpText, true, zdata[:len(zdata)/2])
	zfrag[0] &^= 0x80 // FIN off: a continuation follows
	zfrag = append(zfrag, maskedFrame(frame.OpContinuation, false, zdata[len(zdata)/2:])...)
	split := append([]byte{}, zfrag[:len(zfrag)/3]...) // the message never completes
	f.Add(append(append(append([]byte{}, text...), ping...), bin...), []byte{1, 2, 200}, byte(0), uint16(1000))
	f.Add(append(append([]byte{}, frag...), closeFrame...), []byte{0, 0, 0, 3}, byte(0), uint16(10))
	f.Add(append(append(append([]byte{}, z...), ping...), z...), []byte{3, 0, 7}, byte(2), uint16(1000))
	f.Add(append(append([]byte{}, z...), z...), []byte{1}, byte(6), uint16(1000))
	f.Add(zbad, []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, byte(2), uint16(1000))
	f.Add(append(append([]byte{}, zfrag...), text...), []byte{5, 5, 5}, byte(2), uint16(100))
	f.Add(split, []byte{}, byte(2), uint16(1000))
	f.Add([]byte{0x81, 0x05, 'h', 'e', 'l', 'l', 'o', 0x89, 0x00}, []byte{2}, byte(1), uint16(64)) // to a client
	f.Add(maskedFrame(frame.OpText, false, []byte{0xff, 0xfe}), []byte{}, byte(0), uint16(64))
	f.Fuzz(func(t *testing.T, stream, chunks []byte, mode byte, limit uint16) {
		want := readBlocking(stream, chunks, mode, limit)
		got := readEngine(t, stream, chunks, mode, limit)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("engine read %q\nblocking Conn read %q", got, want)
		}
	})
}

// loopServer serves connections on a one-loop engine with h, handing the
// test each server Conn.
func loopServer(t *testing.T, h Callbacks) (*Engine, string, chan *Conn) {
	t.Helper()
	e, err := NewEngine(EngineConfig{Loops: 1, MaxQueuedBytes: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	conns := make(chan *Conn, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := (&Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		if err := e.Serve(c, h); err != nil {
			t.Errorf("Serve: %v", err)
		}
		conns <- c
	}))
	t.Cleanup(srv.Close)
	return e, "ws" + strings.TrimPrefix(srv.URL, "http"), conns
}

// deferSetup connects x, the connection written to, and p, whose messages
// run act on the loop.
func deferSetup(t *testing.T, act func(x, p *Conn)) (e *Engine, x *Conn, xnc net.Conn, xbr *bufio.Reader, pnc net.Conn) {
	t.Helper()
	var target atomic.Pointer[Conn]
	e, url, conns := loopServer(t, Callbacks{OnMessage: func(c *Conn, _ int, _ []byte) {
		if x := target.Load(); x != nil && c != x {
			act(x, c)
		}
	}})
	xnc, xbr = rawClient(t, url, 0)
	x = <-conns
	target.Store(x)
	pnc, _ = rawClient(t, url, 0)
	<-conns
	return e, x, xnc, xbr, pnc
}

func readText(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	op, p := readServerFrame(t, br)
	if op != frame.OpText {
		return fmt.Sprintf("opcode %v %q", op, p)
	}
	return string(p)
}

// settled waits until nothing is deferred and no loop is awake, and x
// holds no output buffer.
func settled(t *testing.T, e *Engine, x *Conn) {
	t.Helper()
	lc := x.conn.(*loopConn)
	deadline := time.Now().Add(2 * time.Second)
	for {
		e.out.mu.Lock()
		pending, awake := len(e.out.conns), e.out.awake
		e.out.mu.Unlock()
		lc.mu.Lock()
		out, deferred := lc.out != nil, lc.deferred
		lc.mu.Unlock()
		if pending == 0 && awake == 0 && !out && !deferred {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("deferred list %d, loops awake %d, output buffer held %v, deferred %v", pending, awake, out, deferred)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Writes made on a loop to another connection wait for the end of the
// batch, together; a write from another goroutine goes out at once, after
// them: nothing overtakes what was deferred.
func TestEngineDeferredWritesKeepOrder(t *testing.T) {
	type result struct{ afterA, fromGoroutine, afterD int }
	results := make(chan result, 1)
	e, x, _, xbr, pnc := deferSetup(t, func(x, _ *Conn) {
		var r result
		x.WriteMessage(TextMessage, []byte("a"))
		r.afterA = x.QueuedBytes()
		done := make(chan struct{})
		go func() {
			x.WriteMessage(TextMessage, []byte("b"))
			r.fromGoroutine = x.QueuedBytes()
			close(done)
		}()
		<-done
		x.WriteMessage(TextMessage, []byte("c"))
		x.WritePreparedMessages([]*PreparedMessage{mustPrepare(t, "d"), mustPrepare(t, "e")})
		r.afterD = x.QueuedBytes()
		results <- r
	})
	pnc.Write(maskedFrame(frame.OpText, false, []byte("go")))
	r := <-results
	if r.afterA == 0 || r.afterD == 0 {
		t.Errorf("queued after a write on the loop: %d and %d bytes, want them deferred", r.afterA, r.afterD)
	}
	if r.fromGoroutine != 0 {
		t.Errorf("queued after a write from a goroutine: %d bytes, want it and what was deferred written", r.fromGoroutine)
	}
	var got []string
	for range 5 {
		got = append(got, readText(t, xbr))
	}
	if fmt.Sprint(got) != "[a b c d e]" {
		t.Fatalf("received %q, want a to e in order", got)
	}
	settled(t, e, x)
}

func mustPrepare(t *testing.T, s string) *PreparedMessage {
	pm, err := NewPreparedMessage(TextMessage, []byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return pm
}

// Close called on a loop for another connection: its close frame follows
// the deferred output at the end of the batch, and the handshake ends the
// connection; without an answer, the close timeout does.
func TestEngineDeferredClose(t *testing.T) {
	for _, answer := range []bool{true, false} {
		t.Run(fmt.Sprintf("answer=%v", answer), func(t *testing.T) {
			e, x, xnc, xbr, pnc := deferSetup(t, func(x, _ *Conn) {
				x.SetCloseTimeout(200 * time.Millisecond)
				x.WriteMessage(TextMessage, []byte("bye"))
				x.CloseWithCode(4000, "done")
			})
			pnc.Write(maskedFrame(frame.OpText, false, []byte("go")))
			if got := readText(t, xbr); got != "bye" {
				t.Fatalf("received %q, want bye", got)
			}
			op, p := readServerFrame(t, xbr)
			if op != frame.OpClose || len(p) < 2 || int(p[0])<<8|int(p[1]) != 4000 {
				t.Fatalf("received opcode %v %q, want close 4000", op, p)
			}
			if answer {
				xnc.Write(maskedFrame(frame.OpClose, false, p[:2]))
			}
			xnc.SetReadDeadline(time.Now().Add(3 * time.Second))
			if _, err := xbr.ReadByte(); err != io.EOF {
				t.Fatalf("after the close frame: %v, want EOF", err)
			}
			select {
			case <-x.Done():
			case <-time.After(2 * time.Second):
				t.Fatal("connection not closed")
			}
			settled(t, e, x)
		})
	}
}

// CloseNow on a connection with deferred output drops it; the engine goes
// on serving the others.
func TestEngineDeferredCloseNow(t *testing.T) {
	e, x, xnc, xbr, pnc := deferSetup(t, func(x, p *Conn) {
		x.WriteMessage(TextMessage, []byte("lost"))
		x.CloseNow()
		p.WriteMessage(TextMessage, []byte("ok"))
	})
	pbr := bufio.NewReader(pnc)
	pnc.Write(maskedFrame(frame.OpText, false, []byte("go")))
	if got := readText(t, pbr); got != "ok" {
		t.Fatalf("p received %q", got)
	}
	xnc.SetReadDeadline(time.Now().Add(3 * time.Second))
	if b, err := xbr.ReadByte(); err == nil {
		t.Fatalf("x received %#x after CloseNow, want its deferred output dropped", b)
	}
	settled(t, e, x)
}

// Engine.Close with output deferred: connections are dropped, the loop
// ends, nothing stays on the deferred list.
func TestEngineCloseWithDeferredOutput(t *testing.T) {
	release := make(chan struct{})
	e, x, xnc, xbr, pnc := deferSetup(t, func(x, _ *Conn) {
		x.WriteMessage(TextMessage, []byte("m"))
		<-release
	})
	pnc.Write(maskedFrame(frame.OpText, false, []byte("go")))
	closed := make(chan struct{})
	go func() {
		e.Close()
		close(closed)
	}()
	time.Sleep(50 * time.Millisecond) // Close waits for the loop, in the callback
	close(release)
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Engine.Close did not return")
	}
	xnc.SetReadDeadline(time.Now().Add(3 * time.Second))
	io.Copy(io.Discard, xbr) // "m" or nothing, then the end
	settled(t, e, x)
}

// Deferred output stays within deferLimit: a callback that writes more
// than the queue's bound to a connection whose peer reads is not refused
// (ErrQueueFull), and the queue never holds more than the bound.
func TestEngineDeferredOutputBounded(t *testing.T) {
	const n, size = 600, 1 << 10 // 600 KiB, the bound is 256 KiB
	errs := make(chan error, 1)
	most := make(chan int, 1)
	e, x, _, xbr, pnc := deferSetup(t, func(x, _ *Conn) {
		payload := bytes.Repeat([]byte{'x'}, size)
		m := 0
		for range n {
			if err := x.WriteMessage(TextMessage, payload); err != nil {
				errs <- err
				return
			}
			m = max(m, x.QueuedBytes())
		}
		most <- m
		errs <- nil
	})
	received := make(chan int, 1)
	go func() {
		k := 0
		for ; k < n; k++ {
			var hdr [4]byte
			if _, err := io.ReadFull(xbr, hdr[:]); err != nil {
				break
			}
			if _, err := xbr.Discard(size); err != nil {
				break
			}
		}
		received <- k
	}()
	pnc.Write(maskedFrame(frame.OpText, false, []byte("go")))
	if err := <-errs; err != nil {
		t.Fatalf("write on the loop: %v", err)
	}
	if m, limit := <-most, min(deferLimit, x.QueueLimit()/2); m > limit+size+4 {
		t.Errorf("queue held %d bytes, the deferred output's limit is %d", m, limit)
	}
	if k := <-received; k != n {
		t.Fatalf("received %d messages, want %d", k, n)
	}
	settled(t, e, x)
}
