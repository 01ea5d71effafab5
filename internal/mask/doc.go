// Package mask applies the WebSocket client-to-server masking transform (RFC 6455 §5.3).
//
// Masking is an XOR with a repeating 4-byte key, so the same function masks and unmasks. [Apply] takes
// the key position to continue from, which lets a payload be processed in any number of pieces.
package mask
