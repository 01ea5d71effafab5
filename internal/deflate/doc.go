// Package deflate negotiates the permessage-deflate extension (RFC 7692) on top of the
// Sec-WebSocket-Extensions header grammar (RFC 6455 §9.1).
//
// # Parsing
//
// [ParseExtensions] turns every Sec-WebSocket-Extensions header value into a list of [Extension]s. It
// rejects malformed headers; it does not judge what the extensions mean.
//
// # Server
//
// [Accept] walks the client's offers in order and answers the first one it can honour. Offers it cannot
// honour are skipped, not fatal (RFC 7692 §5). server_max_window_bits=N (8..15) is answered with the
// same N, and the compressor then keeps every back-reference within 2^N bytes (RFC 7692 §7.1.2.1).
//
// # Client
//
// [Offer] builds the single offer the client sends and [Verify] checks the server's answer to it. Any
// response that does not correspond to that offer must fail the connection (RFC 7692 §5).
// [Config.MaxWindowBits] asks for a smaller window both ways.
//
// # Context takeover
//
// [Config.ContextTakeover] false asks for no context takeover in both directions, so a connection keeps
// no compressor or decompressor state between messages and both can be pooled. True keeps the LZ77
// window across messages when the peer allows it: a better ratio on small messages, but 0.8–1.2 MB of
// writer state per connection with either flate library (see docs/compression.md).
//
// The package has no goroutines, no locks and no I/O.
package deflate
