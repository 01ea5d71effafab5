// Package presence records which clients are subscribed to a channel, for
// the "who is online" questions of an application.
//
// [NewMemory] keeps the records of one node. Package broker/nats keeps
// them in NATS JetStream, where the entries of a node that dies expire.
package presence
