package server

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/latchws/latch/broker"
	"github.com/latchws/latch/hub"
	"github.com/latchws/latch/websocket"
)

// Abuse limit: a client that makes abuseErrors protocol errors within
// abuseWindow is closed with 1008 (RFC 6455 §7.4.1, policy violation).
const (
	abuseErrors = 10
	abuseWindow = 10 * time.Second
)

// pubsub implements the latch protocol on top of a hub and a broker. Its
// methods are the hub's callbacks; deliver is the broker's Handler.
//
// A publication goes client → broker → every subscribed node's deliver →
// that node's hub → its clients, so one node and many behave alike.
type pubsub struct {
	hub         *hub.Hub         // set once after hub.New, before serving
	broker      broker.Broker    // set once in New, before serving
	interest    *broker.Interest // drives broker Subscribe/Unsubscribe
	draining    func() bool      // true once the server shuts down
	stopping    context.Context  // cancelled by Shutdown: ends waiting publishes
	maxChannels int
	pubTimeout  time.Duration
	metrics     *metrics
	logger      *slog.Logger
}

// session is the protocol state of one client, kept with it
// (hub.Client.SetValue). It is used only from the client's OnMessage calls,
// one at a time, so it needs no lock. Idle clients are most clients: what
// only some need is made when first needed.
type session struct {
	channels map[string]struct{}     // nil until the first subscribe
	errs     *[abuseErrors]time.Time // ring of the latest error times; nil until the first
	nerrs    int                     // errors so far
	closed   bool                    // closed for abuse; later messages are ignored
}

func (p *pubsub) onConnect(c *hub.Client) {
	c.SetValue(&session{})
	p.metrics.connected(routeWS, c.Conn(), c.Request())
	// The welcome is queued before the read loop starts, so it is the
	// first message the client gets.
	_ = c.Send(websocket.TextMessage, encodeWelcome(c.ID()))
	p.logger.Debug("client connected", "client", c.ID(), "remote", c.Request().RemoteAddr)
}

func (p *pubsub) onDisconnect(c *hub.Client, code int, err error) {
	if s, ok := c.Value().(*session); ok {
		c.SetValue(nil)
		// The hub has already removed c from its channels.
		for ch := range s.channels {
			p.removeInterest(ch)
		}
	}
	p.logger.Debug("client disconnected", "client", c.ID(), "code", code, "err", err)
}

func (p *pubsub) onMessage(c *hub.Client, messageType int, data []byte) {
	s, ok := c.Value().(*session)
	if !ok {
		return // disconnected meanwhile
	}
	if s.closed {
		return
	}
	if messageType != websocket.TextMessage {
		p.fail(c, s, nil, &protoError{codeBadRequest, "binary messages are not part of the protocol"})
		return
	}
	req, perr := parseRequest(data)
	if perr != nil {
		p.fail(c, s, &req, perr)
		return
	}
	switch req.op {
	case "ping":
		p.reply(c, encodeReply("pong", &req))
	case "subscribe":
		p.subscribe(c, s, &req)
	case "unsubscribe":
		p.unsubscribe(c, s, &req)
	case "publish":
		p.publish(c, s, &req)
	default:
		p.fail(c, s, &req, &protoError{codeUnknownOp, "unknown op " + quoteOp(req.op)})
	}
}

// channelOf checks req's channel field.
func channelOf(req *request) (string, *protoError) {
	if req.channel == nil {
		return "", &protoError{codeBadRequest, "missing channel"}
	}
	if !broker.ValidChannel(*req.channel) {
		return "", &protoError{codeBadChannel, "channel names are 1-128 bytes of A-Z a-z 0-9 _ - . : #"}
	}
	return *req.channel, nil
}

func (p *pubsub) subscribe(c *hub.Client, s *session, req *request) {
	ch, perr := channelOf(req)
	if perr != nil {
		p.fail(c, s, req, perr)
		return
	}
	if p.draining() {
		p.fail(c, s, req, errShuttingDown)
		return
	}
	if _, ok := s.channels[ch]; !ok {
		if len(s.channels) >= p.maxChannels {
			p.fail(c, s, req, &protoError{codeTooManyChannels, "subscribed to the maximum number of channels"})
			return
		}
		// The node's broker subscription comes first, so that the ack
		// means messages published from now on reach this client.
		if err := p.interest.Add(ch); err != nil {
			p.fail(c, s, req, p.brokerError("subscribe", ch, err))
			return
		}
		if err := p.hub.Subscribe(c, ch); err != nil {
			p.removeInterest(ch)
			return // the client is gone: nobody to answer
		}
		if s.channels == nil {
			s.channels = make(map[string]struct{})
		}
		s.channels[ch] = struct{}{}
	}
	// Subscribing again is not an error: the subscription exists.
	p.reply(c, encodeReply("ack", req))
}

func (p *pubsub) unsubscribe(c *hub.Client, s *session, req *request) {
	ch, perr := channelOf(req)
	if perr != nil {
		p.fail(c, s, req, perr)
		return
	}
	if _, ok := s.channels[ch]; !ok {
		p.fail(c, s, req, &protoError{codeNotSubscribed, "not subscribed to " + ch})
		return
	}
	p.hub.Unsubscribe(c, ch)
	delete(s.channels, ch)
	p.removeInterest(ch)
	p.reply(c, encodeReply("ack", req))
}

func (p *pubsub) publish(c *hub.Client, s *session, req *request) {
	ch, perr := channelOf(req)
	if perr != nil {
		p.fail(c, s, req, perr)
		return
	}
	if req.data == nil {
		p.fail(c, s, req, &protoError{codeBadRequest, "missing data"})
		return
	}
	if p.draining() {
		p.fail(c, s, req, errShuttingDown)
		return
	}
	// Encoded once here; every node forwards these bytes as they are.
	msg := encodeMessage(ch, req.data)
	ctx, cancel := context.WithTimeout(p.stopping, p.pubTimeout)
	err := p.broker.Publish(ctx, ch, msg)
	cancel()
	if err != nil {
		p.fail(c, s, req, p.brokerError("publish", ch, err))
		return
	}
	p.metrics.published()
	// A shutdown that began during Publish may have closed subscribers
	// before the message reached their queues (draining is set before any
	// client is closed), so only a publish that ended before it is acked.
	if p.draining() {
		p.fail(c, s, req, errShuttingDown)
		return
	}
	// With the in-process broker, Publish has run deliver — queued the
	// message for every local subscriber, the publisher included — before
	// returning, and this client's queue is FIFO, so a subscribed publisher
	// sees its message before the ack. Through NATS its copy comes back
	// asynchronously and may follow the ack (docs/protocol.md).
	p.reply(c, encodeReply("ack", req))
}

// deliver is the broker's Handler: the local fan-out of a publication from
// any node. payload is the encoded message; the hub copies it.
func (p *pubsub) deliver(channel string, payload []byte) {
	start := time.Now()
	n := p.hub.Publish(channel, websocket.TextMessage, payload)
	p.metrics.observeFanout(time.Since(start), n)
}

// removeInterest drops one local subscriber of ch from the broker's count.
func (p *pubsub) removeInterest(ch string) {
	if err := p.interest.Remove(ch); err != nil && !errors.Is(err, broker.ErrClosed) {
		// The broker may keep sending ch to this node; deliver then
		// finds no local subscriber. Harmless, but worth knowing.
		p.logger.Warn("broker unsubscribe failed", "channel", ch, "err", err)
	}
}

var errBrokerUnavailable = &protoError{codeUnavailable, "message broker unavailable, try again"}

// brokerError maps a broker failure to the error the client gets. None
// counts as abuse: the fault is the server's, and a retry may succeed.
func (p *pubsub) brokerError(op, ch string, err error) *protoError {
	switch {
	case errors.Is(err, broker.ErrClosed), p.stopping.Err() != nil:
		return errShuttingDown
	case errors.Is(err, broker.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		p.logger.Debug("broker unavailable", "op", op, "channel", ch, "err", err)
		return errBrokerUnavailable
	}
	p.logger.Warn("broker refused", "op", op, "channel", ch, "err", err)
	return &protoError{codeUnavailable, "message broker refused the " + op}
}

// reply answers one of c's requests. Reply waits, holding back the reading
// of c's next request, while c has a full queue's worth of answers unread:
// a client that pipelines requests is slowed down, never closed as a slow
// consumer for its own answers. It fails only once c is closing.
func (p *pubsub) reply(c *hub.Client, msg []byte) {
	_ = c.Reply(websocket.TextMessage, msg)
}

var errShuttingDown = &protoError{codeUnavailable, "server is shutting down"}

// fail reports perr to the client and counts it towards the abuse limit,
// unless the fault is the server's.
func (p *pubsub) fail(c *hub.Client, s *session, req *request, perr *protoError) {
	p.metrics.protocolError(perr.code)
	p.reply(c, encodeError(req, perr))
	if perr.code != codeUnavailable && s.recordError(time.Now()) {
		s.closed = true
		p.logger.Info("closing abusive client", "client", c.ID(), "remote", c.Request().RemoteAddr)
		c.Close(websocket.ClosePolicyViolation, "too many protocol errors")
	}
}

// quoteOp quotes an op name for an error message, cut to a sane length.
func quoteOp(op string) string {
	const maxLen = 64
	if len(op) > maxLen {
		op = op[:maxLen] + "..."
	}
	return `"` + op + `"`
}

// recordError counts an error at now and reports whether it makes
// abuseErrors errors within abuseWindow.
func (s *session) recordError(now time.Time) bool {
	if s.errs == nil {
		s.errs = new([abuseErrors]time.Time)
	}
	s.errs[s.nerrs%abuseErrors] = now
	s.nerrs++
	// The slot to be overwritten next holds the oldest of the last
	// abuseErrors errors.
	return s.nerrs >= abuseErrors && now.Sub(s.errs[s.nerrs%abuseErrors]) < abuseWindow
}
