// Package presence records which clients are subscribed to a channel, for
// the "who is online" questions of an application.
//
// A record is keyed by channel and client id: adding a client again
// replaces its record, removing an absent one is not an error, and a
// channel whose last client left costs nothing.
//
// [NewMemory] keeps the records of one node. Package broker/nats keeps
// them in NATS JetStream, where the entries of a node that dies expire.
package presence
