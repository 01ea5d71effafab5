//go:build !amd64 || purego

package mask

const useVector = false

const vectorMin = 64

func xorVector(b *byte, n int, key uint64) { panic("mask: no vector loop on this platform") }
