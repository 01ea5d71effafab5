package history

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"sync"
	"time"
)

// DefaultMetaTTL is the MetaTTL of a [MemoryConfig] that leaves it zero.
// A day covers a laptop closed overnight on a quiet channel: its client
// comes back at the top and recovers, without anything to replay.
const DefaultMetaTTL = 24 * time.Hour

// minRing is the first allocation of a channel's ring: a channel with a
// handful of publications costs a handful of slots, not Retention.Size.
const minRing = 4

// sweepStep is how many channels each Append (and each channel created)
// examines for expiry. Above 1, the sweep overtakes the channels Append
// moves to the front, so every channel is examined at least once every
// len(channels) appends.
const sweepStep = 2

var errRetention = errors.New("history: retention size and TTL must be positive")

// MemoryConfig configures [NewMemory].
type MemoryConfig struct {
	// MetaTTL is how long a channel's top offset and epoch outlive its
	// last publication (at least as long as that publication's TTL): a
	// client that comes back within it at the top recovers; after it the
	// channel starts again from offset 0 under a new epoch. 0 means
	// DefaultMetaTTL.
	MetaTTL time.Duration
	// MaxChannels bounds the channels remembered (with history or only a
	// top): beyond it, the least recently appended channel is forgotten
	// and gets a new epoch when it is next used. A channel only looked at
	// (Top, Read) was never appended: it is the first to go. 0 means no
	// bound.
	MaxChannels int
	// Now is the clock; nil means time.Now. For tests.
	Now func() time.Time
}

// Memory is a [Store] that keeps history in the process, for one node.
//
// Each channel has a ring of publications, allocated as it fills and
// never larger than its Retention.Size, and a top position. Publications
// older than Retention.TTL are dropped when the channel is next used, and
// by a sweep that each Append advances over a few channels: the store has
// no goroutine, so nothing leaks when Close is forgotten and a fake clock
// drives every expiry in tests. Memory is reclaimed as the store is used;
// an idle store keeps what it holds until its next Append.
//
// Memory held, at most: channels × (about 200 bytes + the name + Size ×
// (32 bytes + the size of a message)), where channels is MaxChannels, or
// without it the channels used within MetaTTL (or TTL, if longer) and not
// yet swept. Top and Read count as use: they remember a new channel's
// epoch.
//
// Data is stored as encode returns it, and Read returns the stored slices
// themselves: neither side may modify them afterwards.
type Memory struct {
	now         func() time.Time // immutable
	metaTTL     time.Duration    // immutable
	maxChannels int              // immutable

	mu     sync.Mutex
	closed bool                // guarded by mu
	chans  map[string]*channel // guarded by mu
	// The channels in order of their last append, head the latest; those
	// never appended to come after all others. Guarded by mu.
	head, tail *channel
	sweep      *channel // the next channel the sweep examines, toward head; nil: start at tail. Guarded by mu.
}

var _ Store = (*Memory)(nil)

// channel is one channel's history. Lock order: Memory.mu, then mu; only
// the sweep and eviction take mu while holding Memory.mu.
type channel struct {
	// Guarded by Memory.mu.
	name       string
	prev, next *channel // prev is toward head

	mu    sync.Mutex
	epoch string        // guarded by mu
	top   uint64        // offset of the last publication; guarded by mu
	ring  []entry       // nil when empty; guarded by mu
	first int           // index in ring of the oldest entry; guarded by mu
	n     int           // entries kept; guarded by mu
	size  int           // Retention of the last Append; guarded by mu
	ttl   time.Duration // guarded by mu
	last  int64         // unix nanoseconds of the last Append, or of creation; guarded by mu
	dead  bool          // removed from Memory.chans: use the one there; guarded by mu
}

// entry is one kept publication; its offset follows from its place.
type entry struct {
	at   int64 // unix nanoseconds
	data []byte
}

// NewMemory returns an empty in-process store.
func NewMemory(cfg MemoryConfig) *Memory {
	m := &Memory{
		now:         cfg.Now,
		metaTTL:     cfg.MetaTTL,
		maxChannels: cfg.MaxChannels,
		chans:       make(map[string]*channel),
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.metaTTL <= 0 {
		m.metaTTL = DefaultMetaTTL
	}
	return m
}

// Append stores encode(position) as the channel's next publication, under
// the bounds of r, which replace those of earlier appends; a Size or TTL
// that is not positive is an error.
//
// encode runs with the channel locked, so that offsets reach it in order:
// it must be quick and must not call the store.
func (m *Memory) Append(ctx context.Context, channel string, r Retention, encode func(Position) []byte) (Position, error) {
	if err := ctx.Err(); err != nil {
		return Position{}, err
	}
	if r.Size <= 0 || r.TTL <= 0 {
		return Position{}, errRetention
	}
	c, now, err := m.lock(channel, true)
	if err != nil {
		return Position{}, err
	}
	// Deferred: a panicking encode must not leave the channel locked.
	defer c.mu.Unlock()
	c.retain(r)
	c.trim(now) // under the TTL just given
	// Times follow offsets even when this call read the clock before the
	// one that locked the channel first.
	now = max(now, c.last)
	pos := Position{Offset: c.top + 1, Epoch: c.epoch}
	c.push(entry{at: now, data: encode(pos)})
	c.top = pos.Offset
	c.last = now
	return pos, nil
}

// Top returns the channel's latest position. A channel never seen (or
// forgotten) gets its epoch now, and keeps it for its first Append.
func (m *Memory) Top(ctx context.Context, channel string) (Position, error) {
	if err := ctx.Err(); err != nil {
		return Position{}, err
	}
	c, _, err := m.lock(channel, false)
	if err != nil {
		return Position{}, err
	}
	pos := Position{Offset: c.top, Epoch: c.epoch}
	c.mu.Unlock()
	return pos, nil
}

// Read returns the kept publications with an offset above q.Since: the
// oldest first, at most q.Limit (0 or less: all); with q.Reverse the
// newest first, so a Limit selects the latest ones. Since at or beyond
// the top selects none. The top is read under the same lock as the
// publications: the first one returned is Since+1 exactly when the history
// is complete from there (see [Covers]).
func (m *Memory) Read(ctx context.Context, channel string, q Query) ([]Publication, Position, error) {
	if err := ctx.Err(); err != nil {
		return nil, Position{}, err
	}
	c, _, err := m.lock(channel, false)
	if err != nil {
		return nil, Position{}, err
	}
	defer c.mu.Unlock()
	top := Position{Offset: c.top, Epoch: c.epoch}
	if c.n == 0 || q.Since >= c.top {
		return nil, top, nil
	}
	oldest := c.top - uint64(c.n) + 1
	from := max(q.Since+1, oldest)
	count := c.top - from + 1
	if q.Limit > 0 && count > uint64(q.Limit) {
		count = uint64(q.Limit)
	}
	pubs := make([]Publication, count)
	for i := range pubs {
		off := from + uint64(i)
		if q.Reverse {
			off = c.top - uint64(i)
		}
		e := c.at(int(off - oldest))
		pubs[i] = Publication{Offset: off, Time: time.Unix(0, e.at), Data: e.data}
	}
	return pubs, top, nil
}

// Close forgets every channel; later calls return [ErrClosed].
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.closed = true
	m.chans = nil
	m.head, m.tail, m.sweep = nil, nil, nil
	return nil
}

// lock returns the named channel locked, with its expired publications
// dropped, creating it when absent; appending moves it to the front of
// the eviction order. It returns the time of the call in unix nanoseconds.
func (m *Memory) lock(name string, appending bool) (*channel, int64, error) {
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return nil, 0, ErrClosed
		}
		now := m.now().UnixNano()
		c := m.chans[name]
		switch {
		case c == nil:
			c = m.create(name, now, appending)
			m.sweepSome(now)
		case appending:
			m.touch(c)
			m.sweepSome(now)
		}
		m.mu.Unlock()

		c.mu.Lock()
		if c.dead {
			// Evicted or swept between the two locks: its successor (or
			// a new channel) is in the map.
			c.mu.Unlock()
			continue
		}
		c.expire(now, m.metaTTL)
		return c, now, nil
	}
}

// create adds a channel with a new epoch, evicting the least recently
// appended one beyond MaxChannels. A channel created to be appended to goes
// to the front; one created by Top or Read, never appended to, to the back:
// looking at many empty channels evicts them, not histories. m.mu is held.
func (m *Memory) create(name string, now int64, appending bool) *channel {
	for m.maxChannels > 0 && len(m.chans) >= m.maxChannels && m.tail != nil {
		victim := m.tail
		victim.mu.Lock()
		m.remove(victim)
		victim.mu.Unlock()
	}
	c := &channel{name: name, epoch: newEpoch(), last: now}
	m.chans[name] = c
	if appending {
		m.pushFront(c)
	} else {
		m.pushBack(c)
	}
	return c
}

// sweepSome examines the next sweepStep channels, from the least recently
// appended toward the latest: it forgets those whose meta expired and
// drops expired publications of the others. A channel busy in another
// call is skipped: that call expires it. m.mu is held.
func (m *Memory) sweepSome(now int64) {
	for range sweepStep {
		c := m.sweep
		if c == nil {
			if c = m.tail; c == nil {
				return
			}
		}
		m.sweep = c.prev
		if !c.mu.TryLock() {
			continue
		}
		if c.metaExpired(now, m.metaTTL) {
			m.remove(c)
		} else {
			c.trim(now)
		}
		c.mu.Unlock()
	}
}

// remove forgets c. m.mu and c.mu are held.
func (m *Memory) remove(c *channel) {
	delete(m.chans, c.name)
	m.unlink(c)
	c.dead = true
	c.ring, c.n = nil, 0
}

func (m *Memory) pushFront(c *channel) {
	c.prev, c.next = nil, m.head
	if m.head != nil {
		m.head.prev = c
	} else {
		m.tail = c
	}
	m.head = c
}

func (m *Memory) pushBack(c *channel) {
	c.prev, c.next = m.tail, nil
	if m.tail != nil {
		m.tail.next = c
	} else {
		m.head = c
	}
	m.tail = c
}

func (m *Memory) unlink(c *channel) {
	if m.sweep == c {
		m.sweep = c.prev
	}
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		m.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		m.tail = c.prev
	}
	c.prev, c.next = nil, nil
}

func (m *Memory) touch(c *channel) {
	if m.head != c {
		m.unlink(c)
		m.pushFront(c)
	}
}

// newEpoch returns 64 random bits, URL-safe: a restarted node, an evicted
// channel or an expired one never reuses the epoch a client may hold.
func newEpoch() string {
	var b [8]byte
	rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// The methods below run with c.mu held.

// metaExpired reports whether the channel's top and epoch are to be
// forgotten: MetaTTL after its last publication, and never while that
// publication is kept.
func (c *channel) metaExpired(now int64, metaTTL time.Duration) bool {
	return now-c.last >= int64(max(metaTTL, c.ttl))
}

// expire starts the channel afresh once its meta expired, and otherwise
// drops its expired publications.
func (c *channel) expire(now int64, metaTTL time.Duration) {
	if c.metaExpired(now, metaTTL) {
		c.epoch, c.top, c.last = newEpoch(), 0, now
		c.ring, c.first, c.n = nil, 0, 0
		return
	}
	c.trim(now)
}

// trim drops the publications older than the TTL, the oldest first; the
// ring is released when none is left.
func (c *channel) trim(now int64) {
	for c.n > 0 && now-c.at(0).at >= int64(c.ttl) {
		c.dropOldest()
	}
	if c.n == 0 {
		c.ring, c.first = nil, 0
	}
}

// retain applies r, which may differ from the last Append's after a
// configuration reload: a smaller Size drops the oldest publications
// now, a new TTL applies to those kept.
func (c *channel) retain(r Retention) {
	c.ttl = r.TTL
	if r.Size == c.size {
		return
	}
	c.size = r.Size
	for c.n > c.size {
		c.dropOldest()
	}
	if len(c.ring) > c.size {
		c.resize(max(c.n, min(minRing, c.size)))
	}
}

// push appends e, dropping the oldest beyond Size, growing the ring by
// doubling up to Size.
func (c *channel) push(e entry) {
	if c.n == c.size {
		c.dropOldest()
	}
	if c.n == len(c.ring) {
		c.resize(min(c.size, max(minRing, 2*len(c.ring))))
	}
	c.ring[(c.first+c.n)%len(c.ring)] = e
	c.n++
}

func (c *channel) dropOldest() {
	c.ring[c.first] = entry{} // let the message be collected
	c.first = (c.first + 1) % len(c.ring)
	c.n--
}

// at returns the i-th oldest entry kept.
func (c *channel) at(i int) entry {
	return c.ring[(c.first+i)%len(c.ring)]
}

// resize moves the entries, oldest first, into a ring of length n >= c.n.
func (c *channel) resize(n int) {
	ring := make([]entry, n)
	for i := range c.n {
		ring[i] = c.at(i)
	}
	c.ring, c.first = ring, 0
}
