// Package websocket implements the WebSocket protocol defined in RFC 6455:
// a server upgrade ([Upgrader]), a client ([Dialer]) and the connection
// ([Conn]) both share.
//
// The API is gorilla/websocket's (v1.5.3): a program written for gorilla
// compiles against this package by changing its import path. What changes
// is what happens underneath: Close performs the closing handshake, dead
// peers are found, concurrent writes are safe, text is checked for UTF-8,
// message sizes are bounded. docs/migrating-from-gorilla.md lists every
// difference.
//
// # Overview
//
// A server upgrades an HTTP request:
//
//	var upgrader = websocket.Upgrader{}
//
//	func handler(w http.ResponseWriter, r *http.Request) {
//		conn, err := upgrader.Upgrade(w, r, nil)
//		if err != nil {
//			return // Upgrade has already answered with an HTTP error
//		}
//		defer conn.Close()
//		for {
//			messageType, p, err := conn.ReadMessage()
//			if err != nil {
//				return
//			}
//			if err := conn.WriteMessage(messageType, p); err != nil {
//				return
//			}
//		}
//	}
//
// A client dials:
//
//	conn, _, err := websocket.DefaultDialer.Dial("ws://localhost:8080/ws", nil)
//
// # Data messages
//
// Text messages are UTF-8 (RFC 6455 §5.6); binary messages are anything.
// [Conn.WriteMessage] and [Conn.ReadMessage] send and receive whole
// messages; [Conn.NextWriter] and [Conn.NextReader] stream them.
// [Conn.AppendMessage] is ReadMessage into a buffer the caller hands back
// each time, so a busy read loop allocates nothing per message. Received
// text is validated as it arrives: the first invalid byte fails the
// connection with close 1007, even in the middle of a fragmented message.
// Text the application sends is validated too and refused when invalid.
//
// # Control messages
//
// Ping, pong and close messages are handled inside the read methods, by
// the handlers set with [Conn.SetPingHandler], [Conn.SetPongHandler] and
// [Conn.SetCloseHandler]. By default a ping is answered with a pong and a
// close with a close carrying the same code. The application must read
// the connection to process control messages; a goroutine that loops on
// ReadMessage does this.
//
// # Closing
//
// [Conn.Close] performs the closing handshake of RFC 6455 §7: it sends a
// close frame (1000), waits a bounded time for the peer's close frame, and
// then closes the TCP connection. [Conn.CloseWithCode] chooses the code and
// reason; [Conn.CloseNow] drops the connection at once. When the peer
// closes first, the read methods answer it and return a [*CloseError];
// [IsCloseError], [IsUnexpectedCloseError] and [CloseStatus] inspect it
// through any wrapping. A connection that ends without a close frame is
// reported as a *CloseError with code [CloseAbnormalClosure].
//
// # HTTP/2
//
// Browsers open a wss:// WebSocket as a stream of the page's HTTP/2
// connection (RFC 8441, extended CONNECT) when the server announces
// SETTINGS_ENABLE_CONNECT_PROTOCOL. Go 1.26's net/http does so only with
// GODEBUG=http2xconnect=1, which it reads from the environment once, at
// start-up: os.Setenv in main comes too late and a //go:debug directive
// does not reach it. Either start the program with that variable or import
// the package that sets it before net/http reads it:
//
//	import _ "github.com/latchws/latch/websocket/xconnect"
//
// [Upgrader.Upgrade] then accepts such a request (Method "CONNECT",
// :protocol websocket) with the checks of an HTTP/1.1 upgrade, answers 200
// and returns a Conn that behaves as over HTTP/1.1; closing it ends the
// stream (END_STREAM once a close frame was sent, RST_STREAM when it ends
// without one, where TCP would send FIN or reset),
// and the TCP connection and its other streams go on. One rule differs:
// net/http ends the stream when the handler returns, so over HTTP/2 the
// handler must not return before the connection is closed. A handler
// that serves the connection itself (reads until an error, then Close)
// needs nothing more; one that hands the connection to goroutines, as the
// gorilla chat example does, waits for [Conn.Done]:
//
//	go client.writePump()
//	go client.readPump()
//	if r.ProtoMajor >= 2 {
//		<-conn.Done() // the stream lives as long as this handler
//	}
//
// Deadlines are the stream's: one that passes ends the stream, where it
// leaves a TCP connection usable. http.Server's ReadTimeout and
// WriteTimeout apply to each stream; Upgrade lifts them, as it clears a
// hijacked connection's deadlines.
//
// A [Dialer] with an [HTTP2Pool] opens wss:// WebSockets over HTTP/2 when
// the server offers extended CONNECT, several to one server on one
// connection, and falls back to HTTP/1.1 when it does not. It is opt-in:
// most Go servers speak h2 without extended CONNECT today, and an
// automatic h2 dial would cost them a second connection for the fallback.
//
// # Dead peers
//
// A TCP connection whose peer vanished (power loss, a dropped NAT entry)
// looks idle forever. Server connections therefore run a heartbeat: when a
// read has waited [DefaultHeartbeatInterval] without a byte from the peer,
// the peer is pinged, and if the read still has nothing a timeout later
// the connection is dropped and the read returns an error matching
// [ErrHeartbeatTimeout]. The heartbeat uses a timer, not a goroutine; it
// judges the peer only while a read is waiting, so programs that write
// without reading are never cut off, and gorilla's own ping/pong pattern
// with read deadlines keeps working beside it. See [Conn.SetHeartbeat].
//
// # Concurrency
//
// One goroutine at a time may read: NextReader, ReadMessage, ReadJSON and
// the reader NextReader returns. A concurrent read returns
// [ErrConcurrentRead] instead of corrupting the stream. All write methods,
// Close, CloseNow, WriteControl and the Set*Deadline methods may be called
// from any goroutine at any time: messages are serialised inside, and
// control frames can go out between the frames of a message being
// written. No method panics on misuse.
//
// While the peer's next message is already waiting in the read buffer,
// WriteMessage holds its frame back (for at most 200 µs) and sends it with
// the answers that follow, so a peer that pipelines messages is answered
// with one system call rather than one per message. Held frames always go
// out in order and before any later frame, and before the reader next
// waits for the network.
//
// # Origin considerations
//
// Browsers let any page open a WebSocket to any server, sending the page's
// origin in the Origin header. By default [Upgrader.Upgrade] accepts a
// request only when its Origin is the server's own (same host and port,
// and https when the request came over TLS), or matches one of
// [Upgrader.OriginPatterns]; a request without Origin does not come from a
// browser and is accepted. Set [Upgrader.CheckOrigin] to decide yourself.
//
// # Limits and buffers
//
// Received messages are limited to [DefaultReadLimit] bytes unless
// [Conn.SetReadLimit] says otherwise; a larger message fails the connection
// with close 1009. Read and write buffers come from pools for the time a
// message is in flight, so an idle connection holds none. Memory follows
// the bytes received, not the length a frame header announces: a message
// of more than 64 KiB gets its allocation once half of it has arrived.
//
// # Slow peers
//
// A peer must not hold a connection by sending slowly or by not reading.
// On server connections, a message (or a frame header, or a control frame)
// that has begun must arrive within [DefaultMessageTimeout], extended by a
// second for every [DefaultMinMessageRate] bytes received; otherwise the
// connection fails with close 1008 and the read returns
// [ErrMessageTimeout]. A write that the peer takes no byte of for
// [DefaultWriteStallTimeout] fails with [ErrWriteStalled]. Both count only
// while the connection waits for the network, leave idle connections to
// the heartbeat, and give way to earlier deadlines set with
// SetReadDeadline and SetWriteDeadline. See [Conn.SetMessageTimeout],
// [Conn.SetWriteStallTimeout] and the Upgrader and Dialer fields of the
// same names (clients start with both off).
//
// Any failed write closes the connection: part of a frame may have gone
// out, so nothing can follow it, not even a close frame, and a peer that
// keeps sending cannot keep the connection open.
//
// The HTTP side of an upgrade is net/http's: give the http.Server a
// ReadHeaderTimeout, a MaxHeaderBytes sized for handshakes rather than
// the 1 MiB default, and ReadTimeout, WriteTimeout and IdleTimeout for the
// requests that are not WebSockets (Upgrade clears the deadlines they set
// on a connection it takes over):
//
//	srv := &http.Server{
//		Addr:              ":8080",
//		Handler:           mux,
//		ReadHeaderTimeout: 10 * time.Second,
//		ReadTimeout:       30 * time.Second,
//		WriteTimeout:      30 * time.Second,
//		IdleTimeout:       60 * time.Second,
//		MaxHeaderBytes:    32 << 10,
//	}
//
// # Many connections
//
// While an HTTP handler runs, net/http keeps its own read and write
// buffers for the connection (about 8 KiB), even after Upgrade. A server
// that holds many mostly idle connections should return from the handler
// and read in a goroutine of its own:
//
//	func handler(w http.ResponseWriter, r *http.Request) {
//		conn, err := upgrader.Upgrade(w, r, nil)
//		if err != nil {
//			return
//		}
//		go serve(conn) // net/http frees its buffers when the handler returns
//	}
//
// Such an idle connection then costs the minimum goroutine stack (2 KiB)
// and the connection's own state: it waits in the runtime poller with no
// read buffer, no write buffer and no heartbeat goroutine, about 4.6 KiB in
// all (15,000 idle connections, measured by bench/run.sh in
// docs/benchmarks.md; about 1 KiB on an [Engine]). The read and write paths
// are kept shallow so that the stack stays at the minimum; a loop that
// does deep work between reads (logging each message, say) grows it to
// 4 KiB for good, which the runtime does not undo while the goroutine
// waits.
//
// # Event engine
//
// A server that holds very many connections, most of them idle, can serve
// them without a goroutine each. After Upgrade, hand the connection to an
// [Engine] and return from the handler; the engine's event loops (epoll
// on Linux, about one per CPU, each with one read buffer for all its
// connections) read every connection and call back with each message:
//
//	engine, err := websocket.NewEngine(websocket.EngineConfig{})
//	...
//	func handler(w http.ResponseWriter, r *http.Request) {
//		conn, err := upgrader.Upgrade(w, r, nil)
//		if err != nil {
//			return
//		}
//		engine.Serve(conn, websocket.Callbacks{
//			OnMessage: func(c *websocket.Conn, messageType int, p []byte) {
//				c.WriteMessage(messageType, p) // p is valid during the call
//			},
//			OnClose: func(c *websocket.Conn, err error) {},
//		})
//	}
//
// An idle connection on the engine then holds its Conn and nothing else:
// no goroutine, no buffer, no timer (heartbeats, message bounds, deadlines
// and close timeouts are checked by each loop in one pass over its
// connections every 250 ms). The connection reads through the same code
// as a blocking Conn, fed from the loop's buffer instead of the socket,
// so the protocol rules, limits, compression and handlers are the same;
// a compressed message that arrives over several reads is inflated as it
// comes, on a coroutine that lives only as long as that message.
//
// Writes work as on any Conn and never block a loop: what the socket does
// not take at once is queued, up to [EngineConfig.MaxQueuedBytes], and
// written when the socket can take more; messages a callback writes while
// the loop reads its connection go out together, one system call for a
// read's worth of answers. A goroutine that finds the queue full waits for
// room, within its write deadline and the write stall timeout; a callback,
// which must not wait, gets [ErrQueueFull] and the connection is closed
// with 1008. Close sends the close frame and returns at once; the loop
// finishes the handshake and OnClose reports how it ended. The read
// methods return [ErrEngineRead].
//
// Callbacks run on the loop by default and must not block: a callback
// that waits holds up every connection of its loop. [EngineConfig.Workers]
// runs them on a pool of goroutines instead, in order per connection,
// with the payload copied; a connection whose input waits for the workers
// beyond MaxQueuedBytes is not read until they catch up. Connections
// without a plain descriptor (TLS, HTTP/2 streams) and every connection on
// platforms without epoll are served on a goroutine each, with the same
// callbacks. A listener's wrapper that does not change the bytes (one
// that counts connections, say) can let the engine hold its connections
// anyway by implementing [SocketWrapper].
//
// [Engine.PauseReads] stops reading a connection until
// [Engine.ResumeReads]: TCP flow control then holds the peer back, as a
// blocking reader that stops calling ReadMessage does. The hub pauses a
// client that sends requests faster than it reads the answers this way.
//
// # Compression
//
// Set [Upgrader.EnableCompression] or [Dialer.EnableCompression] to
// negotiate permessage-deflate (RFC 7692). Messages are then compressed
// when they have at least [DefaultCompressionThreshold] bytes (a message
// streamed with NextWriter once it reaches that size or fills the write
// buffer, as its size is not known when it starts), at level 1 unless [Conn.SetCompressionLevel] says otherwise;
// [Conn.EnableWriteCompression] turns it off and on per message. By default
// both directions compress every message on its own (no context takeover),
// so an idle connection holds no compression state; with
// CompressionContextTakeover the context is kept between messages, which
// compresses similar messages much better at a memory cost per connection.
// The read limit applies to the inflated size and is enforced while
// inflating: a small message that inflates to gigabytes fails the
// connection with close 1009 after at most the limit. A peer may ask for
// an LZ77 window smaller than 32 KiB (server_max_window_bits from a
// client, client_max_window_bits from a server, RFC 7692 §7.1.2): the
// connection then compresses with no back-reference beyond that window,
// 256 bytes to 16 KiB, at some cost in ratio (docs/compression.md);
// [Dialer.CompressionMaxWindowBits] asks for one. [PreparedMessage]
// compresses once per level and window for all connections without
// context takeover.
package websocket
