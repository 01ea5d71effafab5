// Command latch runs the Latch WebSocket server.
//
// Usage:
//
//	latch [serve] [flags]
//	latch help
//
// With no arguments it serves on :8080. Routes:
//
//	/echo    echoes every WebSocket message back (text or binary)
//
// Flags of serve:
//
//	-addr ADDR                listen address (default ":8080"; port 0 picks a free port)
//	-max-message-size BYTES   largest message accepted; larger ones close with 1009
//	-log-level LEVEL          debug, info, warn or error (default info)
//	-log-format FORMAT        text or json (default text)
//
// Once listening it prints one line, "latch: listening on http://ADDR",
// with the address actually bound. SIGINT or SIGTERM stops it: the HTTP
// server shuts down within 5 seconds and latch exits with status 0.
package main
