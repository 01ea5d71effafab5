package conformance

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"unicode/utf8"
)

// Opcodes, RFC 6455 §5.2. Written out here on purpose: the suite must not
// import Latch internals.
const (
	opCont   byte = 0x0
	opText   byte = 0x1
	opBinary byte = 0x2
	opClose  byte = 0x8
	opPing   byte = 0x9
	opPong   byte = 0xA
)

func isControl(op byte) bool { return op&0x8 != 0 }

// maskMode overrides the role's default masking for one frame.
type maskMode int

const (
	maskDefault maskMode = iota // mask iff the raw peer plays the client
	maskForce                   // always mask (a server breaking RFC 6455 §5.1)
	maskNone                    // never mask (a client breaking RFC 6455 §5.1)
)

// frame is one frame the raw peer sends, exactly as described: nothing is
// validated, so cases can build any malformed frame they need.
type frame struct {
	fin     bool
	rsv     byte // the three RSV bits as 0..7 (RSV1 is 4)
	opcode  byte
	payload []byte
	mask    maskMode
	// raw, when set, replaces the encoding entirely (for headers the
	// encoder cannot express, such as a 2^63 length); it gets the masking
	// the role requires.
	raw func(masked bool) []byte
	// deflate: payload is the plain message; the raw peer compresses it
	// with the negotiated context and sends it with RSV1 on the first of
	// zfrags frames (RFC 7692 §6.1); 0 means one frame.
	deflate bool
	zfrags  int
}

// encode lays out a frame per RFC 6455 §5.2, masking with a fresh key when
// masked is true (§5.3).
func (f frame) encode(masked bool) []byte {
	if f.raw != nil {
		return f.raw(masked)
	}
	n := len(f.payload)
	b := make([]byte, 0, 14+n)
	b0 := f.opcode&0x0F | (f.rsv&7)<<4
	if f.fin {
		b0 |= 0x80
	}
	b = append(b, b0)
	var mbit byte
	if masked {
		mbit = 0x80
	}
	switch {
	case n <= 125:
		b = append(b, mbit|byte(n))
	case n <= 0xFFFF:
		b = append(b, mbit|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, mbit|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if !masked {
		return append(b, f.payload...)
	}
	var key [4]byte
	if _, err := rand.Read(key[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	b = append(b, key[:]...)
	start := len(b)
	b = append(b, f.payload...)
	for i := range n {
		b[start+i] ^= key[i&3]
	}
	return b
}

// Frame constructors used by the case tables.
func dataFrame(op byte, fin bool, p []byte) frame { return frame{fin: fin, opcode: op, payload: p} }
func textF(s string) frame                        { return dataFrame(opText, true, []byte(s)) }
func binF(p []byte) frame                         { return dataFrame(opBinary, true, p) }
func pingF(p []byte) frame                        { return frame{fin: true, opcode: opPing, payload: p} }
func pongF(p []byte) frame                        { return frame{fin: true, opcode: opPong, payload: p} }
func closeRaw(p []byte) frame                     { return frame{fin: true, opcode: opClose, payload: p} }
func closeF(code int, reason string) frame        { return closeRaw(closePayload(code, reason)) }

func closePayload(code int, reason string) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(code))
	return append(b, reason...)
}

// fragments splits one message into frames of at most size bytes (at least
// one frame, even for an empty message).
func fragments(op byte, p []byte, size int) []frame {
	var out []frame
	for first := true; first || len(p) > 0; first = false {
		n := min(size, len(p))
		o := opCont
		if first {
			o = op
		}
		out = append(out, dataFrame(o, n == len(p), p[:n]))
		p = p[n:]
	}
	return out
}

// rframe is a frame read from the implementation under test.
type rframe struct {
	fin     bool
	rsv     byte
	opcode  byte
	masked  bool
	key     [4]byte
	payload []byte
}

// readRawFrame reads one frame, refusing payloads over max bytes so that a
// runaway length cannot make the test allocate gigabytes.
func readRawFrame(r *bufio.Reader, max int) (rframe, error) {
	var f rframe
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return f, err
	}
	f.fin = h[0]&0x80 != 0
	f.rsv = h[0] >> 4 & 7
	f.opcode = h[0] & 0x0F
	f.masked = h[1]&0x80 != 0
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var e [2]byte
		if _, err := io.ReadFull(r, e[:]); err != nil {
			return f, err
		}
		n = uint64(binary.BigEndian.Uint16(e[:]))
	case 127:
		var e [8]byte
		if _, err := io.ReadFull(r, e[:]); err != nil {
			return f, err
		}
		n = binary.BigEndian.Uint64(e[:])
	}
	if n > uint64(max) {
		return f, fmt.Errorf("frame payload of %d bytes exceeds test bound %d", n, max)
	}
	if f.masked {
		if _, err := io.ReadFull(r, f.key[:]); err != nil {
			return f, err
		}
	}
	f.payload = make([]byte, n)
	if _, err := io.ReadFull(r, f.payload); err != nil {
		return f, err
	}
	if f.masked {
		for i := range f.payload {
			f.payload[i] ^= f.key[i&3]
		}
	}
	return f, nil
}

// event is what the raw peer observed: a whole message, a control frame, or
// a close frame (code 1005 stands for an empty close payload).
type event struct {
	kind   string // "msg", "ping", "pong", "close"
	op     byte   // for "msg": opText or opBinary
	data   []byte // message or control payload; close reason for "close"
	code   int    // for "close"
	frames int    // for "msg": how many frames carried it

	// Compression (RFC 7692): comp is RSV1 on the message's first frame,
	// wire the payload bytes on the wire. In a want event, z says what
	// the case expects.
	comp bool
	wire int
	z    zwant
}

// zwant is what a case expects of an echoed message's compression.
type zwant byte

const (
	zAny   zwant = iota // no expectation (no compression negotiated)
	zPlain              // RSV1 clear
	zComp               // RSV1 set, deflated payload
	zAuto               // by the implementation's threshold and write path
)

func msgEv(op byte, p []byte) event { return event{kind: "msg", op: op, data: p} }
func textEv(s string) event         { return msgEv(opText, []byte(s)) }
func binEv(p []byte) event          { return msgEv(opBinary, p) }
func pongEv(p []byte) event         { return event{kind: "pong", data: p} }
func closeEv(code int) event        { return event{kind: "close", code: code} }

func (e event) String() string {
	switch e.kind {
	case "msg":
		return fmt.Sprintf("msg(op=%d, %d bytes %s)", e.op, len(e.data), preview(e.data))
	case "close":
		return fmt.Sprintf("close(%d %q)", e.code, e.data)
	}
	return fmt.Sprintf("%s(%d bytes %s)", e.kind, len(e.data), preview(e.data))
}

func preview(p []byte) string {
	if len(p) > 32 {
		return fmt.Sprintf("%q...", p[:32])
	}
	return fmt.Sprintf("%q", p)
}

// parseClose decodes a received close payload per RFC 6455 §5.5.1.
func parseClose(p []byte) (event, error) {
	switch {
	case len(p) == 0:
		return event{kind: "close", code: 1005}, nil
	case len(p) == 1:
		return event{}, fmt.Errorf("implementation sent a 1-byte close payload")
	}
	ev := event{kind: "close", code: int(binary.BigEndian.Uint16(p)), data: p[2:]}
	switch ev.code {
	case 1005, 1006, 1015: // RFC 6455 §7.4.1: never sent on the wire
		return ev, fmt.Errorf("implementation sent reserved close code %d", ev.code)
	}
	if !utf8.Valid(ev.data) {
		return ev, fmt.Errorf("implementation sent a close reason that is not UTF-8: %q", ev.data)
	}
	return ev, nil
}
