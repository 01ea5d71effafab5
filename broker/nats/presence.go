package nats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/latchws/latch/presence"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultPresenceBucket is the JetStream key-value bucket of presence.
const DefaultPresenceBucket = "latch_presence"

// refreshBatch bounds the refresh publishes in flight at once.
const refreshBatch = 256

// PresenceConfig configures NewPresence. The zero value is valid.
type PresenceConfig struct {
	// Bucket is the key-value bucket; default DefaultPresenceBucket.
	Bucket string
	// TTL is how long an entry lives unless its node refreshes it (every
	// TTL/3): the longest a dead node's clients stay listed. Default 60s,
	// at least 300ms. A node cut off from NATS for longer than the TTL
	// loses its entries until its next refresh after the outage.
	// The node that creates the bucket sets it; the others refresh often
	// enough for the shorter of theirs and the bucket's.
	TTL time.Duration
	// Replicas of the bucket (1 to 5); default 1.
	Replicas int
	// Memory keeps the bucket in memory instead of files.
	Memory bool
	// Timeout bounds each call whose context has no deadline, and Close;
	// default 5s.
	Timeout time.Duration
}

// Presence is a [presence.Store] in a JetStream key-value bucket shared
// by every node: key token(channel) + "." + token(client) (the channel as
// in the history subjects; in the client id, bytes other than A-Z a-z 0-9
// '-' are written '_' + two hex digits) → the Info as JSON.
//
// The bucket's TTL expires every entry; each node re-puts its own
// entries every TTL/3 from one goroutine, so the entries of a node that
// dies (or loses NATS) disappear within a TTL. Close deletes this node's
// entries. List sees every node's entries as of the moment it asks.
//
// Safe for concurrent use. Close does not close the NATS connection.
type Presence struct {
	js      jetstream.JetStream // immutable
	kv      jetstream.KeyValue  // immutable
	pre     string              // subject prefix of the bucket's keys; immutable
	timeout time.Duration       // immutable
	period  time.Duration       // refresh period; immutable

	mu     sync.Mutex
	own    map[string][]byte // this node's entries: key → value; guarded by mu
	closed bool              // guarded by mu

	stop chan struct{} // closed by Close
	done chan struct{} // closed when the refresher has returned
}

var _ presence.Store = (*Presence)(nil)

type presenceRecord struct {
	Client      string    `json:"client"`
	User        string    `json:"user,omitempty"`
	ConnectedAt time.Time `json:"connected"`
}

// NewPresence opens (or creates) the bucket over nc, which must stay open
// while the Presence is used, and starts refreshing.
func NewPresence(nc *nats.Conn, cfg PresenceConfig) (*Presence, error) {
	if nc == nil {
		return nil, errors.New("broker/nats: nil connection")
	}
	if cfg.Bucket == "" {
		cfg.Bucket = DefaultPresenceBucket
	}
	if cfg.TTL == 0 {
		cfg.TTL = time.Minute
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = defaultTimeout
	}
	if cfg.TTL < 300*time.Millisecond || cfg.Replicas < 1 || cfg.Replicas > 5 || cfg.Timeout < 0 {
		return nil, errors.New("broker/nats: invalid presence config")
	}
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(cfg.Timeout))
	if err != nil {
		return nil, fmt.Errorf("broker/nats: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
	defer cancel()
	storage := jetstream.FileStorage
	if cfg.Memory {
		storage = jetstream.MemoryStorage
	}
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      cfg.Bucket,
		Description: "latch presence",
		History:     1,
		TTL:         cfg.TTL,
		Storage:     storage,
		Replicas:    cfg.Replicas,
	})
	if errors.Is(err, jetstream.ErrBucketExists) {
		kv, err = js.KeyValue(ctx, cfg.Bucket)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: bucket %s: %w", presence.ErrUnavailable, cfg.Bucket, err)
	}
	ttl := cfg.TTL
	if st, err := kv.Status(ctx); err == nil && st.TTL() > 0 {
		ttl = min(ttl, st.TTL())
	}
	p := &Presence{
		js: js, kv: kv, pre: "$KV." + cfg.Bucket + ".", timeout: cfg.Timeout, period: ttl / 3,
		own: make(map[string][]byte), stop: make(chan struct{}), done: make(chan struct{}),
	}
	go p.refresher()
	return p, nil
}

// Add puts info under the channel and keeps refreshing it until Remove or
// Close. If the put fails the entry is not kept.
func (p *Presence) Add(ctx context.Context, channel string, info presence.Info) error {
	key, err := presenceKey(channel, info.Client)
	if err != nil {
		return err
	}
	val, err := json.Marshal(presenceRecord{Client: info.Client, User: info.User, ConnectedAt: info.ConnectedAt})
	if err != nil {
		return fmt.Errorf("broker/nats: %w", err)
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return presence.ErrClosed
	}
	p.own[key] = val
	p.mu.Unlock()
	ctx, cancel := p.bound(ctx)
	defer cancel()
	if _, err := p.kv.Put(ctx, key, val); err != nil {
		p.mu.Lock()
		if string(p.own[key]) == string(val) {
			delete(p.own, key)
		}
		p.mu.Unlock()
		return p.unavailable(err)
	}
	return nil
}

// Remove deletes the client's entry in the channel.
func (p *Presence) Remove(ctx context.Context, channel, client string) error {
	key, err := presenceKey(channel, client)
	if err != nil {
		return err
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return presence.ErrClosed
	}
	delete(p.own, key)
	p.mu.Unlock()
	ctx, cancel := p.bound(ctx)
	defer cancel()
	if err := p.kv.Delete(ctx, key); err != nil {
		return p.unavailable(err)
	}
	return nil
}

// List returns the entries of every node for the channel. It watches the
// channel's keys for their current values (one ordered consumer, removed
// afterwards).
func (p *Presence) List(ctx context.Context, channel string) ([]presence.Info, error) {
	tok, err := channelToken(channel)
	if err != nil {
		return nil, err
	}
	if err := p.check(); err != nil {
		return nil, err
	}
	ctx, cancel := p.bound(ctx)
	defer cancel()
	w, err := p.kv.WatchFiltered(ctx, []string{tok + ".*"}, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, p.unavailable(err)
	}
	defer func() { _ = w.Stop() }()
	var out []presence.Info
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, p.unavailable(errors.New("presence watch ended early"))
			}
			if e == nil {
				return out, nil // the current values are all in
			}
			var r presenceRecord
			if err := json.Unmarshal(e.Value(), &r); err != nil {
				continue // not ours: skip rather than fail the list
			}
			out = append(out, presence.Info{Client: r.Client, User: r.User, ConnectedAt: r.ConnectedAt})
		case <-ctx.Done():
			return nil, p.unavailable(ctx.Err())
		}
	}
}

// Close stops refreshing and deletes this node's entries, waiting at most
// the configured timeout; entries it could not delete expire within the
// TTL. It does not close the NATS connection.
func (p *Presence) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	own := p.own
	p.own = nil
	p.mu.Unlock()
	close(p.stop)
	<-p.done

	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	defer cancel()
	var msgs []*nats.Msg
	for key := range own {
		m := &nats.Msg{Subject: p.pre + key, Header: nats.Header{}}
		m.Header.Set("KV-Operation", "DEL") // a key-value delete (ADR-8)
		msgs = append(msgs, m)
	}
	if err := p.publishAll(ctx, msgs); err != nil {
		return fmt.Errorf("%w: deleting entries at close: %w", presence.ErrUnavailable, err)
	}
	return nil
}

// refresher re-puts this node's entries every period until Close.
func (p *Presence) refresher() {
	defer close(p.done)
	t := time.NewTicker(p.period)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.refresh()
		}
	}
}

func (p *Presence) refresh() {
	p.mu.Lock()
	keys := make([]string, 0, len(p.own))
	vals := make([][]byte, 0, len(p.own))
	for k, v := range p.own {
		keys = append(keys, k)
		vals = append(vals, v)
	}
	p.mu.Unlock()
	// Bounded by the period: a refresh must not delay the next one.
	ctx, cancel := context.WithTimeout(context.Background(), min(p.period, p.timeout))
	defer cancel()
	go func() {
		select {
		case <-p.stop:
			cancel() // Close does not wait for a slow NATS
		case <-ctx.Done():
		}
	}()
	msgs := make([]*nats.Msg, len(keys))
	for i := range keys {
		msgs[i] = &nats.Msg{Subject: p.pre + keys[i], Data: vals[i]}
	}
	_ = p.publishAll(ctx, msgs) // what failed is retried next period
	// A Remove or Add during the refresh may have been overtaken by it:
	// put right what the refresh wrote over.
	for i, k := range keys {
		p.mu.Lock()
		cur, ok := p.own[k]
		closed := p.closed
		p.mu.Unlock()
		switch {
		case closed:
			return // Close deletes
		case !ok:
			_ = p.kv.Delete(ctx, k)
		case string(cur) != string(vals[i]):
			_, _ = p.kv.Put(ctx, k, cur)
		}
	}
}

// publishAll publishes msgs to the bucket's stream, refreshBatch at a
// time in flight, and returns the first error.
func (p *Presence) publishAll(ctx context.Context, msgs []*nats.Msg) error {
	var first error
	for len(msgs) > 0 {
		n := min(len(msgs), refreshBatch)
		futures := make([]jetstream.PubAckFuture, 0, n)
		for _, m := range msgs[:n] {
			f, err := p.js.PublishMsgAsync(m)
			if err != nil {
				if first == nil {
					first = err
				}
				continue
			}
			futures = append(futures, f)
		}
		msgs = msgs[n:]
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				if first == nil {
					first = err
				}
			case <-ctx.Done():
				if first == nil {
					first = ctx.Err()
				}
				return first
			}
		}
	}
	return first
}

func (p *Presence) check() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return presence.ErrClosed
	}
	return nil
}

func (p *Presence) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, p.timeout)
}

func (p *Presence) unavailable(err error) error {
	if p.check() != nil {
		return presence.ErrClosed
	}
	return fmt.Errorf("%w: %w", presence.ErrUnavailable, err)
}

// presenceKey is the entry's key in the bucket.
func presenceKey(channel, client string) (string, error) {
	tok, err := channelToken(channel)
	if err != nil {
		return "", err
	}
	if client == "" {
		return "", errors.New("broker/nats: empty client id")
	}
	var b strings.Builder
	b.Grow(len(tok) + 1 + 3*len(client))
	b.WriteString(tok)
	b.WriteByte('.')
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(client); i++ {
		switch c := client[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-':
			b.WriteByte(c)
		default:
			b.WriteByte('_')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String(), nil
}
