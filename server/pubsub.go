package server

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/latchws/latch/auth"
	"github.com/latchws/latch/broker"
	"github.com/latchws/latch/history"
	"github.com/latchws/latch/hub"
	"github.com/latchws/latch/presence"
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
// A publication goes client → (history) → broker → every subscribed
// node's deliver → that node's hub → its clients, so one node and many
// behave alike.
type pubsub struct {
	hub         *hub.Hub         // set once after hub.New, before serving
	broker      broker.Broker    // set once in New, before serving
	interest    *broker.Interest // drives broker Subscribe/Unsubscribe
	draining    func() bool      // true once the server shuts down
	stopping    context.Context  // cancelled by Shutdown: ends waiting publishes
	maxChannels int
	pubTimeout  time.Duration
	sendQueue   int
	metrics     *metrics
	logger      *slog.Logger

	ns             *namespaces
	verifier       *auth.Verifier // nil: no tokens
	anonymous      bool           // connections without a token are admitted (always without a verifier)
	connectTimeout time.Duration
	leeway         time.Duration // Auth.Leeway: a token lives until exp plus this
	history        history.Store
	presence       presence.Store
	nodeID         string // prefixes client ids; "" on a single node
	nodeName       string // this node in the server API's info: nodeID, or a random one
	clustered      bool   // an external broker: other nodes may exist
	feeds          feedTable
	users          userIndex
	pubRate        float64       // per connection; 0: none
	ipRate         *keyedLimiter // per IP; nil: none
	nodes          nodeTable
}

// session is the protocol state of one client, kept with it
// (hub.Client.SetValue). Except where marked, it is used only from the
// client's OnMessage calls, one at a time, so it needs no lock. Idle
// clients are most clients: what only some need is made when first needed.
type session struct {
	id          string                  // the client's id in messages, unique in the cluster
	chmu        sync.Mutex              // guards channels: the server API unsubscribes from other goroutines
	channels    map[string]struct{}     // nil until the first subscribe
	errs        *[abuseErrors]time.Time // ring of the latest error times; nil until the first
	nerrs       int                     // errors so far
	closed      bool                    // closed for abuse; later messages are ignored
	grants      *auth.Identity          // the token's identity; nil for anonymous
	connectedAt int64                   // unix ms
	buckets     *rateBuckets            // nil until the client publishes under a rate, or joins or leaves

	user    atomic.Pointer[string] // set once the client has an identity; read by the timers and the API
	expires atomic.Int64           // the token's exp, unix nanoseconds; 0: none
	tmu     sync.Mutex             // guards timer
	timer   *time.Timer            // the connect deadline, then the token's expiry
}

// userName returns the client's user, "" for anonymous.
func (s *session) userName() string {
	if u := s.user.Load(); u != nil {
		return *u
	}
	return ""
}

func (s *session) authenticated() bool { return s.user.Load() != nil }

func (s *session) hasChannel(ch string) bool {
	s.chmu.Lock()
	defer s.chmu.Unlock()
	_, ok := s.channels[ch]
	return ok
}

func (s *session) numChannels() int {
	s.chmu.Lock()
	defer s.chmu.Unlock()
	return len(s.channels)
}

func (s *session) addChannel(ch string) {
	s.chmu.Lock()
	defer s.chmu.Unlock()
	if s.channels == nil {
		s.channels = make(map[string]struct{})
	}
	s.channels[ch] = struct{}{}
}

// dropChannel forgets ch and reports whether the client had it.
func (s *session) dropChannel(ch string) bool {
	s.chmu.Lock()
	defer s.chmu.Unlock()
	_, ok := s.channels[ch]
	delete(s.channels, ch)
	return ok
}

// takeChannels forgets every channel and returns them.
func (s *session) takeChannels() []string {
	s.chmu.Lock()
	defer s.chmu.Unlock()
	out := make([]string, 0, len(s.channels))
	for ch := range s.channels {
		out = append(out, ch)
	}
	s.channels = nil
	return out
}

// setTimer replaces the session's timer.
func (s *session) setTimer(t *time.Timer) {
	s.tmu.Lock()
	if s.timer != nil {
		s.timer.Stop()
	}
	s.timer = t
	s.tmu.Unlock()
}

func (p *pubsub) clientID(c *hub.Client) string {
	n := strconv.FormatUint(c.ID(), 10)
	if p.nodeID == "" {
		return n
	}
	return p.nodeID + "-" + n
}

func (p *pubsub) onConnect(c *hub.Client) {
	s := &session{id: p.clientID(c), connectedAt: time.Now().UnixMilli()}
	c.SetValue(s)
	p.metrics.connected(routeWS, c.Conn(), c.Request())
	id, _ := c.Request().Context().Value(identityKey{}).(*auth.Identity)
	user := ""
	if id != nil {
		p.setIdentity(c, s, id)
		user = id.User
	} else if !p.anonymous {
		s.setTimer(time.AfterFunc(p.connectTimeout, func() {
			if !s.authenticated() {
				p.metrics.authFailure("timeout")
				c.Close(CloseUnauthorized, "no token")
			}
		}))
	}
	// The welcome is queued before the read loop starts, so it is the
	// first message the client gets.
	_ = c.Send(websocket.TextMessage, encodeWelcome(s.id, user))
	p.logger.Debug("client connected", "client", s.id, "user", user, "remote", c.Request().RemoteAddr)
}

// setIdentity gives the client the identity of a verified token and
// starts its expiry timer.
func (p *pubsub) setIdentity(c *hub.Client, s *session, id *auth.Identity) {
	s.grants = id
	if !s.authenticated() {
		user := id.User
		s.user.Store(&user)
		p.users.add(user, c)
	}
	p.setExpiry(c, s, id.ExpiresAt)
}

// setExpiry closes the client with 4002 when exp passes without a
// refresh; a refresh moves exp, and the timer then waits again.
func (p *pubsub) setExpiry(c *hub.Client, s *session, exp time.Time) {
	if exp.IsZero() {
		s.expires.Store(0)
		s.setTimer(nil)
		return
	}
	// The verifier accepts a token until exp plus the leeway: so does
	// the connection.
	exp = exp.Add(p.leeway)
	s.expires.Store(exp.UnixNano())
	var t *time.Timer
	t = time.AfterFunc(time.Until(exp), func() {
		if left := time.Until(time.Unix(0, s.expires.Load())); s.expires.Load() != 0 && left > 0 {
			s.tmu.Lock()
			if s.timer == t {
				t.Reset(left)
			}
			s.tmu.Unlock()
			return
		}
		if s.expires.Load() != 0 {
			p.logger.Debug("token expired", "client", s.id, "user", s.userName())
			c.Close(CloseTokenExpired, "token expired")
		}
	})
	s.setTimer(t)
}

func (p *pubsub) onDisconnect(c *hub.Client, code int, err error) {
	if s, ok := c.Value().(*session); ok {
		c.SetValue(nil)
		s.setTimer(nil)
		if user := s.userName(); user != "" {
			p.users.remove(user, c)
		}
		// The hub has already removed c from its channels.
		for _, ch := range s.takeChannels() {
			p.left(c, s, ch)
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
		return
	case "connect":
		p.connect(c, s, &req)
		return
	}
	if !p.anonymous && !s.authenticated() {
		p.fail(c, s, &req, &protoError{codeUnauthorized, "send a connect op with a token first"})
		return
	}
	switch req.op {
	case "refresh":
		p.refresh(c, s, &req)
	case "subscribe":
		p.subscribe(c, s, &req)
	case "unsubscribe":
		p.unsubscribe(c, s, &req)
	case "publish":
		p.publish(c, s, &req)
	case "history":
		p.historyOp(c, s, &req)
	case "presence":
		p.presenceOp(c, s, &req)
	default:
		p.fail(c, s, &req, &protoError{codeUnknownOp, "unknown op " + quoteOp(req.op)})
	}
}

// verify checks a token of a connect or refresh op.
func (p *pubsub) verify(req *request) (*auth.Identity, *protoError) {
	if req.token == nil || *req.token == "" {
		return nil, &protoError{codeBadRequest, "missing token"}
	}
	if p.verifier == nil {
		p.metrics.authFailure("no_keys")
		return nil, &protoError{codeUnauthorized, "this server does not take tokens"}
	}
	ctx, cancel := context.WithTimeout(p.stopping, verifyTimeout)
	id, err := p.verifier.Verify(ctx, *req.token)
	cancel()
	if err != nil {
		p.metrics.authFailure(authReason(err))
		if errors.Is(err, auth.ErrTokenExpired) {
			return nil, &protoError{codeTokenExpired, "token expired"}
		}
		return nil, &protoError{codeUnauthorized, tokenProblem(err)}
	}
	return &id, nil
}

func (p *pubsub) connect(c *hub.Client, s *session, req *request) {
	if s.authenticated() {
		p.fail(c, s, req, &protoError{codeBadRequest, "already connected with a token (use refresh)"})
		return
	}
	id, perr := p.verify(req)
	if perr != nil {
		if perr.code == codeBadRequest {
			p.fail(c, s, req, perr)
			return
		}
		// A client with a bad token gets the reason, then the close:
		// retrying with the same token cannot help (docs/protocol.md).
		p.reply(c, encodeError(req, perr))
		s.closed = true
		c.Close(CloseUnauthorized, perr.message)
		return
	}
	p.setIdentity(c, s, id)
	p.reply(c, encodeConnected(req, s.id, id.User, id.ExpiresAt))
}

func (p *pubsub) refresh(c *hub.Client, s *session, req *request) {
	if !s.authenticated() {
		p.fail(c, s, req, &protoError{codeUnauthorized, "no token to refresh: send connect"})
		return
	}
	id, perr := p.verify(req)
	if perr != nil {
		p.fail(c, s, req, perr)
		return
	}
	if id.User != s.userName() {
		p.fail(c, s, req, &protoError{codeForbidden, "the new token is for another user"})
		return
	}
	p.setIdentity(c, s, id)
	p.reply(c, encodeRefreshed(req, id.ExpiresAt))
}

// controlChannel carries the server API's commands between nodes; clients
// cannot use names starting with reservedPrefix.
const (
	reservedPrefix = "_latch"
	controlChannel = "_latch.control"
)

// channelOf checks req's channel field and finds its namespace.
func (p *pubsub) channelOf(req *request) (string, *Namespace, *protoError) {
	if req.channel == nil {
		return "", nil, &protoError{codeBadRequest, "missing channel"}
	}
	ns, perr := p.lookupChannel(*req.channel)
	return *req.channel, ns, perr
}

// lookupChannel checks a channel name, from a client or the server API,
// and finds its namespace.
func (p *pubsub) lookupChannel(ch string) (*Namespace, *protoError) {
	if !broker.ValidChannel(ch) {
		return nil, &protoError{codeBadChannel, "channel names are 1-128 bytes of A-Z a-z 0-9 _ - . : #"}
	}
	if strings.HasPrefix(ch, reservedPrefix) {
		return nil, &protoError{codeBadChannel, "channel names starting with " + reservedPrefix + " are reserved"}
	}
	ns := p.ns.lookup(ch)
	if ns == nil {
		return nil, &protoError{codeUnknownNS, "no namespace " + quoteOp(namespaceName(ch))}
	}
	return ns, nil
}

// mayAccess applies a namespace rule to the client for channel; grant says
// whether its token grants the channel for the op.
func (p *pubsub) mayAccess(s *session, access Access, op, channel string, grant bool) *protoError {
	switch {
	case access == AccessAPI:
		return &protoError{codeForbidden, "only the server API may " + op + " in this namespace"}
	case grant, access == AccessAnonymous:
		return nil
	case !s.authenticated():
		return &protoError{codeUnauthorized, op + " needs a token in this namespace"}
	case access == AccessUser:
		return nil
	}
	return &protoError{codeForbidden, "the token does not grant " + op + " on " + channel}
}

// maySubscribe: the namespace's rule, and a personal channel's owner.
func (p *pubsub) maySubscribe(s *session, ns *Namespace, ch string) *protoError {
	grant := s.grants != nil && s.grants.CanSubscribe(ch)
	if ns.Personal && !grant {
		if owner, ok := personalUser(ch); ok {
			if !s.authenticated() {
				return &protoError{codeUnauthorized, "a personal channel needs a token"}
			}
			if owner != s.userName() {
				return &protoError{codeForbidden, "a personal channel of another user"}
			}
		}
	}
	return p.mayAccess(s, ns.Subscribe, "subscribe", ch, grant)
}

func (p *pubsub) mayPublish(s *session, ns *Namespace, ch string) *protoError {
	return p.mayAccess(s, ns.Publish, "publish", ch, s.grants != nil && s.grants.CanPublish(ch))
}

func (p *pubsub) subscribe(c *hub.Client, s *session, req *request) {
	ch, ns, perr := p.channelOf(req)
	if perr == nil {
		perr = p.maySubscribe(s, ns, ch)
	}
	if perr != nil {
		p.fail(c, s, req, perr)
		return
	}
	if p.draining() {
		p.fail(c, s, req, errShuttingDown)
		return
	}
	_, hist := ns.retention()
	if s.hasChannel(ch) {
		// Subscribing again is not an error: the subscription exists.
		// Nothing is replayed: the client has had it all.
		if !hist {
			p.reply(c, encodeReply("ack", req))
			return
		}
		// (No feed: the server API ended the subscription meanwhile; a
		// new one follows.)
		if f := p.feeds.get(ch); f != nil {
			f.mu.Lock()
			pos := history.Position{Offset: f.last, Epoch: f.epoch}
			f.mu.Unlock()
			p.reply(c, encodeSubscribed(req, pos, nil))
			return
		}
	}
	if s.numChannels() >= p.maxChannels {
		p.fail(c, s, req, &protoError{codeTooManyChannels, "subscribed to the maximum number of channels"})
		return
	}
	if ns.JoinLeave && !s.allowJoinLeave(time.Now()) {
		p.metrics.rateLimited.WithLabelValues("join_leave").Inc()
		p.fail(c, s, req, &protoError{codeRateLimited, "subscribing too often in a join/leave namespace"})
		return
	}
	var f *feed
	if hist {
		f = p.feeds.acquire(ch) // before the broker subscription: deliver finds it
	}
	// The node's broker subscription comes first, so that the ack
	// means messages published from now on reach this client.
	if err := p.interest.Add(ch); err != nil {
		if f != nil {
			p.feeds.release(ch)
		}
		p.fail(c, s, req, p.brokerError("subscribe", ch, err))
		return
	}
	// Present before the ack: whoever the client tells it is here finds it.
	p.addPresence(s, ns, ch)
	if hist {
		// The ack goes out under the feed's lock, between the replay and
		// the live publications: its offset is where the client is.
		sent, perr := p.subscribeHistory(c, ch, f, req)
		if perr != nil || !sent {
			p.release(s, ns, ch)
			if perr != nil {
				p.fail(c, s, req, perr)
			}
			return // else the client is gone
		}
	} else {
		if err := p.hub.Subscribe(c, ch); err != nil {
			p.release(s, ns, ch)
			return // the client is gone: nobody to answer
		}
		ack := encodeReply("ack", req)
		if req.recover != nil {
			ack = encodeNotRecovered(req)
		}
		p.reply(c, ack)
	}
	s.addChannel(ch)
	if ns.JoinLeave {
		p.announce(ch, encodeJoinLeave("join", ch, s.id, s.userName()))
	}
}

// subscribeHistory subscribes c to a history channel: what the client
// asked to recover, then the ack, then the subscription, all queued under
// the feed's lock, so that live publications follow without a gap or a
// duplicate. The bulk of a recovery is read from the history before the
// lock, which holds up the channel's fan-out on this node. It reports
// false if the client is gone.
func (p *pubsub) subscribeHistory(c *hub.Client, ch string, f *feed, req *request) (bool, *protoError) {
	ctx, cancel := context.WithTimeout(p.stopping, storeTimeout)
	defer cancel()
	var pubs []history.Publication
	var top history.Position
	got := false
	if req.recover != nil {
		var err error
		pubs, top, got, err = history.Recover(ctx, p.history, ch, *req.recover, p.recoverLimit())
		if err != nil {
			return false, p.storeError("history", ch, err)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.known {
		t, err := p.history.Top(ctx, ch)
		if err != nil {
			return false, p.storeError("history", ch, err)
		}
		f.known, f.last, f.epoch = true, t.Offset, t.Epoch
	}
	var recovered *bool
	if req.recover != nil {
		ok := false
		recovered = &ok
		// Where the history is ahead of this node, its other subscribers
		// are brought up to date first, so that all the client recovers
		// is at most f.last and nothing after it is given twice.
		p.catchUp(ch, f, top)
		if got && top.Epoch == f.epoch && f.last > top.Offset {
			// The feed moved on since the read: the rest from the
			// history too, or no recovery.
			more, _, err := p.history.Read(ctx, ch, history.Query{Since: top.Offset, Limit: int(f.last - top.Offset)})
			got = err == nil && uint64(len(more)) == f.last-top.Offset && (len(more) == 0 || more[0].Offset == top.Offset+1)
			pubs = append(pubs, more...)
		}
		if got && top.Epoch == f.epoch {
			for _, pub := range pubs {
				if pub.Offset > f.last {
					break
				}
				if err := c.Send(websocket.TextMessage, pub.Data); err != nil {
					return false, nil
				}
			}
			ok = true
		}
		p.metrics.recovery(ok)
	}
	// Send, not Reply: Reply may wait for a client that does not read,
	// and the lock holds up the channel. Same queue, same order.
	if err := c.Send(websocket.TextMessage, encodeSubscribed(req, history.Position{Offset: f.last, Epoch: f.epoch}, recovered)); err != nil {
		return false, nil
	}
	if err := p.hub.Subscribe(c, ch); err != nil {
		return false, nil
	}
	return true, nil
}

// recoverLimit: at most a send queue's worth is replayed, so that a
// recovering client is not closed as a slow consumer for its own replay.
func (p *pubsub) recoverLimit() int { return max(1, p.sendQueue/2) }

func (p *pubsub) unsubscribe(c *hub.Client, s *session, req *request) {
	ch, _, perr := p.channelOf(req)
	if perr != nil {
		p.fail(c, s, req, perr)
		return
	}
	if !s.hasChannel(ch) {
		p.fail(c, s, req, &protoError{codeNotSubscribed, "not subscribed to " + ch})
		return
	}
	if ns := p.ns.lookup(ch); ns.JoinLeave && !s.allowJoinLeave(time.Now()) {
		p.metrics.rateLimited.WithLabelValues("join_leave").Inc()
		p.fail(c, s, req, &protoError{codeRateLimited, "unsubscribing too often in a join/leave namespace"})
		return
	}
	if !s.dropChannel(ch) {
		return // the server API unsubscribed it meanwhile, and told the client
	}
	p.hub.Unsubscribe(c, ch)
	p.left(c, s, ch)
	p.reply(c, encodeReply("ack", req))
}

// addPresence records the client in ch where the namespace keeps presence.
func (p *pubsub) addPresence(s *session, ns *Namespace, ch string) {
	if !ns.Presence {
		return
	}
	ctx, cancel := context.WithTimeout(p.stopping, storeTimeout)
	err := p.presence.Add(ctx, ch, presence.Info{Client: s.id, User: s.userName(), ConnectedAt: time.UnixMilli(s.connectedAt)})
	cancel()
	if err != nil {
		p.logger.Warn("presence add failed", "channel", ch, "client", s.id, "err", err)
	}
}

// left undoes a subscription's node-side state and announces the leave.
// The hub subscription is already gone.
func (p *pubsub) left(c *hub.Client, s *session, ch string) {
	ns := p.ns.lookup(ch)
	if ns == nil {
		return
	}
	p.release(s, ns, ch)
	if ns.JoinLeave && !p.draining() {
		p.announce(ch, encodeJoinLeave("leave", ch, s.id, s.userName()))
	}
}

// release gives back what a subscription (or a subscribe that failed)
// took on this node: its feed, its broker interest and its presence.
func (p *pubsub) release(s *session, ns *Namespace, ch string) {
	if _, hist := ns.retention(); hist {
		p.feeds.release(ch)
	}
	p.removeInterest(ch)
	if ns.Presence {
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		err := p.presence.Remove(ctx, ch, s.id)
		cancel()
		if err != nil && !errors.Is(err, presence.ErrClosed) {
			p.logger.Warn("presence remove failed", "channel", ch, "client", s.id, "err", err)
		}
	}
}

// announce publishes a join or leave message to the channel's
// subscribers on every node; it is not kept in history.
func (p *pubsub) announce(ch string, msg []byte) {
	ctx, cancel := context.WithTimeout(p.stopping, p.pubTimeout)
	err := p.broker.Publish(ctx, ch, msg)
	cancel()
	if err != nil && !errors.Is(err, broker.ErrClosed) {
		p.logger.Debug("join/leave not published", "channel", ch, "err", err)
	}
}

func (p *pubsub) publish(c *hub.Client, s *session, req *request) {
	ch, ns, perr := p.channelOf(req)
	if perr == nil {
		perr = p.mayPublish(s, ns, ch)
	}
	if perr != nil {
		p.fail(c, s, req, perr)
		return
	}
	if req.data == nil {
		p.fail(c, s, req, &protoError{codeBadRequest, "missing data"})
		return
	}
	if perr := p.allowPublish(c, s); perr != nil {
		p.fail(c, s, req, perr)
		return
	}
	if p.draining() {
		p.fail(c, s, req, errShuttingDown)
		return
	}
	if _, perr := p.publishTo(ch, ns, req.data); perr != nil {
		p.fail(c, s, req, perr)
		return
	}
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

// publishTo publishes data on ch, a channel of ns, for a client or the
// server API: into the history first where ns keeps one, then through the
// broker. It returns the publication's position (zero without history).
func (p *pubsub) publishTo(ch string, ns *Namespace, data json.RawMessage) (history.Position, *protoError) {
	ctx, cancel := context.WithTimeout(p.stopping, p.pubTimeout)
	defer cancel()
	var payload []byte
	var pos history.Position
	if ret, hist := ns.retention(); hist {
		var err error
		// The envelope and the message share one buffer: the history
		// keeps the message, the broker carries both.
		pos, err = p.history.Append(ctx, ch, ret, func(at history.Position) []byte {
			payload = appendEnvelope(make([]byte, 0, 64+len(ch)+len(data)), at)
			hdr := len(payload)
			payload = appendMessageAt(payload, ch, at.Offset, data)
			return payload[hdr:len(payload):len(payload)]
		})
		if err != nil {
			return pos, p.storeError("publish", ch, err)
		}
	} else {
		// Encoded once here; every node forwards these bytes as they are.
		payload = encodeMessage(ch, data)
	}
	if err := p.broker.Publish(ctx, ch, payload); err != nil {
		if pos.Offset != 0 && !errors.Is(err, broker.ErrClosed) {
			// Kept in the history: subscribers get it from there (the
			// feeds' check) even though the broker did not take it.
			p.logger.Warn("publication stored but not broadcast", "channel", ch, "offset", pos.Offset, "err", err)
		}
		return pos, p.brokerError("publish", ch, err)
	}
	p.metrics.published()
	return pos, nil
}

// storeError maps a history or presence failure to the client's error.
func (p *pubsub) storeError(op, ch string, err error) *protoError {
	if p.stopping.Err() != nil || errors.Is(err, history.ErrClosed) || errors.Is(err, presence.ErrClosed) {
		return errShuttingDown
	}
	p.logger.Warn("store failed", "op", op, "channel", ch, "err", err)
	return &protoError{codeUnavailable, "history or presence unavailable, try again"}
}

func (p *pubsub) historyOp(c *hub.Client, s *session, req *request) {
	ch, ns, perr := p.channelOf(req)
	if perr == nil {
		perr = p.maySubscribe(s, ns, ch)
	}
	var pubs []history.Publication
	var top history.Position
	if perr == nil {
		pubs, top, perr = p.readHistory(p.stopping, ch, ns, history.Query{Since: req.since, Limit: req.limit, Reverse: req.reverse})
	}
	if perr != nil {
		p.fail(c, s, req, perr)
		return
	}
	p.reply(c, encodeHistory(req, ch, pubs, top))
}

// readHistory reads a channel's history for the history op and the server
// API; q.Limit 0 means maxHistoryLimit.
func (p *pubsub) readHistory(ctx context.Context, ch string, ns *Namespace, q history.Query) ([]history.Publication, history.Position, *protoError) {
	if _, hist := ns.retention(); !hist {
		return nil, history.Position{}, &protoError{codeNotAvailable, "no history in this namespace"}
	}
	if q.Limit == 0 {
		q.Limit = maxHistoryLimit
	}
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	pubs, top, err := p.history.Read(ctx, ch, q)
	if err != nil {
		return nil, top, p.storeError("history", ch, err)
	}
	return pubs, top, nil
}

func (p *pubsub) presenceOp(c *hub.Client, s *session, req *request) {
	ch, ns, perr := p.channelOf(req)
	if perr == nil {
		perr = p.maySubscribe(s, ns, ch)
	}
	var infos []presence.Info
	if perr == nil {
		infos, perr = p.listPresence(p.stopping, ch, ns)
	}
	if perr != nil {
		p.fail(c, s, req, perr)
		return
	}
	// One answer stays a reasonable message; the server API lists all.
	truncated := len(infos) > maxPresenceListed
	if truncated {
		infos = infos[:maxPresenceListed]
	}
	p.reply(c, encodePresence(req, ch, infos, truncated))
}

// listPresence lists a channel's clients for the presence op and the
// server API.
func (p *pubsub) listPresence(ctx context.Context, ch string, ns *Namespace) ([]presence.Info, *protoError) {
	if !ns.Presence {
		return nil, &protoError{codeNotAvailable, "no presence in this namespace"}
	}
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	infos, err := p.presence.List(ctx, ch)
	if err != nil {
		return nil, p.storeError("presence", ch, err)
	}
	return infos, nil
}

// A connection's subscribes and unsubscribes in join/leave namespaces are
// bounded: each one is a message to every subscriber of the channel.
const (
	joinLeaveRate  = 10 // a second
	joinLeaveBurst = 20
)

// rateBuckets are a client's token buckets: publishes and join/leave.
type rateBuckets struct {
	pub, join bucket
}

func (s *session) rates() *rateBuckets {
	if s.buckets == nil {
		s.buckets = new(rateBuckets)
	}
	return s.buckets
}

// allowJoinLeave takes a token from the session's join/leave bucket.
func (s *session) allowJoinLeave(now time.Time) bool {
	return s.rates().join.take(now, joinLeaveRate, joinLeaveBurst)
}

// allowPublish applies the publish rates of the connection and of its IP.
func (p *pubsub) allowPublish(c *hub.Client, s *session) *protoError {
	now := time.Now()
	if p.pubRate > 0 && !s.rates().pub.take(now, p.pubRate, max(1, p.pubRate)) {
		p.metrics.rateLimited.WithLabelValues("connection").Inc()
		return &protoError{codeRateLimited, "publishing too fast on this connection"}
	}
	if p.ipRate == nil {
		return nil
	}
	if ip, ok := hub.AddrKey(c.Request().RemoteAddr); ok && !p.ipRate.allow(ip, now) {
		p.metrics.rateLimited.WithLabelValues("ip").Inc()
		return &protoError{codeRateLimited, "publishing too fast from this address"}
	}
	return nil
}

// deliver is the broker's Handler: the local fan-out of a publication from
// any node. payload is the encoded message; the hub copies it.
func (p *pubsub) deliver(channel string, payload []byte) {
	if len(payload) > 0 && payload[0] == envelopeMark {
		pos, msg, ok := parseEnvelope(payload)
		if !ok {
			p.logger.Warn("broker message with a bad envelope dropped", "channel", channel)
			return
		}
		p.deliverAt(channel, pos, msg)
		return
	}
	if channel == controlChannel {
		p.control(payload)
		return
	}
	p.fanout(channel, payload)
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
		p.logger.Info("closing abusive client", "client", s.id, "remote", c.Request().RemoteAddr)
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
