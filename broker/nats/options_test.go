package nats

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	t.Parallel()
	const lo, hi = 100 * time.Millisecond, 5 * time.Second
	f := backoff(lo, hi)
	for _, c := range []struct {
		attempts int
		base     time.Duration
	}{{1, lo}, {2, 2 * lo}, {3, 4 * lo}, {6, 32 * lo}, {7, hi}, {1000, hi}} {
		for range 20 {
			d := f(c.attempts)
			if d < c.base || d > c.base+c.base/4 {
				t.Fatalf("attempt %d: delay %v not in [%v, %v]", c.attempts, d, c.base, c.base+c.base/4)
			}
		}
	}
}

func TestInvalidOptions(t *testing.T) {
	t.Parallel()
	h := func(string, []byte) {}
	url := []string{"nats://127.0.0.1:1"} // never dialled: options are checked first
	for name, o := range map[string]Option{
		"zero min delay":  WithReconnectDelay(0, time.Second),
		"max below min":   WithReconnectDelay(time.Second, time.Millisecond),
		"zero timeout":    WithTimeout(0),
		"zero ping":       WithPingInterval(0),
		"zero pend msgs":  WithPendingLimits(0, -1),
		"zero pend bytes": WithPendingLimits(-1, 0),
	} {
		if b, err := New(url, h, o); err == nil || b != nil {
			t.Errorf("%s: New = %v, %v; want an error", name, b, err)
		}
	}
}
