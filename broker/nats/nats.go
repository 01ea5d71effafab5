package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/latchws/latch/broker"
	"github.com/nats-io/nats.go"
)

// Option configures New.
type Option func(*config)

type config struct {
	name       string
	minDelay   time.Duration
	maxDelay   time.Duration
	timeout    time.Duration
	natsOpts   []nats.Option
	pingPeriod time.Duration
	pendMsgs   int
	pendBytes  int
	logger     *slog.Logger
}

// WithName sets the connection name the NATS server shows (monitoring).
func WithName(name string) Option { return func(c *config) { c.name = name } }

// WithReconnectDelay sets the reconnect back-off: the first wait after a
// failed round over the server list is min, doubling up to max, plus up to
// 25% jitter. Defaults: 100ms and 5s.
func WithReconnectDelay(min, max time.Duration) Option {
	return func(c *config) { c.minDelay, c.maxDelay = min, max }
}

// WithTimeout bounds Publish when its context has no deadline, and the
// confirmation round trip of Subscribe. Default 5s.
func WithTimeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// WithPingInterval sets how often the client pings the NATS server; two
// missed pongs count as an outage. It bounds how long a silently broken
// network goes unnoticed. Default 10s.
func WithPingInterval(d time.Duration) Option { return func(c *config) { c.pingPeriod = d } }

// WithPendingLimits bounds, per channel, the messages (and bytes) received
// from NATS and not yet handed to the Handler; beyond them nats.go drops
// messages and Stats.Dropped counts them. Defaults are nats.go's (524288
// messages, 64 MiB); a negative value means no limit.
func WithPendingLimits(msgs, bytes int) Option {
	return func(c *config) { c.pendMsgs, c.pendBytes = msgs, bytes }
}

// WithLogger logs connection events: disconnects and reconnects (Info),
// and the errors nats.go reports asynchronously, such as slow consumers or
// permission violations (Warn). Without it nothing is logged.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithNATSOptions passes options (TLS, credentials, ...) to nats.Connect.
// They are applied first: the reconnect policy, the reconnect buffer and
// the disconnect and reconnect handlers are set by this package and
// override them; an ErrorHandler among them is called after the logging.
func WithNATSOptions(opts ...nats.Option) Option {
	return func(c *config) { c.natsOpts = append(c.natsOpts, opts...) }
}

// Broker is a broker.Broker over a NATS connection. Safe for concurrent use.
type Broker struct {
	nc      *nats.Conn     // immutable after New
	h       broker.Handler // immutable
	timeout time.Duration  // immutable
	log     *slog.Logger   // immutable; discards when WithLogger is not used

	pendMsgs, pendBytes int // immutable

	// gate is held shared by every Handler call and exclusively by Close,
	// so that no call runs after Close returns.
	gate   sync.RWMutex
	closed atomic.Bool

	mu      sync.Mutex
	subs    map[string]*nats.Subscription // guarded by mu
	dropped uint64                        // drops of removed subscriptions; guarded by mu

	published, received, publishErrors, reconnects atomic.Uint64

	downMu    sync.Mutex
	downSince time.Time     // start of the current outage, zero while connected; guarded by downMu
	downTotal time.Duration // finished outages; guarded by downMu
}

var _ broker.Broker = (*Broker)(nil)

// New connects to the NATS servers at urls and returns a Broker that calls
// h for the messages of subscribed channels. It fails if no server can be
// reached now; once connected it reconnects forever.
func New(urls []string, h broker.Handler, opts ...Option) (*Broker, error) {
	if len(urls) == 0 {
		return nil, errors.New("broker/nats: no server URL")
	}
	if h == nil {
		return nil, errors.New("broker/nats: nil handler")
	}
	cfg := config{
		minDelay:   100 * time.Millisecond,
		maxDelay:   5 * time.Second,
		timeout:    5 * time.Second,
		pingPeriod: 10 * time.Second,
		pendMsgs:   nats.DefaultSubPendingMsgsLimit,
		pendBytes:  nats.DefaultSubPendingBytesLimit,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.minDelay <= 0 || cfg.maxDelay < cfg.minDelay || cfg.timeout <= 0 || cfg.pingPeriod <= 0 ||
		cfg.pendMsgs == 0 || cfg.pendBytes == 0 {
		return nil, errors.New("broker/nats: invalid option value")
	}
	if cfg.logger == nil {
		cfg.logger = slog.New(slog.DiscardHandler)
	}
	b := &Broker{h: h, timeout: cfg.timeout, log: cfg.logger, pendMsgs: cfg.pendMsgs, pendBytes: cfg.pendBytes, subs: make(map[string]*nats.Subscription)}
	nc, err := dialNATS(urls, &cfg,
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { b.markDown(err) }),
		nats.ReconnectHandler(func(nc *nats.Conn) { b.markUp(nc.ConnectedUrlRedacted()) }),
		nats.ErrorHandler(b.asyncError(userErrorHandler(cfg.natsOpts))),
	)
	if err != nil {
		return nil, err
	}
	b.nc = nc
	return b, nil
}

// dialNATS dials NATS with cfg's name, reconnection and pings, then extra.
func dialNATS(urls []string, cfg *config, extra ...nats.Option) (*nats.Conn, error) {
	no := append([]nats.Option(nil), cfg.natsOpts...)
	if cfg.name != "" {
		no = append(no, nats.Name(cfg.name))
	}
	no = append(no,
		nats.MaxReconnects(-1),
		nats.CustomReconnectDelay(backoff(cfg.minDelay, cfg.maxDelay)),
		// -1: while reconnecting nats.go refuses publishes at once instead
		// of buffering them, so an outage is an error, not a silent queue.
		nats.ReconnectBufSize(-1),
		nats.PingInterval(cfg.pingPeriod),
		nats.MaxPingsOutstanding(2),
	)
	nc, err := nats.Connect(strings.Join(urls, ","), append(no, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("%w: connect to NATS: %w", broker.ErrUnavailable, err)
	}
	return nc, nil
}

// Dial connects to the NATS servers at urls as the broker does (named,
// reconnecting forever with backoff, pinging), for a History and a
// Presence: their requests then do not queue behind the broker's
// messages. Only WithName, WithReconnectDelay, WithPingInterval and
// WithNATSOptions apply. The caller closes the connection, after the
// stores.
func Dial(urls []string, opts ...Option) (*nats.Conn, error) {
	if len(urls) == 0 {
		return nil, errors.New("broker/nats: no server URL")
	}
	cfg := config{minDelay: 100 * time.Millisecond, maxDelay: 5 * time.Second, pingPeriod: 10 * time.Second}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.minDelay <= 0 || cfg.maxDelay < cfg.minDelay || cfg.pingPeriod <= 0 {
		return nil, errors.New("broker/nats: invalid option value")
	}
	return dialNATS(urls, &cfg)
}

// userErrorHandler returns the nats.ErrorHandler among opts, if any, so
// that the logging one can call it too.
func userErrorHandler(opts []nats.Option) nats.ErrHandler {
	var o nats.Options
	for _, opt := range opts {
		_ = opt(&o) // errors surface in nats.Connect
	}
	return o.AsyncErrorCB
}

// asyncError logs the errors nats.go reports outside any call (slow
// consumers, permission violations) and passes them on to next.
func (b *Broker) asyncError(next nats.ErrHandler) nats.ErrHandler {
	return func(nc *nats.Conn, sub *nats.Subscription, err error) {
		subj := ""
		if sub != nil {
			subj = sub.Subject
		}
		b.log.Warn("NATS error", "subject", subj, "err", err)
		if next != nil {
			next(nc, sub, err)
		}
	}
}

// backoff doubles the reconnect delay from min to max, with jitter so that
// many nodes do not reconnect in lockstep.
func backoff(min, max time.Duration) nats.ReconnectDelayHandler {
	return func(attempts int) time.Duration {
		d := min
		for i := 1; i < attempts && d < max; i++ {
			d *= 2
		}
		d = minDur(d, max)
		return d + rand.N(d/4+1)
	}
}

func minDur(a, b time.Duration) time.Duration {
	if a < b {
		return a
	}
	return b
}

func (b *Broker) markDown(err error) {
	if b.closed.Load() {
		return
	}
	b.log.Warn("NATS disconnected; publishes fail until it reconnects", "err", err)
	b.downMu.Lock()
	if b.downSince.IsZero() {
		b.downSince = time.Now()
	}
	b.downMu.Unlock()
}

func (b *Broker) markUp(url string) {
	b.log.Info("NATS reconnected", "server", url)
	b.reconnects.Add(1)
	b.downMu.Lock()
	if !b.downSince.IsZero() {
		b.downTotal += time.Since(b.downSince)
		b.downSince = time.Time{}
	}
	b.downMu.Unlock()
}

// Publish sends the message and waits, bounded by ctx (or the timeout of
// [WithTimeout] if ctx has no deadline), for the NATS server to confirm
// that it has processed it: a PING after the PUB on the same connection,
// answered by a PONG. Nil means the server accepted the message for every
// subscription it knew of then. An error wrapping [broker.ErrUnavailable]
// means it is not known to be accepted (not connected, no confirmation in
// time, or the connection was replaced in between); the message may still
// have been delivered and is not retried.
func (b *Broker) Publish(ctx context.Context, channel string, payload []byte) error {
	if err := b.publish(ctx, channel, payload); err != nil {
		b.publishErrors.Add(1)
		return err
	}
	b.published.Add(1)
	return nil
}

func (b *Broker) publish(ctx context.Context, channel string, payload []byte) error {
	subj, err := Subject(channel)
	if err != nil {
		return err
	}
	if b.closed.Load() {
		return broker.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, b.timeout)
		defer cancel()
	}
	gen := b.nc.Stats().Reconnects
	if err := b.nc.Publish(subj, payload); err != nil {
		switch {
		case errors.Is(err, nats.ErrMaxPayload):
			return fmt.Errorf("broker/nats: %w", err)
		case errors.Is(err, nats.ErrReconnectBufExceeded):
			// ReconnectBufSize(-1): refused because not connected.
			return b.unavailable(fmt.Errorf("not connected to NATS: %w", err))
		}
		return b.unavailable(err)
	}
	if err := b.nc.FlushWithContext(ctx); err != nil {
		return b.unavailable(fmt.Errorf("no confirmation from NATS: %w", err))
	}
	// A flush answered on a new connection says nothing about a PUB
	// written to the old one.
	if b.nc.Stats().Reconnects != gen {
		return b.unavailable(errors.New("NATS connection replaced before confirmation"))
	}
	return nil
}

func (b *Broker) unavailable(err error) error {
	if b.closed.Load() {
		return broker.ErrClosed
	}
	return fmt.Errorf("%w: %w", broker.ErrUnavailable, err)
}

// Subscribe subscribes this node to the channel's subject. While connected
// it waits (bounded by [WithTimeout]) until the NATS server has the
// subscription, so every message published after Subscribe returns
// reaches this node. During an outage it returns nil at once: nats.go
// sends the subscription when the connection is back.
func (b *Broker) Subscribe(channel string) error {
	subj, err := Subject(channel)
	if err != nil {
		return err
	}
	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		return broker.ErrClosed
	}
	if _, ok := b.subs[channel]; ok {
		b.mu.Unlock()
		return nil
	}
	sub, err := b.nc.Subscribe(subj, b.deliver(channel))
	if err != nil {
		b.mu.Unlock()
		return b.unavailable(err)
	}
	if err := sub.SetPendingLimits(b.pendMsgs, b.pendBytes); err != nil {
		b.mu.Unlock()
		_ = sub.Unsubscribe()
		return fmt.Errorf("broker/nats: %w", err)
	}
	b.subs[channel] = sub
	b.mu.Unlock()

	if !b.nc.IsConnected() {
		// A flush now would wait for the reconnect; nats.go sends the
		// subscription then anyway.
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	defer cancel()
	if err := b.nc.FlushWithContext(ctx); err != nil && b.nc.IsConnected() {
		// Connected but unconfirmed: undo, so that an error means no
		// interest. (A flush cut by an outage is fine: see above.)
		b.mu.Lock()
		if b.subs[channel] == sub {
			delete(b.subs, channel)
			b.dropped += dropped(sub)
		}
		b.mu.Unlock()
		_ = sub.Unsubscribe()
		return b.unavailable(fmt.Errorf("subscription not confirmed: %w", err))
	}
	if b.closed.Load() {
		return broker.ErrClosed
	}
	return nil
}

// deliver returns the nats.go callback of one channel; nats.go runs it on
// the subscription's own goroutine, one message at a time, in order.
func (b *Broker) deliver(channel string) nats.MsgHandler {
	return func(m *nats.Msg) {
		b.gate.RLock()
		defer b.gate.RUnlock()
		if b.closed.Load() {
			return
		}
		b.h(channel, m.Data)
		b.received.Add(1)
	}
}

// Unsubscribe removes this node's subscription to the channel's subject.
// Messages the subscription had already received may still reach the
// Handler.
func (b *Broker) Unsubscribe(channel string) error {
	if err := broker.CheckChannel(channel); err != nil {
		return err
	}
	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		return broker.ErrClosed
	}
	sub := b.subs[channel]
	if sub == nil {
		b.mu.Unlock()
		return nil
	}
	delete(b.subs, channel)
	b.dropped += dropped(sub)
	b.mu.Unlock()
	if err := sub.Unsubscribe(); err != nil {
		return b.unavailable(err)
	}
	return nil
}

func dropped(sub *nats.Subscription) uint64 {
	n, err := sub.Dropped()
	if err != nil || n < 0 {
		return 0
	}
	return uint64(n)
}

// Stats reports the counters. Reconnects counts reconnections completed;
// Dropped counts messages nats.go discarded because the Handler fell
// behind (its pending limits, a "slow consumer").
func (b *Broker) Stats() broker.Stats {
	b.mu.Lock()
	drops := b.dropped
	for _, sub := range b.subs {
		drops += dropped(sub)
	}
	b.mu.Unlock()
	b.downMu.Lock()
	down := b.downTotal
	if !b.downSince.IsZero() {
		down += time.Since(b.downSince)
	}
	b.downMu.Unlock()
	return broker.Stats{
		Published:     b.published.Load(),
		Received:      b.received.Load(),
		PublishErrors: b.publishErrors.Load(),
		Reconnects:    b.reconnects.Load(),
		Dropped:       drops,
		Connected:     !b.closed.Load() && b.nc.IsConnected(),
		Disconnected:  down,
	}
}

// Close stops delivery, waits for running Handler calls to return and
// closes the NATS connection. Closing twice is not an error.
func (b *Broker) Close() error {
	b.gate.Lock()
	already := b.closed.Swap(true)
	b.gate.Unlock()
	if already {
		return nil
	}
	b.downMu.Lock()
	if !b.downSince.IsZero() {
		b.downTotal += time.Since(b.downSince)
		b.downSince = time.Time{}
	}
	b.downMu.Unlock()
	b.nc.Close()
	return nil
}
