package mask

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

// naive is the RFC 6455 §5.3 definition: octet i is XORed with key[i mod 4].
func naive(key [4]byte, pos int, b []byte) int {
	for i := range b {
		b[i] ^= key[(pos+i)&3]
	}
	return (pos + len(b)) & 3
}

func TestApplyTable(t *testing.T) {
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	tests := []struct {
		name    string
		pos     int
		in, out []byte
		next    int
	}{
		{"empty", 0, []byte{}, []byte{}, 0},
		{"empty keeps pos", 3, nil, nil, 3},
		// RFC 6455 §5.7: a masked "Hello" carries 7f 9f 4d 51 58 with this key.
		{"rfc hello", 0, []byte("Hello"), []byte{0x7f, 0x9f, 0x4d, 0x51, 0x58}, 1},
		{"pos 1", 1, []byte{0, 0, 0, 0}, []byte{0xfa, 0x21, 0x3d, 0x37}, 1},
		{"pos 7 wraps", 7, []byte{0, 0}, []byte{0x3d, 0x37}, 1},
		{"unmask", 0, []byte{0x7f, 0x9f, 0x4d, 0x51, 0x58}, []byte("Hello"), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := bytes.Clone(tt.in)
			got := Apply(key, tt.pos, b)
			if got != tt.next {
				t.Errorf("next pos = %d, want %d", got, tt.next)
			}
			if !bytes.Equal(b, tt.out) {
				t.Errorf("got % x, want % x", b, tt.out)
			}
		})
	}
}

func TestApplyMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	key := [4]byte{0x01, 0x80, 0xfe, 0x5a}
	src := make([]byte, 300+8)
	for i := range src {
		src[i] = byte(r.Uint32())
	}
	for n := 0; n <= 300; n++ {
		for pos := 0; pos < 4; pos++ {
			// Vary the slice offset too so unaligned starts are covered.
			off := (n + pos) % 8
			want := bytes.Clone(src[off : off+n])
			wantPos := naive(key, pos, want)
			got := bytes.Clone(src[off : off+n])
			gotPos := Apply(key, pos, got)
			if gotPos != wantPos || !bytes.Equal(got, want) {
				t.Fatalf("n=%d pos=%d: got pos %d % x, want pos %d % x", n, pos, gotPos, got, wantPos, want)
			}
		}
	}
}

func TestApplySplit(t *testing.T) {
	key := [4]byte{0xde, 0xad, 0xbe, 0xef}
	src := make([]byte, 200)
	for i := range src {
		src[i] = byte(i * 7)
	}
	want := bytes.Clone(src)
	naive(key, 0, want)
	for a := 0; a <= len(src); a++ {
		for _, b := range []int{a, a + 1, a + 5, a + 33, len(src)} {
			if b < a || b > len(src) {
				continue
			}
			got := bytes.Clone(src)
			pos := Apply(key, 0, got[:a])
			pos = Apply(key, pos, got[a:b])
			pos = Apply(key, pos, got[b:])
			if pos != len(src)&3 || !bytes.Equal(got, want) {
				t.Fatalf("split %d/%d: pos %d, mismatch=%v", a, b, pos, !bytes.Equal(got, want))
			}
		}
	}
}

func TestApplyInvolution(t *testing.T) {
	key := [4]byte{9, 8, 7, 6}
	orig := []byte("a payload long enough to use the 32-byte unrolled loop, twice over.")
	b := bytes.Clone(orig)
	Apply(key, 2, b)
	if bytes.Equal(b, orig) {
		t.Fatal("masking left the payload unchanged")
	}
	Apply(key, 2, b)
	if !bytes.Equal(b, orig) {
		t.Fatalf("mask twice = %q, want %q", b, orig)
	}
}

func FuzzApply(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4}, 0, []byte("hello"), 2)
	f.Add([]byte{0xff, 0, 0xff, 0}, 3, bytes.Repeat([]byte{0xaa}, 100), 37)
	f.Fuzz(func(t *testing.T, k []byte, pos int, data []byte, split int) {
		var key [4]byte
		copy(key[:], k)
		want := bytes.Clone(data)
		wantPos := naive(key, pos&3, want)

		got := bytes.Clone(data)
		if p := Apply(key, pos, got); p != wantPos || !bytes.Equal(got, want) {
			t.Fatalf("one call: pos %d, want %d; equal=%v", p, wantPos, bytes.Equal(got, want))
		}

		if len(data) > 0 {
			s := split % (len(data) + 1)
			if s < 0 {
				s = -s
			}
			got = bytes.Clone(data)
			p := Apply(key, pos, got[:s])
			p = Apply(key, p, got[s:])
			if p != wantPos || !bytes.Equal(got, want) {
				t.Fatalf("split at %d: pos %d, want %d; equal=%v", s, p, wantPos, bytes.Equal(got, want))
			}
		}
	})
}

var benchSizes = []int{16, 128, 1024, 16384, 1 << 20}

func BenchmarkApply(b *testing.B) {
	key := [4]byte{1, 2, 3, 4}
	for _, n := range benchSizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			buf := make([]byte, n)
			b.SetBytes(int64(n))
			pos := 0
			for b.Loop() {
				pos = Apply(key, pos, buf)
			}
		})
	}
}

func BenchmarkCopy(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			src := make([]byte, n)
			dst := make([]byte, n)
			b.SetBytes(int64(n))
			for b.Loop() {
				copy(dst, src)
			}
		})
	}
}
