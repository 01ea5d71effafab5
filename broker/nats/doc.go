// Package nats is a [broker.Broker] over NATS core (github.com/nats-io/nats.go),
// for running several Latch nodes behind a load balancer: a message published
// on one node reaches the subscribers on every node.
//
//	b, err := nats.New([]string{"nats://10.0.0.5:4222"}, func(channel string, payload []byte) {
//		h.Publish(channel, websocket.TextMessage, payload) // local fan-out
//	})
//
// Each node holds one NATS connection. The payload is published once per
// message, as is; every node subscribed to the channel receives it once and
// fans it out to its own clients. A node's own publishes come back to it
// through NATS like everyone else's, so all nodes see the same order.
//
// # Subjects and interest
//
// Channel c travels on the subject "latch.ch." + one token encoding c (see
// [Subject]: '_' escapes, '.' → "_d", ':' → "_c", '_' → "__"). The encoding
// is injective and the token holds only A-Z a-z 0-9 _ -, so no channel name
// can reach another channel's subject, a wildcard or a second token. A node
// subscribes to a subject only while it has local subscribers for the
// channel ([broker.Interest] drives Subscribe and Unsubscribe), so NATS
// sends a node only the traffic it needs.
//
// # Delivery guarantee
//
// Exactly this holds (NATS core keeps no messages):
//
//   - Publish returns nil once the NATS server the node is connected to has
//     processed the message: Publish writes it and then waits for the answer
//     to a PING sent after it on the same connection, bounded by the context
//     (or [WithTimeout] when the context has no deadline). The server has then
//     passed it on to every subscription it knew — for a single server, every
//     node whose Subscribe had returned. In a NATS cluster, interest spreads
//     between servers asynchronously, so a node that subscribed a moment ago
//     on another server may miss it.
//   - Order per publisher per channel: Publish calls on one Broker that do
//     not overlap in time reach every node's Handler in that order (one
//     connection per node; NATS keeps the order of one connection's messages
//     to each subscriber, and nats.go delivers one channel's messages in order
//     on one goroutine). Between channels, or between nodes, there is no
//     order.
//   - At most once, also across an outage: nothing is retried, stored or
//     replayed. A message that reached the NATS server before a subscriber's
//     connection broke, or while a node was disconnected, never reaches that
//     node. Messages nats.go has to discard because the Handler falls behind
//     its pending limits (a slow consumer) are counted in Stats.Dropped.
//   - An error is not a proof of loss: an error wrapping
//     [broker.ErrUnavailable] means the message is not known to be accepted
//     (no connection, no confirmation before the deadline, or the connection
//     was replaced before the confirmation came). It may still have been
//     delivered; a client that retries may cause a duplicate.
//
// # Outages
//
// nats.go reconnects forever, with exponential back-off and jitter
// ([WithReconnectDelay]), and re-sends the node's subscriptions on the new
// connection by itself; subscriptions made during the outage are sent too.
// Its reconnect buffer is disabled, so while disconnected Publish fails at
// once with [broker.ErrUnavailable] instead of queueing messages that a long
// outage would lose silently. [New] itself fails if no server can be
// reached at start.
//
// # Metrics
//
// [Broker.Stats] reports messages published (acknowledged) and received
// (handed to the Handler), publish errors, completed reconnects, messages
// dropped by a slow Handler, whether the node is connected now and the total
// time spent disconnected, the current outage included.
package nats
