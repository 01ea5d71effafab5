// Package server holds the building blocks of the latch application: the
// HTTP handlers that cmd/latch wires to routes.
//
// # Echo
//
// [NewEchoHandler] upgrades a request to a WebSocket connection and sends
// every message back with the same type and payload. It streams: each
// message is copied from the connection's reader to a writer for the reply
// as it arrives, so a large message is never held in memory whole, let
// alone twice. A message larger than the read limit fails the connection
// with close code 1009 (RFC 6455 §7.4.1).
//
// Connection ends are logged at debug level with the close code the peer
// sent, or -1 when the connection ended without a close frame.
package server
