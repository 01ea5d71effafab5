package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/latchws/latch/hub"
	"github.com/latchws/latch/websocket"
)

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

	// Set by the latch Server only.
	conns   *connSet                                    // nil: untracked
	limiter *hub.Limiter                                // nil: no limit; shared with the hub
	rejects *rejectCounts                               // counts the limiter's refusals; set with limiter
	onOpen  func(conn *websocket.Conn, r *http.Request) // nil: nothing to do
}

// rejectCounts counts upgrades a hub.Limiter refused outside the hub, by
// reason, for latch_upgrades_rejected_total.
type rejectCounts struct {
	maxConns, perIP atomic.Uint64
}

func (h *echoHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.limiter != nil {
		release, err := h.limiter.Acquire(r)
		if err != nil {
			var he *hub.HTTPError
			errors.As(err, &he) // Acquire's errors are *hub.HTTPError
			if errors.Is(err, hub.ErrTooManyFromAddr) {
				h.rejects.perIP.Add(1)
			} else {
				h.rejects.maxConns.Add(1)
			}
			h.logger.Debug("echo: upgrade refused", "remote", r.RemoteAddr, "err", err)
			http.Error(w, he.Message, he.Status)
			return
		}
		// Deferred first, so it runs last: the slot is held until the
		// connection is closed.
		defer release()
	}
	conn, err := h.upgrader.Upgrade(w, r, nil)
	if err != nil {
		// Upgrade has already answered with an HTTP error status.
		h.logger.Debug("echo: upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	if h.conns != nil {
		if !h.conns.add(conn) {
			// Shutdown began during the handshake: this connection would
			// be missed by it, so it goes away at once. RFC 6455 §7.4.1
			_ = conn.CloseWithCode(websocket.CloseGoingAway, goingAwayReason)
			return
		}
		// Deferred first, so it runs after the Close below: Shutdown
		// waits for the whole closing handshake.
		defer h.conns.remove(conn)
	}
	defer conn.Close()
	if h.onOpen != nil {
		h.onOpen(conn, r)
	}
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

// goingAwayReason is the close reason of a server shutdown, as the hub's.
const goingAwayReason = "server shutting down"

// connSet tracks the open /echo connections, which live outside the hub, so
// that a shutdown reaches them too.
type connSet struct {
	mu      sync.Mutex
	conns   map[*websocket.Conn]struct{} // guarded by mu
	closing bool                         // guarded by mu; set by shutdown
	active  sync.WaitGroup               // one count per tracked connection's handler
}

// add tracks conn and reports true, or reports false once shutdown began.
// A true add must be paired with remove when the handler is done with conn.
func (s *connSet) add(conn *websocket.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	if s.conns == nil {
		s.conns = make(map[*websocket.Conn]struct{})
	}
	s.conns[conn] = struct{}{}
	s.active.Add(1)
	return true
}

func (s *connSet) remove(conn *websocket.Conn) {
	s.mu.Lock()
	delete(s.conns, conn)
	s.mu.Unlock()
	s.active.Done()
}

func (s *connSet) snapshot() []*websocket.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*websocket.Conn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	return out
}

// shutdown sends close 1001 to every tracked connection, runs the closing
// handshakes in parallel and waits for the handlers to end, until ctx is
// done; then it drops what is left and returns ctx.Err() once every
// handler and closer has ended.
func (s *connSet) shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()

	var closers sync.WaitGroup
	for _, c := range s.snapshot() {
		closers.Go(func() { _ = c.CloseWithCode(websocket.CloseGoingAway, goingAwayReason) })
	}
	done := make(chan struct{})
	go func() {
		s.active.Wait()
		closers.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	for _, c := range s.snapshot() {
		_ = c.CloseNow()
	}
	<-done
	return ctx.Err()
}
