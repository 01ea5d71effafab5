package conformance

import (
	"bufio"
	"bytes"
	"testing"
	"unicode/utf8"
)

// TestRawFrameRoundTrip checks the suite's own frame writer against its
// reader at every length-encoding boundary (RFC 6455 §5.2), so that a case
// failure points at the implementation, not at the harness.
func TestRawFrameRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 127, 65535, 65536, 70000} {
		for _, masked := range []bool{false, true} {
			p := binPayload(n)
			f := frame{fin: n%2 == 0, rsv: 5, opcode: opBinary, payload: p}
			wire := f.encode(masked)
			wantHdr := 2 + map[bool]int{true: 4}[masked]
			switch {
			case n > 65535:
				wantHdr += 8
			case n > 125:
				wantHdr += 2
			}
			if len(wire) != wantHdr+n {
				t.Fatalf("n=%d masked=%v: %d bytes on the wire, want %d", n, masked, len(wire), wantHdr+n)
			}
			if masked && n >= 8 && bytes.Equal(wire[wantHdr:], p) {
				t.Fatalf("n=%d: payload not masked", n)
			}
			got, err := readRawFrame(bufio.NewReader(bytes.NewReader(wire)), maxEventBytes)
			if err != nil {
				t.Fatalf("n=%d masked=%v: %v", n, masked, err)
			}
			if got.fin != f.fin || got.rsv != 5 || got.opcode != opBinary || got.masked != masked || !bytes.Equal(got.payload, p) {
				t.Fatalf("n=%d masked=%v: round trip gave fin=%v rsv=%d op=%d masked=%v %d bytes",
					n, masked, got.fin, got.rsv, got.opcode, got.masked, len(got.payload))
			}
		}
	}
	// Two masked encodings of one frame use different keys (§5.3).
	a, b := textF("same").encode(true), textF("same").encode(true)
	if bytes.Equal(a[2:6], b[2:6]) {
		t.Fatalf("raw peer reused masking key %x", a[2:6])
	}
}

// TestSentClose checks how cases classify the first close frame they send.
func TestSentClose(t *testing.T) {
	for _, c := range []struct {
		frames []frame
		code   int
		reason string
		ok     bool
	}{
		{[]frame{textF("x")}, 0, "", false},
		{[]frame{textF("x"), closeRaw(nil)}, 1005, "", true},
		{[]frame{closeRaw([]byte{3})}, -2, "", true},
		{[]frame{closeF(4000, "bye"), closeF(1000, "")}, 4000, "bye", true},
	} {
		code, reason, ok := sentClose(c.frames)
		if code != c.code || reason != c.reason || ok != c.ok {
			t.Errorf("sentClose = %d %q %v, want %d %q %v", code, reason, ok, c.code, c.reason, c.ok)
		}
	}
}

// TestDeflateHelpers checks the raw peer's permessage-deflate against
// compress/flate as an independent judge, so that section 12, 13 and D
// failures point at the implementation.
func TestDeflateHelpers(t *testing.T) {
	// Context takeover both ways: the second copy refers to the first.
	w := &pmd{writeTakeover: true}
	r := &pmd{readTakeover: true}
	msg := zText(4<<10, 1)
	a, b := w.compress(msg), w.compress(msg)
	for i, z := range [][]byte{a, b} {
		got, err := r.inflate(z, 1<<20)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("takeover message %d: %v, %d bytes", i, err, len(got))
		}
	}
	// Without takeover the second copy cannot be read on its own.
	if _, err := (&pmd{}).inflate(b, 1<<20); err == nil {
		t.Errorf("a message compressed with takeover inflated without the context")
	}
	// RFC 7692 §7.2.3.6: an empty message is the single byte 0x00.
	if got := deflateFresh(nil); !bytes.Equal(got, []byte{0}) {
		t.Errorf("empty message compressed to %x, want 00", got)
	}
	bomb, err := (&pmd{}).inflate(deflateBomb(4), 8<<20)
	if err != nil || len(bomb) != 4<<20 || bytes.ContainsFunc(bomb, func(r rune) bool { return r != 0 }) {
		t.Errorf("4 MiB bomb inflated to %d bytes, %v", len(bomb), err)
	}
	if _, err := (&pmd{}).inflate(deflateBomb(4), 1<<20); err == nil {
		t.Errorf("inflate ignored its bound")
	}
	// The corrupt payloads of section D are corrupt for compress/flate too.
	for _, p := range [][]byte{{0xff, 0xff, 0xff, 0xff}, {0x00, 0x05, 0x00, 0x00, 0x00, 'h', 'e', 'l', 'l', 'o'}, {0x02, 0x02, 0x00}, deflateFresh(zText(3000, 7))[:40]} {
		if out, err := (&pmd{}).inflate(p, 1<<20); err == nil {
			t.Errorf("corrupt payload %x inflated to %q", p, out)
		}
	}
	// Huffman-only output (a window < 2^15 granted) round-trips.
	h := &pmd{huffman: true}
	if got, err := (&pmd{}).inflate(h.compress(msg), 1<<20); err != nil || !bytes.Equal(got, msg) {
		t.Errorf("huffman-only: %v", err)
	}
	if !utf8.Valid(zText(1000, 3)) || len(zText(1000, 3)) != 1000 || len(zBinary(777, 3)) != 777 {
		t.Errorf("payload generators: wrong size or invalid UTF-8")
	}
}
