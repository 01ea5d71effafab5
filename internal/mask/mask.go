package mask

import (
	"encoding/binary"
	"unsafe"
)

// Apply XORs b in place with the 4-byte masking key (RFC 6455 §5.3), starting at key byte pos&3, and returns
// the key position after the last byte ((pos+len(b))&3) so a payload can be masked in several calls.
func Apply(key [4]byte, pos int, b []byte) int {
	pos &= 3
	n := len(b)
	end := (pos + n) & 3
	// Short payloads (most control frames and chat messages): a plain byte loop beats the setup below.
	if n < 16 {
		for i := range b {
			b[i] ^= key[(pos+i)&3]
		}
		return end
	}

	p := unsafe.Pointer(unsafe.SliceData(b))
	// Byte-wise up to an 8-byte boundary so the word loop never does unaligned loads (which fault or are
	// slow on some architectures).
	i := 0
	for ; (uintptr(p)+uintptr(i))&7 != 0 && i < n; i++ {
		b[i] ^= key[(pos+i)&3]
	}
	pos = (pos + i) & 3

	// The key repeated twice, rotated to start at byte pos, read in native byte order: 8 and 64 are
	// multiples of 4, so every word in the loops below starts at key byte pos.
	var kb [8]byte
	for j := range kb {
		kb[j] = key[(pos+j)&3]
	}
	k := binary.NativeEndian.Uint64(kb[:])

	// Long runs go to the vector loop where the CPU has one (mask_amd64.s): 32 bytes per instruction.
	if useVector && n-i >= vectorMin {
		m := (n - i) &^ 31
		xorVector((*byte)(unsafe.Add(p, i)), m, k)
		i += m
	}

	// unsafe pointer XORs compile to one read-modify-write instruction per word with no bounds checks;
	// this measured about 2x faster than binary.LittleEndian loads and stores.
	for ; n-i >= 64; i += 64 {
		q := unsafe.Add(p, i)
		*(*uint64)(q) ^= k
		*(*uint64)(unsafe.Add(q, 8)) ^= k
		*(*uint64)(unsafe.Add(q, 16)) ^= k
		*(*uint64)(unsafe.Add(q, 24)) ^= k
		*(*uint64)(unsafe.Add(q, 32)) ^= k
		*(*uint64)(unsafe.Add(q, 40)) ^= k
		*(*uint64)(unsafe.Add(q, 48)) ^= k
		*(*uint64)(unsafe.Add(q, 56)) ^= k
	}
	for ; n-i >= 8; i += 8 {
		*(*uint64)(unsafe.Add(p, i)) ^= k
	}
	for j := 0; i < n; i, j = i+1, j+1 {
		b[i] ^= kb[j]
	}
	return end
}
