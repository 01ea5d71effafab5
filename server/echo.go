package server

import (
	"io"
	"log/slog"
	"net/http"

	"github.com/latchws/latch/hub"
	"github.com/latchws/latch/websocket"
)

// NewEchoHandler returns a handler that upgrades with u and echoes every
// message back with the same type and payload until the connection ends.
// The handler is a *hub.Hub: it returns once the connection is upgraded
// (the echo runs on a goroutine of its own, so net/http frees its buffers
// for the connection), and its Shutdown closes every echo connection with
// 1001.
//
// A nil u means a zero [websocket.Upgrader], that is the library defaults
// (same-origin check included). readLimit is the largest message accepted,
// in bytes; zero or less keeps the library default. A nil logger discards.
func NewEchoHandler(u *websocket.Upgrader, readLimit int64, logger *slog.Logger) http.Handler {
	return newEchoHub(hub.Config{Upgrader: u, ReadLimit: max(readLimit, 0), Logger: logger})
}

// newEchoHub returns a hub whose clients are echoed: cfg's Serve and
// OnDisconnect are set here.
func newEchoHub(cfg hub.Config) *hub.Hub {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Engine != nil {
		// The engine delivers whole messages; a write from the loop into
		// a full queue closes the client with 1008, so an echo client
		// that does not read cannot make the server hold its output.
		cfg.OnMessage = func(c *hub.Client, mt int, data []byte) { _ = c.Conn().WriteMessage(mt, data) }
	} else {
		cfg.Serve = func(c *hub.Client) error { return echo(c.Conn()) }
	}
	cfg.OnDisconnect = func(c *hub.Client, code int, err error) {
		log.Debug("echo: connection closed", "remote", c.Request().RemoteAddr, "code", code, "err", err)
	}
	return hub.New(cfg)
}

// echo copies messages back until reading or writing fails, and returns
// that error.
func echo(conn *websocket.Conn) error {
	for {
		typ, rd, err := conn.NextReader()
		if err != nil {
			return err
		}
		wr, err := conn.NextWriter(typ)
		if err != nil {
			return err
		}
		if _, err := io.Copy(wr, rd); err != nil {
			// The message was cut short (too large, invalid, or the peer
			// went away); the connection is failing, so the partial reply
			// is left unfinished rather than sent as if complete.
			return err
		}
		if err := wr.Close(); err != nil {
			return err
		}
	}
}
