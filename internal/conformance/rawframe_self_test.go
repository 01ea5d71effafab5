package conformance

import (
	"bufio"
	"bytes"
	"testing"
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
