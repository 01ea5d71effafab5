package websocket

import (
	"bytes"
	"io"
	"net"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/latchws/latch/internal/frame"
)

// chunkConn is an in-memory net.Conn that delivers its input in chunks of
// the sizes given, then io.EOF. Writes (from any goroutine: held frames are
// flushed by a timer) are counted and dropped.
type chunkConn struct {
	memConnAddrs
	in     []byte
	sizes  []byte
	mu     sync.Mutex
	wrote  int
	closed bool
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.in) == 0 {
		return 0, io.EOF
	}
	n := len(c.in)
	if len(c.sizes) > 0 {
		n = int(c.sizes[0]) + 1
		c.sizes = c.sizes[1:]
	}
	n = copy(p, c.in[:min(n, len(c.in))])
	c.in = c.in[n:]
	return n, nil
}

func (c *chunkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	c.wrote += len(p)
	return len(p), nil
}

func (c *chunkConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return nil
}

// FuzzReadStream feeds arbitrary bytes, split at arbitrary points, to a
// server or client connection read with every read method in turn, and
// echoes what it reads. Whatever comes in: no panic, no hang, messages
// within the read limit, text valid UTF-8 (RFC 6455 §8.1), and once a read
// fails every later read fails.
func FuzzReadStream(f *testing.F) {
	text := maskedFrame(frame.OpText, false, []byte("hello"))
	bin := maskedFrame(frame.OpBinary, false, bytes.Repeat([]byte{0xfe}, 300))
	ping := maskedFrame(frame.OpPing, false, []byte("p"))
	frag := append(append([]byte{}, maskedFrame(frame.OpText, false, []byte("hé"))...), maskedFrame(frame.OpContinuation, false, []byte("llo"))...)
	frag[0] &^= 0x80 // first fragment: FIN off
	closeFrame := maskedFrame(frame.OpClose, false, []byte{0x03, 0xe8})
	f.Add(append(append(append([]byte{}, text...), ping...), bin...), []byte{1, 2, 200}, byte(0), uint16(1000))
	f.Add(append(append([]byte{}, frag...), closeFrame...), []byte{0, 0, 0, 3}, byte(2), uint16(10))
	f.Add(bin, []byte{}, byte(4), uint16(100))
	f.Add([]byte{0x81, 0x05, 'h', 'e', 'l', 'l', 'o', 0x89, 0x00}, []byte{2}, byte(1), uint16(64)) // to a client
	f.Add(maskedFrame(frame.OpText, false, []byte{0xff, 0xfe}), []byte{}, byte(0), uint16(64))
	f.Fuzz(func(t *testing.T, stream, chunks []byte, mode byte, limit uint16) {
		cc := &chunkConn{in: stream, sizes: chunks}
		c := newConn(cc, connConfig{isServer: mode&1 == 0, readLimit: int64(limit) + 1})
		defer c.CloseNow()
		var buf []byte
		for i := range 1000 {
			var mt int
			var p []byte
			var err error
			switch (int(mode>>1) + i) % 3 {
			case 0:
				mt, p, err = c.ReadMessage()
			case 1:
				mt, p, err = c.AppendMessage(buf[:0])
				buf = p
			default:
				var r io.Reader
				if mt, r, err = c.NextReader(); err == nil {
					p, err = io.ReadAll(r)
				}
			}
			if err != nil {
				if _, _, again := c.ReadMessage(); again == nil {
					t.Fatalf("read after the error %v succeeded", err)
				}
				return
			}
			if mt != TextMessage && mt != BinaryMessage {
				t.Fatalf("message type %d", mt)
			}
			if mt == TextMessage && !utf8.Valid(p) {
				t.Fatalf("invalid UTF-8 text returned: %q", p)
			}
			if int64(len(p)) > int64(limit)+1 {
				t.Fatalf("%d-byte message past the %d-byte limit", len(p), limit+1)
			}
			_ = c.WriteMessage(mt, p)
		}
	})
}
