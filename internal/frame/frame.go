package frame

import "encoding/binary"

// Opcode is the 4-bit frame type (RFC 6455 §5.2, §11.8).
type Opcode byte

const (
	OpContinuation Opcode = 0x0
	OpText         Opcode = 0x1
	OpBinary       Opcode = 0x2
	OpClose        Opcode = 0x8
	OpPing         Opcode = 0x9
	OpPong         Opcode = 0xA
)

// IsControl reports whether o is a control opcode (close, ping, pong or reserved 0xB-0xF); RFC 6455 §5.5.
func (o Opcode) IsControl() bool { return o&0x8 != 0 }

// IsReserved reports whether o is one of the opcodes RFC 6455 §5.2 reserves (3-7, 0xB-0xF).
func (o Opcode) IsReserved() bool {
	o &= 0xF
	return (o >= 0x3 && o <= 0x7) || o >= 0xB
}

// String returns the opcode's name, for errors and logs.
func (o Opcode) String() string {
	switch o {
	case OpContinuation:
		return "continuation"
	case OpText:
		return "text"
	case OpBinary:
		return "binary"
	case OpClose:
		return "close"
	case OpPing:
		return "ping"
	case OpPong:
		return "pong"
	}
	return "reserved"
}

const (
	// MaxHeaderSize is the largest encoded header: 2 bytes, 8 of extended length, 4 of masking key.
	MaxHeaderSize = 14
	// MaxControlPayload is the payload limit of control frames (RFC 6455 §5.5).
	MaxControlPayload = 125
)

// Header is a decoded frame header (RFC 6455 §5.2).
type Header struct {
	Fin              bool
	Rsv1, Rsv2, Rsv3 bool
	Opcode           Opcode
	Masked           bool
	Key              [4]byte // valid when Masked
	Length           int64   // payload length, never negative when decoded
}

// Size returns the encoded header length (2..14).
func (h *Header) Size() int {
	n := 2
	switch {
	case h.Length > 0xFFFF || h.Length < 0:
		n += 8
	case h.Length > 125:
		n += 2
	}
	if h.Masked {
		n += 4
	}
	return n
}

// Put encodes h into b (len(b) >= h.Size(), minimal length encoding, RFC 6455 §5.2) and returns bytes written.
// It does not validate h; a negative Length encodes as a 64-bit length with the high bit set.
func Put(b []byte, h *Header) int {
	b0 := byte(h.Opcode & 0xF)
	if h.Fin {
		b0 |= 0x80
	}
	if h.Rsv1 {
		b0 |= 0x40
	}
	if h.Rsv2 {
		b0 |= 0x20
	}
	if h.Rsv3 {
		b0 |= 0x10
	}
	var b1 byte
	if h.Masked {
		b1 = 0x80
	}
	n := 2
	switch l := h.Length; {
	case l >= 0 && l <= 125:
		_ = b[1]
		b1 |= byte(l)
	case l >= 0 && l <= 0xFFFF:
		b1 |= 126
		binary.BigEndian.PutUint16(b[2:4], uint16(l))
		n = 4
	default:
		b1 |= 127
		binary.BigEndian.PutUint64(b[2:10], uint64(l))
		n = 10
	}
	b[0], b[1] = b0, b1
	if h.Masked {
		copy(b[n:n+4], h.Key[:])
		n += 4
	}
	return n
}

// headerSize returns the full header size given its first two bytes.
func headerSize(b1 byte) int {
	n := 2
	switch b1 & 0x7F {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&0x80 != 0 {
		n += 4
	}
	return n
}

// check validates whatever prefix of a header b holds, so that a bad frame is rejected at the first byte
// that makes it bad, however the bytes arrive.
func check(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	b0 := b[0]
	// Opcodes 3-7 and 0xB-0xF are reserved (RFC 6455 §5.2): bit i of this mask says opcode i is.
	const reserved = 1<<3 | 1<<4 | 1<<5 | 1<<6 | 1<<7 | 1<<0xB | 1<<0xC | 1<<0xD | 1<<0xE | 1<<0xF
	if reserved>>(b0&0xF)&1 != 0 {
		return errReservedOpcode
	}
	control := b0&0x8 != 0
	// RFC 6455 §5.5: control frames must not be fragmented.
	if control && b0&0x80 == 0 {
		return errFragmentedControl
	}
	if len(b) < 2 {
		return nil
	}
	l7 := b[1] & 0x7F
	// RFC 6455 §5.5: control payloads are at most 125 bytes, so they never use an extended length.
	if control && l7 > MaxControlPayload {
		return errControlTooLong
	}
	// RFC 6455 §5.2: the most significant bit of a 64-bit length must be 0.
	if l7 == 127 && len(b) >= 3 && b[2]&0x80 != 0 {
		return errLengthOverflow
	}
	return nil
}

// decode fills h from a complete, checked header b (len(b) == headerSize(b[1])).
func decode(h *Header, b []byte) {
	b0, b1 := b[0], b[1]
	h.Fin = b0&0x80 != 0
	h.Rsv1 = b0&0x40 != 0
	h.Rsv2 = b0&0x20 != 0
	h.Rsv3 = b0&0x10 != 0
	h.Opcode = Opcode(b0 & 0xF)
	h.Masked = b1&0x80 != 0
	n := 2
	switch l7 := b1 & 0x7F; l7 {
	case 126:
		h.Length = int64(binary.BigEndian.Uint16(b[2:4]))
		n = 4
	case 127:
		h.Length = int64(binary.BigEndian.Uint64(b[2:10]))
		n = 10
	default:
		h.Length = int64(l7)
	}
	if h.Masked {
		copy(h.Key[:], b[n:n+4])
	} else {
		h.Key = [4]byte{}
	}
}

// Parse decodes the frame header at the start of b and returns it with its size n; bytes after the header
// are not looked at. If b does not hold the whole header yet it returns done=false, and a caller fed bytes as
// they arrive parses whatever it has buffered again after each read. A prefix that is already invalid is an
// error even when the header is incomplete, the same error the whole header gives, so a bad frame is rejected
// at the first byte that makes it bad.
//
// Parse validates what the header alone can tell: reserved opcodes, control frames with Fin=0 or Length>125
// (RFC 6455 §5.5), a 64-bit length with the high bit set (§5.2); violations are *Error. It does NOT check
// masking direction or RSV bits (the connection knows what was negotiated).
func Parse(b []byte) (h Header, n int, done bool, err error) {
	if len(b) < 2 {
		return h, 0, false, check(b)
	}
	n = headerSize(b[1])
	if len(b) < n {
		return h, 0, false, check(b)
	}
	if err = check(b[:n]); err != nil {
		return h, 0, false, err
	}
	decode(&h, b[:n])
	return h, n, true, nil
}
