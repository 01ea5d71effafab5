package server

import (
	"io"
	"log/slog"
	"net/http"

	"github.com/latchws/latch/websocket"
)

// DefaultMaxMessageSize is the websocket package's default read limit: a
// larger message fails the connection with 1009 unless configured otherwise.
const DefaultMaxMessageSize int64 = websocket.DefaultReadLimit

// NewEchoHandler returns a handler that upgrades with u and echoes every
// message back with the same type and payload until the connection ends.
//
// A nil u means a zero [websocket.Upgrader], that is the library defaults
// (same-origin check included). readLimit is the largest message accepted,
// in bytes; zero or less keeps the library default. A nil logger discards.
func NewEchoHandler(u *websocket.Upgrader, readLimit int64, logger *slog.Logger) http.Handler {
	if u == nil {
		u = &websocket.Upgrader{}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &echoHandler{upgrader: u, readLimit: readLimit, logger: logger}
}

// echoHandler is immutable after construction; each request owns its conn.
type echoHandler struct {
	upgrader  *websocket.Upgrader
	readLimit int64
	logger    *slog.Logger
}

func (h *echoHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	conn, err := h.upgrader.Upgrade(w, r, nil)
	if err != nil {
		// Upgrade has already answered with an HTTP error status.
		h.logger.Debug("echo: upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	defer conn.Close()
	if h.readLimit > 0 {
		conn.SetReadLimit(h.readLimit)
	}
	h.logger.Debug("echo: connection open", "remote", r.RemoteAddr)

	err = echo(conn)
	h.logger.Debug("echo: connection closed", "remote", r.RemoteAddr, "code", websocket.CloseStatus(err), "err", err)
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
