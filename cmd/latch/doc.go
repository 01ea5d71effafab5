// Command latch runs the Latch WebSocket server.
//
// Usage:
//
//	latch [serve] [flags]
//	latch connect [flags] URL
//	latch help
//
// With no arguments it serves on :8080. Routes:
//
//	/ws       the latch pub/sub protocol (docs/protocol.md)
//	/echo     echoes every WebSocket message back (text or binary)
//	/         the demo page
//	/metrics  Prometheus metrics (on -admin-addr instead, if set, beside /debug/pprof/)
//	/healthz  200 while the process runs
//	/readyz   200 while serving, 503 while shutting down
//
// Flags of serve, each also read from an environment variable (a flag given
// on the command line wins over the variable):
//
//	-addr ADDR                  LATCH_ADDR: listen address (default ":8080"; port 0 picks a free port)
//	-tls-cert FILE              LATCH_TLS_CERT: TLS certificate (PEM); with -tls-key, serve HTTPS and wss://
//	-tls-key FILE               LATCH_TLS_KEY: TLS private key (PEM)
//	-http2=BOOL                 LATCH_HTTP2: with TLS, offer HTTP/2 and WebSockets over it (RFC 8441) (default true)
//	-h2c                        LATCH_H2C: also accept cleartext HTTP/2 with prior knowledge, for an h2c proxy (default false)
//	-engine MODE                LATCH_ENGINE: auto (epoll event loops on Linux, else goroutines), epoll or goroutines (default auto)
//	-allowed-origins LIST       LATCH_ALLOWED_ORIGINS: comma-separated origins accepted besides the server's own
//	-allowed-hosts LIST         LATCH_ALLOWED_HOSTS: comma-separated Host patterns served, others get 421 (IP
//	                            literals always pass; empty: localhost names only on a loopback -addr, else any)
//	-admin-addr ADDR            LATCH_ADMIN_ADDR: serve /metrics and /debug/pprof/ there only (empty: /metrics on -addr)
//	-max-connections N          LATCH_MAX_CONNECTIONS: most open WebSocket connections, /ws and /echo together; more get 503 (0: unlimited)
//	-max-connections-per-ip N   LATCH_MAX_CONNECTIONS_PER_IP: the same per client IP (IPv6: /64); more get 429 (0: unlimited; keep 0 behind a proxy)
//	-max-message-rate N         LATCH_MAX_MESSAGE_RATE: messages per second per /ws connection, burst as many; faster clients are throttled (default 1000; 0: off)
//	-max-message-size BYTES     LATCH_MAX_MESSAGE_SIZE: largest message on /ws; larger ones close with 1009 (default 64 KiB)
//	-echo-max-message-size BYTES LATCH_ECHO_MAX_MESSAGE_SIZE: the same for /echo (default 16 MiB)
//	-http-idle-timeout D        LATCH_HTTP_IDLE_TIMEOUT: close keep-alive connections idle for D (default 60s; off: never)
//	-http-read-timeout D        LATCH_HTTP_READ_TIMEOUT: bound on reading a whole request (default 30s; off: none)
//	-http-write-timeout D       LATCH_HTTP_WRITE_TIMEOUT: bound on writing a response (default 30s; off: none)
//	-max-header-bytes BYTES     LATCH_MAX_HEADER_BYTES: largest request head, larger ones get 431 (default 32 KiB)
//	-max-channels N             LATCH_MAX_CHANNELS: most channels per connection (default 100)
//	-send-queue N               LATCH_SEND_QUEUE: publications queued per client; a full queue closes it with 1008 (default 256)
//	-heartbeat-interval D       LATCH_HEARTBEAT_INTERVAL: ping silent clients after D (default 30s; off: no heartbeat)
//	-message-timeout D          LATCH_MESSAGE_TIMEOUT: a message begun must arrive within D plus 1 s per KiB, else 1008 (default 10s; off: no bound)
//	-write-stall-timeout D      LATCH_WRITE_STALL_TIMEOUT: drop a client that takes no byte of a write for D (default 10s; off: never)
//	-compression=BOOL           LATCH_COMPRESSION: accept permessage-deflate on /ws and /echo (default true)
//	-compression-context-takeover LATCH_COMPRESSION_CONTEXT_TAKEOVER: keep the deflate context between messages (default false)
//	-shutdown-timeout D         LATCH_SHUTDOWN_TIMEOUT: how long shutdown waits for clients (default 5s; cannot be off)
//	-broker URLS                LATCH_BROKER: comma-separated NATS URLs shared with other latch nodes (docs/scaling.md)
//	-publish-timeout D          LATCH_PUBLISH_TIMEOUT: how long a publish waits for the broker (default 5s; cannot be off)
//	-log-level LEVEL            LATCH_LOG_LEVEL: debug, info, warn or error (default info)
//	-log-format FORMAT          LATCH_LOG_FORMAT: text or json (default text)
//
// A duration D is a Go duration (30s, 1m, 1h30m) or, where the bound can be
// off, the word off; 0 is refused with a message saying to write off, since
// server.Config reads 0 as "the default".
//
// Once listening it prints "latch: listening on http://ADDR" (https with
// TLS), where ADDR is the address actually bound in a form one can open and
// dial: localhost:PORT when listening on all interfaces, the host name given
// in -addr if any, else the bound IP and port. With -admin-addr a second line
// follows, "latch: admin on http://ADDR"; then one listing the routes.
// Scripts may read the address from the first line.
//
// The HTTP timeouts end at a WebSocket upgrade: an upgraded connection is
// bounded by the heartbeat and the write timeouts of the websocket layer
// instead. Connections beyond what the descriptor limit allows
// (RLIMIT_NOFILE less 64 in reserve) get an immediate 503, counted in
// latch_upgrades_rejected_total{reason="descriptors"}. SIGINT or SIGTERM
// stops it gracefully: /readyz turns 503, new upgrades are refused, every
// /ws and /echo client gets close 1001 (Going Away) with a full closing
// handshake, and latch exits with status 0 within the shutdown timeout.
//
// With -broker, latch connects to NATS at start (and exits with status 1
// if no listed server answers), then reconnects by itself after an outage;
// meanwhile publishes get the error "unavailable".
package main
