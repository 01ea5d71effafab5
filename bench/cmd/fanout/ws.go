package main

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/latchws/latch/bench/internal/load"
)

// wsConn is a minimal RFC 6455 client connection: text messages out
// (masked), whole messages in, pings answered. Its reader is owned by one
// goroutine; writes from any goroutine are serialised by wmu.
type wsConn struct {
	nc  net.Conn
	br  *bufio.Reader // owned by the reading goroutine
	msg []byte        // the last message read; owned by the reading goroutine

	wmu  sync.Mutex // guards wbuf, mask and writes to nc
	wbuf []byte
	mask uint64 // xorshift state for mask keys
}

// dialWS opens a WebSocket to addr with the request target path.
func dialWS(addr, path string, timeout time.Duration) (*wsConn, error) {
	nc, br, _, err := load.Handshake(addr, path, "", timeout)
	if err != nil {
		return nil, err
	}
	var seed [8]byte
	_, _ = rand.Read(seed[:])
	return &wsConn{nc: nc, br: br, mask: binary.LittleEndian.Uint64(seed[:]) | 1}, nil
}

// writeFrame writes one masked frame (clients must mask, RFC 6455 §5.3).
// The mask keys come from a xorshift generator: unpredictable enough for a
// load client on loopback, and cheap.
func (c *wsConn) writeFrame(op byte, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	b := append(c.wbuf[:0], 0x80|op)
	switch n := len(p); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xffff:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	c.mask ^= c.mask << 13
	c.mask ^= c.mask >> 7
	c.mask ^= c.mask << 17
	var m [4]byte
	binary.LittleEndian.PutUint32(m[:], uint32(c.mask))
	b = append(b, m[:]...)
	start := len(b)
	b = append(b, p...)
	for i := range b[start:] {
		b[start+i] ^= m[i&3]
	}
	c.wbuf = b
	_, err := c.nc.Write(b)
	return err
}

// writeText sends one text message.
func (c *wsConn) writeText(p []byte) error { return c.writeFrame(0x1, p) }

// errClosed reports a close frame from the server.
type errClosed struct{ code int }

func (e errClosed) Error() string { return fmt.Sprintf("server closed the connection (%d)", e.code) }

// readMessage returns the next data message; the slice is valid until the
// next call. Pings are answered (RFC 6455 §5.5.2), pongs skipped.
func (c *wsConn) readMessage() ([]byte, error) {
	c.msg = c.msg[:0]
	for {
		var h [2]byte
		if _, err := io.ReadFull(c.br, h[:]); err != nil {
			return nil, err
		}
		fin, op := h[0]&0x80 != 0, h[0]&0x0f
		if h[1]&0x80 != 0 {
			return nil, errors.New("server frame is masked") // RFC 6455 §5.1
		}
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			var e [2]byte
			if _, err := io.ReadFull(c.br, e[:]); err != nil {
				return nil, err
			}
			n = uint64(binary.BigEndian.Uint16(e[:]))
		case 127:
			var e [8]byte
			if _, err := io.ReadFull(c.br, e[:]); err != nil {
				return nil, err
			}
			n = binary.BigEndian.Uint64(e[:])
		}
		if n > 16<<20 {
			return nil, errors.New("frame too large")
		}
		if op >= 0x8 { // control frame, RFC 6455 §5.5
			if n > 125 {
				return nil, errors.New("control frame too long")
			}
			var p [125]byte
			if _, err := io.ReadFull(c.br, p[:n]); err != nil {
				return nil, err
			}
			switch op {
			case 0x8:
				code := 1005
				if n >= 2 {
					code = int(binary.BigEndian.Uint16(p[:2]))
				}
				return nil, errClosed{code}
			case 0x9:
				if err := c.writeFrame(0xA, p[:n]); err != nil {
					return nil, err
				}
			}
			continue
		}
		start := len(c.msg)
		c.msg = slices.Grow(c.msg, int(n))[:start+int(n)]
		if _, err := io.ReadFull(c.br, c.msg[start:]); err != nil {
			return nil, err
		}
		if fin {
			return c.msg, nil
		}
	}
}

// Close drops the TCP connection; the server is stopped first, so no
// closing handshake is attempted.
func (c *wsConn) Close() error { return c.nc.Close() }
