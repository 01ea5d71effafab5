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
// # Recovery
//
// [Recover] applies the rule with one Read: Read(Since: offset) returns
// the kept publications after offset, oldest first, with the top read at
// the same instant, so the first one is offset+1 exactly when nothing is
// lost, and none come back when the client is at the top. A channel's
// epoch changes when its history is lost as a whole (a restarted node,
// an evicted or long-idle channel): a position from another epoch never
// recovers, whatever its offset.
//
// # Stores
//
// [NewMemory] keeps history in the process, for one node. Package
// broker/nats keeps it in NATS JetStream, shared by every node. The Data
// of a publication is the message as sent to subscribers, encoded once by
// the caller's encode function when its offset is known; a store keeps it
// as given and returns it as kept, so neither side modifies it afterwards.
package history
