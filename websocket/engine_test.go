package websocket

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// forEachDriver runs f on an engine of each driver this platform has.
func forEachDriver(t *testing.T, cfg EngineConfig, f func(t *testing.T, e *Engine)) {
	for _, goroutines := range []bool{false, true} {
		if !goroutines && !epollAvailable {
			continue
		}
		name := "epoll"
		if goroutines {
			name = "goroutines"
		}
		t.Run(name, func(t *testing.T) {
			c := cfg
			c.Goroutines = goroutines
			e, err := NewEngine(c)
			if err != nil {
				t.Fatal(err)
			}
			if e.Driver() != name {
				t.Fatalf("Driver() = %q, want %q", e.Driver(), name)
			}
			t.Cleanup(func() { e.Close() })
			f(t, e)
		})
	}
}

// engineServer serves upgraded connections on e with h.
func engineServer(t *testing.T, e *Engine, u Upgrader, h Callbacks) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := u.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		if err := e.Serve(c, h); err != nil {
			t.Errorf("Serve: %v", err)
		}
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

func echoHandler(closed chan<- error) Callbacks {
	return Callbacks{
		OnMessage: func(c *Conn, mt int, p []byte) { c.WriteMessage(mt, p) },
		OnClose: func(c *Conn, err error) {
			if closed != nil {
				closed <- err
			}
		},
	}
}

func waitErr(t *testing.T, ch <-chan error, d time.Duration) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(d):
		t.Fatalf("OnClose not called within %v", d)
		return nil
	}
}

func TestEngineEcho(t *testing.T) {
	forEachDriver(t, EngineConfig{}, func(t *testing.T, e *Engine) {
		for _, compress := range []bool{false, true} {
			t.Run(fmt.Sprintf("compress=%v", compress), func(t *testing.T) {
				closed := make(chan error, 1)
				url := engineServer(t, e, Upgrader{EnableCompression: compress}, echoHandler(closed))
				d := Dialer{EnableCompression: compress}
				c, _, err := d.Dial(url, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer c.CloseNow()
				if c.Compressed() != compress {
					t.Fatalf("compressed = %v", c.Compressed())
				}
				big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
				msgs := []struct {
					mt int
					p  []byte
				}{
					{TextMessage, []byte("hello")},
					{BinaryMessage, []byte{0, 1, 2, 255}},
					{TextMessage, []byte{}},
					{BinaryMessage, big},
					{TextMessage, []byte(strings.Repeat("héllo ", 3000))},
				}
				for _, m := range msgs {
					if err := c.WriteMessage(m.mt, m.p); err != nil {
						t.Fatal(err)
					}
					mt, p, err := c.ReadMessage()
					if err != nil {
						t.Fatal(err)
					}
					if mt != m.mt || !bytes.Equal(p, m.p) {
						t.Fatalf("echo of %d bytes (type %d): got %d bytes (type %d)", len(m.p), m.mt, len(p), mt)
					}
				}
				// A fragmented message: NextWriter sends a frame per Write
				// larger than the write buffer.
				w, err := c.NextWriter(TextMessage)
				if err != nil {
					t.Fatal(err)
				}
				var want []byte
				for i := range 5 {
					part := []byte(strings.Repeat(fmt.Sprint(i), 5000))
					want = append(want, part...)
					w.Write(part)
				}
				w.Close()
				if _, p, err := c.ReadMessage(); err != nil || !bytes.Equal(p, want) {
					t.Fatalf("fragmented echo: %d bytes, %v", len(p), err)
				}
				// Ping: the engine's connection answers with a pong.
				pong := make(chan string, 1)
				c.SetPongHandler(func(s string) error { pong <- s; return nil })
				c.WriteControl(PingMessage, []byte("are you there"), time.Now().Add(time.Second))
				c.WriteMessage(TextMessage, []byte("after ping"))
				if _, p, err := c.ReadMessage(); err != nil || string(p) != "after ping" {
					t.Fatalf("after ping: %q %v", p, err)
				}
				if got := <-pong; got != "are you there" {
					t.Fatalf("pong %q", got)
				}
				// The client closes: the engine answers, OnClose gets 1000.
				if err := c.Close(); err != nil {
					t.Fatal(err)
				}
				err = waitErr(t, closed, 5*time.Second)
				if !IsCloseError(err, CloseNormalClosure) {
					t.Fatalf("OnClose error %v, want close 1000", err)
				}
			})
		}
	})
}

func TestEngineReadMethodsRefused(t *testing.T) {
	if !epollAvailable {
		t.Skip("only connections on event loops refuse reads")
	}
	e, err := NewEngine(EngineConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	got := make(chan error, 3)
	url := engineServer(t, e, Upgrader{}, Callbacks{
		OnMessage: func(c *Conn, _ int, _ []byte) {
			_, _, err1 := c.ReadMessage()
			_, _, err2 := c.NextReader()
			err3 := c.ReadJSON(new(any))
			got <- err1
			got <- err2
			got <- err3
		},
	})
	c, _, err := DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	c.WriteMessage(TextMessage, []byte("x"))
	for range 3 {
		if err := <-got; err != ErrEngineRead {
			t.Fatalf("read on an engine connection: %v, want ErrEngineRead", err)
		}
	}
}

// The server closes from a callback: the handshake completes without the
// callback waiting, and both sides see 1000.
func TestEngineCloseFromCallback(t *testing.T) {
	forEachDriver(t, EngineConfig{}, func(t *testing.T, e *Engine) {
		closed := make(chan error, 1)
		returned := make(chan time.Duration, 1)
		url := engineServer(t, e, Upgrader{}, Callbacks{
			OnMessage: func(c *Conn, _ int, p []byte) {
				start := time.Now()
				c.CloseWithCode(CloseGoingAway, "bye")
				returned <- time.Since(start)
			},
			OnClose: func(c *Conn, err error) { closed <- err },
		})
		c, _, err := DefaultDialer.Dial(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		c.WriteMessage(TextMessage, []byte("close please"))
		_, _, err = c.ReadMessage()
		if !IsCloseError(err, CloseGoingAway) {
			t.Fatalf("client read %v, want close 1001", err)
		}
		if d := <-returned; e.Driver() == "epoll" && d > time.Second {
			t.Fatalf("CloseWithCode in a callback took %v", d)
		}
		if err := waitErr(t, closed, 5*time.Second); !IsCloseError(err, CloseGoingAway) {
			t.Fatalf("OnClose %v, want the peer's answer 1001", err)
		}
	})
}

func TestEngineCloseNow(t *testing.T) {
	forEachDriver(t, EngineConfig{}, func(t *testing.T, e *Engine) {
		closed := make(chan error, 1)
		conns := make(chan *Conn, 1)
		url := engineServer(t, e, Upgrader{}, Callbacks{
			OnMessage: func(c *Conn, _ int, _ []byte) { conns <- c },
			OnClose:   func(c *Conn, err error) { closed <- err },
		})
		c, _, err := DefaultDialer.Dial(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		c.WriteMessage(TextMessage, []byte("x"))
		sc := <-conns
		sc.CloseNow()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, _, err := c.ReadMessage(); !IsCloseError(err, CloseAbnormalClosure) {
			t.Fatalf("client read %v, want 1006", err)
		}
		if err := waitErr(t, closed, 5*time.Second); err == nil {
			t.Fatal("OnClose with a nil error")
		}
		select {
		case <-sc.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("Done not closed")
		}
	})
}

// rawClient completes a WebSocket handshake on a plain TCP connection and
// returns it; the test then sends and reads frames itself.
func rawClient(t testing.TB, url string, rcvbuf int) (net.Conn, *bufio.Reader) {
	t.Helper()
	addr := strings.TrimPrefix(url, "ws://")
	d := net.Dialer{Control: nil}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if rcvbuf > 0 {
		nc.(*net.TCPConn).SetReadBuffer(rcvbuf)
	}
	t.Cleanup(func() { nc.Close() })
	fmt.Fprintf(nc, "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", addr)
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	return nc, br
}

// A peer that never reads: a callback's writes fill the queue up to the
// bound, then fail with ErrQueueFull; memory stays within the bound.
func TestEngineSlowReaderFromCallback(t *testing.T) {
	if !epollAvailable {
		t.Skip("the queue bound is the event loop's")
	}
	const bound = 256 << 10
	e, err := NewEngine(EngineConfig{MaxQueuedBytes: bound})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	result := make(chan error, 1)
	maxQueued := make(chan int, 1)
	closed := make(chan error, 1)
	url := engineServer(t, e, Upgrader{}, Callbacks{
		OnMessage: func(c *Conn, _ int, _ []byte) {
			c.SetCloseTimeout(300 * time.Millisecond)
			payload := make([]byte, 32<<10)
			most := 0
			for range 10000 { // far more than the socket and the queue hold
				err := c.WriteMessage(BinaryMessage, payload)
				most = max(most, c.QueuedBytes())
				if err != nil {
					maxQueued <- most
					result <- err
					return
				}
			}
			maxQueued <- most
			result <- nil
		},
		OnClose: func(c *Conn, err error) { closed <- err },
	})
	nc, _ := rawClient(t, url, 4096)
	nc.Write(maskedFrame(1, false, []byte("go")))
	if err := <-result; err != ErrQueueFull {
		t.Fatalf("write into a full queue: %v, want ErrQueueFull", err)
	}
	if most := <-maxQueued; most > bound+(32<<10)+14 {
		t.Fatalf("queue held %d bytes, bound %d plus one message", most, bound)
	}
	// The close frame (1008) cannot get through; the close timeout ends it.
	waitErr(t, closed, 5*time.Second)
}

// A writer on another goroutine waits for room, and the write stall
// timeout fails it when the peer takes nothing.
func TestEngineSlowReaderFromGoroutine(t *testing.T) {
	forEachDriver(t, EngineConfig{MaxQueuedBytes: 128 << 10}, func(t *testing.T, e *Engine) {
		conns := make(chan *Conn, 1)
		url := engineServer(t, e, Upgrader{WriteStallTimeout: 300 * time.Millisecond}, Callbacks{
			OnMessage: func(c *Conn, _ int, _ []byte) { conns <- c },
		})
		nc, _ := rawClient(t, url, 4096)
		nc.Write(maskedFrame(1, false, []byte("go")))
		c := <-conns
		start := time.Now()
		payload := make([]byte, 16<<10)
		var err error
		for range 100000 {
			if err = c.WriteMessage(BinaryMessage, payload); err != nil {
				break
			}
			if q := c.QueuedBytes(); q > (128<<10)+(16<<10)+14 {
				t.Fatalf("queue holds %d bytes", q)
			}
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("write to a peer that reads nothing: %v, want a stall timeout", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("stalled write failed after %v", d)
		}
	})
}

// A peer that vanished (sends and reads nothing) is found by the
// heartbeat; a live peer that answers pings is kept.
func TestEngineHeartbeat(t *testing.T) {
	forEachDriver(t, EngineConfig{}, func(t *testing.T, e *Engine) {
		closed := make(chan error, 2)
		u := Upgrader{HeartbeatInterval: 300 * time.Millisecond, HeartbeatTimeout: 300 * time.Millisecond}
		url := engineServer(t, e, u, echoHandler(closed))
		live, _, err := DefaultDialer.Dial(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer live.CloseNow()
		go func() { // reading answers the pings
			for {
				if _, _, err := live.ReadMessage(); err != nil {
					return
				}
			}
		}()
		rawClient(t, url, 0) // completes the handshake, then silence
		start := time.Now()
		err = waitErr(t, closed, 5*time.Second)
		if !errors.Is(err, ErrHeartbeatTimeout) {
			t.Fatalf("OnClose %v, want ErrHeartbeatTimeout", err)
		}
		if d := time.Since(start); d < 500*time.Millisecond {
			t.Fatalf("dropped after %v, before interval + timeout", d)
		}
		select {
		case err := <-closed:
			t.Fatalf("the live peer was dropped too: %v", err)
		case <-time.After(time.Second):
		}
		if err := live.WriteMessage(TextMessage, []byte("still here")); err != nil {
			t.Fatal(err)
		}
	})
}

// A message that trickles is cut by the message bound with 1008.
func TestEngineMessageTimeout(t *testing.T) {
	forEachDriver(t, EngineConfig{}, func(t *testing.T, e *Engine) {
		closed := make(chan error, 1)
		u := Upgrader{MessageTimeout: 500 * time.Millisecond, MinMessageRate: 1 << 20}
		url := engineServer(t, e, u, echoHandler(closed))
		nc, br := rawClient(t, url, 0)
		f := maskedFrame(BinaryMessage, false, make([]byte, 100))
		nc.Write(f[:10])
		go func() {
			for _, b := range f[10:] {
				time.Sleep(100 * time.Millisecond)
				if _, err := nc.Write([]byte{b}); err != nil {
					return
				}
			}
		}()
		if err := waitErr(t, closed, 5*time.Second); err != ErrMessageTimeout {
			t.Fatalf("OnClose %v, want ErrMessageTimeout", err)
		}
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		hdr := make([]byte, 4)
		if _, err := io.ReadFull(br, hdr); err != nil {
			t.Fatal(err)
		}
		if hdr[0] != 0x88 || int(hdr[2])<<8|int(hdr[3]) != ClosePolicyViolation {
			t.Fatalf("close frame % x, want 1008", hdr)
		}
	})
}

// The application's read deadline ends an engine connection as it ends a
// blocking read (gorilla's ping/pong pattern).
func TestEngineReadDeadline(t *testing.T) {
	forEachDriver(t, EngineConfig{}, func(t *testing.T, e *Engine) {
		closed := make(chan error, 1)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := (&Upgrader{}).Upgrade(w, r, nil)
			if err != nil {
				return
			}
			c.SetReadDeadline(time.Now().Add(400 * time.Millisecond))
			e.Serve(c, echoHandler(closed))
		}))
		defer srv.Close()
		c, _, err := DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		err = waitErr(t, closed, 5*time.Second)
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("OnClose %v, want a timeout", err)
		}
	})
}

// Thousands of connections opened and closed leave no goroutine and no
// connection behind.
func TestEngineChurn(t *testing.T) {
	forEachDriver(t, EngineConfig{}, func(t *testing.T, e *Engine) {
		var closes atomic.Int64
		url := engineServer(t, e, Upgrader{}, Callbacks{
			OnMessage: func(c *Conn, mt int, p []byte) { c.WriteMessage(mt, p) },
			OnClose:   func(*Conn, error) { closes.Add(1) },
		})
		before := runtime.NumGoroutine()
		const n = 2000
		var wg sync.WaitGroup
		sem := make(chan struct{}, 50)
		var failures atomic.Int64
		deadline := time.Now().Add(60 * time.Second)
		for i := range n {
			if time.Now().After(deadline) {
				t.Fatalf("only %d connections in 60 s", i)
			}
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				c, _, err := DefaultDialer.Dial(url, nil)
				if err != nil {
					failures.Add(1)
					return
				}
				defer c.CloseNow()
				c.WriteMessage(TextMessage, []byte("hi"))
				if _, _, err := c.ReadMessage(); err != nil {
					failures.Add(1)
				}
				if i%2 == 0 {
					c.Close()
				}
			}()
		}
		wg.Wait()
		if f := failures.Load(); f > 0 {
			t.Fatalf("%d of %d connections failed", f, n)
		}
		waitFor(t, 10*time.Second, func() bool { return closes.Load() == n })
		waitFor(t, 10*time.Second, func() bool { return runtime.NumGoroutine() <= before+5 })
	})
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(d); !cond(); {
		if time.Now().After(end) {
			t.Fatalf("condition not met within %v", d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// With workers, callbacks may block, and each connection's messages still
// arrive in order.
func TestEngineWorkers(t *testing.T) {
	forEachDriver(t, EngineConfig{Workers: 4}, func(t *testing.T, e *Engine) {
		url := engineServer(t, e, Upgrader{}, Callbacks{
			OnMessage: func(c *Conn, mt int, p []byte) {
				time.Sleep(time.Millisecond) // blocking is allowed here
				c.WriteMessage(mt, p)
			},
		})
		var wg sync.WaitGroup
		for k := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, _, err := DefaultDialer.Dial(url, nil)
				if err != nil {
					t.Error(err)
					return
				}
				defer c.Close()
				for i := range 100 {
					c.WriteMessage(TextMessage, fmt.Appendf(nil, "%d-%d", k, i))
				}
				for i := range 100 {
					_, p, err := c.ReadMessage()
					if err != nil {
						t.Error(err)
						return
					}
					if want := fmt.Sprintf("%d-%d", k, i); string(p) != want {
						t.Errorf("got %q, want %q: out of order", p, want)
						return
					}
				}
			}()
		}
		wg.Wait()
	})
}

// Engine.Close drops the connections still on it.
func TestEngineCloseDropsConnections(t *testing.T) {
	for _, goroutines := range []bool{false, true} {
		e, err := NewEngine(EngineConfig{Goroutines: goroutines})
		if err != nil {
			t.Fatal(err)
		}
		closed := make(chan error, 1)
		url := engineServer(t, e, Upgrader{}, echoHandler(closed))
		c, _, err := DefaultDialer.Dial(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		c.WriteMessage(TextMessage, []byte("x"))
		c.ReadMessage()
		e.Close()
		if err := waitErr(t, closed, 5*time.Second); err == nil {
			t.Fatal("OnClose with nil error")
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, _, err := c.ReadMessage(); err == nil {
			t.Fatal("connection open after Engine.Close")
		}
		c.CloseNow()
		if err := e.Serve(c, Callbacks{}); err == nil {
			t.Fatal("Serve after Close succeeded")
		}
	}
}

// PauseReads stops the callbacks for a connection, including for input
// already read with the message that paused it, and ResumeReads delivers
// everything in order. On the event loop a pause longer than the heartbeat
// does not end the connection.
func TestEnginePauseReads(t *testing.T) {
	forEachDriver(t, EngineConfig{}, func(t *testing.T, e *Engine) {
		var got atomic.Int32
		paused := make(chan *Conn, 1)
		u := Upgrader{}
		if e.Driver() == "epoll" {
			u.HeartbeatInterval, u.HeartbeatTimeout = 200*time.Millisecond, 200*time.Millisecond
		}
		url := engineServer(t, e, u, Callbacks{
			OnMessage: func(c *Conn, mt int, p []byte) {
				if string(p) == "pause" {
					e.PauseReads(c)
					paused <- c
					return
				}
				got.Add(1)
				c.WriteMessage(mt, p)
			},
		})
		nc, br := rawClient(t, url, 0)
		// "pause" and the first half in one write: they arrive in one read.
		var batch []byte
		batch = append(batch, maskedFrame(1, false, []byte("pause"))...)
		for i := range 50 {
			batch = append(batch, maskedFrame(1, false, fmt.Appendf(nil, "m%03d", i))...)
		}
		if _, err := nc.Write(batch); err != nil {
			t.Fatal(err)
		}
		c := <-paused
		batch = batch[:0]
		for i := 50; i < 100; i++ {
			batch = append(batch, maskedFrame(1, false, fmt.Appendf(nil, "m%03d", i))...)
		}
		if _, err := nc.Write(batch); err != nil {
			t.Fatal(err)
		}
		time.Sleep(700 * time.Millisecond) // longer than interval + timeout
		if n := got.Load(); n != 0 {
			t.Fatalf("%d messages delivered while paused", n)
		}
		e.ResumeReads(c)
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		for i := range 100 {
			op, p := readRawFrame(t, br)
			for op == byte(PingMessage) { // the heartbeat's
				op, p = readRawFrame(t, br)
			}
			if want := fmt.Sprintf("m%03d", i); op != TextMessage || string(p) != want {
				t.Fatalf("echo %d: opcode %d %q, want %q", i, op, p, want)
			}
		}
	})
}

// With workers, a connection's input waiting for them is bounded: reads
// pause beyond MaxQueuedBytes, so a peer cannot fill memory by sending
// faster than the callbacks run, and nothing is lost.
func TestEngineWorkersBoundInput(t *testing.T) {
	const bound = 64 << 10
	forEachDriver(t, EngineConfig{Workers: 1, MaxQueuedBytes: bound}, func(t *testing.T, e *Engine) {
		release := make(chan struct{})
		conns := make(chan *Conn, 1)
		var n atomic.Int32
		done := make(chan struct{})
		url := engineServer(t, e, Upgrader{}, Callbacks{
			OnMessage: func(c *Conn, _ int, p []byte) {
				if n.Add(1) == 1 {
					conns <- c
					<-release
				}
				if want := fmt.Sprintf("%06d", n.Load()-1); string(p[:6]) != want {
					t.Errorf("message %q, want %q first: out of order", p[:6], want)
				}
				if n.Load() == 4096 {
					close(done)
				}
			},
		})
		client, _, err := DefaultDialer.Dial(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer client.CloseNow()
		sent := make(chan error, 1)
		go func() {
			payload := make([]byte, 1<<10)
			for i := range 4096 { // 4 MiB
				copy(payload, fmt.Sprintf("%06d", i))
				if err := client.WriteMessage(BinaryMessage, payload); err != nil {
					sent <- err
					return
				}
			}
			sent <- nil
		}()
		c := <-conns
		most := 0
		for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
			if v, ok := e.pool.qs.Load(c); ok {
				q := v.(*workQueue)
				q.mu.Lock()
				most = max(most, q.bytes)
				q.mu.Unlock()
			}
		}
		if most < bound/2 {
			t.Fatalf("workers held at most %d bytes: the peer did not fill the queue", most)
		}
		if most > bound+(1<<10) {
			t.Fatalf("workers held %d bytes of input, bound %d plus one message", most, bound)
		}
		close(release)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of 4096 messages delivered", n.Load())
		}
		if err := <-sent; err != nil {
			t.Fatal(err)
		}
	})
}

// A pause that ends before the loop has applied it still lets the input
// read with it through: nothing waits for more input from the peer.
func TestEnginePauseResumedAtOnce(t *testing.T) {
	forEachDriver(t, EngineConfig{}, func(t *testing.T, e *Engine) {
		url := engineServer(t, e, Upgrader{}, Callbacks{
			OnMessage: func(c *Conn, mt int, p []byte) {
				e.PauseReads(c)
				e.ResumeReads(c)
				c.WriteMessage(mt, p)
			},
		})
		nc, br := rawClient(t, url, 0)
		var batch []byte
		for i := range 20 {
			batch = append(batch, maskedFrame(1, false, fmt.Appendf(nil, "m%02d", i))...)
		}
		if _, err := nc.Write(batch); err != nil { // one read on the server
			t.Fatal(err)
		}
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		for i := range 20 {
			if op, p := readRawFrame(t, br); op != TextMessage || string(p) != fmt.Sprintf("m%02d", i) {
				t.Fatalf("echo %d: opcode %d %q", i, op, p)
			}
		}
	})
}

// wrappedConn is a listener's wrapper that counts closes, as a server's
// descriptor accounting does.
type wrappedConn struct {
	*net.TCPConn
	released *atomic.Int32
}

func (w *wrappedConn) WrappedSocket() (net.Conn, func()) {
	n := w.released
	return w.TCPConn, func() { n.Add(1) }
}

type wrappingListener struct {
	net.Listener
	released atomic.Int32
}

func (l *wrappingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &wrappedConn{TCPConn: c.(*net.TCPConn), released: &l.released}, nil
}

// A SocketWrapper's connection is held on an event loop, and its release
// runs once when the connection ends.
func TestEngineSocketWrapper(t *testing.T) {
	if !epollAvailable {
		t.Skip("the wrapper matters to the event loop only")
	}
	e, err := NewEngine(EngineConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	onLoop := make(chan bool, 1)
	closed := make(chan error, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := (&Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		e.Serve(c, Callbacks{
			OnMessage: func(c *Conn, mt int, p []byte) {
				onLoop <- c.QueueLimit() > 0
				c.WriteMessage(mt, p)
			},
			OnClose: func(c *Conn, err error) { closed <- err },
		})
	}))
	wl := &wrappingListener{Listener: srv.Listener}
	srv.Listener = wl
	srv.Start()
	defer srv.Close()
	c, _, err := DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.WriteMessage(TextMessage, []byte("hi"))
	if !<-onLoop {
		t.Fatal("the wrapped connection is not on an event loop")
	}
	if _, p, err := c.ReadMessage(); err != nil || string(p) != "hi" {
		t.Fatalf("echo: %q, %v", p, err)
	}
	if n := wl.released.Load(); n != 0 {
		t.Fatalf("released %d times while open", n)
	}
	c.Close()
	waitErr(t, closed, 5*time.Second)
	waitFor(t, 5*time.Second, func() bool { return wl.released.Load() == 1 })
	time.Sleep(50 * time.Millisecond)
	if n := wl.released.Load(); n != 1 {
		t.Fatalf("released %d times, want once", n)
	}
}

// A peer that floods pings and reads nothing cannot grow the output queue
// past its bound with pongs; the write stall timeout ends the connection.
func TestEnginePingFloodBounded(t *testing.T) {
	if !epollAvailable {
		t.Skip("the queue is the event loop's")
	}
	const bound = 64 << 10
	e, err := NewEngine(EngineConfig{MaxQueuedBytes: bound})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	conns := make(chan *Conn, 1)
	closed := make(chan error, 1)
	url := engineServer(t, e, Upgrader{WriteStallTimeout: time.Second}, Callbacks{
		OnMessage: func(c *Conn, _ int, _ []byte) { conns <- c },
		OnClose:   func(c *Conn, err error) { closed <- err },
	})
	nc, _ := rawClient(t, url, 4096)
	nc.Write(maskedFrame(1, false, []byte("go")))
	c := <-conns
	defer floodPings(nc, bytes.Repeat(maskedFrame(9, false, make([]byte, 125)), 100))()
	most := 0
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		most = max(most, c.QueuedBytes())
		select {
		case err := <-closed:
			if most > bound+127 {
				t.Fatalf("queue held %d bytes of pongs, bound %d", most, bound)
			}
			if !errors.Is(err, ErrWriteStalled) && !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("OnClose %v, want the write stall", err)
			}
			return
		default:
		}
	}
	t.Fatalf("connection still open after 3 s of a ping flood it cannot answer (queue at most %d bytes)", most)
}
