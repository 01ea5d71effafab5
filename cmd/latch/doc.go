// Command latch runs the Latch WebSocket server.
//
// Usage:
//
//	latch [serve] [flags]
//	latch connect [flags] URL
//	latch config check FILE
//	latch config example
//	latch token -sub USER [-secret S | -secret-file F] [-ttl D] [-subscribe LIST] [-publish LIST]
//	latch version
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
// # Configuration
//
// Each flag of serve is also an environment variable and a key of the TOML
// file named by -config (or LATCH_CONFIG). Precedence, lowest first:
// defaults < the file < LATCH_* variables < command-line flags. The key is
// the flag's name with '-' written '_', and the flags -tls-*, -http-*,
// -log-*, -auth-*, -api-* and -jetstream-* go in a table of that name: -http-idle-timeout
// is idle_timeout in [http], -auth-public-key is public_key in [auth] (an
// array), -max-connections is max_connections at the top. Lists are TOML
// arrays; durations are strings as on the command line ("30s", "off").
// Decoding is strict: an unknown key or a value of the wrong type is an
// error naming its line. Only the file has [[namespace]] tables (name,
// subscribe, publish, history_size, history_ttl, presence, join_leave,
// personal) and hmac_secret_file in [auth] and key_file in [api], which
// name a file holding the secret (read at start, trailing newline
// trimmed). Relative file names in the file are read from its directory.
// latch config example prints a file with every key, documented; latch
// config check FILE reads FILE as serve would (environment included),
// builds the server from it without listening, and prints "latch: FILE:
// ok" or the error, with status 1.
//
// # Demo mode
//
// With no configuration file and no auth key, and unless -demo=false,
// latch serves a demo: anonymous access, GET /demo/token minting a token
// for any user name, and three namespaces: the default one open to
// anyone, "chat" (users; history of 100 for 10m, presence, join/leave) and
// "inbox" (personal channels, published by the server API only). It logs a
// warning saying so at start. With an auth key and no namespaces, the
// default namespace is for users (subscribe and publish "user").
//
// # Flags of serve
//
// Each is also read from the environment variable shown:
//
//	-config FILE                LATCH_CONFIG: the TOML configuration file
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
//	-auth-hmac-secret SECRET    LATCH_AUTH_HMAC_SECRET: verify HS256 tokens with SECRET (32 bytes at least; prefer the variable)
//	-auth-public-key FILES      LATCH_AUTH_PUBLIC_KEY: PEM public keys for RS256, ES256, EdDSA (repeatable or comma-separated)
//	-auth-jwks-url URL          LATCH_AUTH_JWKS_URL: verify tokens with the keys of a JWK set (RFC 7517)
//	-auth-issuer ISS            LATCH_AUTH_ISSUER: tokens must carry this "iss"
//	-auth-audience AUD          LATCH_AUTH_AUDIENCE: tokens must carry this "aud"
//	-auth-anonymous             LATCH_AUTH_ANONYMOUS: with a key, admit connections without a token too (on in demo mode)
//	-auth-leeway D              LATCH_AUTH_LEEWAY: clock skew allowed on exp, nbf and iat (default off)
//	-auth-jwks-refresh D        LATCH_AUTH_JWKS_REFRESH: refetch the JWK set every D (default 5m)
//	-auth-connect-timeout D     LATCH_AUTH_CONNECT_TIMEOUT: without -auth-anonymous, the connect op must come within D, else 4001 (default 10s)
//	-api-key KEY                LATCH_API_KEY: enable the server API for this key (16 bytes at least; prefer the variable)
//	-api-addr ADDR              LATCH_API_ADDR: serve the server API there
//	-api-on-main                LATCH_API_ON_MAIN: serve the server API on -addr too
//	-demo                       LATCH_DEMO: demo mode (see above; default: on with no file and no auth key)
//	-node-id ID                 LATCH_NODE_ID: this node's name in client ids and the server API
//	-max-publish-rate N         LATCH_MAX_PUBLISH_RATE: publishes per second per connection, beyond: rate_limited (0: unlimited)
//	-max-publish-rate-per-ip N  LATCH_MAX_PUBLISH_RATE_PER_IP: the same for all connections of one IP (0: unlimited)
//	-jetstream-replicas N       LATCH_JETSTREAM_REPLICAS: with -broker, replicas of the JetStream history streams and presence bucket (default 1)
//	-jetstream-memory           LATCH_JETSTREAM_MEMORY: with -broker, history and presence in NATS's memory, not files
//	-jetstream-presence-ttl D   LATCH_JETSTREAM_PRESENCE_TTL: with -broker, a dead node's presence entries expire after D (default 60s)
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
// Start-up errors are printed as "latch: ..." on stderr, with status 2 for
// a configuration error and 1 for one found while starting (files that
// cannot be read, an address in use, no NATS server).
//
// With -broker, latch connects to NATS at start (and exits with status 1
// if no listed server answers), then reconnects by itself after an outage;
// meanwhile publishes get the error "unavailable".
package main
