package hub

import (
	"crypto/tls"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/latchws/latch/websocket"
)

var errDataType = errors.New("hub: message type must be TextMessage or BinaryMessage")

// queued is one message waiting in a client's send queue.
type queued struct {
	pm    *websocket.PreparedMessage
	size  int  // payload bytes, for Stats.BytesOut
	reply bool // queued by Reply: exempt from the slow-consumer policy
}

// closeRequest asks the writer to end the connection with a close frame.
type closeRequest struct {
	code   int
	reason string
	flush  bool // write what is queued first
}

// Client is one WebSocket connection registered in a [Hub].
//
// Its read loop runs on a goroutine started by [Hub.ServeHTTP] and calls
// OnConnect, OnMessage and OnDisconnect. A writer goroutine drains the
// client's bounded send queue; it runs only while there is something to
// write, so an idle client costs one goroutine. Publishers only append to
// the queue, so no publisher waits for a slow client. Answers to the
// client's own requests ([Client.Reply]) share the queue, keeping their
// order with publications, but are bounded apart: a full share makes the
// replier wait instead of ending the client.
type Client struct {
	hub  *Hub                         // immutable
	id   uint64                       // immutable
	req  atomic.Pointer[http.Request] // the handshake's, until OnConnect has returned
	kept atomic.Pointer[requestInfo]  // then what is kept of it
	conn *websocket.Conn              // immutable

	mu       sync.Mutex    // guards the fields below
	ring     []queued      // FIFO of publications and replies; grows on demand up to 2×SendQueue
	head, n  int           // n counts everything queued
	replies  int           // how many of the n queued are replies; n-replies are publications
	closed   bool          // no more messages are accepted; set only by closeLocked
	wake     *sync.Cond    // L is &mu; made by the first wait; broadcast when a reply leaves the queue, closed is set or a throttle pause ends
	closeReq *closeRequest // set once: the writer closes the connection
	ended    bool          // the read loop ended: the writer stops
	writing  bool          // a writer is running (a goroutine, or a flush on an engine)
	pausedBy uint8         // on an engine: why the hub paused reading the client (pauseReplies|pauseThrottle)

	// onEngine: the client is read by Config.Engine's callbacks. Immutable
	// once the client is registered.
	onEngine bool

	// writers counts writer goroutines. One runs only while there is work
	// (queued messages or a close request), so an idle client has none.
	writers sync.WaitGroup
	done    chan struct{} // guarded by mu; made by the first Done, closed after OnDisconnect returned
	over    bool          // guarded by mu; OnDisconnect has returned

	dropped atomic.Uint64
	slow    atomic.Bool // closed by the slow-consumer policy or a write timeout

	release func() // immutable; frees the client's Limiter slot, called once by Hub.end

	// The message-rate token bucket, owned by the read loop (one read
	// goroutine at a time, each started by the previous one).
	tokens     float64
	lastRefill int64 // monoNow of the last refill

	subMu    sync.Mutex          // guards channels, gone and value
	channels map[string]struct{} // channels c is subscribed to; nil until the first
	gone     bool                // the client left its channels for good
	value    any                 // SetValue's
}

func newClient(h *Hub, id uint64, r *http.Request, conn *websocket.Conn, release func()) *Client {
	c := &Client{
		hub:        h,
		id:         id,
		conn:       conn,
		ring:       make([]queued, min(initialQueue, h.cfg.SendQueue)),
		release:    release,
		tokens:     float64(h.cfg.MessageBurst),
		lastRefill: monoNow(),
	}
	c.req.Store(r)
	return c
}

// ID returns the client's identifier, unique within its hub.
func (c *Client) ID() uint64 { return c.id }

// Request returns the HTTP request that was upgraded. In OnConnect it is
// the request itself; afterwards a copy that keeps the method, URL,
// protocol, Host, RemoteAddr, RequestURI and TLS state, without the
// headers, the body and the context: a connected client does not hold what
// net/http built for the handshake (the headers alone are about 600 bytes
// a client). Keep what you need of the headers in OnConnect, with
// [Client.SetValue].
func (c *Client) Request() *http.Request {
	if r := c.req.Load(); r != nil {
		return r
	}
	return c.kept.Load().request()
}

// requestInfo is what a client keeps of its handshake request after
// OnConnect (see Client.Request): a third of an http.Request's size.
type requestInfo struct {
	method, proto, host, remoteAddr, requestURI string
	url                                         *url.URL
	tls                                         *tls.ConnectionState
	protoMajor, protoMinor                      int32
}

func keepRequest(r *http.Request) *requestInfo {
	return &requestInfo{
		method: r.Method, proto: r.Proto, host: r.Host, remoteAddr: r.RemoteAddr, requestURI: r.RequestURI,
		url: r.URL, tls: r.TLS, protoMajor: int32(r.ProtoMajor), protoMinor: int32(r.ProtoMinor),
	}
}

func (ri *requestInfo) request() *http.Request {
	return &http.Request{
		Method: ri.method, URL: ri.url, Proto: ri.proto, ProtoMajor: int(ri.protoMajor), ProtoMinor: int(ri.protoMinor),
		Host: ri.host, RemoteAddr: ri.remoteAddr, RequestURI: ri.requestURI, TLS: ri.tls, Body: http.NoBody,
	}
}

// Conn returns the client's connection. Writing to it directly bypasses
// the send queue (the connection serialises writes, so it is safe); reading
// from it is the read loop's job.
func (c *Client) Conn() *websocket.Conn { return c.conn }

// SetValue keeps v with the client: the application's state for it (a
// session), found again with [Client.Value] in every hook without a map
// of its own. Safe for concurrent use.
func (c *Client) SetValue(v any) {
	c.subMu.Lock()
	c.value = v
	c.subMu.Unlock()
}

// Value returns what SetValue kept, or nil.
func (c *Client) Value() any {
	c.subMu.Lock()
	defer c.subMu.Unlock()
	return c.value
}

// Dropped returns how many messages the [DropOldest] policy dropped from
// this client's queue.
func (c *Client) Dropped() uint64 { return c.dropped.Load() }

// Done returns a channel closed once the client has ended and
// OnDisconnect has returned.
func (c *Client) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{}) // most clients are never waited for
		if c.over {
			close(c.done)
		}
	}
	return c.done
}

// markOver closes Done.
func (c *Client) markOver() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.over = true
	if c.done != nil {
		close(c.done)
	}
}

// Send queues a text or binary message for the client without waiting for
// the network. data is copied. When SendQueue messages sent this way (or
// published) are queued already, the hub's [SlowConsumerPolicy] applies:
// under [Disconnect] Send returns [ErrSlowConsumer] and the client is
// closed with 1008; under [DropOldest] the oldest queued publication is
// dropped and counted. Send returns [ErrClosed] once the client is closing
// or has ended. To answer the client's own requests, use [Client.Reply].
func (c *Client) Send(messageType int, data []byte) error {
	pm, size, err := prepare(messageType, data)
	if err != nil {
		return err
	}
	return c.enqueue(pm, size)
}

// Reply queues an answer to one of the client's own requests, in order
// with everything queued before it. data is copied. Replies do not count
// against the slow-consumer policy: when SendQueue replies are queued
// already, Reply waits until the writer has taken one, so that a client
// that sends requests faster than it reads the answers is slowed down —
// called from OnMessage, as it normally is, the hub stops reading that
// client and TCP flow control holds the client back — instead of being
// disconnected. The wait ends with [ErrClosed] when the client closes or
// ends in any way (the writer's progress is bounded by WriteTimeout).
//
// On an engine ([Config.Engine]) Reply never waits, since OnMessage runs
// on an event loop: with SendQueue replies queued the hub pauses reading
// the client instead, until the writer has taken half of them. Only a
// single OnMessage call that replies SendQueue times more than that
// fills the queue; the client is then a slow consumer after all.
func (c *Client) Reply(messageType int, data []byte) error {
	pm, size, err := prepare(messageType, data)
	if err != nil {
		return err
	}
	sendQueue := c.hub.cfg.SendQueue
	c.mu.Lock()
	for !c.closed && c.replies >= sendQueue && !c.onEngine {
		c.waitLocked()
	}
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if c.n >= 2*sendQueue { // on an engine only: the queue's full size
		c.mu.Unlock()
		c.requestClose(&closeRequest{code: websocket.ClosePolicyViolation, reason: slowReason})
		c.markSlow()
		return ErrSlowConsumer
	}
	c.pushLocked(queued{pm: pm, size: size, reply: true})
	c.replies++
	if c.onEngine && c.replies >= sendQueue {
		c.pauseLocked(pauseReplies)
	}
	start := c.startWriterLocked()
	c.mu.Unlock()
	if start {
		c.write()
	}
	return nil
}

// Why the hub paused reading a client on an engine.
const (
	pauseReplies  = 1 << iota // SendQueue replies queued
	pauseThrottle             // MaxMessageRate
)

// pauseLocked pauses reading the client for why. Caller holds c.mu.
func (c *Client) pauseLocked(why uint8) {
	if c.pausedBy == 0 {
		c.hub.cfg.Engine.PauseReads(c.conn)
	}
	c.pausedBy |= why
}

// resumeLocked ends the pause for why. Caller holds c.mu.
func (c *Client) resumeLocked(why uint8) {
	if c.pausedBy&why == 0 {
		return
	}
	c.pausedBy &^= why
	if c.pausedBy == 0 {
		c.hub.cfg.Engine.ResumeReads(c.conn)
	}
}

// SendPrepared queues a prepared message, as Send does.
func (c *Client) SendPrepared(pm *websocket.PreparedMessage) error {
	if pm == nil {
		return errors.New("hub: nil PreparedMessage")
	}
	// The payload size is not visible through PreparedMessage; BytesOut
	// counts only what the hub itself encoded.
	return c.enqueue(pm, 0)
}

// Close starts the closing handshake with code and reason after the
// messages already queued, and returns at once; the handshake runs on the
// client's writer, bounded by the connection's close timeout. A code a
// close frame may not carry (RFC 6455 §7.4.1) drops the connection without
// a handshake. Later sends return ErrClosed. Calls after the first do
// nothing.
func (c *Client) Close(code int, reason string) {
	c.requestClose(&closeRequest{code: code, reason: reason, flush: true})
}

func (c *Client) requestClose(r *closeRequest) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	c.closeLocked()
	c.closeReq = r
	start := c.startWriterLocked()
	c.mu.Unlock()
	if start {
		c.write()
	}
	return true
}

// startWriterLocked reports whether the caller must start a writer
// goroutine for new work, and counts it. Caller holds c.mu.
func (c *Client) startWriterLocked() bool {
	if c.writing || c.ended {
		return false
	}
	c.writing = true
	c.writers.Add(1)
	return true
}

// closeLocked marks the client closed and wakes whoever waits in Reply or
// in the read loop's throttle. Caller holds c.mu.
func (c *Client) closeLocked() {
	c.closed = true
	c.wakeLocked()
}

// waitLocked waits for wakeLocked. Caller holds c.mu.
func (c *Client) waitLocked() {
	if c.wake == nil {
		c.wake = sync.NewCond(&c.mu)
	}
	c.wake.Wait()
}

func (c *Client) wakeLocked() {
	if c.wake != nil {
		c.wake.Broadcast()
	}
}

// enqueue appends a publication to the queue or applies the slow-consumer
// policy. It never blocks on the network.
func (c *Client) enqueue(pm *websocket.PreparedMessage, size int) error {
	h := c.hub
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if c.n-c.replies >= h.cfg.SendQueue {
		if h.cfg.SlowConsumer == DropOldest {
			c.dropOldestPublicationLocked()
			c.dropped.Add(1)
			h.stats.dropped.Add(1)
		} else {
			c.closeLocked()
			c.closeReq = &closeRequest{code: websocket.ClosePolicyViolation, reason: slowReason}
			start := c.startWriterLocked()
			c.mu.Unlock()
			c.markSlow()
			if start {
				c.write()
			}
			return ErrSlowConsumer
		}
	}
	c.pushLocked(queued{pm: pm, size: size})
	start := c.startWriterLocked()
	c.mu.Unlock()
	if start {
		c.write()
	}
	return nil
}

// initialQueue is the send queue's first capacity; it doubles as needed.
// Small: every idle client keeps it.
const initialQueue = 2

// pushLocked appends q, growing the ring if it is full; the callers' bounds
// keep it within 2×SendQueue. Caller holds c.mu.
func (c *Client) pushLocked(q queued) {
	if c.n == len(c.ring) {
		c.growLocked(min(2*len(c.ring), 2*c.hub.cfg.SendQueue))
	}
	c.ring[(c.head+c.n)%len(c.ring)] = q
	c.n++
}

// dropOldestPublicationLocked removes the oldest queued publication; the
// replies queued before it move up one slot, keeping their order. Caller
// holds c.mu and knows a publication is queued.
func (c *Client) dropOldestPublicationLocked() {
	size := len(c.ring)
	i := 0
	for c.ring[(c.head+i)%size].reply {
		i++
	}
	for j := i; j > 0; j-- {
		c.ring[(c.head+j)%size] = c.ring[(c.head+j-1)%size]
	}
	c.ring[c.head] = queued{}
	c.head = (c.head + 1) % size
	c.n--
}

// growLocked moves the queued messages, in order, into a ring of size n.
// Caller holds c.mu.
func (c *Client) growLocked(n int) {
	ring := make([]queued, n)
	for i := 0; i < c.n; i++ {
		ring[i] = c.ring[(c.head+i)%len(c.ring)]
	}
	c.ring, c.head = ring, 0
}

func (c *Client) markSlow() {
	if !c.slow.Swap(true) {
		c.hub.stats.slowDisconnects.Add(1)
		c.hub.log.Info("hub: slow consumer disconnected", "id", c.id)
	}
}

// next returns the writer's next task: the messages to write (at most
// cap(batch), appended to batch) or a close request. With neither (ok false, no request), the writer has stopped:
// writing is cleared under the same lock, so new work starts a new writer.
func (c *Client) next(batch []queued) ([]queued, *closeRequest, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r := c.closeReq; r != nil && (!r.flush || c.n == 0) {
		c.closeReq = nil // handled once, by this writer
		c.discardLocked()
		return batch, r, false
	}
	if c.n > 0 && !c.ended {
		replies := 0
		for range min(c.n, cap(batch)) {
			q := c.ring[c.head]
			c.ring[c.head] = queued{}
			c.head = (c.head + 1) % len(c.ring)
			c.n--
			if q.reply {
				replies++
			}
			batch = append(batch, q)
		}
		if replies > 0 {
			c.replies -= replies
			c.wakeLocked() // room for more replies
			if c.replies <= c.hub.cfg.SendQueue/2 {
				c.resumeLocked(pauseReplies)
			}
		}
		return batch, nil, true
	}
	c.writing = false
	return batch, nil, false
}

// discardLocked empties the queue of a client that will write no more,
// counting the messages in Stats.Discarded. Caller holds c.mu.
func (c *Client) discardLocked() {
	if c.n > 0 {
		c.hub.stats.discarded.Add(uint64(c.n))
		clear(c.ring)
		c.head, c.n, c.replies = 0, 0, 0
	}
}

// write runs the writer, which the caller has just started
// (startWriterLocked). On an event loop's connection it writes on the
// caller's goroutine while the connection's queue has room, since such a
// write never waits (a publisher, or OnMessage on the loop, pays for the
// copy into the queue, not for the network): an idle or keeping-up client
// needs no goroutine to receive. A client that fell behind by the
// engine's queue bound, or one whose writes wait for the network, gets a
// writer goroutine until its queue is empty.
func (c *Client) write() {
	limit := c.conn.QueueLimit()
	if limit == 0 {
		go c.writeLoop()
		return
	}
	for {
		if c.conn.QueuedBytes() >= limit {
			go c.writeLoop()
			return
		}
		if !c.writeBatch() {
			return
		}
	}
}

// writeLoop is the writer on a goroutine of its own.
func (c *Client) writeLoop() {
	for c.writeBatch() {
	}
}

// writeBatch writes the next messages queued, or carries out the close
// request; false when the writer has stopped. Everything queued goes out
// together, in one system call (WritePreparedMessages): a client that
// fell behind catches up at the cost of one write, not one per message.
func (c *Client) writeBatch() bool {
	h := c.hub
	var batch [maxBatch]queued
	var pms [maxBatch]*websocket.PreparedMessage
	qs, req, ok := c.next(batch[:0])
	if !ok {
		if req != nil {
			// The handshake: bounded by the connection's close timeout;
			// a reader blocked in ReadMessage sees the peer's answer. On
			// an engine it returns at once and the loop finishes it.
			if err := c.conn.CloseWithCode(req.code, req.reason); err != nil {
				// E.g. a code no close frame may carry: still end it.
				c.conn.CloseNow()
			}
		}
		c.writers.Done()
		return false
	}
	size := 0
	for i, q := range qs {
		pms[i] = q.pm
		size += q.size
	}
	// No deadline per write: the connection's write stall timeout
	// (WriteTimeout) fails a write the client takes nothing of.
	err := c.conn.WritePreparedMessages(pms[:len(qs)])
	clear(pms[:len(qs)])
	clear(qs)
	if err != nil {
		if isTimeout(err) {
			// A peer that took nothing for WriteTimeout is a slow
			// consumer whatever the policy.
			c.markSlow()
		}
		c.mu.Lock()
		c.closeLocked()
		c.discardLocked()
		c.mu.Unlock()
		// A partly written frame leaves no way to send a close frame.
		c.conn.CloseNow()
		c.writers.Done()
		return false
	}
	h.stats.messagesOut.Add(uint64(len(qs)))
	h.stats.bytesOut.Add(uint64(size))
	return true
}

// maxBatch bounds the messages the writer takes from the queue at once.
const maxBatch = 64

// finish tells the writer that the read loop ended: the connection is
// closing, so what is still queued cannot be delivered.
func (c *Client) finish() {
	c.mu.Lock()
	c.closeLocked()
	c.ended = true
	c.discardLocked()
	c.mu.Unlock()
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// throttle takes a token from the client's message-rate bucket for the
// message just read; with none left, it holds the read loop until the
// bucket has refilled, so that the client's next message is read no sooner
// than MaxMessageRate allows (TCP flow control holds the client back). Each
// such wait is counted in Stats.Throttled. Read loop only.
func (c *Client) throttle() {
	h := c.hub
	rate := h.cfg.MaxMessageRate
	now := monoNow()
	c.tokens = min(float64(h.cfg.MessageBurst), c.tokens+float64(now-c.lastRefill)*rate/float64(time.Second))
	c.lastRefill = now
	c.tokens--
	if c.tokens >= 0 {
		return
	}
	h.stats.throttled.Add(1)
	// The debt is less than one token, so the wait is at most 1/rate.
	d := time.Duration(-c.tokens / rate * float64(time.Second))
	if c.onEngine {
		// An event loop must not wait: the client is not read meanwhile.
		c.mu.Lock()
		if !c.closed {
			c.pauseLocked(pauseThrottle)
			time.AfterFunc(d, func() {
				c.mu.Lock()
				c.resumeLocked(pauseThrottle)
				c.mu.Unlock()
			})
		}
		c.mu.Unlock()
		return
	}
	c.pause(d)
}

// pause waits for d, or less if the client closes meanwhile: the read
// loop must then go on reading to see the end of the connection.
func (c *Client) pause(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	over := false // guarded by c.mu
	t := time.AfterFunc(d, func() {
		c.mu.Lock()
		over = true
		c.wakeLocked()
		c.mu.Unlock()
	})
	for !over && !c.closed {
		c.waitLocked()
	}
	t.Stop()
}
