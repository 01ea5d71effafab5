package websocket

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// TestAppendMessage reads plain, fragmented and compressed messages into one
// reused buffer and after a prefix the caller keeps.
func TestAppendMessage(t *testing.T) {
	for _, compress := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "compressed"}[compress], func(t *testing.T) {
			url, _ := newEchoServer(t, &Upgrader{EnableCompression: compress})
			d := Dialer{EnableCompression: compress}
			c, _, err := d.Dial(url, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var buf []byte
			for i, size := range []int{0, 5, 200, 4096, 70000, 3, 1 << 20, 10} {
				msg := bytes.Repeat([]byte{byte('a' + i)}, size)
				if i%2 == 1 {
					// Fragmented: three frames.
					w, err := c.NextWriter(BinaryMessage)
					if err != nil {
						t.Fatal(err)
					}
					for _, part := range [][]byte{msg[:size/3], msg[size/3 : 2*size/3], msg[2*size/3:]} {
						if _, err := w.Write(part); err != nil {
							t.Fatal(err)
						}
					}
					if err := w.Close(); err != nil {
						t.Fatal(err)
					}
				} else if err := c.WriteMessage(BinaryMessage, msg); err != nil {
					t.Fatal(err)
				}
				prefix := []byte("kept:")
				if i%3 == 0 {
					prefix = nil
				}
				before := cap(buf)
				mt, p, err := c.AppendMessage(append(buf[:0], prefix...))
				if err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				if mt != BinaryMessage || !bytes.Equal(p[:len(prefix)], prefix) || !bytes.Equal(p[len(prefix):], msg) {
					t.Fatalf("message %d (%d bytes): got type %d, %d bytes", i, size, mt, len(p))
				}
				if !compress && before > 0 && size+len(prefix) <= before && &p[:1][0] != &buf[:1][0] {
					t.Fatalf("message %d fits in the buffer (%d ≤ %d) but was read elsewhere", i, size+len(prefix), before)
				}
				buf = p
			}
		})
	}
}

// TestAppendMessageErrorKeepsDst checks that a failed read returns dst as it
// was, and that the read limit still applies.
func TestAppendMessageErrorKeepsDst(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	c := newConn(server, connConfig{isServer: true, readLimit: 100})
	go func() {
		_, _ = client.Write(clientFrame(2, 101))
		// Swallow the close frame the server sends.
		var b [64]byte
		_ = client.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, _ = client.Read(b[:])
	}()
	dst := []byte("prefix")
	_, p, err := c.AppendMessage(dst)
	if !errors.Is(err, ErrReadLimit) {
		t.Fatalf("err = %v, want ErrReadLimit", err)
	}
	if string(p) != "prefix" {
		t.Fatalf("dst after error = %q", p)
	}
}

func TestWriteLargeFrameIsWellFormed(t *testing.T) {
	// A server frame too large for the write buffer goes out as header and
	// payload in one vectored write; over a plain net.Conn the bytes must
	// still arrive as one well-formed frame.
	client, server := net.Pipe()
	defer client.Close()
	c := newConn(server, connConfig{isServer: true})
	payload := []byte(strings.Repeat("0123456789", 2000))
	go func() { _ = c.WriteMessage(BinaryMessage, payload) }()
	got := make([]byte, 4+len(payload))
	_ = client.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := readFull(client, got); err != nil {
		t.Fatal(err)
	}
	if got[0] != 0x82 || got[1] != 126 || int(got[2])<<8|int(got[3]) != len(payload) || !bytes.Equal(got[4:], payload) {
		t.Fatalf("bad frame: % x…", got[:8])
	}
}

func readFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		k, err := c.Read(b[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
