package frame

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

func TestOpcode(t *testing.T) {
	for o := Opcode(0); o < 16; o++ {
		wantCtl := o >= 8
		wantRes := (o >= 3 && o <= 7) || o >= 0xB
		if o.IsControl() != wantCtl || o.IsReserved() != wantRes {
			t.Errorf("opcode %#x: IsControl=%v IsReserved=%v", byte(o), o.IsControl(), o.IsReserved())
		}
	}
}

func TestEncodeBoundaries(t *testing.T) {
	tests := []struct {
		name string
		h    Header
		want []byte
	}{
		{"empty text", Header{Fin: true, Opcode: OpText}, []byte{0x81, 0x00}},
		{"125", Header{Fin: true, Opcode: OpBinary, Length: 125}, []byte{0x82, 125}},
		{"126", Header{Fin: true, Opcode: OpBinary, Length: 126}, []byte{0x82, 126, 0x00, 126}},
		{"65535", Header{Opcode: OpBinary, Length: 65535}, []byte{0x02, 126, 0xff, 0xff}},
		{"65536", Header{Fin: true, Opcode: OpBinary, Length: 65536}, []byte{0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0}},
		{"max int64", Header{Fin: true, Opcode: OpBinary, Length: math.MaxInt64},
			[]byte{0x82, 127, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
		// RFC 6455 §5.7: a masked "Hello" from a client.
		{"rfc masked hello", Header{Fin: true, Opcode: OpText, Masked: true, Key: [4]byte{0x37, 0xfa, 0x21, 0x3d}, Length: 5},
			[]byte{0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d}},
		{"masked 126", Header{Fin: true, Opcode: OpText, Masked: true, Key: [4]byte{1, 2, 3, 4}, Length: 126},
			[]byte{0x81, 0xfe, 0x00, 126, 1, 2, 3, 4}},
		{"masked 65536", Header{Opcode: OpContinuation, Masked: true, Key: [4]byte{9, 9, 9, 9}, Length: 65536},
			[]byte{0x00, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 9, 9, 9, 9}},
		{"rsv bits", Header{Fin: true, Rsv1: true, Rsv2: true, Rsv3: true, Opcode: OpText, Length: 3}, []byte{0xf1, 3}},
		{"ping", Header{Fin: true, Opcode: OpPing, Length: 125}, []byte{0x89, 125}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.h.Size(); got != len(tt.want) {
				t.Errorf("Size = %d, want %d", got, len(tt.want))
			}
			buf := make([]byte, MaxHeaderSize)
			n := Put(buf, &tt.h)
			if !bytes.Equal(buf[:n], tt.want) {
				t.Fatalf("Put = % x, want % x", buf[:n], tt.want)
			}
			h, n, done, err := Parse(tt.want)
			if err != nil || !done || n != len(tt.want) || h != tt.h {
				t.Fatalf("Parse = %+v, %d, %v, %v; want %+v", h, n, done, err, tt.h)
			}
			// Every proper prefix is "not yet".
			for i := range len(tt.want) {
				if _, n, done, err := Parse(tt.want[:i]); done || n != 0 || err != nil {
					t.Fatalf("Parse(prefix %d) = %d, %v, %v", i, n, done, err)
				}
			}
			// Bytes after the header (payload, the next frame) change nothing.
			more := append(append([]byte{}, tt.want...), 0xff, 0x00, 0x7f)
			if h, n, done, err := Parse(more); err != nil || !done || n != len(tt.want) || h != tt.h {
				t.Fatalf("Parse(header+3) = %+v, %d, %v, %v; want %+v, %d", h, n, done, err, tt.h, len(tt.want))
			}
		})
	}
}

func TestParseConsumesOnlyHeader(t *testing.T) {
	// A 256-byte binary frame (3 payload bytes received so far), then a pong as the next frame.
	wire := []byte{0x82, 126, 0x01, 0x00, 'p', 'a', 'y'}
	h, n, done, err := Parse(wire)
	if err != nil || !done || n != 4 {
		t.Fatalf("Parse = %d, %v, %v; want 4, true, nil", n, done, err)
	}
	if h.Length != 256 || h.Opcode != OpBinary || !h.Fin || h.Masked {
		t.Fatalf("header = %+v", h)
	}
	// The caller skips n+Length bytes to the next header; parsing restarts there.
	next := []byte{0x8a, 0x00, 0xff}
	if _, n, done, err := Parse(next[:1]); n != 0 || done || err != nil {
		t.Fatalf("Parse(1 byte) = %d, %v, %v", n, done, err)
	}
	h, n, done, err = Parse(next)
	if err != nil || !done || n != 2 {
		t.Fatalf("Parse(pong) = %d, %v, %v; want 2, true, nil", n, done, err)
	}
	if h.Opcode != OpPong || h.Length != 0 || h.Masked || !h.Fin {
		t.Fatalf("header = %+v", h)
	}
}

func TestInvalidHeaders(t *testing.T) {
	tests := []struct {
		name string
		wire []byte
		// at is the number of bytes after which the header is known to be bad.
		at int
	}{
		{"reserved opcode 3", []byte{0x83, 0x00}, 1},
		{"reserved opcode 7", []byte{0x87, 0x00}, 1},
		{"reserved opcode B", []byte{0x8b, 0x00}, 1},
		{"reserved opcode F", []byte{0x8f, 0x00}, 1},
		{"fragmented ping", []byte{0x09, 0x00}, 1},
		{"fragmented close", []byte{0x08, 0x02}, 1},
		{"ping 126", []byte{0x89, 126, 0x00, 126}, 2},
		{"pong 127", []byte{0x8a, 127, 0, 0, 0, 0, 0, 0, 0, 1}, 2},
		{"close 126 masked", []byte{0x88, 0xfe, 0, 126, 1, 2, 3, 4}, 2},
		{"64-bit high bit", []byte{0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0}, 3},
		{"64-bit all ones", []byte{0x82, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, done, err := Parse(tt.wire)
			var fe *Error
			if done || !errors.As(err, &fe) || fe.Code != CloseProtocolError {
				t.Fatalf("Parse: done=%v err=%v; want *Error with code 1002", done, err)
			}
			// Received a byte at a time, the header is rejected as soon as the bytes make it bad, with the
			// error the whole header gives; before that it is merely incomplete.
			for i := 0; i <= len(tt.wire); i++ {
				_, n, done, perr := Parse(tt.wire[:i])
				if i < tt.at {
					if perr != nil || done || n != 0 {
						t.Fatalf("Parse(prefix %d) = %d, %v, %v; want incomplete", i, n, done, perr)
					}
					continue
				}
				if perr != err || done || n != 0 {
					t.Fatalf("Parse(prefix %d) = %d, %v, %v; want %v", i, n, done, perr, err)
				}
			}
			if err.Error() == "" || err.Error()[:11] != "websocket: " {
				t.Fatalf("error text %q lacks the websocket: prefix", err.Error())
			}
		})
	}
}

func TestNotCheckedHere(t *testing.T) {
	// Masking direction, RSV bits and non-minimal lengths are the connection's business.
	for _, wire := range [][]byte{
		{0xf1, 0x00},                        // RSV1-3 set
		{0x81, 0x80, 1, 2, 3, 4},            // masked (server receiving is fine, client is not: not our call)
		{0x82, 126, 0x00, 0x05},             // 16-bit length for 5
		{0x82, 127, 0, 0, 0, 0, 0, 0, 0, 5}, // 64-bit length for 5
		{0x89, 125},                         // ping at the limit
	} {
		h, n, done, err := Parse(wire)
		if err != nil || !done || n != len(wire) {
			t.Errorf("Parse(% x) = %+v, %d, %v, %v", wire, h, n, done, err)
		}
	}
}

func TestRoundTripRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	lengths := []int64{0, 1, 124, 125, 126, 127, 65534, 65535, 65536, 1 << 32, math.MaxInt64}
	buf := make([]byte, MaxHeaderSize)
	for range 2000 {
		h := Header{
			Fin: r.IntN(2) == 0, Rsv1: r.IntN(2) == 0, Rsv2: r.IntN(2) == 0, Rsv3: r.IntN(2) == 0,
			Opcode: []Opcode{OpContinuation, OpText, OpBinary, OpClose, OpPing, OpPong}[r.IntN(6)],
			Masked: r.IntN(2) == 0,
		}
		if h.Masked {
			h.Key = [4]byte{byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())}
		}
		if h.Opcode.IsControl() {
			h.Fin = true
			h.Length = r.Int64N(MaxControlPayload + 1)
		} else if r.IntN(2) == 0 {
			h.Length = lengths[r.IntN(len(lengths))]
		} else {
			h.Length = r.Int64()
		}
		n := Put(buf, &h)
		if n != h.Size() {
			t.Fatalf("Put wrote %d, Size = %d", n, h.Size())
		}
		got, m, done, err := Parse(buf[:n])
		if err != nil || !done || m != n || got != h {
			t.Fatalf("round trip %+v: got %+v, %d, %v, %v", h, got, m, done, err)
		}
		// Received in random chunks (payload bytes after the header in the last one), parsed whole after
		// each: incomplete until the header is in, then the same header and size as parsed at once.
		wire := append(buf[:n:n], 'p', 'a', 'y')
		for off := 0; ; {
			off += 1 + r.IntN(len(wire)-off)
			got, m, done, err := Parse(wire[:off])
			if err != nil || done != (off >= n) {
				t.Fatalf("%+v received %d of %d: %v, %v", h, off, n, done, err)
			}
			if done {
				if m != n || got != h {
					t.Fatalf("chunked %+v: got %+v, %d bytes, want %d", h, got, m, n)
				}
				break
			}
			if m != 0 {
				t.Fatalf("incomplete Parse returned n=%d", m)
			}
		}
	}
}

// FuzzParsePrefixes checks that parsing whatever has been received so far is consistent however the bytes
// arrive: Parse of every prefix of b is incomplete, then either an error that every longer prefix repeats, or
// done with a header and size that every longer prefix repeats.
func FuzzParsePrefixes(f *testing.F) {
	f.Add([]byte{0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 'x'})
	f.Add([]byte{0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0})
	f.Add([]byte{0x82, 126, 0, 5})
	f.Add([]byte{0x89, 126, 0, 1})
	f.Add([]byte{0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0x0b})
	f.Fuzz(func(t *testing.T, b []byte) {
		var (
			firstErr error
			h        Header
			n        int
			done     bool
		)
		for i := 0; i <= len(b); i++ {
			hi, ni, di, ei := Parse(b[:i])
			switch {
			case firstErr != nil:
				if ei != firstErr || di || ni != 0 {
					t.Fatalf("prefix %d: %d, %v, %v after error %v", i, ni, di, ei, firstErr)
				}
			case done:
				if ei != nil || !di || ni != n || hi != h {
					t.Fatalf("prefix %d: %+v, %d, %v, %v after done with %+v, %d", i, hi, ni, di, ei, h, n)
				}
			case ei != nil:
				var fe *Error
				if !errors.As(ei, &fe) || fe.Code != CloseProtocolError {
					t.Fatalf("error %v is not a 1002 *Error", ei)
				}
				if di || ni != 0 {
					t.Fatalf("prefix %d: error %v with n=%d done=%v", i, ei, ni, di)
				}
				firstErr = ei
			case di:
				// The first complete prefix is exactly the header: Parse consumes only header bytes.
				if ni != i {
					t.Fatalf("done at %d bytes with n=%d", i, ni)
				}
				h, n, done = hi, ni, true
			default:
				if ni != 0 || hi != (Header{}) {
					t.Fatalf("incomplete prefix %d: %+v, %d", i, hi, ni)
				}
			}
		}
		if firstErr != nil {
			return
		}
		if !done {
			if len(b) >= MaxHeaderSize {
				t.Fatalf("not done after %d bytes", len(b))
			}
			return
		}
		if h.Length < 0 || (h.Opcode.IsControl() && (h.Length > MaxControlPayload || !h.Fin)) || h.Opcode.IsReserved() {
			t.Fatalf("invalid header accepted: %+v", h)
		}
		buf := make([]byte, MaxHeaderSize)
		m := Put(buf, &h)
		h2, n2, done2, err2 := Parse(buf[:m])
		if err2 != nil || !done2 || n2 != m || h2 != h {
			t.Fatalf("re-encoded %+v: %+v, %v, %v", h, h2, done2, err2)
		}
		if m == n && !bytes.Equal(buf[:m], b[:n]) {
			t.Fatalf("minimal header % x re-encoded as % x", b[:n], buf[:m])
		}
		if h.Size() == n && m != n {
			t.Fatalf("Size %d but Put wrote %d", h.Size(), m)
		}
	})
}

var sinkHeader Header

func BenchmarkParse(b *testing.B) {
	wire := []byte{0x82, 0xfe, 0x01, 0x00, 1, 2, 3, 4}
	b.ReportAllocs()
	for b.Loop() {
		h, _, _, err := Parse(wire)
		if err != nil {
			b.Fatal(err)
		}
		sinkHeader = h
	}
}

func BenchmarkPut(b *testing.B) {
	h := Header{Fin: true, Opcode: OpBinary, Masked: true, Key: [4]byte{1, 2, 3, 4}, Length: 300}
	buf := make([]byte, MaxHeaderSize)
	b.ReportAllocs()
	for b.Loop() {
		Put(buf, &h)
	}
}
