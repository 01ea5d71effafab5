package websocket

import (
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/latchws/latch/internal/deflate"
	"github.com/latchws/latch/internal/frame"
	"github.com/latchws/latch/internal/mask"
)

// replayConn is an in-memory net.Conn: reads replay one encoded frame
// forever, writes are discarded. It isolates the library's own cost.
type replayConn struct {
	memConnAddrs
	frame []byte
	off   int
	sink  io.Writer // where writes go; nil: discarded
}

func (c *replayConn) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k := copy(p[n:], c.frame[c.off:])
		n += k
		c.off = (c.off + k) % len(c.frame)
	}
	return n, nil
}
func (c *replayConn) Write(p []byte) (int, error) {
	if c.sink != nil {
		return c.sink.Write(p)
	}
	return len(p), nil
}
func (c *replayConn) Close() error { return nil }

// memConnAddrs gives the in-memory test conns the rest of net.Conn:
// empty addresses and deadlines that do nothing.
type memConnAddrs struct{}

func (memConnAddrs) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (memConnAddrs) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (memConnAddrs) SetDeadline(time.Time) error      { return nil }
func (memConnAddrs) SetReadDeadline(time.Time) error  { return nil }
func (memConnAddrs) SetWriteDeadline(time.Time) error { return nil }

// clientFrame encodes a masked client frame carrying size bytes.
func clientFrame(op frame.Opcode, size int) []byte {
	h := frame.Header{Fin: true, Opcode: op, Masked: true, Key: [4]byte{1, 2, 3, 4}, Length: int64(size)}
	b := make([]byte, h.Size()+size)
	n := frame.Put(b, &h)
	for i := n; i < len(b); i++ {
		b[i] = 'a' + byte(i%26)
	}
	mask.Apply(h.Key, 0, b[n:])
	return b
}

func benchServerConn(b *testing.B, op frame.Opcode, size int) *Conn {
	return newConn(&replayConn{frame: clientFrame(op, size)}, connConfig{isServer: true})
}

var benchSizes = []struct {
	name string
	size int
}{{"64B", 64}, {"1KiB", 1024}, {"16KiB", 16 << 10}, {"1MiB", 1 << 20}}

func BenchmarkReadMessage(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			c := benchServerConn(b, frame.OpText, s.size)
			b.SetBytes(int64(s.size))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := c.ReadMessage(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkNextReader(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			c := benchServerConn(b, frame.OpBinary, s.size)
			buf := make([]byte, 32<<10)
			b.SetBytes(int64(s.size))
			b.ReportAllocs()
			for b.Loop() {
				_, r, err := c.NextReader()
				if err != nil {
					b.Fatal(err)
				}
				for {
					_, err := r.Read(buf)
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

func BenchmarkWriteMessage(b *testing.B) {
	for _, side := range []string{"server", "client"} {
		for _, s := range benchSizes {
			b.Run(side+"/"+s.name, func(b *testing.B) {
				c := newConn(&replayConn{frame: []byte{0}}, connConfig{isServer: side == "server"})
				data := make([]byte, s.size)
				b.SetBytes(int64(s.size))
				b.ReportAllocs()
				for b.Loop() {
					if err := c.WriteMessage(BinaryMessage, data); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkNextWriter(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			c := newConn(&replayConn{frame: []byte{0}}, connConfig{isServer: true})
			data := make([]byte, s.size)
			b.SetBytes(int64(s.size))
			b.ReportAllocs()
			for b.Loop() {
				w, err := c.NextWriter(TextMessage)
				if err != nil {
					b.Fatal(err)
				}
				w.Write(data)
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkWritePreparedMessage(b *testing.B) {
	const conns = 100
	cs := make([]*Conn, conns)
	for i := range cs {
		cs[i] = newConn(&replayConn{frame: []byte{0}}, connConfig{isServer: true})
	}
	pm, _ := NewPreparedMessage(TextMessage, make([]byte, 1024))
	b.ReportAllocs()
	for b.Loop() {
		for _, c := range cs {
			if err := c.WritePreparedMessage(pm); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// benchJSON is a 1 KiB JSON message, compressible like real traffic.
var benchJSON = func() []byte {
	var b []byte
	for i := 0; len(b) < 1024; i++ {
		b = append(b, fmt.Sprintf(`{"user":"user%d","text":"message number %d in the room","ts":%d},`, i%7, i, 1700000000+i)...)
	}
	return b[:1024]
}()

func BenchmarkWriteMessageCompressed(b *testing.B) {
	for _, takeover := range []bool{false, true} {
		b.Run(fmt.Sprintf("takeover=%v", takeover), func(b *testing.B) {
			var wire countWriter
			c := newConn(&replayConn{frame: []byte{0}, sink: &wire}, connConfig{isServer: true, compression: &compressionConfig{
				params: deflate.Params{ServerNoContextTakeover: !takeover, ClientNoContextTakeover: !takeover},
			}})
			b.SetBytes(int64(len(benchJSON)))
			b.ReportAllocs()
			for b.Loop() {
				if err := c.WriteMessage(TextMessage, benchJSON); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(wire.n)/float64(b.N), "wireB/op")
		})
	}
}

func BenchmarkReadMessageCompressed(b *testing.B) {
	payload := deflateBytes(deflaterKind(defaultCompressionLevel, maxWindowBits), benchJSON)
	h := frame.Header{Fin: true, Rsv1: true, Opcode: frame.OpText, Masked: true, Key: [4]byte{1, 2, 3, 4}, Length: int64(len(payload))}
	fr := make([]byte, h.Size()+len(payload))
	n := frame.Put(fr, &h)
	copy(fr[n:], payload)
	mask.Apply(h.Key, 0, fr[n:])
	c := newConn(&replayConn{frame: fr}, connConfig{isServer: true, compression: &compressionConfig{
		params: deflate.Params{ServerNoContextTakeover: true, ClientNoContextTakeover: true},
	}})
	b.SetBytes(int64(len(benchJSON)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := c.ReadMessage(); err != nil {
			b.Fatal(err)
		}
	}
}

type countWriter struct{ n int }

func (w *countWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

func BenchmarkAppendMessage(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			c := benchServerConn(b, frame.OpBinary, s.size)
			var buf []byte
			b.SetBytes(int64(s.size))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if _, buf, err = c.AppendMessage(buf[:0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
