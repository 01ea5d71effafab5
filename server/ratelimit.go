package server

import (
	"net/netip"
	"sync"
	"time"

	"github.com/latchws/latch/hub"
)

// keyedLimiter is a token bucket per client address: rate tokens a second,
// a burst of one second's worth. Buckets that have refilled are dropped
// by a sweep on use, so its size follows the addresses active in the last
// few seconds, not every address ever seen.
type keyedLimiter struct {
	rate float64

	mu        sync.Mutex
	buckets   map[netip.Addr]*bucket
	lastSweep time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

// take refills b at rate up to burst and takes a token, if there is one.
func (b *bucket) take(now time.Time, rate, burst float64) bool {
	if b.at.IsZero() {
		b.tokens, b.at = burst, now
	}
	b.tokens = min(burst, b.tokens+now.Sub(b.at).Seconds()*rate)
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func newKeyedLimiter(rate float64) *keyedLimiter {
	return &keyedLimiter{rate: rate, buckets: make(map[netip.Addr]*bucket)}
}

func (l *keyedLimiter) burst() float64 { return max(1, l.rate) }

// allow takes a token from key's bucket at now.
func (l *keyedLimiter) allow(key netip.Addr, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) > 10*time.Second {
		l.sweep(now)
	}
	b := l.buckets[key]
	if b == nil {
		b = new(bucket)
		l.buckets[key] = b
	}
	return b.take(now, l.rate, l.burst())
}

// sweep drops the buckets that are full again: they hold nothing a new
// bucket would not.
func (l *keyedLimiter) sweep(now time.Time) {
	l.lastSweep = now
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.at).Seconds()*l.rate >= l.burst() {
			delete(l.buckets, k)
		}
	}
}

func (l *keyedLimiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// userIndex finds the connections of a user on this node, for the server
// API's disconnect and unsubscribe.
type userIndex struct {
	mu sync.Mutex
	m  map[string]map[*hub.Client]struct{}
}

func (u *userIndex) add(user string, c *hub.Client) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.m == nil {
		u.m = make(map[string]map[*hub.Client]struct{})
	}
	set := u.m[user]
	if set == nil {
		set = make(map[*hub.Client]struct{})
		u.m[user] = set
	}
	set[c] = struct{}{}
}

func (u *userIndex) remove(user string, c *hub.Client) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if set := u.m[user]; set != nil {
		delete(set, c)
		if len(set) == 0 {
			delete(u.m, user)
		}
	}
}

// clients returns the user's connections on this node.
func (u *userIndex) clients(user string) []*hub.Client {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([]*hub.Client, 0, len(u.m[user]))
	for c := range u.m[user] {
		out = append(out, c)
	}
	return out
}
