package utf8stream

import "encoding/binary"

// DFA states. A state other than sAccept and sReject means a multi-byte sequence is pending and says which
// byte range the next continuation byte must be in (RFC 3629 §4) and what follows it.
const (
	sAccept uint8 = iota
	sNeed1        // one more 80..BF
	sNeed2        // two more 80..BF
	sNeed3        // three more 80..BF
	sE0           // after E0: A0..BF (no overlong 3-byte forms), then one more
	sED           // after ED: 80..9F (no UTF-16 surrogates), then one more
	sF0           // after F0: 90..BF (no overlong 4-byte forms), then two more
	sF4           // after F4: 80..8F (nothing above U+10FFFF), then two more
	sReject
)

// trans describes a pending state: the allowed range of the next byte and the state after it.
type trans struct{ lo, hi, next, left uint8 }

var table = [16]trans{
	sNeed1:  {0x80, 0xBF, sAccept, 1},
	sNeed2:  {0x80, 0xBF, sNeed1, 2},
	sNeed3:  {0x80, 0xBF, sNeed2, 3},
	sE0:     {0xA0, 0xBF, sNeed1, 2},
	sED:     {0x80, 0x9F, sNeed1, 2},
	sF0:     {0x90, 0xBF, sNeed2, 3},
	sF4:     {0x80, 0x8F, sNeed2, 3},
	sReject: {},
	sAccept: {},
}

// lead maps a byte seen in the accept state to the next state. 80..BF cannot start a sequence; C0, C1
// only start overlong forms and F5..FF only code points above U+10FFFF.
var lead = func() (t [256]uint8) {
	for c := range 256 {
		switch {
		case c < 0x80:
			t[c] = sAccept
		case c < 0xC2:
			t[c] = sReject
		case c < 0xE0:
			t[c] = sNeed1
		case c == 0xE0:
			t[c] = sE0
		case c == 0xED:
			t[c] = sED
		case c < 0xF0:
			t[c] = sNeed2
		case c == 0xF0:
			t[c] = sF0
		case c < 0xF4:
			t[c] = sNeed3
		case c == 0xF4:
			t[c] = sF4
		default:
			t[c] = sReject
		}
	}
	return t
}()

// Validator checks UTF-8 incrementally across fragment boundaries and fails fast: Write returns false as soon
// as the bytes seen so far cannot be the start of valid UTF-8 (RFC 6455 §8.1, Autobahn 6.x). Zero value ready.
type Validator struct {
	state uint8 // sAccept, a pending-sequence state, or sReject (sticky until Reset)
}

const hi8 = 0x8080808080808080

// Write feeds the next bytes of the text. It returns false once the text seen so far is not a prefix of
// any valid UTF-8, and keeps returning false until Reset.
func (v *Validator) Write(p []byte) bool {
	s := v.state
	if s == sReject {
		return false
	}
	p = p[:len(p):len(p)]
	// Finish a sequence left pending by the previous call.
	for s != sAccept && len(p) > 0 {
		if s = step(s, p[0]); s == sReject {
			v.state = sReject
			return false
		}
		p = p[1:]
	}
	if s != sAccept { // p ended inside the pending sequence
		v.state = s
		return true
	}
	p = p[asciiRun(p):]
	for len(p) > 0 {
		c := p[0]
		if c < 0x80 {
			p = p[1:]
			// Text that has one ASCII byte tends to have runs of them.
			if len(p) >= 8 && le64(p)&hi8 == 0 {
				p = p[asciiRun(p):]
			}
			continue
		}
		// Non-ASCII: when the whole sequence is in p, check it in one go; the second byte has the
		// lead-specific range, the others are plain continuation bytes (RFC 3629 §4).
		s = lead[c]
		t := table[s&15]
		ok := false
		switch t.left {
		case 1:
			if len(p) >= 2 {
				ok = t.lo <= p[1] && p[1] <= t.hi
				p = p[2:]
			} else {
				s = sAccept // not enough bytes: resume below from the lead byte
			}
		case 2:
			if len(p) >= 3 {
				ok = t.lo <= p[1] && p[1] <= t.hi && p[2]&0xC0 == 0x80
				p = p[3:]
			} else {
				s = sAccept
			}
		case 3:
			if len(p) >= 4 {
				ok = t.lo <= p[1] && p[1] <= t.hi && p[2]&0xC0 == 0x80 && p[3]&0xC0 == 0x80
				p = p[4:]
			} else {
				s = sAccept
			}
		}
		if ok {
			continue
		}
		if s != sAccept {
			v.state = sReject // bad lead byte or bad continuation
			return false
		}
		// The sequence is cut by the end of p: step through what is here and keep the state.
		for _, c := range p {
			if s = step(s, c); s == sReject {
				v.state = sReject
				return false
			}
		}
		v.state = s
		return true
	}
	v.state = sAccept
	return true
}

// step advances the DFA by one byte.
func step(s, c uint8) uint8 {
	if s == sAccept {
		return lead[c]
	}
	t := table[s&15]
	if c < t.lo || c > t.hi {
		return sReject
	}
	return t.next
}

func le64(p []byte) uint64 { return binary.LittleEndian.Uint64(p) }

// asciiRun returns the length of the leading ASCII run of p, rounded down to a multiple of 8, checking
// the high bit of 8 bytes per load (a word of ASCII has no bit 7 set anywhere).
func asciiRun(p []byte) int {
	n := len(p)
	p = p[:n:n] // fixed capacity, and ">" rather than ">=" below, keep the reslicing cheap
	for len(p) > 32 && ((le64(p)|le64(p[8:]))|(le64(p[16:])|le64(p[24:])))&hi8 == 0 {
		p = p[32:]
	}
	for len(p) >= 8 && le64(p)&hi8 == 0 {
		p = p[8:]
	}
	return n - len(p)
}

// Complete reports whether the text so far is valid and does not end inside a multi-byte sequence.
func (v *Validator) Complete() bool { return v.state == sAccept }

// Reset makes v ready for a new text.
func (v *Validator) Reset() { v.state = sAccept }

// Valid reports whether p is entirely valid UTF-8; it gives the same result as unicode/utf8.Valid.
func Valid(p []byte) bool {
	var v Validator
	return v.Write(p) && v.state == sAccept
}
