// Command tutorial is the program from the gorilla/websocket tutorial
// "How to start and close Websocket connection in Golang", assembled into
// one runnable file with a single change: it imports
// github.com/latchws/latch/websocket instead of github.com/gorilla/websocket.
//
// Run it and connect to ws://127.0.0.1:8080/ws; every message is echoed back:
//
//	go run ./examples/tutorial -addr :8080
//
// The code is the article's, so it keeps the article's quirks (an
// unreachable CloseMessage case, CheckOrigin that allows every origin). What
// changes with Latch is behaviour, not code: the deferred ws.Close sends a
// close frame and waits for the peer's answer (RFC 6455 §7.1.1), a client's
// close code is echoed back to it (RFC 6455 §5.5.1), and a peer that vanishes
// ends the read loop at once.
package main
