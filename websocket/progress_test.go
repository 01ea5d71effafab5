package websocket

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/latchws/latch/internal/frame"
	"github.com/latchws/latch/internal/mask"
)

// frameHead encodes the header of a masked client frame announcing size
// payload bytes, with the key the payload must be masked with.
func frameHead(op frame.Opcode, fin bool, size int64) ([]byte, [4]byte) {
	key := [4]byte{3, 1, 4, 1}
	h := frame.Header{Fin: fin, Opcode: op, Masked: true, Key: key, Length: size}
	b := make([]byte, h.Size())
	frame.Put(b, &h)
	return b, key
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestAnnouncedSizeCommitsNoMemory: 100 peers each send a header announcing
// a 16 MiB message and one byte of it, then stall. Whatever read method the
// server uses, its heap must follow the bytes received (~100 bytes), not the
// 1.6 GiB announced. The bound is generous: 32 MiB for all 100.
func TestAnnouncedSizeCommitsNoMemory(t *testing.T) {
	const conns, announced = 100, 16 << 20
	readers := map[string]func(c *Conn) error{
		"ReadMessage":   func(c *Conn) error { _, _, err := c.ReadMessage(); return err },
		"AppendMessage": func(c *Conn) error { _, _, err := c.AppendMessage(nil); return err },
		"NextReader": func(c *Conn) error {
			_, r, err := c.NextReader()
			if err == nil {
				_, err = io.ReadAll(r)
			}
			return err
		},
		"ReadJSON": func(c *Conn) error { var v any; return c.ReadJSON(&v) },
	}
	for name, read := range readers {
		for _, compressed := range []bool{false, true} {
			t.Run(name+map[bool]string{false: "", true: "/compressed"}[compressed], func(t *testing.T) {
				u := &Upgrader{EnableCompression: true, MessageTimeout: -1}
				var ended sync.WaitGroup
				url := serve(t, u, func(c *Conn) {
					defer ended.Done()
					read(c)
					c.CloseNow()
				})
				before := heapInUse()
				peers := make([]net.Conn, 0, conns)
				for range conns {
					ended.Add(1)
					var nc net.Conn
					if compressed {
						nc, _ = rawCompressedClient(t, url)
					} else {
						nc, _ = rawPeer(t, url)
					}
					head, key := frameHead(frame.OpBinary, true, announced)
					if compressed {
						head[0] |= 0x40 // RSV1: a compressed message (RFC 7692 §6)
					}
					payload := []byte{0x00}
					mask.Apply(key, 0, payload)
					if _, err := nc.Write(append(head, payload...)); err != nil {
						t.Fatal(err)
					}
					peers = append(peers, nc)
				}
				// The old reader committed the announced size at the header:
				// watch the heap for a while, it must never get there.
				var peak uint64
				for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
					if h := heapInUse(); h > before {
						peak = max(peak, h-before)
					}
				}
				if peak > 32<<20 {
					t.Errorf("%d stalled %d MiB announcements: heap grew by %.1f MiB, want < 32", conns, announced>>20, float64(peak)/(1<<20))
				}
				t.Logf("heap growth for %d stalled announcements: %.1f KiB per connection", conns, float64(peak)/conns/1024)
				for _, nc := range peers {
					nc.Close()
				}
				ended.Wait()
			})
		}
	}
}

// TestLargeMessagesStillArriveWhole: messages above the allocation floor,
// at and around the chunk boundaries, come out byte for byte with every
// read method, in one piece or in many.
func TestLargeMessagesStillArriveWhole(t *testing.T) {
	sizes := []int{readAllocFloor, readAllocFloor + 1, 3*readAllocFloor + 17, 1<<20 + 5, 5 << 20}
	got := make(chan []byte, 1)
	url := serve(t, nil, func(c *Conn) {
		for i := 0; ; i++ {
			var p []byte
			var err error
			if i%2 == 0 {
				_, p, err = c.ReadMessage()
			} else {
				_, p, err = c.AppendMessage([]byte("prefix"))
				if err == nil && !strings.HasPrefix(string(p), "prefix") {
					t.Error("AppendMessage lost dst")
				}
				p = p[len("prefix"):]
			}
			if err != nil {
				return
			}
			got <- p
		}
	})
	c := dial(t, url)
	for _, size := range sizes {
		msg := make([]byte, size)
		for i := range msg {
			msg[i] = byte(i*7 + i>>11)
		}
		for _, pieces := range []int{1, 3} {
			go func() {
				if pieces == 1 {
					c.WriteMessage(BinaryMessage, msg)
					return
				}
				// A slow sender: the reader waits in the middle of the frame.
				w, _ := c.NextWriter(BinaryMessage)
				w.Write(msg)
				w.Close()
			}()
			p := <-got
			if string(p) != string(msg) {
				t.Fatalf("%d bytes: message differs (got %d bytes)", size, len(p))
			}
		}
	}
}

// trickle sends b one byte at a time, every, until the peer closes or
// stop is closed.
func trickle(nc net.Conn, b []byte, every time.Duration, stop <-chan struct{}) {
	for _, x := range b {
		select {
		case <-stop:
			return
		case <-time.After(every):
		}
		if _, err := nc.Write([]byte{x}); err != nil {
			return
		}
	}
}

// readCloseCode reads server frames until a close frame and returns its
// code, or -1 when the connection ends without one.
func readCloseCode(t *testing.T, nc net.Conn, br *bufio.Reader) int {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		var h [2]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return -1
		}
		n := int(h[1] & 0x7f)
		p := make([]byte, n)
		if _, err := io.ReadFull(br, p); err != nil {
			return -1
		}
		if h[0]&0x0f == 8 && n >= 2 {
			return int(p[0])<<8 | int(p[1])
		}
	}
}

// TestTricklingMessageIsCut: a message that arrives a byte at a time is cut
// at the message bound with close 1008 and ErrMessageTimeout, whether it
// trickles in its header, in its payload, or in the continuation of a
// fragmented message; the read ends within a bounded time.
func TestTricklingMessageIsCut(t *testing.T) {
	head, key := frameHead(frame.OpText, true, 100)
	payload := []byte(strings.Repeat("x", 100))
	mask.Apply(key, 0, payload)
	whole := append(append([]byte(nil), head...), payload...)
	first, key1 := frameHead(frame.OpText, false, 3)
	p1 := []byte("abc")
	mask.Apply(key1, 0, p1)
	pingHead, _ := frameHead(frame.OpPing, true, 50)
	cont, key2 := frameHead(frame.OpContinuation, true, 100)
	p2 := []byte(strings.Repeat("y", 100))
	mask.Apply(key2, 0, p2)
	cases := []struct {
		name      string
		at, slow  []byte // sent at once, then a byte at a time
		timeout   time.Duration
		rate      int
		wantAfter time.Duration
	}{
		{"header", nil, whole, 300 * time.Millisecond, 1024, 300 * time.Millisecond},
		{"payload", head, payload, 300 * time.Millisecond, 1024, 300 * time.Millisecond},
		{"fragments", append(append(first, p1...), cont...), p2, 300 * time.Millisecond, 1024, 300 * time.Millisecond},
		{"control frame", pingHead, make([]byte, 50), 300 * time.Millisecond, -1, 300 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			errc := make(chan error, 1)
			u := &Upgrader{MessageTimeout: tc.timeout, MinMessageRate: tc.rate}
			url := serve(t, u, func(c *Conn) {
				_, _, err := c.ReadMessage()
				errc <- err
			})
			nc, br := rawPeer(t, url)
			stop := make(chan struct{})
			defer close(stop)
			start := time.Now()
			nc.Write(tc.at)
			go trickle(nc, tc.slow, 50*time.Millisecond, stop)
			var err error
			select {
			case err = <-errc:
			case <-time.After(10 * time.Second):
				t.Fatal("a trickling message was never cut")
			}
			took := time.Since(start)
			if !errors.Is(err, ErrMessageTimeout) {
				t.Fatalf("read error %v, want ErrMessageTimeout", err)
			}
			if took < tc.wantAfter {
				t.Errorf("cut after %v, before the %v bound", took, tc.wantAfter)
			}
			if code := readCloseCode(t, nc, br); code != ClosePolicyViolation {
				t.Errorf("peer got close code %d, want 1008", code)
			}
		})
	}
}

// TestSlowLargeMessagePasses: a message well above the timeout's worth of
// bytes arrives slower than the timeout allows, but faster than the
// minimum rate: the rate extends the bound and the message is read whole.
func TestSlowLargeMessagePasses(t *testing.T) {
	const size = 48 << 10
	got := make(chan error, 1)
	// 200 ms plus a second per 16 KiB: 3.2 s for 48 KiB, sent in ~1.2 s.
	u := &Upgrader{MessageTimeout: 200 * time.Millisecond, MinMessageRate: 16 << 10}
	url := serve(t, u, func(c *Conn) {
		_, p, err := c.ReadMessage()
		if err == nil && len(p) != size {
			err = errors.New("short message")
		}
		got <- err
	})
	nc, _ := rawPeer(t, url)
	head, key := frameHead(frame.OpBinary, true, size)
	payload := make([]byte, size)
	mask.Apply(key, 0, payload)
	nc.Write(head)
	for off := 0; off < size; off += 4 << 10 {
		time.Sleep(100 * time.Millisecond)
		nc.Write(payload[off : off+4<<10])
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("slow but steady message: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("message never read")
	}
}

// TestIdleConnectionOutlivesMessageTimeout: the bound is for messages that
// have begun; a connection idle between messages is not cut by it, and
// gorilla's pattern of a read deadline set by the application still
// decides, with its own timeout error.
func TestIdleConnectionOutlivesMessageTimeout(t *testing.T) {
	got := make(chan error, 2)
	u := &Upgrader{MessageTimeout: 100 * time.Millisecond, HeartbeatInterval: -1}
	url := serve(t, u, func(c *Conn) {
		_, _, err := c.ReadMessage() // the first arrives after 400 ms of silence
		got <- err
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, _, err = c.ReadMessage() // nothing comes: the application's deadline
		got <- err
	})
	c := dial(t, url)
	time.Sleep(400 * time.Millisecond)
	if err := c.WriteMessage(TextMessage, []byte("late but whole")); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("idle connection was cut: %v", err)
	}
	err := <-got
	if errors.Is(err, ErrMessageTimeout) || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("after the application's deadline: %v, want a deadline error", err)
	}
}

// TestApplicationDeadlineInsideMessage: a read deadline of the application
// that comes before the message bound ends the read with the
// application's timeout, not ErrMessageTimeout; a later one leaves the
// message bound in force.
func TestApplicationDeadlineInsideMessage(t *testing.T) {
	for _, tc := range []struct {
		name     string
		appAfter time.Duration
		want     error
	}{
		{"application first", 200 * time.Millisecond, os.ErrDeadlineExceeded},
		{"message bound first", 5 * time.Second, ErrMessageTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan error, 1)
			u := &Upgrader{MessageTimeout: 600 * time.Millisecond, MinMessageRate: -1}
			url := serve(t, u, func(c *Conn) {
				c.SetReadDeadline(time.Now().Add(tc.appAfter))
				_, _, err := c.ReadMessage()
				got <- err
			})
			nc, _ := rawPeer(t, url)
			head, _ := frameHead(frame.OpBinary, true, 10)
			nc.Write(head) // and nothing more
			select {
			case err := <-got:
				if !errors.Is(err, tc.want) || (tc.want != ErrMessageTimeout && errors.Is(err, ErrMessageTimeout)) {
					t.Fatalf("read error %v, want %v", err, tc.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("read never ended")
			}
		})
	}
}

// smallBuffers keeps a TCP connection's socket buffers small, so that a
// peer that does not read fills them after a few KiB.
func smallBuffers(nc net.Conn) {
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetReadBuffer(4 << 10)
		tc.SetWriteBuffer(4 << 10)
	}
}

// stalledPeer dials url over TCP (or TLS) with small socket buffers and
// never reads.
func stalledPeer(t *testing.T, url string, tlsConf *tls.Config) {
	t.Helper()
	d := &Dialer{
		TLSClientConfig: tlsConf,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nc, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err == nil {
				smallBuffers(nc)
			}
			return nc, err
		},
	}
	c, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
}

// TestWriteStallFailsAndCloses: writes to a peer that never reads fail
// with ErrWriteStalled once nothing has moved for the stall timeout, over
// TCP (raw descriptor writes, writev for large frames) and over TLS
// (net.Conn writes); the connection is then closed, so the server's
// reader ends too.
func TestWriteStallFailsAndCloses(t *testing.T) {
	for _, tc := range []struct {
		name string
		tls  bool
		size int
	}{
		{"tcp small frames", false, 1 << 10},
		{"tcp large frames", false, 256 << 10},
		{"tls", true, 1 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			writeErr, readErr := make(chan error, 1), make(chan error, 1)
			u := &Upgrader{WriteStallTimeout: 300 * time.Millisecond}
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c, err := u.Upgrade(w, r, nil)
				if err != nil {
					return
				}
				smallBuffers(c.NetConn())
				if tlsConn, ok := c.NetConn().(*tls.Conn); ok {
					smallBuffers(tlsConn.NetConn())
				}
				go func() { _, _, err := c.ReadMessage(); readErr <- err }()
				msg := make([]byte, tc.size)
				for i := 0; i < 100000; i++ {
					if err := c.WriteMessage(BinaryMessage, msg); err != nil {
						writeErr <- err
						return
					}
				}
				writeErr <- errors.New("100,000 writes to a peer that never reads all succeeded")
			})
			var srv *httptest.Server
			if tc.tls {
				srv = httptest.NewTLSServer(h)
			} else {
				srv = httptest.NewServer(h)
			}
			t.Cleanup(srv.Close)
			url := "ws" + strings.TrimPrefix(srv.URL, "http")
			var conf *tls.Config
			if tc.tls {
				conf = &tls.Config{RootCAs: srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}
			}
			stalledPeer(t, url, conf)
			select {
			case err := <-writeErr:
				if !errors.Is(err, ErrWriteStalled) || !errors.Is(err, os.ErrDeadlineExceeded) || !isTimeout(err) {
					t.Fatalf("write error %v, want ErrWriteStalled (a timeout)", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("writes to a peer that never reads never failed")
			}
			select {
			case err := <-readErr:
				if !errors.Is(err, ErrWriteStalled) {
					t.Errorf("read ended with %v, want the failed write as its cause", err)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("the connection stayed open after its write failed")
			}
		})
	}
}

// TestSlowReaderIsNotStalled: a peer that reads slowly but steadily keeps
// the socket moving, so a long write to it succeeds although it takes
// several stall timeouts in all. (Socket buffers are left as the system
// sizes them: below the loopback MSS, TCP's persist timer alone makes
// pauses of 200 ms.)
func TestSlowReaderIsNotStalled(t *testing.T) {
	done := make(chan error, 1)
	const size = 16 << 20
	u := &Upgrader{WriteStallTimeout: 300 * time.Millisecond}
	url := serve(t, u, func(c *Conn) {
		done <- c.WriteMessage(BinaryMessage, make([]byte, size))
	})
	c := dial(t, url)
	c.SetReadLimit(size)
	_, r, err := c.NextReader()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	start, total := time.Now(), 0
	for total < size {
		time.Sleep(5 * time.Millisecond) // ~12 MB/s at most: the socket stays full
		n, err := r.Read(buf)
		total += n
		if err != nil && err != io.EOF {
			t.Fatalf("after %d bytes: %v", total, err)
		}
	}
	took := time.Since(start)
	if err := <-done; err != nil {
		t.Fatalf("write to a slow but steady reader failed after %v: %v", took, err)
	}
	if took < 600*time.Millisecond {
		t.Fatalf("the transfer took %v: not the two stall timeouts it must outlast", took)
	}
}

// TestWriteDeadlineOfApplicationComesFirst: gorilla's write deadline
// pattern still decides when it is the earlier bound: the error is the
// deadline's, not ErrWriteStalled.
func TestWriteDeadlineOfApplicationComesFirst(t *testing.T) {
	done := make(chan error, 1)
	u := &Upgrader{WriteStallTimeout: 5 * time.Second}
	url := serve(t, u, func(c *Conn) {
		smallBuffers(c.NetConn())
		msg := make([]byte, 1<<10)
		for {
			c.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
			if err := c.WriteMessage(BinaryMessage, msg); err != nil {
				done <- err
				return
			}
		}
	})
	stalledPeer(t, url, nil)
	select {
	case err := <-done:
		if errors.Is(err, ErrWriteStalled) || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("write error %v, want the application's deadline", err)
		}
	case <-time.After(4 * time.Second):
		t.Fatal("the application's write deadline did not end the write")
	}
}

// TestPingFloodAfterFailedWrite: a peer that floods pings and never reads
// fills the socket with pongs; once a pong write fails, the connection is
// closed at once although the peer keeps sending. (Only the buffers the
// pongs fill are small: a receive buffer below the loopback MSS would stall
// the flood itself in TCP's zero-window probing.)
func TestPingFloodAfterFailedWrite(t *testing.T) {
	readErr := make(chan error, 1)
	u := &Upgrader{WriteStallTimeout: 300 * time.Millisecond}
	url := serve(t, u, func(c *Conn) {
		c.NetConn().(*net.TCPConn).SetWriteBuffer(4 << 10)
		_, _, err := c.ReadMessage()
		readErr <- err
	})
	d := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) {
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4<<10)
		})
	}}
	nc, _ := rawPeerDial(t, url, d)
	ping := maskedFrame(frame.OpPing, false, []byte(strings.Repeat("p", 125)))
	defer floodPings(nc, bytes.Repeat(ping, 64))()
	select {
	case err := <-readErr:
		var fe *writeFailedError
		if !errors.As(err, &fe) {
			t.Fatalf("read ended with %v, want the closing after a failed write", err)
		}
	case <-time.After(8 * time.Second):
		t.Fatal("a ping flood kept a connection open whose writes had failed")
	}
}

// TestDialBoundsResponseHead: a server that answers the handshake with
// endless headers makes the Dialer fail with a clear error once the head
// passes 256 KiB, instead of buffering all of it.
func TestDialBoundsResponseHead(t *testing.T) {
	addr := hsRawServer(t, func(r *http.Request) string {
		// 101 with the right accept key, then 1 MiB of header lines.
		return hsGood101(r, strings.Repeat("X-Filler: "+strings.Repeat("f", 1000)+"\r\n", 1024))
	})
	_, _, err := (&Dialer{HandshakeTimeout: 10 * time.Second}).Dial("ws://"+addr+"/", nil)
	if !errors.Is(err, errResponseHeadTooLarge) {
		t.Fatalf("dial against a 1 MiB response head: %v, want errResponseHeadTooLarge", err)
	}
	// A head with a few KiB of cookies is fine.
	addr = hsRawServer(t, func(r *http.Request) string {
		return hsGood101(r, strings.Repeat("Set-Cookie: c="+strings.Repeat("v", 1000)+"\r\n", 8))
	})
	c, _, err := (&Dialer{HandshakeTimeout: 10 * time.Second}).Dial("ws://"+addr+"/", nil)
	if err != nil {
		t.Fatalf("dial with 8 KiB of cookies: %v", err)
	}
	c.CloseNow()
}

// floodPings writes flood to nc again and again, in the background, until
// the returned stop is called or a write fails for good.
func floodPings(nc net.Conn, flood []byte) (stop func()) {
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			nc.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := nc.Write(flood); err != nil && !isTimeout(err) {
				return
			}
		}
	}()
	return func() { close(done) }
}
