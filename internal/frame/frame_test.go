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
			var d Decoder
			for i := range tt.want {
				n, done, err := d.Feed(tt.want[i : i+1])
				if err != nil || n != 1 || done != (i == len(tt.want)-1) {
					t.Fatalf("Feed byte %d: %d, %v, %v", i, n, done, err)
				}
			}
			if *d.Header() != tt.h {
				t.Fatalf("Decoder header = %+v, want %+v", *d.Header(), tt.h)
			}
		})
	}
}

func TestDecoderConsumesOnlyHeader(t *testing.T) {
	wire := []byte{0x82, 126, 0x01, 0x00, 'p', 'a', 'y'}
	var d Decoder
	n, done, err := d.Feed(wire)
	if err != nil || !done || n != 4 {
		t.Fatalf("Feed = %d, %v, %v; want 4, true, nil", n, done, err)
	}
	if h := d.Header(); h.Length != 256 || h.Opcode != OpBinary || !h.Fin {
		t.Fatalf("header = %+v", *h)
	}
	// Done decoders take nothing more until Reset.
	if n, done, err := d.Feed(wire[4:]); n != 0 || !done || err != nil {
		t.Fatalf("Feed after done = %d, %v, %v", n, done, err)
	}
	d.Reset()
	if n, done, err := d.Feed([]byte{0x8a}); n != 1 || done || err != nil {
		t.Fatalf("Feed after Reset = %d, %v, %v", n, done, err)
	}
	if n, done, err := d.Feed([]byte{0x00, 0xff}); n != 1 || !done || err != nil {
		t.Fatalf("Feed second byte = %d, %v, %v", n, done, err)
	}
	if h := d.Header(); h.Opcode != OpPong || h.Length != 0 || h.Masked {
		t.Fatalf("header = %+v", *h)
	}
	if n, done, err := d.Feed(nil); n != 0 || !done || err != nil {
		t.Fatalf("Feed(nil) after done = %d, %v, %v", n, done, err)
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
			// Parse sees the violation exactly when its bytes are present.
			for i := 0; i <= len(tt.wire); i++ {
				_, _, _, err := Parse(tt.wire[:i])
				if (err != nil) != (i >= tt.at) {
					t.Fatalf("Parse(prefix %d): err = %v, want error from %d bytes", i, err, tt.at)
				}
			}
			var d Decoder
			for i := range tt.wire {
				n, done, err := d.Feed(tt.wire[i : i+1])
				if i+1 < tt.at {
					if err != nil || done || n != 1 {
						t.Fatalf("Feed byte %d: %d, %v, %v", i, n, done, err)
					}
					continue
				}
				if !errors.As(err, &fe) || fe.Code != CloseProtocolError || done {
					t.Fatalf("Feed byte %d: %d, %v, %v; want 1002", i, n, done, err)
				}
				if i+1 == tt.at && n != 1 {
					t.Fatalf("Feed byte %d consumed %d", i, n)
				}
				if i+1 > tt.at && n != 0 {
					t.Fatalf("Feed after error consumed %d", n)
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
		// Random chunking gives the same header.
		var d Decoder
		off := 0
		for off < n {
			k := 1 + r.IntN(n-off)
			c, done, err := d.Feed(buf[off : off+k])
			if err != nil || c != k || done != (off+k == n) {
				t.Fatalf("Feed chunk %d+%d of %d: %d, %v, %v", off, k, n, c, done, err)
			}
			off += k
		}
		if *d.Header() != h {
			t.Fatalf("Decoder got %+v, want %+v", *d.Header(), h)
		}
	}
}

// decodeChunks feeds b to d in chunks whose sizes come from sizes (cycled), stopping at done or error.
func decodeChunks(d *Decoder, b []byte, sizes []byte) (consumed int, done bool, err error) {
	for i := 0; consumed < len(b); i++ {
		k := 1
		if len(sizes) > 0 {
			k = 1 + int(sizes[i%len(sizes)])%MaxHeaderSize
		}
		k = min(k, len(b)-consumed)
		n, dn, e := d.Feed(b[consumed : consumed+k])
		consumed += n
		if e != nil || dn {
			return consumed, dn, e
		}
		if n != k {
			return consumed, false, errors.New("short consume without done")
		}
	}
	return consumed, false, nil
}

func FuzzDecoder(f *testing.F) {
	f.Add([]byte{0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 'x'}, []byte{1})
	f.Add([]byte{0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0}, []byte{3, 200})
	f.Add([]byte{0x82, 126, 0, 5}, []byte{0})
	f.Add([]byte{0x89, 126, 0, 1}, []byte{13})
	f.Add([]byte{0x0b}, []byte{})
	f.Fuzz(func(t *testing.T, b []byte, sizes []byte) {
		h, n, done, err := Parse(b)
		var d Decoder
		c, ddone, derr := decodeChunks(&d, b, sizes)
		if (err == nil) != (derr == nil) || done != ddone {
			t.Fatalf("Parse = %v, %v; Decoder = %v, %v", done, err, ddone, derr)
		}
		if err != nil {
			var fe *Error
			if !errors.As(err, &fe) || fe.Code != CloseProtocolError {
				t.Fatalf("error %v is not a 1002 *Error", err)
			}
			return
		}
		if !done {
			if len(b) >= MaxHeaderSize {
				t.Fatalf("not done after %d bytes", len(b))
			}
			return
		}
		if c != n || *d.Header() != h {
			t.Fatalf("Decoder %+v (%d bytes) != Parse %+v (%d bytes)", *d.Header(), c, h, n)
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

func BenchmarkDecoder(b *testing.B) {
	wire := []byte{0x82, 0xfe, 0x01, 0x00, 1, 2, 3, 4}
	var d Decoder
	b.ReportAllocs()
	for b.Loop() {
		d.Reset()
		if _, done, err := d.Feed(wire); !done || err != nil {
			b.Fatal(done, err)
		}
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
