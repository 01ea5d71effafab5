package hub

import (
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/latchws/latch/websocket"
)

var errDataType = errors.New("hub: message type must be TextMessage or BinaryMessage")

// queued is one message waiting in a client's send queue.
type queued struct {
	pm   *websocket.PreparedMessage
	size int // payload bytes, for Stats.BytesOut
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
// the queue, so no publisher waits for a slow client.
type Client struct {
	hub  *Hub            // immutable
	id   uint64          // immutable
	req  *http.Request   // immutable
	conn *websocket.Conn // immutable

	mu       sync.Mutex // guards the fields below
	ring     []queued   // grows on demand up to SendQueue: an idle client holds a small one
	head, n  int
	closed   bool          // no more messages are accepted
	closeReq *closeRequest // set once: the writer closes the connection
	ended    bool          // the read loop ended: the writer stops
	writing  bool          // a writer goroutine is running

	// writers counts writer goroutines. One runs only while there is work
	// (queued messages or a close request), so an idle client has none.
	writers sync.WaitGroup
	done    chan struct{} // closed after OnDisconnect returned

	dropped atomic.Uint64
	slow    atomic.Bool // closed by the slow-consumer policy or a write timeout

	subMu    sync.Mutex          // guards channels and gone
	channels map[string]struct{} // channels c is subscribed to
	gone     bool                // the client left its channels for good
}

func newClient(h *Hub, id uint64, r *http.Request, conn *websocket.Conn) *Client {
	return &Client{
		hub:      h,
		id:       id,
		req:      r,
		conn:     conn,
		ring:     make([]queued, min(initialQueue, h.cfg.SendQueue)),
		done:     make(chan struct{}),
		channels: make(map[string]struct{}),
	}
}

// ID returns the client's identifier, unique within its hub.
func (c *Client) ID() uint64 { return c.id }

// Request returns the HTTP request that was upgraded.
func (c *Client) Request() *http.Request { return c.req }

// Conn returns the client's connection. Writing to it directly bypasses
// the send queue (the connection serialises writes, so it is safe); reading
// from it is the read loop's job.
func (c *Client) Conn() *websocket.Conn { return c.conn }

// Dropped returns how many messages the [DropOldest] policy dropped from
// this client's queue.
func (c *Client) Dropped() uint64 { return c.dropped.Load() }

// Done returns a channel closed once the client has ended and
// OnDisconnect has returned.
func (c *Client) Done() <-chan struct{} { return c.done }

// Send queues a text or binary message for the client without waiting for
// the network. data is copied. When the queue is full, the hub's
// [SlowConsumerPolicy] applies: under [Disconnect] Send returns
// [ErrSlowConsumer] and the client is closed with 1008; under [DropOldest]
// the oldest queued message is dropped and counted. Send returns
// [ErrClosed] once the client is closing or has ended.
func (c *Client) Send(messageType int, data []byte) error {
	pm, size, err := prepare(messageType, data)
	if err != nil {
		return err
	}
	return c.enqueue(pm, size)
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
	c.closed = true
	c.closeReq = r
	start := c.startWriterLocked()
	c.mu.Unlock()
	if start {
		go c.writeLoop()
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

// enqueue appends a message to the queue or applies the slow-consumer
// policy. It never blocks on the network.
func (c *Client) enqueue(pm *websocket.PreparedMessage, size int) error {
	h := c.hub
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if c.n == len(c.ring) && len(c.ring) < h.cfg.SendQueue {
		c.growLocked(min(2*len(c.ring), h.cfg.SendQueue))
	}
	if c.n == len(c.ring) {
		if h.cfg.SlowConsumer == DropOldest {
			c.ring[c.head] = queued{}
			c.head = (c.head + 1) % len(c.ring)
			c.n--
			c.dropped.Add(1)
			h.stats.dropped.Add(1)
		} else {
			c.closed = true
			c.closeReq = &closeRequest{code: websocket.ClosePolicyViolation, reason: slowReason}
			start := c.startWriterLocked()
			c.mu.Unlock()
			c.markSlow()
			if start {
				go c.writeLoop()
			}
			return ErrSlowConsumer
		}
	}
	c.ring[(c.head+c.n)%len(c.ring)] = queued{pm: pm, size: size}
	c.n++
	start := c.startWriterLocked()
	c.mu.Unlock()
	if start {
		go c.writeLoop()
	}
	return nil
}

// initialQueue is the send queue's first capacity; it doubles as needed.
const initialQueue = 4

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

// next returns the writer's next task: a message to write or a close
// request. With neither (ok false, no request), the writer has stopped:
// writing is cleared under the same lock, so new work starts a new writer.
func (c *Client) next() (queued, *closeRequest, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r := c.closeReq; r != nil && (!r.flush || c.n == 0) {
		c.closeReq = nil // handled once, by this writer
		c.discardLocked()
		return queued{}, r, false
	}
	if c.n > 0 && !c.ended {
		q := c.ring[c.head]
		c.ring[c.head] = queued{}
		c.head = (c.head + 1) % len(c.ring)
		c.n--
		return q, nil, true
	}
	c.writing = false
	return queued{}, nil, false
}

// discardLocked empties the queue of a client that will write no more,
// counting the messages in Stats.Discarded. Caller holds c.mu.
func (c *Client) discardLocked() {
	if c.n > 0 {
		c.hub.stats.discarded.Add(uint64(c.n))
		clear(c.ring)
		c.head, c.n = 0, 0
	}
}

// writeLoop is the client's only writer of queued messages; it runs while
// there is work and then returns.
func (c *Client) writeLoop() {
	defer c.writers.Done()
	h := c.hub
	for {
		q, req, ok := c.next()
		if !ok {
			if req != nil {
				// The handshake: bounded by the connection's close timeout;
				// a reader blocked in ReadMessage sees the peer's answer.
				if err := c.conn.CloseWithCode(req.code, req.reason); err != nil {
					// E.g. a code no close frame may carry: still end it.
					c.conn.CloseNow()
				}
			}
			return
		}
		c.conn.SetWriteDeadline(time.Now().Add(h.cfg.WriteTimeout))
		err := c.conn.WritePreparedMessage(q.pm)
		if err != nil {
			if isTimeout(err) {
				// A peer that cannot take one message in WriteTimeout is a
				// slow consumer whatever the policy.
				c.markSlow()
			}
			c.mu.Lock()
			c.closed = true
			c.discardLocked()
			c.mu.Unlock()
			// A partly written frame leaves no way to send a close frame.
			c.conn.CloseNow()
			return
		}
		h.stats.messagesOut.Add(1)
		h.stats.bytesOut.Add(uint64(q.size))
	}
}

// finish tells the writer that the read loop ended: the connection is
// closing, so what is still queued cannot be delivered.
func (c *Client) finish() {
	c.mu.Lock()
	c.closed = true
	c.ended = true
	c.discardLocked()
	c.mu.Unlock()
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}
