// Package frame encodes and decodes WebSocket frame headers (RFC 6455 §5.2) and close payloads (§5.5.1).
//
// It does no I/O: [Parse] decodes a header from whatever bytes are buffered and says whether it is complete
// yet, so a blocking reader and an event loop both call it again after each read; an invalid header is
// rejected as soon as the bytes received make it invalid. [Put] encodes one.
// Only what the header alone can tell is checked here; masking direction and RSV bits depend on the
// connection and are left to it.
package frame
