// Package hub provides the server half of a real-time WebSocket service:
// a registry of connected clients, channels with subscribe and
// unsubscribe, fan-out with back-pressure, and graceful shutdown.
//
// A [Hub] is an http.Handler. Each request it serves is authorised
// ([Config.Authorize]), upgraded with the websocket package (heartbeat on,
// same-origin check, bounded messages), registered, and read until the
// connection ends; the hooks [Config.OnConnect], [Config.OnMessage] and
// [Config.OnDisconnect] run on that client's read goroutine.
//
//	var h *hub.Hub
//	h = hub.New(hub.Config{
//		OnConnect: func(c *hub.Client) { h.Subscribe(c, "news") },
//	})
//	http.Handle("/ws", h)
//	h.RegisterOnShutdown(srv, 10*time.Second)
//	...
//	h.Publish("news", websocket.TextMessage, []byte("hello"))
//
// # On an event engine
//
// With [Config.Engine] set, the hub serves its clients on a
// websocket.Engine: no goroutine per client. OnMessage then runs on the
// engine's event loop (or its workers) and must not block, and its data is
// valid only during the call. An idle client holds its connection, its
// registry entry and a small queue, and nothing else: whoever queues a
// message for a client writes it out directly while the connection's
// engine queue has room, and a writer goroutine runs only for a client
// that has fallen that far behind. Reply and MaxMessageRate pause the
// client's reads instead of waiting (TCP flow control holds the client
// back all the same). After OnConnect a client keeps only what it needs
// of its handshake request ([Client.Request]); [Client.SetValue] keeps the
// application's state with it.
//
// # Registry
//
// Clients live in a table split into 32 shards, each with its own lock,
// keyed by client ID; channel subscriptions live in a second sharded table
// keyed by a hash of the channel name. There is no central hub goroutine:
// connecting, subscribing and publishing take one shard's lock for a short
// time, so work on different shards runs in parallel. [Hub.Len] and
// [Hub.Stats] read the counters atomically.
//
// # Back-pressure
//
// Every client has one writer draining a bounded queue (a goroutine, or on an engine often the publisher itself)
// ([Config.SendQueue] messages); it runs only while the queue holds
// something, and the queue grows only as far as it is used. [Hub.Publish], [Hub.Broadcast] and
// [Client.Send] only append to queues: a publisher never waits for a slow
// client's network. Publish and Broadcast encode a message once, as a
// websocket.PreparedMessage, and queue the same frame to every receiver;
// each client receives the messages of one publisher in the order they
// were published.
//
// When a client's queue is full, the [SlowConsumerPolicy] decides:
// [Disconnect] closes the client with 1008 "slow consumer" and counts it in
// Stats.SlowDisconnects; [DropOldest] drops the oldest queued publication
// and counts it in Stats.Dropped and [Client.Dropped]. A write the client
// takes no byte of for [Config.WriteTimeout] also ends the client as a slow
// consumer. The writer sends everything queued (up to 64 messages) with
// one system call, so a client that fell behind catches up cheaply, and it
// sets no deadline per message: WriteTimeout is the connection's write
// stall timeout. The 1008 close frame goes out as soon as the write in progress
// ends; a write that times out leaves a frame half sent, so the connection
// is dropped instead (the peer sees no close frame). Either way
// OnDisconnect gets 1008 and an error matching [ErrSlowConsumer].
// Messages still queued when a client ends are counted in
// Stats.Discarded. No message is lost without a counter saying so, and
// OnDisconnect runs exactly once per client, with the close code seen
// (1006 when the connection ended without one).
//
// Answers to a client's own requests go through [Client.Reply]: they share
// the client's queue, so they keep their order with its publications, but
// they never make it a slow consumer. With SendQueue replies queued, Reply
// waits for the writer, so a client that pipelines requests faster than it
// reads the answers stops being read (TCP flow control does the rest)
// instead of being disconnected.
//
// # Limits
//
// A [Limiter] bounds open connections in total and per client IP address,
// answering 503 or 429 beyond them; [Config.Limiter] shares one between a
// hub and other handlers. [Config.MaxMessageRate] bounds the messages read
// from one client per second: a client that sends faster is throttled (its
// next message is read later), counted in Stats.Throttled.
//
// # Shutdown
//
// [Hub.Shutdown] refuses new upgrades with HTTP 503, sends 1001 Going Away
// to every client after what is already queued for it, and waits for the
// closing handshakes — all in parallel — until its context is done. The
// clients still open then are dropped without a handshake. When Shutdown
// returns, every client has gone through OnDisconnect and no goroutine of
// the hub is left. http.Server.Shutdown does not know about hijacked
// connections; [Hub.RegisterOnShutdown] makes it call Shutdown.
//
// # HTTP server bounds
//
// The http.Server in front of a hub bounds what happens before the upgrade:
// set ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout and
// MaxHeaderBytes (net/http's default is 1 MiB of headers per pending
// handshake; 32 KiB is ample) as in the example of an http.Server. None of
// them cuts a WebSocket: the Upgrader clears the connection's deadlines
// after Hijack, and from then on the heartbeat and [Config.WriteTimeout]
// bound it.
package hub
