// Package frame encodes and decodes WebSocket frame headers (RFC 6455 §5.2) and close payloads (§5.5.1).
//
// It does no I/O: [Decoder] is fed bytes as they arrive, any number at a time, so the same code serves a
// blocking reader and an event loop. [Parse] is the fast path when a whole header is already buffered.
// Only what the header alone can tell is checked here; masking direction and RSV bits depend on the
// connection and are left to it.
package frame
