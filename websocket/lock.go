package websocket

import (
	"sync"
	"sync/atomic"
	"time"
)

// lockBy locks mu, giving up at deadline (zero: no limit) or when the
// channel done returns is closed (done is called only if mu is busy); it
// reports whether it got the lock and, if not, whether the
// deadline passed. Connections guard their read and write sides with plain
// mutexes, which cost less than channels on every message and 100 bytes
// less per connection; the rare wait that must be able to give up (a
// control frame behind a stuck writer, Close behind a reader) hands the
// Lock to a goroutine of its own.
func lockBy(mu *sync.Mutex, deadline time.Time, done func() <-chan struct{}) (locked, timedOut bool) {
	if mu.TryLock() {
		return true, false
	}
	var timeout <-chan time.Time
	if !deadline.IsZero() {
		d := time.Until(deadline)
		if d <= 0 {
			return false, true
		}
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	w := &lockWaiter{got: make(chan struct{})}
	go w.lock(mu)
	select {
	case <-w.got:
		return true, false
	case <-timeout:
		timedOut = true
	case <-done():
	}
	if w.state.CompareAndSwap(lockWaiting, lockAbandoned) {
		return false, timedOut
	}
	<-w.got // the helper got the lock meanwhile: it is ours
	return true, false
}

const (
	lockWaiting int32 = iota
	lockAcquired
	lockAbandoned
)

type lockWaiter struct {
	state atomic.Int32
	got   chan struct{}
}

// lock takes mu for the waiter, or gives it straight back if the waiter
// has given up.
func (w *lockWaiter) lock(mu *sync.Mutex) {
	mu.Lock()
	if !w.state.CompareAndSwap(lockWaiting, lockAcquired) {
		mu.Unlock()
		return
	}
	close(w.got)
}
