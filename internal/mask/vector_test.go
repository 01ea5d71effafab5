package mask

import (
	"math/rand/v2"
	"testing"
)

// The vector loop (where the CPU has one) must give the same bytes as a
// plain byte loop for every length, start offset and key position,
// including lengths that leave a word and a byte tail behind it.
func TestVectorLoopMatchesBytes(t *testing.T) {
	t.Logf("vector loop in use: %v", useVector)
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 6000)
	for iter := 0; iter < 3000; iter++ {
		off := r.IntN(64)
		n := r.IntN(len(buf) - off)
		pos := r.IntN(4)
		key := [4]byte{byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())}
		for i := range buf {
			buf[i] = byte(r.Uint32())
		}
		want := append([]byte(nil), buf[off:off+n]...)
		for i := range want {
			want[i] ^= key[(pos+i)&3]
		}
		if end := Apply(key, pos, buf[off:off+n]); end != (pos+n)&3 {
			t.Fatalf("n=%d pos=%d: end %d", n, pos, end)
		}
		for i := range want {
			if buf[off+i] != want[i] {
				t.Fatalf("n=%d off=%d pos=%d: byte %d is %#x, want %#x", n, off, pos, i, buf[off+i], want[i])
			}
		}
	}
}
