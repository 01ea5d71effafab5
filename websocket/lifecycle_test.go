package websocket

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// Count pooled buffers for TestIdleConnectionsHoldNoBuffers, from before
// the first connection of this test binary.
func init() { countBuffers = true }

// serve runs handler on every upgraded server connection.
func serve(t *testing.T, u *Upgrader, handler func(*Conn)) string {
	t.Helper()
	if u == nil {
		u = &Upgrader{}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := u.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		handler(c)
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

func TestConcurrentWritesAreSerialised(t *testing.T) {
	url, _ := newEchoServer(t, nil)
	c := dial(t, url)
	const writers, each = 8, 50
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				msg := fmt.Sprintf("%d:%d:%s", w, i, strings.Repeat("x", (w*each+i)%9000))
				var err error
				if i%2 == 0 {
					err = c.WriteMessage(TextMessage, []byte(msg))
				} else {
					var wc io.WriteCloser
					if wc, err = c.NextWriter(TextMessage); err == nil {
						// Several writes: the message goes out in fragments.
						for len(msg) > 0 {
							n := min(len(msg), 1500)
							if _, err = io.WriteString(wc, msg[:n]); err != nil {
								break
							}
							msg = msg[n:]
						}
						if cerr := wc.Close(); err == nil {
							err = cerr
						}
					}
				}
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				if i%10 == 0 {
					if err := c.WriteControl(PingMessage, []byte("p"), time.Now().Add(time.Second)); err != nil {
						t.Errorf("ping: %v", err)
						return
					}
				}
			}
		}()
	}
	next := make([]int, writers)
	for n := 0; n < writers*each; n++ {
		_, p, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("read %d: %v", n, err)
		}
		var w, i int
		var rest string
		parts := strings.SplitN(string(p), ":", 3)
		if len(parts) != 3 {
			t.Fatalf("garbled message %.40q", p)
		}
		fmt.Sscan(parts[0], &w)
		fmt.Sscan(parts[1], &i)
		rest = parts[2]
		if i != next[w] || rest != strings.Repeat("x", (w*each+i)%9000) {
			t.Fatalf("writer %d: got message %d (%d bytes), want %d", w, i, len(rest), next[w])
		}
		next[w]++
	}
	wg.Wait()
}

func TestConcurrentReadReturnsError(t *testing.T) {
	url := serve(t, nil, func(c *Conn) {
		c.ReadMessage()
	})
	c := dial(t, url)
	started := make(chan struct{})
	go func() {
		close(started)
		c.ReadMessage()
	}()
	<-started
	deadline := time.Now().Add(2 * time.Second)
	for !c.appReading.Load() {
		if time.Now().After(deadline) {
			t.Fatal("first reader never started")
		}
		time.Sleep(time.Millisecond)
	}
	if _, _, err := c.ReadMessage(); !errors.Is(err, ErrConcurrentRead) {
		t.Fatalf("second reader got %v, want ErrConcurrentRead", err)
	}
	c.CloseNow()
}

func TestReadErrorIsSticky(t *testing.T) {
	url := serve(t, nil, func(c *Conn) {
		c.CloseWithCode(4001, "go away")
	})
	c := dial(t, url)
	_, _, err1 := c.ReadMessage()
	_, _, err2 := c.ReadMessage()
	_, _, err3 := c.NextReader()
	if CloseStatus(err1) != 4001 || err2 != err1 || err3 != err1 {
		t.Fatalf("errors %v / %v / %v, want the same close 4001 each time", err1, err2, err3)
	}
}

func TestReadLimit(t *testing.T) {
	serverErr := make(chan error, 1)
	url := serve(t, &Upgrader{ReadLimit: 1000}, func(c *Conn) {
		defer c.Close()
		for {
			mt, p, err := c.ReadMessage()
			if err != nil {
				serverErr <- err
				return
			}
			c.WriteMessage(mt, p)
		}
	})
	c := dial(t, url)
	if err := c.WriteMessage(BinaryMessage, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	if _, p, err := c.ReadMessage(); err != nil || len(p) != 1000 {
		t.Fatalf("message at the limit: %v", err)
	}
	if err := c.WriteMessage(BinaryMessage, make([]byte, 1001)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.ReadMessage(); CloseStatus(err) != CloseMessageTooBig {
		t.Fatalf("client read %v, want close 1009", err)
	}
	if err := <-serverErr; !errors.Is(err, ErrReadLimit) {
		t.Fatalf("server read %v, want ErrReadLimit", err)
	}
}

func TestDefaultReadLimitIsBounded(t *testing.T) {
	serverErr := make(chan error, 1)
	url := serve(t, nil, func(c *Conn) {
		defer c.Close()
		_, _, err := c.ReadMessage()
		serverErr <- err
	})
	c := dial(t, url)
	w, err := c.NextWriter(BinaryMessage)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for sent := 0; sent <= DefaultReadLimit; sent += len(chunk) {
		if _, err := w.Write(chunk); err != nil {
			break // the server failed the connection part way
		}
	}
	w.Close()
	if err := <-serverErr; !errors.Is(err, ErrReadLimit) {
		t.Fatalf("server read %v, want ErrReadLimit", err)
	}
}

func TestInvalidUTF8IsNotSent(t *testing.T) {
	url, _ := newEchoServer(t, nil)
	c := dial(t, url)
	if err := c.WriteMessage(TextMessage, []byte{'a', 0xff}); err == nil {
		t.Fatal("invalid text was accepted")
	}
	w, _ := c.NextWriter(TextMessage)
	if _, err := w.Write([]byte{0xed, 0xa0, 0x80}); err == nil {
		t.Fatal("writer accepted a surrogate")
	}
	w.Close()
	// The connection is still usable.
	if err := c.WriteMessage(TextMessage, []byte("ok")); err != nil {
		t.Fatal(err)
	}
	if _, p, err := c.ReadMessage(); err != nil || string(p) != "ok" {
		t.Fatalf("after refused text: %q %v", p, err)
	}
}

func TestWritesAfterCloseSent(t *testing.T) {
	url, _ := newEchoServer(t, nil)
	c := dial(t, url)
	if err := c.WriteControl(CloseMessage, FormatCloseMessage(CloseNormalClosure, ""), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteMessage(TextMessage, []byte("late")); err != ErrCloseSent {
		t.Fatalf("write after close: %v, want ErrCloseSent", err)
	}
	if err := c.WriteControl(PingMessage, nil, time.Now().Add(time.Second)); err != ErrCloseSent {
		t.Fatalf("ping after close: %v, want ErrCloseSent", err)
	}
	// gorilla's pattern: the read loop sees the echoed close.
	if _, _, err := c.ReadMessage(); !IsCloseError(err, CloseNormalClosure) {
		t.Fatalf("read: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("close after handshake: %v", err)
	}
}

func TestCloseNowUnblocksRead(t *testing.T) {
	url := serve(t, nil, func(c *Conn) { c.ReadMessage() })
	c := dial(t, url)
	errc := make(chan error, 1)
	go func() {
		_, _, err := c.ReadMessage()
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	c.CloseNow()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read after CloseNow: %v, want net.ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("read still blocked")
	}
}

func TestCloseIsSafeConcurrently(t *testing.T) {
	url, serverErr := newEchoServer(t, nil)
	c := dial(t, url)
	go func() {
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(2)
		go func() { defer wg.Done(); c.Close() }()
		go func() { defer wg.Done(); c.WriteMessage(TextMessage, []byte("x")) }()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("Close calls did not return")
	}
	if err := <-serverErr; !IsCloseError(err, CloseNormalClosure) {
		t.Fatalf("server saw %v, want close 1000", err)
	}
}

// rawPeer completes a client handshake by hand and returns the connection.
func rawPeer(t *testing.T, url string) (net.Conn, *bufio.Reader) {
	t.Helper()
	return rawPeerDial(t, url, &net.Dialer{})
}

// rawPeerDial is rawPeer through d.
func rawPeerDial(t *testing.T, url string, d *net.Dialer) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := d.Dial("tcp", strings.TrimPrefix(url, "ws://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	req := "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := nc.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("raw handshake: %v %v", resp, err)
	}
	return nc, br
}

// readRawFrame reads one unmasked frame (what a server sends).
func readRawFrame(t *testing.T, br *bufio.Reader) (op byte, payload []byte) {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		t.Fatalf("read frame: %v", err)
	}
	n := int(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		io.ReadFull(br, b[:])
		n = int(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		io.ReadFull(br, b[:])
		n = int(binary.BigEndian.Uint64(b[:]))
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(br, payload); err != nil {
		t.Fatalf("read payload: %v", err)
	}
	return h[0] & 0x0f, payload
}

func TestCloseTimeoutWhenPeerIsSilent(t *testing.T) {
	closed := make(chan time.Duration, 1)
	url := serve(t, &Upgrader{CloseTimeout: 200 * time.Millisecond}, func(c *Conn) {
		start := time.Now()
		c.Close()
		closed <- time.Since(start)
	})
	nc, br := rawPeer(t, url)
	op, payload := readRawFrame(t, br)
	if op != 8 || !bytes.Equal(payload, []byte{0x03, 0xe8}) {
		t.Fatalf("got opcode %d payload %x, want close 1000", op, payload)
	}
	d := <-closed
	if d < 150*time.Millisecond || d > 2*time.Second {
		t.Fatalf("Close returned after %v with a silent peer, want about the 200ms close timeout", d)
	}
	// The server has closed TCP.
	nc.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after close: %v, want EOF", err)
	}
}

func TestHeartbeatKeepsLivePeer(t *testing.T) {
	serverErr := make(chan error, 1)
	pings := make(chan struct{}, 100)
	url := serve(t, &Upgrader{HeartbeatInterval: 50 * time.Millisecond, HeartbeatTimeout: 100 * time.Millisecond}, func(c *Conn) {
		defer c.Close()
		for {
			mt, p, err := c.ReadMessage()
			if err != nil {
				serverErr <- err
				return
			}
			c.WriteMessage(mt, p)
		}
	})
	c := dial(t, url)
	c.SetPingHandler(func(data string) error {
		pings <- struct{}{}
		return c.WriteControl(PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	go func() {
		time.Sleep(500 * time.Millisecond)
		c.WriteMessage(TextMessage, []byte("still here"))
	}()
	if _, p, err := c.ReadMessage(); err != nil || string(p) != "still here" {
		t.Fatalf("after idle period: %q %v", p, err)
	}
	if len(pings) < 3 {
		t.Fatalf("peer was pinged %d times in 500ms with a 50ms interval", len(pings))
	}
	c.Close()
	if err := <-serverErr; !IsCloseError(err, CloseNormalClosure) {
		t.Fatalf("server read ended with %v", err)
	}
}

func TestHeartbeatSparesWriteOnlyPrograms(t *testing.T) {
	result := make(chan error, 1)
	url := serve(t, &Upgrader{HeartbeatInterval: 20 * time.Millisecond, HeartbeatTimeout: 20 * time.Millisecond}, func(c *Conn) {
		defer c.CloseNow()
		// This program never reads: pongs cannot be seen, so the peer
		// must not be judged dead.
		for i := 0; i < 20; i++ {
			if err := c.WriteMessage(TextMessage, []byte("tick")); err != nil {
				result <- err
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		result <- nil
	})
	_, br := rawPeer(t, url)
	go io.Copy(io.Discard, br) // a peer that reads but never answers
	if err := <-result; err != nil {
		t.Fatalf("write-only server was cut off: %v", err)
	}
}

func TestGorillaPingPongPatternStillWorks(t *testing.T) {
	const pongWait, pingPeriod = 150 * time.Millisecond, 50 * time.Millisecond
	serverErr := make(chan error, 1)
	url := serve(t, nil, func(c *Conn) {
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(pongWait))
		c.SetPongHandler(func(string) error { c.SetReadDeadline(time.Now().Add(pongWait)); return nil })
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			ticker := time.NewTicker(pingPeriod)
			defer ticker.Stop()
			for {
				select {
				case <-ticker.C:
					if err := c.WriteControl(PingMessage, nil, time.Now().Add(time.Second)); err != nil {
						return
					}
				case <-stop:
					return
				}
			}
		}()
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				serverErr <- err
				return
			}
		}
	})
	c := dial(t, url)
	go func() {
		time.Sleep(600 * time.Millisecond) // four times pongWait
		c.Close()
	}()
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			break
		}
	}
	if err := <-serverErr; !IsCloseError(err, CloseNormalClosure) {
		t.Fatalf("server read ended with %v, want close 1000", err)
	}
}

func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		url, _ := newEchoServer(t, &Upgrader{HeartbeatInterval: 10 * time.Millisecond})
		var wg sync.WaitGroup
		for i := 0; i < 60; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, _, err := DefaultDialer.Dial(url, nil)
				if err != nil {
					t.Error(err)
					return
				}
				c.SetHeartbeat(10*time.Millisecond, 10*time.Millisecond)
				c.WriteMessage(TextMessage, []byte("hi"))
				c.ReadMessage()
				time.Sleep(30 * time.Millisecond) // let heartbeats tick
				switch i % 3 {
				case 0:
					c.Close()
				case 1:
					c.CloseWithCode(CloseGoingAway, "")
				default:
					c.CloseNow()
				}
			}()
		}
		wg.Wait()
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= before+2 { // the httptest server may still be shutting down
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines before, %d after all connections closed:\n%s", before, n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestIdleConnectionsHoldNoBuffers(t *testing.T) {
	const conns = 20
	// Connections of earlier tests that ended without a read keep theirs.
	readBefore, writeBefore := readBufsOut.Load(), writeBufsOut.Load()
	url, _ := newEchoServer(t, nil)
	var clients []*Conn
	for i := 0; i < conns; i++ {
		c := dial(t, url)
		if err := c.WriteMessage(BinaryMessage, make([]byte, 10000)); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.ReadMessage(); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	// Every server connection is now waiting in ReadMessage, every client
	// is between messages.
	deadline := time.Now().Add(2 * time.Second)
	for readBufsOut.Load() != readBefore || writeBufsOut.Load() != writeBefore {
		if time.Now().After(deadline) {
			t.Fatalf("%d idle connections hold %d read and %d write buffers", 2*conns, readBufsOut.Load()-readBefore, writeBufsOut.Load()-writeBefore)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, c := range clients {
		c.Close()
	}
}

func TestClientWaitsForServerToCloseTCP(t *testing.T) {
	// A raw server: handshake, send close 4002, wait, then close TCP.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const hold = 300 * time.Millisecond
	echoed := make(chan []byte, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		br := bufio.NewReader(nc)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		fmt.Fprintf(nc, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", acceptKey(req.Header.Get("Sec-WebSocket-Key")))
		nc.Write([]byte{0x88, 2, 0x0f, 0xa2})
		// Read the client's masked close answer.
		var h [6]byte
		io.ReadFull(br, h[:])
		p := make([]byte, h[1]&0x7f)
		io.ReadFull(br, p)
		for i := range p {
			p[i] ^= h[2+i%4]
		}
		echoed <- p
		time.Sleep(hold)
	}()
	c, _, err := DefaultDialer.Dial("ws://"+ln.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, _, err = c.ReadMessage()
	if CloseStatus(err) != 4002 {
		t.Fatalf("read %v, want close 4002", err)
	}
	if d := time.Since(start); d < hold-50*time.Millisecond {
		t.Fatalf("client closed TCP after %v, before the server did (%v)", d, hold)
	}
	if p := <-echoed; !bytes.Equal(p, []byte{0x0f, 0xa2}) {
		t.Fatalf("client answered close with %x, want the same code 0fa2", p)
	}
}

func TestCloseWithCodeRejectsBadCodes(t *testing.T) {
	url, _ := newEchoServer(t, nil)
	c := dial(t, url)
	for _, code := range []int{0, 999, 1004, 1005, 1006, 1015, 2999, 5000} {
		if err := c.CloseWithCode(code, ""); err == nil {
			t.Errorf("CloseWithCode(%d) accepted", code)
		}
	}
	if err := c.CloseWithCode(CloseNormalClosure, strings.Repeat("x", 124)); err == nil {
		t.Error("a 124-byte reason was accepted")
	}
	if err := c.CloseWithCode(CloseNormalClosure, "\xff"); err == nil {
		t.Error("a reason that is not UTF-8 was accepted")
	}
}

func TestPreparedMessageJSONAndJoin(t *testing.T) {
	url, _ := newEchoServer(t, nil)
	c := dial(t, url)
	pm, err := NewPreparedMessage(TextMessage, []byte("prepared"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WritePreparedMessage(pm); err != nil {
		t.Fatal(err)
	}
	if _, p, err := c.ReadMessage(); err != nil || string(p) != "prepared" {
		t.Fatalf("prepared echo %q %v", p, err)
	}
	type msg struct{ A int }
	if err := c.WriteJSON(msg{A: 7}); err != nil {
		t.Fatal(err)
	}
	var got msg
	if err := c.ReadJSON(&got); err != nil || got.A != 7 {
		t.Fatalf("json echo %+v %v", got, err)
	}
	c.WriteMessage(TextMessage, []byte("a"))
	c.WriteMessage(TextMessage, []byte("b"))
	r := JoinMessages(c, "\n")
	buf := make([]byte, 4)
	if _, err := io.ReadFull(r, buf); err != nil || string(buf) != "a\nb\n" {
		t.Fatalf("joined %q %v", buf, err)
	}
}
