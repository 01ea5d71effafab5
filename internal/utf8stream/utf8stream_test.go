package utf8stream

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// writeSplit feeds p to a fresh Validator in pieces cut at the given offsets and returns the index of the
// piece whose Write first returned false (-1 if none) and the final Complete result.
func writeSplit(p []byte, cuts ...int) (failedPiece int, complete bool) {
	var v Validator
	prev := 0
	failedPiece = -1
	for k, c := range append(cuts, len(p)) {
		if !v.Write(p[prev:c]) && failedPiece < 0 {
			failedPiece = k
		}
		prev = c
	}
	return failedPiece, v.Complete()
}

// failAt returns the length of the shortest prefix of p rejected by Write when fed byte by byte, or -1.
func failAt(p []byte) int {
	var v Validator
	for i := range p {
		if !v.Write(p[i : i+1]) {
			return i + 1
		}
	}
	return -1
}

func TestTable(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		valid bool
		// fail is the length of the shortest prefix that must be rejected; 0 when valid or when only an
		// incomplete sequence at the end makes the text invalid.
		fail int
	}{
		{"empty", "", true, 0},
		{"ascii", "Hello-µ@ßöäüàá-UTF-8!!", true, 0},
		{"kosme", "κόσμε", true, 0},
		{"first 1 byte", "\x00", true, 0},
		{"first 2 bytes", "\u0080", true, 0},
		{"first 3 bytes", "\u0800", true, 0},
		{"first 4 bytes", "\U00010000", true, 0},
		{"last 1 byte", "\x7f", true, 0},
		{"last 2 bytes", "\u07ff", true, 0},
		{"last 3 bytes", "\uffff", true, 0},
		{"last 4 bytes", "\U0010ffff", true, 0},
		{"D7FF", "\ud7ff", true, 0},
		{"E000", "\ue000", true, 0},
		{"FFFD", "\ufffd", true, 0},
		{"noncharacter FFFE", "\xef\xbf\xbe", true, 0},
		{"emoji", "hi 👋🏽 ok", true, 0},

		// Fail-fast positions, Autobahn 6.3/6.4 style.
		{"kosme then surrogate", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited", false, 13},
		{"F4 90 above max", "\xf4\x90\x80\x80", false, 2},
		{"F4 90 after text", "abc\xf4\x90\x80\x80", false, 5},
		{"ED A0 surrogate", "\xed\xa0\x80", false, 2},
		{"ED BF surrogate", "\xed\xbf\xbf", false, 2},
		{"E0 80 overlong", "\xe0\x80\xaf", false, 2},
		{"E0 9F overlong", "\xe0\x9f\xbf", false, 2},
		{"F0 80 overlong", "\xf0\x80\x80\xaf", false, 2},
		{"F0 8F overlong", "\xf0\x8f\xbf\xbf", false, 2},
		{"C0 overlong", "\xc0\xaf", false, 1},
		{"C1 overlong", "\xc1\xbf", false, 1},
		{"F5", "\xf5\x80\x80\x80", false, 1},
		{"F8 5-byte", "\xf8\x88\x80\x80\x80", false, 1},
		{"FC 6-byte", "\xfc\x84\x80\x80\x80\x80", false, 1},
		{"FE", "\xfe", false, 1},
		{"FF", "\xff", false, 1},
		{"lone continuation", "\x80", false, 1},
		{"continuation after ascii", "a\xbf", false, 2},
		{"two continuations", "\x80\xbf", false, 1},
		{"2-byte missing cont then ascii", "\xc2a", false, 2},
		{"3-byte cut then ascii", "\xe2\x82a", false, 3},
		{"4-byte cut then ascii", "\xf0\x9f\x98a", false, 4},
		{"ok then bad in long ascii", strings.Repeat("x", 40) + "\xff" + strings.Repeat("y", 40), false, 41},

		// Incomplete at the end: every prefix is fine, Complete reports the error.
		{"cut 2-byte", "\xc2", false, 0},
		{"cut 3-byte", "\xe2\x82", false, 0},
		{"cut 4-byte", "\xf0\x9f\x98", false, 0},
		{"cut after text", "κόσμε\xf4\x8f\xbf", false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := []byte(tt.in)
			if got := utf8.Valid(p); got != tt.valid {
				t.Fatalf("bad test case: utf8.Valid = %v", got)
			}
			if got := Valid(p); got != tt.valid {
				t.Errorf("Valid = %v, want %v", got, tt.valid)
			}
			var v Validator
			ok := v.Write(p)
			if got := ok && v.Complete(); got != tt.valid {
				t.Errorf("Write+Complete = %v, want %v", got, tt.valid)
			}
			if ok != (tt.fail == 0) {
				t.Errorf("Write = %v, want %v", ok, tt.fail == 0)
			}
			want := tt.fail
			if want == 0 {
				want = -1
			}
			if got := failAt(p); got != want {
				t.Errorf("byte-by-byte rejected after %d bytes, want %d", got, want)
			}
		})
	}
}

func TestStickyAndReset(t *testing.T) {
	var v Validator
	if !v.Complete() {
		t.Fatal("zero Validator not complete")
	}
	if v.Write([]byte{0xff}) {
		t.Fatal("0xff accepted")
	}
	if v.Write([]byte("fine")) || v.Complete() {
		t.Fatal("Validator recovered without Reset")
	}
	v.Reset()
	if !v.Write([]byte("fine")) || !v.Complete() {
		t.Fatal("Reset did not clear the failure")
	}
	if !v.Write([]byte{0xe2, 0x82}) || v.Complete() {
		t.Fatal("pending sequence reported complete")
	}
	v.Reset()
	if !v.Complete() {
		t.Fatal("Reset did not clear the pending sequence")
	}
	if v.Write([]byte{0xac}) {
		t.Fatal("continuation byte accepted after Reset")
	}
}

// randText mixes ASCII, valid multi-byte runes and (sometimes) arbitrary bytes.
func randText(r *rand.Rand, n int) []byte {
	runes := []rune{'a', 'Z', 0x7f, 0x80, 0x7ff, 0x800, 0xd7ff, 0xe000, 0xfffd, 0xffff, 0x10000, 0x1f600, 0x10ffff, 'é', '世'}
	var b []byte
	for len(b) < n {
		switch r.IntN(10) {
		case 0:
			b = append(b, byte(r.Uint32()))
		case 1, 2, 3:
			b = utf8.AppendRune(b, runes[r.IntN(len(runes))])
		default:
			b = append(b, byte('a'+r.IntN(26)))
		}
	}
	return b
}

func TestSplitEverywhere(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	valid := 0
	for iter := range 400 {
		p := randText(r, 1+iter%70)
		if iter%3 == 0 {
			// Mostly valid inputs too, so the accept path gets split-tested.
			p = bytes.ToValidUTF8(p, []byte("\ufffd"))
		}
		want := utf8.Valid(p)
		if want {
			valid++
		}
		if got := Valid(p); got != want {
			t.Fatalf("Valid(% x) = %v, want %v", p, got, want)
		}
		whole := failAt(p)
		for a := 0; a <= len(p); a++ {
			for _, b := range []int{a, a + 1, a + 2, a + 3, len(p)} {
				if b > len(p) {
					continue
				}
				failed, complete := writeSplit(p, a, b)
				if got := failed < 0 && complete; got != want {
					t.Fatalf("% x split at %d,%d: valid=%v, want %v", p, a, b, got, want)
				}
			}
		}
		// Fail-fast must not depend on how bytes are grouped: the piece holding byte whole-1 fails.
		if whole > 0 {
			for a := 0; a <= len(p); a++ {
				failed, _ := writeSplit(p, a)
				wantPiece := 0
				if whole > a {
					wantPiece = 1
				}
				if failed != wantPiece {
					t.Fatalf("% x split at %d: failed in piece %d, want %d (reject at %d)", p, a, failed, wantPiece, whole)
				}
			}
		}
	}
	if valid < 100 {
		t.Fatalf("only %d valid inputs generated; generator is broken", valid)
	}
}

// completable reports whether some suffix of at most 3 bytes makes p valid UTF-8 (the longest sequence
// is 4 bytes, so a valid prefix can be missing at most 3).
func completable(p []byte) bool {
	if utf8.Valid(p) {
		return true
	}
	for _, suf := range [][]byte{{0x80}, {0x80, 0x80}, {0x80, 0x80, 0x80}, {0x90, 0x80, 0x80}, {0xa0, 0x80}, {0x8f, 0x80, 0x80}} {
		if utf8.Valid(append(bytes.Clone(p), suf...)) {
			return true
		}
	}
	return false
}

func FuzzValidator(f *testing.F) {
	f.Add([]byte("κόσμε\xed\xa0\x80edited"), uint16(3))
	f.Add([]byte("\xf4\x90\x80\x80"), uint16(1))
	f.Add([]byte("hello world, this is long enough for the fast path 👋"), uint16(50))
	f.Add([]byte("\xf0\x9f\x98"), uint16(2))
	f.Fuzz(func(t *testing.T, p []byte, split uint16) {
		want := utf8.Valid(p)
		if got := Valid(p); got != want {
			t.Fatalf("Valid = %v, utf8.Valid = %v", got, want)
		}
		s := int(split) % (len(p) + 1)
		var v Validator
		ok1 := v.Write(p[:s])
		ok2 := v.Write(p[s:])
		if got := ok1 && ok2 && v.Complete(); got != want {
			t.Fatalf("split at %d: valid = %v, want %v", s, got, want)
		}
		if !ok1 && ok2 {
			t.Fatal("Write returned true after an earlier failure")
		}
		// Fail fast: a rejected prefix cannot be completed; an accepted one can.
		if ok1 != completable(p[:s]) {
			t.Fatalf("Write(% x) = %v, but completable = %v", p[:s], ok1, !ok1)
		}
		if ok := ok1 && ok2; ok != completable(p) {
			t.Fatalf("Write(% x) = %v, but completable = %v", p, ok, !ok)
		}
	})
}

var benchInputs = map[string]string{
	"ascii": "The quick brown fox jumps over the lazy dog. ",
	"mixed": "Grüße aus Köln — 你好，世界！ Ça va? ",
	"emoji": "😀🎉👋🏽🚀✨ ok ",
}

func BenchmarkValid(b *testing.B) {
	for _, kind := range []string{"ascii", "mixed", "emoji"} {
		for _, size := range []int{64, 16 << 10} {
			p := []byte(strings.Repeat(benchInputs[kind], size/len(benchInputs[kind])+1))
			p = p[:size]
			for !utf8.Valid(p) { // cut on a rune boundary
				p = p[:len(p)-1]
			}
			name := fmt.Sprintf("%s/%d", kind, size)
			b.Run("latch/"+name, func(b *testing.B) {
				b.SetBytes(int64(len(p)))
				for b.Loop() {
					if !Valid(p) {
						b.Fatal("invalid")
					}
				}
			})
			b.Run("stdlib/"+name, func(b *testing.B) {
				b.SetBytes(int64(len(p)))
				for b.Loop() {
					if !utf8.Valid(p) {
						b.Fatal("invalid")
					}
				}
			})
		}
	}
}
