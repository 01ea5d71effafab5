// Package server is the latch application: [New] builds a [Server] whose
// handler serves
//
//	/ws       the latch pub/sub protocol (docs/protocol.md) on a hub.Hub
//	/echo     an echo service ([NewEchoHandler])
//	/         the demo page (package server/web)
//	/metrics  Prometheus metrics from a private registry
//	/healthz  200 while the process runs
//	/readyz   200 while serving, 503 once [Server.Shutdown] began
//
// With Config.AdminAddr, /metrics moves to that address, beside /debug/
// (Config.AdminDebugHandler; cmd/latch passes net/http/pprof's handlers).
//
// # Bounds
//
// The http.Server is bounded as the package hub's example shows: request
// head (10 s), whole request (Config.HTTPReadTimeout, 30 s), response
// (Config.HTTPWriteTimeout, 30 s), idle keep-alive (Config.HTTPIdleTimeout,
// 60 s), head size (Config.MaxHeaderBytes, 32 KiB: 431 beyond). None of
// them applies to a WebSocket once upgraded. Config.AllowedHosts checks the
// Host header (421 Misdirected Request, RFC 9110 §15.5.20), by default
// only on a loopback address, where DNS rebinding is the threat.
// [Server.Serve] keeps accepted connections within the descriptor limit and
// answers 503 itself beyond it. Messages are bounded per route:
// Config.MaxMessageSize (64 KiB) on /ws, Config.EchoMaxMessageSize
// (16 MiB) on /echo.
//
// # Pub/sub
//
// The protocol runs in the hub's callbacks: each text message is one JSON
// request, answered in order on the client's send queue. A publication is
// encoded once, as {"type":"message","channel":...,"data":...} with the
// data forwarded byte for byte, and handed to the server's broker
// (Config.Broker); the broker calls back every subscribed node, which fans
// it out with hub.Hub.Publish. The publisher's ack is queued only after the
// broker accepted the message. With the default in-process broker that is
// after the local fan-out, so an ack means the message is queued for every
// subscriber of that moment; with NATS (package broker/nats, wired in by
// cmd/latch) it means NATS accepted it, and the publisher's own copy may
// follow the ack. A broker failure is answered with the error
// "unavailable", which does not count towards the abuse limit.
//
// A broker.Interest counts local subscribers per channel, so the node is
// subscribed at the broker exactly while it has local subscribers. Broker
// counters appear on /metrics as latch_broker_*.
//
// # Shutdown
//
// [Server.Shutdown] turns /readyz to 503, refuses new upgrades with 503,
// sends close 1001 to every client of /ws (after what is already queued for
// it) and of /echo, waits for the closing handshakes, all in parallel, then
// shuts the HTTP server down and closes the broker. The /echo connections are tracked by the
// server for this, since they are not in the hub.
//
// # Compression
//
// Both /ws and /echo accept permessage-deflate (RFC 7692) when a client
// offers it, without context takeover unless
// Config.CompressionContextTakeover is set; Config.DisableCompression turns
// it off. latch_compressed_connections_total counts the connections that
// negotiated it, by route.
//
// # HTTP/2
//
// With TLS the server offers HTTP/2 (ALPN h2) unless Config.DisableHTTP2,
// and Config.H2C adds cleartext HTTP/2 with prior knowledge. The package
// imports websocket/xconnect, which turns on net/http's extended CONNECT
// (RFC 8441) for the whole process, so browsers open their WebSockets to
// /ws and /echo as streams of the page's connection;
// latch_http2_connections_total counts them, by route. http.Server's read
// and write timeouts apply per HTTP/2 stream; the Upgrader lifts them from
// a WebSocket's stream.
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
