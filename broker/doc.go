// Package broker carries pub/sub messages between the nodes of a Latch
// cluster. The hub fans a message out to the WebSocket clients of one node;
// a [Broker] decides which nodes get it.
//
// A node tells its Broker which channels it has local subscribers for
// ([Broker.Subscribe], [Broker.Unsubscribe]); [Interest] counts local
// subscribers per channel and makes exactly those calls on the first and
// after the last. Messages for those channels, published on any node,
// arrive at the node's [Handler] — one call per message and node, with
// the payload encoded once by the publisher — and the Handler hands them
// to the hub's local fan-out:
//
//	in := broker.NewInterest(b)
//	// client subscribes:   in.Add(channel)     (error → tell the client)
//	// client unsubscribes: in.Remove(channel)
//	// client publishes:    b.Publish(ctx, channel, payload) (nil → ack)
//	// Handler:             hub.Publish(channel, websocket.TextMessage, payload)
//
// # Implementations
//
// [Memory] is the default: one node, no network. Publish calls the Handler
// before it returns, if the channel is subscribed.
//
// Package github.com/latchws/latch/broker/nats is the NATS implementation,
// kept in its own package so that importing broker or hub never pulls in
// the NATS client.
//
// # Channel names
//
// Channel names are 1–128 bytes of A-Z a-z 0-9 _ - . : # ([ValidChannel]),
// the pub/sub protocol's rule. Every method refuses other names with an
// error wrapping [ErrInvalidChannel], so an implementation can map names to
// backend addresses without escaping surprises.
//
// # Delivery guarantees
//
// These hold for every implementation; package nats states its own details.
//
//   - Acknowledged means accepted: Publish returns nil only once the
//     message is accepted for delivery to every node subscribed at that
//     moment. An error means "not known to be accepted"; it is never
//     silently retried, and a client that retries may cause a duplicate.
//   - Order per publisher per channel: Publish calls on one Broker that do
//     not overlap in time (the next starts after the previous returned)
//     reach every node's Handler in that order. Nothing is promised across
//     channels or between different publishers.
//   - At most once: a node gets a message at most once, and no message is
//     stored or replayed. What a node misses while it is cut off from the
//     backend is lost for it; the loss shows in [Stats] (PublishErrors on
//     the publishing side, Dropped when a Handler falls behind).
//
// Handler calls for one channel run one at a time, in order; calls for
// different channels may run concurrently. When Close returns, no Handler
// call is running and none will start.
package broker
