//go:build amd64 && !purego

package mask

// useVector reports whether the CPU and the OS support AVX2 (CPUID and XGETBV, checked once).
var useVector = hasAVX2()

// vectorMin is the shortest run worth the vector loop's setup.
const vectorMin = 64

// xorVector XORs n bytes at b (n a multiple of 32) with key, the masking key repeated twice in native byte
// order, 32 bytes per AVX2 instruction.
//
//go:noescape
func xorVector(b *byte, n int, key uint64)

func hasAVX2() bool
