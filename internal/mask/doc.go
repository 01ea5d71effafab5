// Package mask applies the WebSocket client-to-server masking transform (RFC 6455 §5.3).
//
// Masking is an XOR with a repeating 4-byte key, so the same function masks and unmasks. [Apply] takes
// the key position to continue from, which lets a payload be processed in any number of pieces.
//
// Long runs are masked 32 bytes per instruction with AVX2 on amd64 CPUs that have it (checked once with
// CPUID and XGETBV); elsewhere, and with the purego build tag, 8 bytes at a time in portable Go.
package mask
