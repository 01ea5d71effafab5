// Package floor holds what the bench's two floor servers share: the
// smallest WebSocket handshake and frame echo that the load client accepts.
// They validate nothing (no UTF-8, no RSV bits, no fragmentation rules, no
// limits beyond the buffer): a floor shows what the kernel and the Go
// runtime cost, so that every library can be read against it. Never use
// them as servers.
//
// Payloads are unmasked in place in the read buffer (with Latch's own
// masking, the fastest there is here) and written from there, one writev
// per read, so a large message costs its system calls and one pass of
// unmasking.
package floor

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"

	"github.com/latchws/latch/internal/mask"
)

// guid is RFC 6455 §1.3's key suffix.
const guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// Handshake answers a request head (everything up to and including the
// blank line) with a 101, or returns nil when it has no key.
func Handshake(head []byte) []byte {
	i := bytes.Index(bytes.ToLower(head), []byte("\r\nsec-websocket-key:"))
	if i < 0 {
		return nil
	}
	rest := head[i+len("\r\nsec-websocket-key:"):]
	key := bytes.TrimSpace(rest[:bytes.IndexByte(rest, '\r')])
	sum := sha1.Sum(append(key, guid...))
	out := []byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ")
	out = base64.StdEncoding.AppendEncode(out, sum[:])
	return append(out, "\r\n\r\n"...)
}

// HeadEnd returns the length of the request head in b, or -1 while it is
// incomplete.
func HeadEnd(b []byte) int {
	if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
		return i + 4
	}
	return -1
}

// Out is the echo of one read, in pieces for one vectored write: headers
// and short payloads joined in a buffer of its own, longer payloads as
// they lie in the read buffer.
type Out struct {
	Bufs  [][]byte // the pieces, in order
	small []byte   // backing of the joined pieces
	start int      // where in small the piece being joined starts
}

// Reset empties o for the next read, keeping its buffers.
func (o *Out) Reset() { o.Bufs, o.small, o.start = o.Bufs[:0], o.small[:0], 0 }

// Len is the number of bytes in o.
func (o *Out) Len() int {
	n := len(o.small) - o.start
	for _, b := range o.Bufs {
		n += len(b)
	}
	return n
}

// Close ends the piece being joined; call it before writing o.Bufs.
func (o *Out) Close() {
	if len(o.small) > o.start {
		o.Bufs = append(o.Bufs, o.small[o.start:])
		o.start = len(o.small)
	}
}

func (o *Out) join(b []byte) { o.small = append(o.small, b...) }

// inPlace is the payload size from which a piece is written from the read
// buffer rather than joined.
const inPlace = 512

func (o *Out) payload(b []byte) {
	if len(b) < inPlace {
		o.join(b)
		return
	}
	o.Close()
	o.Bufs = append(o.Bufs, b)
}

// Echoer turns the stream of client frames into the stream of server
// frames that echo them (a ping into a pong, everything else as it came,
// unmasked), as the bytes arrive: a frame's header is collected, its
// payload unmasked in place and passed on in whatever pieces come. Idle,
// it holds nothing but these fields.
type Echoer struct {
	head      [14]byte // the header of the next frame, as far as it came
	headN     int
	left      uint64 // payload bytes of the current frame still to come
	key       [4]byte
	pos       int  // position in key of the next payload byte
	inPayload bool // the header is done; left bytes follow
	Closed    bool // a close frame began: the connection is done once it is echoed
}

// Echo adds the echo of in to o. It unmasks in's payload bytes in place,
// and o refers to them: in must stay as it is until o is written.
func (e *Echoer) Echo(o *Out, in []byte) {
	for len(in) > 0 && !(e.Closed && !e.inPayload) {
		if !e.inPayload {
			k := copy(e.head[e.headN:e.needed()], in)
			e.headN += k
			in = in[k:]
			if e.headN < e.needed() {
				continue // needed grows once the length byte is in
			}
			e.startFrame(o)
			continue
		}
		k := int(min(uint64(len(in)), e.left))
		if e.key != [4]byte{} {
			e.pos = mask.Apply(e.key, e.pos, in[:k])
		}
		o.payload(in[:k])
		in = in[k:]
		if e.left -= uint64(k); e.left == 0 {
			e.inPayload = false
		}
	}
}

// Left is how many payload bytes of the current frame are still to come.
func (e *Echoer) Left() uint64 { return e.left }

// needed is the header length known from the bytes so far.
func (e *Echoer) needed() int {
	if e.headN < 2 {
		return 2
	}
	n := 2
	switch e.head[1] & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if e.head[1]&0x80 != 0 {
		n += 4
	}
	return n
}

// startFrame writes the server header of the frame whose client header is
// complete.
func (e *Echoer) startFrame(o *Out) {
	h := e.head[:e.headN]
	n, at := uint64(h[1]&0x7f), 2
	switch n {
	case 126:
		n, at = uint64(binary.BigEndian.Uint16(h[2:])), 4
	case 127:
		n, at = binary.BigEndian.Uint64(h[2:]), 10
	}
	e.key = [4]byte{}
	if h[1]&0x80 != 0 {
		copy(e.key[:], h[at:at+4])
	}
	op := h[0] & 0x0f
	if op == 0x9 {
		op = 0xA // pong
	}
	e.Closed = op == 0x8
	var hdr [10]byte
	hdr[0] = h[0]&0xf0 | op
	k := 2
	switch {
	case n < 126:
		hdr[1] = byte(n)
	case n < 1<<16:
		hdr[1] = 126
		binary.BigEndian.PutUint16(hdr[2:], uint16(n))
		k = 4
	default:
		hdr[1] = 127
		binary.BigEndian.PutUint64(hdr[2:], n)
		k = 10
	}
	o.join(hdr[:k])
	e.headN, e.pos, e.left, e.inPayload = 0, 0, n, n > 0
}
