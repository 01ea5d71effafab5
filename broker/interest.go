package broker

import (
	"errors"
	"sync"
	"sync/atomic"
)

// ErrNotSubscribed is returned by [Interest.Remove] for a channel without
// local subscribers.
var ErrNotSubscribed = errors.New("broker: no local subscribers")

// Interest counts the local subscribers of each channel and tells a Broker
// about transitions: Subscribe when the first arrives, Unsubscribe when the
// last leaves. So a node holds a subscription in the backend exactly while
// it has local subscribers. Safe for concurrent use; work on different
// channels runs in parallel.
type Interest struct {
	b Broker // immutable

	mu    sync.Mutex
	chans map[string]*interestEntry // guarded by mu

	active atomic.Int64 // channels with n > 0
}

// interestEntry serialises the Broker calls of one channel.
type interestEntry struct {
	users int // Add/Remove calls holding this entry; guarded by Interest.mu

	mu sync.Mutex
	n  int // local subscribers; guarded by mu
}

// NewInterest returns an Interest that drives b.
func NewInterest(b Broker) *Interest {
	return &Interest{b: b, chans: make(map[string]*interestEntry)}
}

// Add counts one more local subscriber of channel, subscribing the broker
// on the first. On error nothing is counted.
func (in *Interest) Add(channel string) error {
	e := in.acquire(channel)
	defer in.release(channel, e)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.n == 0 {
		if err := in.b.Subscribe(channel); err != nil {
			return err
		}
		in.active.Add(1)
	}
	e.n++
	return nil
}

// Remove counts one local subscriber less, unsubscribing the broker after
// the last. The count drops even if Unsubscribe fails: the local subscriber
// is gone either way, and a later Add subscribes again.
func (in *Interest) Remove(channel string) error {
	e := in.acquire(channel)
	defer in.release(channel, e)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.n == 0 {
		return ErrNotSubscribed
	}
	e.n--
	if e.n == 0 {
		in.active.Add(-1)
		return in.b.Unsubscribe(channel)
	}
	return nil
}

// Count returns the number of local subscribers of channel.
func (in *Interest) Count(channel string) int {
	e := in.acquire(channel)
	defer in.release(channel, e)
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.n
}

// Len returns the number of channels with local subscribers.
func (in *Interest) Len() int { return int(in.active.Load()) }

func (in *Interest) acquire(channel string) *interestEntry {
	in.mu.Lock()
	defer in.mu.Unlock()
	e := in.chans[channel]
	if e == nil {
		e = &interestEntry{}
		in.chans[channel] = e
	}
	e.users++
	return e
}

func (in *Interest) release(channel string, e *interestEntry) {
	in.mu.Lock()
	defer in.mu.Unlock()
	e.users--
	// With no user left nobody holds e.mu, and the last writer of e.n
	// released it before taking in.mu: reading n here is ordered.
	if e.users == 0 && e.n == 0 {
		delete(in.chans, channel)
	}
}
