package websocket

import (
	"sync"
	"testing"
	"time"
)

func TestLockBy(t *testing.T) {
	var mu sync.Mutex
	neverCh := make(chan struct{})
	never := func() <-chan struct{} { return neverCh }

	if locked, _ := lockBy(&mu, time.Time{}, never); !locked {
		t.Fatal("free mutex not locked")
	}

	// Held past the deadline: the waiter gives up, and the helper hands the
	// lock back once the holder lets go.
	locked, timedOut := lockBy(&mu, time.Now().Add(20*time.Millisecond), never)
	if locked || !timedOut {
		t.Fatalf("held mutex: locked=%v timedOut=%v, want a timeout", locked, timedOut)
	}
	mu.Unlock()
	waitFree(t, &mu)

	// Held, then the connection closes.
	mu.Lock()
	done := make(chan struct{})
	time.AfterFunc(20*time.Millisecond, func() { close(done) })
	if locked, timedOut := lockBy(&mu, time.Time{}, func() <-chan struct{} { return done }); locked || timedOut {
		t.Fatalf("closed: locked=%v timedOut=%v, want neither", locked, timedOut)
	}
	mu.Unlock()
	waitFree(t, &mu)

	// Held, released before the deadline: the waiter owns the lock.
	mu.Lock()
	time.AfterFunc(20*time.Millisecond, mu.Unlock)
	if locked, _ := lockBy(&mu, time.Now().Add(5*time.Second), never); !locked {
		t.Fatal("released mutex not handed over")
	}
	if mu.TryLock() {
		t.Fatal("lockBy returned locked but the mutex was free")
	}
	mu.Unlock()
}

// waitFree waits until mu can be locked, then unlocks it.
func waitFree(t *testing.T, mu *sync.Mutex) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !mu.TryLock(); {
		if time.Now().After(deadline) {
			t.Fatal("mutex never freed: an abandoned helper kept it")
		}
		time.Sleep(time.Millisecond)
	}
	mu.Unlock()
}
