// Package history keeps the recent publications of channels, so that a
// client that reconnects can recover what it missed.
//
// Every publication of a channel gets the next offset of that channel
// (1, 2, 3, ...) under the channel's epoch. A client remembers the last
// position it saw; on reconnection it asks for what came after it. The
// history covers the gap when the epoch is the same and the publication
// after that offset is still kept (see [Covers]); otherwise the client must
// start afresh.
//
// [NewMemory] keeps history in the process, for one node. Package
// broker/nats keeps it in NATS JetStream, shared by every node.
package history
