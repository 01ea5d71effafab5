package websocket

import (
	"bufio"
	"bytes"
	"compress/flate"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/latchws/latch/internal/frame"
	"github.com/latchws/latch/internal/mask"
)

// countingConn counts the bytes a connection writes.
type countingConn struct {
	net.Conn
	written *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	c.written.Add(int64(len(p)))
	return c.Conn.Write(p)
}

func jsonMessage(i int) []byte {
	return []byte(fmt.Sprintf(`{"type":"message","channel":"lobby","seq":%d,"data":{"user":"alice","text":"hello everyone, this is message number %d of the compression test","tags":["a","b","c"]}}`, i, i))
}

func TestCompressionRoundTrip(t *testing.T) {
	for _, takeover := range []bool{false, true} {
		t.Run(fmt.Sprintf("takeover=%v", takeover), func(t *testing.T) {
			u := &Upgrader{EnableCompression: true, CompressionContextTakeover: takeover}
			url, _ := newEchoServer(t, u)
			var written atomic.Int64
			dialer := Dialer{EnableCompression: true, CompressionContextTakeover: takeover,
				NetDial: func(network, addr string) (net.Conn, error) {
					nc, err := net.Dial(network, addr)
					return countingConn{nc, &written}, err
				}}
			c, resp, err := dialer.Dial(url, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ext := resp.Header.Get("Sec-Websocket-Extensions")
			if !c.Compressed() || !strings.HasPrefix(ext, "permessage-deflate") {
				t.Fatalf("compression not negotiated: %q", ext)
			}
			if takeover == strings.Contains(ext, "no_context_takeover") {
				t.Fatalf("response %q for takeover=%v", ext, takeover)
			}
			var raw int
			sizes := []int{0, 1, 127, 128, 1000, 70000, 1 << 20}
			for i := 0; i < 200; i++ {
				msg := jsonMessage(i)
				if i < len(sizes) {
					msg = bytes.Repeat([]byte("abc"), sizes[i]/3)
				}
				raw += len(msg)
				mt := TextMessage
				if i%2 == 1 {
					mt = BinaryMessage
				}
				if i%3 == 0 {
					w, _ := c.NextWriter(mt)
					w.Write(msg[:len(msg)/2])
					w.Write(msg[len(msg)/2:])
					if err := w.Close(); err != nil {
						t.Fatal(err)
					}
				} else if err := c.WriteMessage(mt, msg); err != nil {
					t.Fatal(err)
				}
				gt, p, err := c.ReadMessage()
				if err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				if gt != mt || !bytes.Equal(p, msg) {
					t.Fatalf("message %d: echo differs (%d bytes, want %d)", i, len(p), len(msg))
				}
			}
			if w := written.Load(); w*4 > int64(raw) {
				t.Fatalf("client wrote %d bytes for %d bytes of messages: not compressed", w, raw)
			}
			t.Logf("takeover=%v: %d bytes of messages, %d on the wire", takeover, raw, written.Load())
		})
	}
}

// rawCompressedClient upgrades with a permessage-deflate offer by hand.
func rawCompressedClient(t *testing.T, url string) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := net.Dial("tcp", strings.TrimPrefix(url, "ws://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	req := "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
	if _, err := nc.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	if !strings.HasPrefix(resp.Header.Get("Sec-Websocket-Extensions"), "permessage-deflate") {
		t.Fatalf("not negotiated: %q", resp.Header.Get("Sec-Websocket-Extensions"))
	}
	return nc, br
}

// maskedFrame encodes a client frame.
func maskedFrame(op frame.Opcode, rsv1 bool, payload []byte) []byte {
	h := frame.Header{Fin: true, Rsv1: rsv1, Opcode: op, Masked: true, Key: [4]byte{9, 8, 7, 6}, Length: int64(len(payload))}
	b := make([]byte, h.Size()+len(payload))
	n := frame.Put(b, &h)
	copy(b[n:], payload)
	mask.Apply(h.Key, 0, b[n:])
	return b
}

func deflateForTest(data []byte) []byte {
	var buf bytes.Buffer
	fw, _ := flate.NewWriter(&buf, flate.BestCompression)
	fw.Write(data)
	fw.Flush()
	return bytes.TrimSuffix(buf.Bytes(), []byte{0, 0, 0xff, 0xff})
}

func TestCompressionBombStopsAtLimit(t *testing.T) {
	const limit = 1 << 20
	serverErr := make(chan error, 1)
	url := serve(t, &Upgrader{EnableCompression: true, ReadLimit: limit}, func(c *Conn) {
		defer c.Close()
		_, _, err := c.ReadMessage()
		serverErr <- err
	})
	nc, br := rawCompressedClient(t, url)
	// 64 MiB of zeros deflate to a few hundred KiB.
	var buf bytes.Buffer
	fw, _ := flate.NewWriter(&buf, flate.BestSpeed)
	zeros := make([]byte, 1<<20)
	for i := 0; i < 64; i++ {
		fw.Write(zeros)
	}
	fw.Flush()
	bomb := bytes.TrimSuffix(buf.Bytes(), []byte{0, 0, 0xff, 0xff})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	go nc.Write(maskedFrame(frame.OpBinary, true, bomb))
	err := <-serverErr
	runtime.ReadMemStats(&after)
	if err != ErrReadLimit {
		t.Fatalf("server read %v, want ErrReadLimit", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 8*limit {
		t.Fatalf("inflating a bomb allocated %d bytes with a %d-byte limit", grew, limit)
	}
	op, payload := readRawFrame(t, br)
	if op != 8 || len(payload) < 2 || int(payload[0])<<8|int(payload[1]) != CloseMessageTooBig {
		t.Fatalf("client got opcode %d payload %x, want close 1009", op, payload)
	}
}

func TestCorruptCompressedDataFails1007(t *testing.T) {
	serverErr := make(chan error, 1)
	url := serve(t, &Upgrader{EnableCompression: true}, func(c *Conn) {
		defer c.Close()
		_, _, err := c.ReadMessage()
		serverErr <- err
	})
	nc, br := rawCompressedClient(t, url)
	// Block type 3 is reserved in deflate (RFC 1951 §3.2.3).
	nc.Write(maskedFrame(frame.OpText, true, []byte{0xff, 0xff, 0xff, 0xff}))
	if err := <-serverErr; err == nil {
		t.Fatal("corrupt data was accepted")
	}
	op, payload := readRawFrame(t, br)
	if op != 8 || int(payload[0])<<8|int(payload[1]) != CloseInvalidFramePayloadData {
		t.Fatalf("client got opcode %d payload %x, want close 1007", op, payload)
	}
}

func TestCompressedTextIsValidated(t *testing.T) {
	serverErr := make(chan error, 1)
	url := serve(t, &Upgrader{EnableCompression: true}, func(c *Conn) {
		defer c.Close()
		_, _, err := c.ReadMessage()
		serverErr <- err
	})
	nc, br := rawCompressedClient(t, url)
	nc.Write(maskedFrame(frame.OpText, true, deflateForTest([]byte("valid, then \xc0\xaf"))))
	<-serverErr
	op, payload := readRawFrame(t, br)
	if op != 8 || int(payload[0])<<8|int(payload[1]) != CloseInvalidFramePayloadData {
		t.Fatalf("client got opcode %d payload %x, want close 1007", op, payload)
	}
}

func TestRSV1WithoutCompressionFails1002(t *testing.T) {
	url := serve(t, &Upgrader{}, func(c *Conn) {
		defer c.Close()
		c.ReadMessage()
	})
	nc, br := rawPeer(t, url)
	nc.Write(maskedFrame(frame.OpText, true, deflateForTest([]byte("hello"))))
	op, payload := readRawFrame(t, br)
	if op != 8 || int(payload[0])<<8|int(payload[1]) != CloseProtocolError {
		t.Fatalf("got opcode %d payload %x, want close 1002", op, payload)
	}
}

func TestCompressionThreshold(t *testing.T) {
	url := serve(t, &Upgrader{EnableCompression: true, CompressionThreshold: 100}, func(c *Conn) {
		defer c.Close()
		c.WriteMessage(TextMessage, bytes.Repeat([]byte("a"), 99))
		c.WriteMessage(TextMessage, bytes.Repeat([]byte("a"), 100))
		c.ReadMessage()
	})
	_, br := rawCompressedClient(t, url)
	for i, wantRSV1 := range []bool{false, true} {
		b0, _ := br.Peek(1)
		if got := b0[0]&0x40 != 0; got != wantRSV1 {
			t.Fatalf("message %d: RSV1=%v, want %v", i, got, wantRSV1)
		}
		readRawFrame(t, br)
	}
}

func TestPreparedMessageCompressedOnce(t *testing.T) {
	pm, _ := NewPreparedMessage(TextMessage, bytes.Repeat([]byte("prepared "), 100))
	received := make(chan []byte, 4)
	url := serve(t, &Upgrader{EnableCompression: true}, func(c *Conn) {
		defer c.Close()
		c.WritePreparedMessage(pm)
		c.ReadMessage()
	})
	for i := 0; i < 3; i++ {
		c, _, err := (&Dialer{EnableCompression: true}).Dial(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, p, err := c.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		received <- p
		c.Close()
	}
	for i := 0; i < 3; i++ {
		if p := <-received; !bytes.Equal(p, pm.data) {
			t.Fatalf("prepared compressed message arrived as %q", p)
		}
	}
	if len(pm.compressed) != 1 {
		t.Fatalf("compressed %d times, want once", len(pm.compressed))
	}
}

func FuzzInflate(f *testing.F) {
	f.Add(deflateForTest([]byte("hello hello hello")), true)
	f.Add([]byte{0xff, 0xff}, false)
	f.Add(deflateForTest(bytes.Repeat([]byte{0}, 100000)), true)
	f.Fuzz(func(t *testing.T, payload []byte, text bool) {
		op := frame.OpBinary
		if text {
			op = frame.OpText
		}
		const limit = 4096
		c := newConn(&replayConn{frame: maskedFrame(op, true, payload)}, connConfig{
			isServer:    true,
			readLimit:   limit,
			compression: &compressionConfig{},
		})
		_, p, err := c.ReadMessage()
		if err == nil && len(p) > limit {
			t.Fatalf("read %d bytes past a %d-byte limit", len(p), limit)
		}
		if err != nil && len(p) != 0 {
			t.Fatal("data returned with an error")
		}
	})
}

// TestNextWriterCompressionThreshold: a message streamed with NextWriter is
// compressed only once it reaches the threshold, however it is split.
func TestNextWriterCompressionThreshold(t *testing.T) {
	stream := func(c *Conn, total, piece int) {
		w, err := c.NextWriter(TextMessage)
		if err != nil {
			t.Error(err)
			return
		}
		for sent := 0; sent < total; sent += piece {
			w.Write(bytes.Repeat([]byte("a"), min(piece, total-sent)))
		}
		w.Close()
	}
	url := serve(t, &Upgrader{EnableCompression: true, CompressionThreshold: 100}, func(c *Conn) {
		defer c.Close()
		stream(c, 99, 33)
		stream(c, 100, 30)
		c.ReadMessage()
	})
	_, br := rawCompressedClient(t, url)
	for i, wantRSV1 := range []bool{false, true} {
		b0, _ := br.Peek(1)
		if got := b0[0]&0x40 != 0; got != wantRSV1 {
			t.Fatalf("message %d: RSV1=%v, want %v", i, got, wantRSV1)
		}
		readRawFrame(t, br)
	}

	// A threshold past the write buffer: compression starts before the
	// first frame would go out, and the message arrives whole.
	url = serve(t, &Upgrader{EnableCompression: true, CompressionThreshold: 1 << 20}, func(c *Conn) {
		defer c.Close()
		stream(c, 20000, 1000)
		stream(c, 500, 100)
		c.ReadMessage()
	})
	c, _, err := (&Dialer{EnableCompression: true}).Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, want := range []int{20000, 500} {
		if _, p, err := c.ReadMessage(); err != nil || !bytes.Equal(p, bytes.Repeat([]byte("a"), want)) {
			t.Fatalf("got %d bytes, err %v; want %d", len(p), err, want)
		}
	}
}
