package hub

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/latchws/latch/websocket"
)

var (
	// ErrClosed is returned when sending to or subscribing a client that has
	// ended or is closing.
	ErrClosed = errors.New("hub: client closed")

	// ErrSlowConsumer is returned by Send when the client's queue is full
	// under the [Disconnect] policy; the client is then closed with 1008.
	// OnDisconnect sees an error matching it for such clients.
	ErrSlowConsumer = errors.New("hub: slow consumer")
)

// SlowConsumerPolicy says what happens when a client's send queue is full.
type SlowConsumerPolicy int

const (
	// Disconnect closes the slow client with close 1008 (reason "slow
	// consumer"), counted in [Stats].SlowDisconnects.
	Disconnect SlowConsumerPolicy = iota
	// DropOldest drops the oldest queued message to make room, counted per
	// client ([Client.Dropped]) and in [Stats].Dropped.
	DropOldest
)

const (
	defaultSendQueue    = 256
	defaultWriteTimeout = 10 * time.Second
	slowReason          = "slow consumer"
	goingAwayReason     = "server shutting down"
)

// Config configures a [Hub]. The zero value is usable.
type Config struct {
	Upgrader       *websocket.Upgrader // nil: defaults (heartbeat on, same-origin)
	SendQueue      int                 // per client: publications queued before the policy applies, and replies before Reply waits; 0 → 256
	SlowConsumer   SlowConsumerPolicy
	WriteTimeout   time.Duration // how long a write may wait with the client taking no byte (its connection's write stall timeout); 0 → 10s, < 0 no bound
	MaxConnections int           // 0 → unlimited; beyond it upgrades get HTTP 503; unused when Limiter is set
	ReadLimit      int64         // 0 → websocket default

	// Engine, when set, serves the clients on its event loops instead of a
	// read goroutine each: an idle client then holds no goroutine, and a
	// client's queued messages are written by whoever queues them while
	// its connection's output queue has room (a writer goroutine runs only
	// for a client that fell behind). OnMessage runs on the engine's loop
	// (or on its workers, with EngineConfig.Workers) and must not block;
	// its data is valid only during the call. Serve, when set, keeps its
	// clients on goroutines. Connections the engine cannot hold (TLS,
	// HTTP/2) are served on goroutines by the engine, with the same hooks.
	// The hub does not close the engine.
	Engine *websocket.Engine

	// Limiter admits upgrades (HTTP 503 or 429 beyond its limits); share one
	// with other handlers to bound their connections together. nil: the
	// hub has its own, of MaxConnections.
	Limiter *Limiter

	// MaxMessageRate bounds the data messages read from one client, per
	// second, with a token bucket of MessageBurst messages: a client that
	// sends faster is throttled — the hub reads its next message only when
	// the bucket allows, and TCP flow control holds the client back — not
	// disconnected. Each wait is counted in Stats.Throttled. 0: no bound.
	MaxMessageRate float64
	// MessageBurst is how many messages a client may send at once before
	// MaxMessageRate applies; 0 → one second's worth (at least 1).
	MessageBurst int

	// Authorize runs before the upgrade; a non-nil error rejects with HTTP
	// 403 (or the status of an *HTTPError).
	Authorize func(r *http.Request) error
	// OnConnect runs on the client's goroutine once it is registered,
	// before the first read.
	OnConnect func(c *Client)
	// OnMessage runs for every data message, one call at a time in the
	// order the messages came, on the client's read goroutine (a fresh one
	// for each message, so that idle clients keep small stacks), or on the
	// engine's loop (see Engine).
	OnMessage func(c *Client, messageType int, data []byte)
	// Serve, when set, takes the place of the hub's read loop: it runs on
	// the client's goroutine after OnConnect, reads c.Conn() itself (the
	// only reader) and returns the error that ended the connection, which
	// OnDisconnect then gets. OnMessage and MaxMessageRate are not used.
	// It is for handlers that stream messages rather than take each one
	// whole (an echo that copies a message as it arrives), keeping the
	// hub's limits, registry, writer and shutdown.
	Serve func(c *Client) error
	// OnDisconnect runs once per client, after it left the registry and its
	// channels and its goroutines ended, with the close code seen
	// (websocket.CloseStatus style: the peer's; 1009 or 1008 when the
	// connection failed the peer for a message too big or too slow, 1008
	// for a slow consumer; 1006 if none) and the error that ended the read
	// loop.
	OnDisconnect func(c *Client, code int, err error)
	Logger       *slog.Logger // nil: discard
}

// HTTPError is returned by Config.Authorize to choose the HTTP status of the
// rejection.
type HTTPError struct {
	Status  int
	Message string
}

func (e *HTTPError) Error() string {
	if e.Message != "" {
		return "hub: " + e.Message
	}
	return "hub: " + http.StatusText(e.Status)
}

// Hub is a registry of WebSocket clients with channels, fan-out and
// graceful shutdown. Its methods are safe for concurrent use.
type Hub struct {
	cfg      Config // immutable after New
	upgrader *websocket.Upgrader
	log      *slog.Logger

	nextID  atomic.Uint64
	clients [numShards]clientShard
	chans   [numShards]channelShard

	mu       sync.Mutex // guards the fields below
	draining bool
	inflight int           // ServeHTTP calls past the draining check
	idle     chan struct{} // closed when draining and inflight reaches 0

	drainFlag atomic.Bool // mirrors draining for lock-free reads
	dropping  atomic.Bool // Shutdown's deadline passed: drop, no handshake

	stats counters
}

// New returns a Hub configured by cfg.
func New(cfg Config) *Hub {
	if cfg.SendQueue <= 0 {
		cfg.SendQueue = defaultSendQueue
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = defaultWriteTimeout
	}
	if cfg.MaxMessageRate < 0 {
		cfg.MaxMessageRate = 0
	}
	if cfg.MaxMessageRate > 0 && cfg.MessageBurst <= 0 {
		cfg.MessageBurst = max(1, int(math.Ceil(cfg.MaxMessageRate)))
	}
	if cfg.Limiter == nil {
		cfg.Limiter = NewLimiter(cfg.MaxConnections, 0)
	}
	h := &Hub{cfg: cfg, upgrader: cfg.Upgrader, log: cfg.Logger, idle: make(chan struct{})}
	if h.upgrader == nil {
		h.upgrader = &websocket.Upgrader{}
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	for i := range h.clients {
		h.clients[i].m = make(map[uint64]*Client)
	}
	for i := range h.chans {
		h.chans[i].m = make(map[string]map[*Client]struct{})
	}
	h.stats.closeCodes = make(map[int]uint64)
	return h
}

// ServeHTTP upgrades the request, registers the client and returns; the
// client's read loop runs on a goroutine of its own (so that net/http frees
// its per-connection buffers) and unregisters it when the connection ends.
// Over HTTP/2 (an RFC 8441 CONNECT) it returns only when the connection is
// closed: the stream ends with the handler. Rejections are answered with HTTP errors: 503 while draining or beyond
// MaxConnections, the Limiter's status beyond its limits, 403 (or an
// *HTTPError's status) when Authorize refuses.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.enter() {
		h.stats.rejectDraining.Add(1)
		reject(w, http.StatusServiceUnavailable, "server shutting down")
		return
	}
	// Until the client is handed to its own goroutine, leaving is ours.
	handedOff := false
	defer func() {
		if !handedOff {
			h.leave()
		}
	}()

	// A slot covers the handshake too: pending upgrades hold resources.
	release, err := h.cfg.Limiter.Acquire(r)
	if err != nil {
		if errors.Is(err, ErrTooManyFromAddr) {
			h.stats.rejectPerAddr.Add(1)
		} else {
			h.stats.rejectMax.Add(1)
		}
		rejectErr(w, err)
		return
	}
	defer func() {
		if !handedOff {
			release()
		}
	}()

	if h.cfg.Authorize != nil {
		if err := h.cfg.Authorize(r); err != nil {
			h.stats.rejectAuth.Add(1)
			status, msg := http.StatusForbidden, http.StatusText(http.StatusForbidden)
			var he *HTTPError
			if errors.As(err, &he) && he.Status != 0 {
				status = he.Status
				msg = http.StatusText(status)
				if he.Message != "" {
					msg = he.Message
				}
			}
			h.log.Debug("hub: upgrade not authorized", "remote", r.RemoteAddr, "err", err)
			reject(w, status, msg)
			return
		}
	}

	conn, err := h.upgrader.Upgrade(w, r, nil)
	if err != nil {
		// Upgrade has answered with an HTTP error already.
		h.stats.rejectHandshake.Add(1)
		h.log.Debug("hub: handshake failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	if h.cfg.ReadLimit != 0 {
		conn.SetReadLimit(h.cfg.ReadLimit)
	}
	conn.SetWriteStallTimeout(h.cfg.WriteTimeout)
	c := newClient(h, h.nextID.Add(1), r, conn, release)
	// Serve the client on a goroutine of its own, or on the engine, and
	// return: net/http frees its buffers for the connection (about 8 KiB)
	// once the handler returns.
	handedOff = true
	if h.cfg.Engine != nil && h.cfg.Serve == nil {
		h.runOnEngine(c) // ends in h.end, which frees the slot and leaves
	} else {
		go h.run(c)
	}
	if r.ProtoMajor >= 2 {
		// An HTTP/2 stream ends when its handler returns (RFC 8441).
		<-conn.Done()
	}
}

func reject(w http.ResponseWriter, status int, msg string) {
	http.Error(w, msg, status)
}

// rejectErr answers with the status and message of an *HTTPError.
func rejectErr(w http.ResponseWriter, err error) {
	var he *HTTPError
	if errors.As(err, &he) {
		reject(w, he.Status, he.Message)
		return
	}
	reject(w, http.StatusServiceUnavailable, http.StatusText(http.StatusServiceUnavailable))
}

// enter admits a ServeHTTP call unless the hub is draining.
func (h *Hub) enter() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.draining {
		return false
	}
	h.inflight++
	return true
}

func (h *Hub) leave() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.inflight--
	if h.draining && h.inflight == 0 {
		close(h.idle)
	}
}

// run registers the client, runs OnConnect and starts its read loop.
func (h *Hub) run(c *Client) {
	h.start(c)
	if h.cfg.Serve != nil {
		h.end(c, h.cfg.Serve(c))
		return
	}
	go h.read(c)
}

// runOnEngine registers the client, runs OnConnect and hands the
// connection to the engine. Until the engine holds the connection nothing
// else may write to it, so the writer is held back (started, with nothing
// to do yet) and runs once Serve has returned.
func (h *Hub) runOnEngine(c *Client) {
	c.onEngine = true
	c.writing = true
	c.writers.Add(1)
	h.start(c)
	// Method values: one small allocation each, which every idle client
	// keeps.
	err := h.cfg.Engine.Serve(c.conn, websocket.Callbacks{OnMessage: c.engineMessage, OnClose: c.engineClose})
	c.write() // what was queued meanwhile, and the writer's end
	if err != nil {
		c.conn.CloseNow()
		go h.end(c, err)
	}
}

// engineMessage hands a message read on the engine to OnMessage.
func (c *Client) engineMessage(_ *websocket.Conn, mt int, data []byte) {
	h := c.hub
	h.stats.messagesIn.Add(1)
	h.stats.bytesIn.Add(uint64(len(data)))
	if h.cfg.OnMessage != nil {
		h.cfg.OnMessage(c, mt, data)
	}
	if h.cfg.MaxMessageRate > 0 {
		c.throttle()
	}
}

// engineClose ends the client. end waits for the client's writer and runs
// OnDisconnect, which may block: not on the loop.
func (c *Client) engineClose(_ *websocket.Conn, err error) { go c.hub.end(c, err) }

// start registers the client and runs OnConnect.
func (h *Hub) start(c *Client) {
	h.register(c)
	h.stats.connected.Add(1)
	h.log.Debug("hub: client connected", "id", c.id, "remote", c.Request().RemoteAddr)
	// A client registered after Shutdown looked at the registry must still
	// be told to go away.
	if h.dropping.Load() {
		c.conn.CloseNow()
	} else if h.drainFlag.Load() {
		c.Close(websocket.CloseGoingAway, goingAwayReason)
	}
	if h.cfg.OnConnect != nil {
		h.cfg.OnConnect(c)
	}
	c.kept.Store(keepRequest(c.req.Load()))
	c.req.Store(nil)
}

// read reads the client's next message and hands it to OnMessage, then
// goes on reading on a fresh goroutine. An idle client's goroutine waits in
// ReadMessage; had it run the hooks (JSON, logging, publishing) its stack
// would have grown for good, since the runtime does not shrink the stack of
// a goroutine parked that deep. A fresh goroutine starts at 2 KiB, and
// calls stay in order: each starts after the previous one returned.
func (h *Hub) read(c *Client) {
	mt, data, err := c.conn.ReadMessage()
	if err != nil {
		h.end(c, err)
		return
	}
	h.stats.messagesIn.Add(1)
	h.stats.bytesIn.Add(uint64(len(data)))
	if h.cfg.OnMessage != nil {
		h.cfg.OnMessage(c, mt, data)
	}
	if h.cfg.MaxMessageRate > 0 {
		c.throttle()
	}
	go h.read(c)
}

// end serves the client from the end of its read loop to OnDisconnect.
func (h *Hub) end(c *Client, readErr error) {
	defer h.leave()
	c.finish()
	h.unregister(c)
	c.unsubscribeAll()
	// Completes the closing handshake if the read loop ended otherwise;
	// bounded by the connection's close timeout.
	c.conn.Close()
	c.writers.Wait()

	if errors.Is(readErr, websocket.ErrWriteStalled) {
		// The connection saw the stall before the writer did (on an
		// engine the loop watches the queue): a slow consumer all the same.
		c.markSlow()
	}
	code := closeCode(readErr)
	err := readErr
	if c.slow.Load() {
		// Whether the 1008 close frame went out or the connection had to
		// be dropped mid-frame (the peer then sees 1006), the hub ended it
		// as a slow consumer: that is the code to report and count.
		code = websocket.ClosePolicyViolation
		err = errors.Join(ErrSlowConsumer, readErr)
	}
	// The slot is free before OnDisconnect runs, so a client told of the
	// disconnect can connect again at once.
	c.release()
	h.stats.disconnected.Add(1)
	h.stats.addCloseCode(code)
	h.log.Debug("hub: client disconnected", "id", c.id, "code", code, "err", err)
	if h.cfg.OnDisconnect != nil {
		h.cfg.OnDisconnect(c, code, err)
	}
	c.markOver()
}

// closeCode is the close code a read loop ended with: the peer's, or the
// one the connection sent when it failed the peer (too big, too slow), or
// 1006 when the connection ended without a close frame.
func closeCode(readErr error) int {
	switch {
	case errors.Is(readErr, websocket.ErrReadLimit):
		return websocket.CloseMessageTooBig
	case errors.Is(readErr, websocket.ErrMessageTimeout), errors.Is(readErr, websocket.ErrQueueFull):
		return websocket.ClosePolicyViolation
	}
	if code := websocket.CloseStatus(readErr); code >= 0 {
		return code
	}
	return websocket.CloseAbnormalClosure
}

// Len returns the number of open clients.
func (h *Hub) Len() int {
	n := 0
	for i := range h.clients {
		s := &h.clients[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

// Draining reports whether Shutdown has been called.
func (h *Hub) Draining() bool { return h.drainFlag.Load() }

// Shutdown stops new upgrades (HTTP 503), sends 1001 Going Away to every
// client after what is already queued for it, and waits for the closing
// handshakes, which run in parallel, until ctx is done. Clients still open
// then are dropped without a handshake, and Shutdown returns ctx.Err()
// once their goroutines have ended. When Shutdown returns, no goroutine of
// the hub is left. It is safe to call more than once.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	if !h.draining {
		h.draining = true
		h.drainFlag.Store(true)
		if h.inflight == 0 {
			close(h.idle)
		}
	}
	h.mu.Unlock()

	h.each(func(c *Client) { c.Close(websocket.CloseGoingAway, goingAwayReason) })
	select {
	case <-h.idle:
		return nil
	case <-ctx.Done():
	}
	h.dropping.Store(true)
	n := 0
	h.each(func(c *Client) { n++; c.conn.CloseNow() })
	h.log.Warn("hub: shutdown deadline reached, dropping clients", "clients", n)
	// Dropped connections fail their reads and writes at once.
	<-h.idle
	return ctx.Err()
}

// RegisterOnShutdown makes srv.Shutdown call h.Shutdown, bounded by
// timeout. http.Server.Shutdown does not track hijacked connections, so
// without this the WebSocket clients would be left open.
func (h *Hub) RegisterOnShutdown(srv *http.Server, timeout time.Duration) {
	srv.RegisterOnShutdown(func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			h.log.Warn("hub: shutdown", "err", err)
		}
	})
}
