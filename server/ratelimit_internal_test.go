package server

import (
	"net/netip"
	"testing"
	"time"
)

// The per-address buckets: a burst of one second's worth, refilled at the
// rate, per address; refilled buckets are swept away.
func TestKeyedLimiter(t *testing.T) {
	l := newKeyedLimiter(5)
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::")
	now := time.Unix(1000, 0)
	for i := range 5 {
		if !l.allow(a, now) {
			t.Fatalf("publish %d of the burst refused", i)
		}
	}
	if l.allow(a, now) {
		t.Fatal("a sixth publish at once allowed with a rate of 5")
	}
	if !l.allow(b, now) {
		t.Fatal("another address is held back by the first one's bucket")
	}
	if !l.allow(a, now.Add(200*time.Millisecond)) || l.allow(a, now.Add(200*time.Millisecond)) {
		t.Fatal("200 ms at 5/s should refill exactly one token")
	}
	if n := l.len(); n != 2 {
		t.Fatalf("%d buckets, want 2", n)
	}
	// 11 s later both are full again: the next use sweeps them, and only
	// the address that publishes then has a bucket.
	if !l.allow(a, now.Add(11*time.Second)) {
		t.Fatal("refused after 11 s")
	}
	if n := l.len(); n != 1 {
		t.Fatalf("%d buckets after the sweep, want 1", n)
	}
}
