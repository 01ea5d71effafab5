// Package floor holds what the bench's two floor servers share: the
// smallest WebSocket handshake and frame echo that the load client accepts.
// They validate nothing (no UTF-8, no RSV bits, no fragmentation rules, no
// limits beyond the buffer): a floor shows what the kernel and the Go
// runtime cost, so that every library can be read against it. Never use
// them as servers.
//
// They are floors for small messages. With large ones (64 KiB) they still
// copy each payload once more than they must (into the output, instead of
// writing it from the read buffer with writev) and unmask eight bytes at a
// time rather than with SIMD, and a library that does both (Latch) can
// beat them there.
package floor

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
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

// Echoer turns the stream of client frames into the stream of server
// frames that echo them (a ping into a pong, everything else as it came,
// unmasked), as the bytes arrive: a frame's header is collected, its
// payload passed on unmasked in whatever pieces come. Idle, it holds
// nothing but these fields.
type Echoer struct {
	head      [14]byte // the header of the next frame, as far as it came
	headN     int
	left      uint64 // payload bytes of the current frame still to come
	key       [4]byte
	pos       int  // position in key of the next payload byte
	inPayload bool // the header is done; left bytes follow
	Closed    bool // a close frame began: the connection is done once it is echoed
}

// Echo appends to out the echo of in and returns it.
func (e *Echoer) Echo(out, in []byte) []byte {
	for len(in) > 0 && !(e.Closed && !e.inPayload) {
		if !e.inPayload {
			k := copy(e.head[e.headN:e.needed()], in)
			e.headN += k
			in = in[k:]
			if e.headN < e.needed() {
				continue // needed grows once the length byte is in
			}
			out = e.startFrame(out)
			continue
		}
		k := int(min(uint64(len(in)), e.left))
		start := len(out)
		out = append(out, in[:k]...)
		if e.key != [4]byte{} {
			e.pos = unmask(out[start:], e.key, e.pos)
		}
		in = in[k:]
		if e.left -= uint64(k); e.left == 0 {
			e.inPayload = false
		}
	}
	return out
}

// Left is how many payload bytes of the current frame are still to come.
func (e *Echoer) Left() uint64 { return e.left }

// unmask XORs p with key from position pos, eight bytes at a time, and
// returns the position after it (RFC 6455 §5.3).
func unmask(p []byte, key [4]byte, pos int) int {
	for len(p) > 0 && pos != 0 {
		p[0] ^= key[pos]
		p, pos = p[1:], (pos+1)&3
	}
	k := uint64(binary.LittleEndian.Uint32(key[:]))
	k |= k << 32
	for len(p) >= 8 {
		binary.LittleEndian.PutUint64(p, binary.LittleEndian.Uint64(p)^k)
		p = p[8:]
	}
	for i := range p {
		p[i] ^= key[i&3]
	}
	return len(p) & 3
}

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
func (e *Echoer) startFrame(out []byte) []byte {
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
	out = append(out, h[0]&0xf0|op)
	switch {
	case n < 126:
		out = append(out, byte(n))
	case n < 1<<16:
		out = append(out, 126, byte(n>>8), byte(n))
	default:
		out = binary.BigEndian.AppendUint64(append(out, 127), n)
	}
	e.headN, e.pos, e.left, e.inPayload = 0, 0, n, n > 0
	return out
}
