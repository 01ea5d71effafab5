package windowcheck

import (
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

// sample is compressible text with matches at every distance up to n.
func sample(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, 0, n)
	for len(b) < n {
		if len(b) > 16 && r.IntN(3) == 0 {
			from := r.IntN(len(b) - 8)
			b = append(b, b[from:from+r.IntN(8)+3]...)
			continue
		}
		b = append(b, byte('a'+r.IntN(26)))
	}
	return b[:n]
}

// stdMessage compresses one message with the standard library: sync flush, 00 00 ff ff removed.
func stdMessage(t *testing.T, fw *flate.Writer, out *bytes.Buffer, p []byte) []byte {
	t.Helper()
	out.Reset()
	fw.Write(p)
	if err := fw.Flush(); err != nil {
		t.Fatal(err)
	}
	b := bytes.Clone(out.Bytes())
	if !bytes.HasSuffix(b, []byte{0, 0, 0xff, 0xff}) {
		t.Fatal("no sync flush tail")
	}
	return b[:len(b)-4]
}

// TestInflateMatchesStdlib: what compress/flate writes (stored, fixed and dynamic blocks, at every
// level) inflates to the original, and the distances found stay within the 32 KiB window and
// within the history really available.
func TestInflateMatchesStdlib(t *testing.T) {
	t.Parallel()
	for _, level := range []int{flate.NoCompression, flate.HuffmanOnly, flate.BestSpeed, flate.DefaultCompression, flate.BestCompression} {
		for _, takeover := range []bool{false, true} {
			t.Run(fmt.Sprintf("level%d/takeover=%v", level, takeover), func(t *testing.T) {
				t.Parallel()
				var out bytes.Buffer
				fw, _ := flate.NewWriter(&out, level)
				inf := Inflater{Takeover: takeover}
				farthest := 0
				for i, n := range []int{0, 1, 5, 100, 3000, 40000, 70000, 200} {
					if !takeover {
						fw.Reset(&out)
					}
					msg := sample(n, uint64(i))
					got, d, err := inf.Inflate(stdMessage(t, fw, &out, msg))
					if err != nil {
						t.Fatalf("message %d (%d bytes): %v", i, n, err)
					}
					if !bytes.Equal(got, msg) {
						t.Fatalf("message %d (%d bytes): inflated %d bytes, not the original", i, n, len(got))
					}
					if d > 1<<15 || (!takeover && d > n) {
						t.Fatalf("message %d (%d bytes): distance %d", i, n, d)
					}
					if (level == flate.NoCompression || level == flate.HuffmanOnly) && d != 0 {
						t.Fatalf("level %d has no matches, found distance %d", level, d)
					}
					farthest = max(farthest, d)
				}
				if level >= flate.BestSpeed && farthest < 1<<14 {
					t.Errorf("farthest distance %d: the sample should have matches over 16 KiB back", farthest)
				}
			})
		}
	}
}

// TestKnownDistances checks hand-made streams (RFC 1951 §3.2.6 fixed codes).
func TestKnownDistances(t *testing.T) {
	t.Parallel()
	// "abcabcabc": three literals, then a length-6 match at distance 3.
	var out bytes.Buffer
	fw, _ := flate.NewWriter(&out, flate.BestCompression)
	msg := stdMessage(t, fw, &out, []byte("abcabcabcabc"))
	var inf Inflater
	got, d, err := inf.Inflate(msg)
	if err != nil || string(got) != "abcabcabcabc" || d != 3 {
		t.Fatalf("got %q, distance %d, %v; want distance 3", got, d, err)
	}
	// A fixed block with a length-3 match at distance 1 and nothing before it, then the empty stored
	// block's header bits of a sync flush.
	ref := []byte{0x02, 0x02, 0x00, 0x00}
	if _, _, err := inf.Inflate(ref); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("reference before the start: %v, want ErrCorrupt", err)
	}
	// With takeover, the same reaches into the previous message.
	tk := Inflater{Takeover: true}
	if _, _, err := tk.Inflate(msg); err != nil {
		t.Fatal(err)
	}
	got, d, err = tk.Inflate(ref)
	if err != nil || string(got) != "ccc" || d != 1 {
		t.Fatalf("with history: got %q, distance %d, %v; want \"ccc\", 1", got, d, err)
	}
	for _, bad := range [][]byte{{0xff, 0xff}, {0x00, 0x05, 0x00, 0x00, 0x00, 'h'}, {0x04}} {
		if _, _, err := inf.Inflate(bad); err == nil {
			t.Errorf("Inflate(% x) accepted corrupt data", bad)
		}
	}
}
