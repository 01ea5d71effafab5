package hub_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/latchws/latch/hub"
	"github.com/latchws/latch/websocket"
)

func TestLimiter(t *testing.T) {
	req := func(remote string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = remote
		return r
	}
	l := hub.NewLimiter(4, 2)
	var releases []func()
	take := func(remote string, want error) {
		t.Helper()
		release, err := l.Acquire(req(remote))
		if !errors.Is(err, want) {
			t.Fatalf("Acquire(%s) = %v, want %v", remote, err, want)
		}
		if err == nil {
			releases = append(releases, release)
		}
	}
	take("10.0.0.1:1000", nil)
	take("10.0.0.1:1001", nil)
	take("[::ffff:10.0.0.1]:1002", hub.ErrTooManyFromAddr) // the same IPv4 address
	// One IPv6 host holds a /64: its addresses count together.
	take("[2001:db8:1:2::1]:1", nil)
	take("[2001:db8:1:2:ffff::9%eth0]:2", nil)
	take("[2001:db8:1:2::3]:3", hub.ErrTooManyConnections) // the total limit comes first
	if l.Len() != 4 || l.Addrs() != 2 {
		t.Fatalf("Len %d, Addrs %d; want 4 and 2", l.Len(), l.Addrs())
	}
	releases[0]()
	take("[2001:db8:1:2::3]:3", hub.ErrTooManyFromAddr)
	take("[2001:db8:1:3::3]:3", nil) // another /64
	var he *hub.HTTPError
	if _, err := l.Acquire(req("10.0.0.9:1")); !errors.As(err, &he) || he.Status != http.StatusServiceUnavailable {
		t.Errorf("full limiter: %v, want an *HTTPError with 503", err)
	}
	if !errors.As(hub.ErrTooManyFromAddr, &he) || he.Status != http.StatusTooManyRequests {
		t.Errorf("ErrTooManyFromAddr carries %+v, want 429", he)
	}
	for _, release := range releases[1:] {
		release()
	}
	// Addresses leave the map at zero: it never grows without bound.
	if l.Len() != 0 || l.Addrs() != 0 {
		t.Errorf("after every release: Len %d, Addrs %d; want 0 and 0", l.Len(), l.Addrs())
	}
	// A RemoteAddr without an IP is counted in the total only.
	u := hub.NewLimiter(0, 1)
	for range 3 {
		if _, err := u.Acquire(req("@")); err != nil {
			t.Fatalf("Acquire without an IP: %v", err)
		}
	}
	if u.Len() != 3 || u.Addrs() != 0 {
		t.Errorf("Len %d, Addrs %d; want 3 and 0", u.Len(), u.Addrs())
	}
}

// A Limiter shared by a hub and another handler bounds both together, and
// the per-address limit answers 429, counted as "per_ip".
func TestSharedLimiter(t *testing.T) {
	l := hub.NewLimiter(3, 2)
	h, url := startHub(t, hub.Config{Limiter: l})
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		release, err := l.Acquire(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		defer release()
		c, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}))
	t.Cleanup(other.Close)
	otherURL := "ws" + strings.TrimPrefix(other.URL, "http")

	a := dial(t, url)
	dial(t, url)
	// All clients come from 127.0.0.1: the third is one too many for it.
	if got := dialStatus(t, url, nil); got != http.StatusTooManyRequests {
		t.Fatalf("third connection from one address: HTTP %d, want 429", got)
	}
	if n := h.Stats().Rejected["per_ip"]; n != 1 {
		t.Errorf("Rejected[per_ip] = %d, want 1", n)
	}
	a.Close()
	waitFor(t, "a free slot", func() bool { return l.Len() == 1 })
	o := dial(t, otherURL) // the other handler takes the slot
	if got := dialStatus(t, url, nil); got != http.StatusTooManyRequests {
		t.Errorf("hub beside the other handler's connection: HTTP %d, want 429", got)
	}
	o.Close()
	waitFor(t, "a free slot", func() bool { return l.Len() == 1 })
	dial(t, url)
	if l.Len() != 2 {
		t.Errorf("Limiter holds %d slots, want 2", l.Len())
	}
}

// A client that sends far above MaxMessageRate is throttled, not disconnected:
// it gets every answer, in order, and the hub counts the waits.
func TestMessageRateThrottles(t *testing.T) {
	const rate, messages = 200, 600
	gone := make(chan disconnect, 1)
	h, url := startHub(t, hub.Config{
		MaxMessageRate: rate, // burst: one second's worth
		OnMessage: func(c *hub.Client, mt int, data []byte) {
			if err := c.Reply(mt, data); err != nil && !errors.Is(err, hub.ErrClosed) {
				panic(err)
			}
		},
		OnDisconnect: onDisconnect(gone),
	})
	conn := dial(t, url)
	start := time.Now()
	go func() {
		// All at once, three bursts' worth: a sender paced at twice the
		// rate, slowed down by a loaded machine, may stay within it.
		for i := range messages {
			if conn.WriteMessage(websocket.TextMessage, []byte(strconv.Itoa(i))) != nil {
				return
			}
		}
	}()
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	for i := range messages {
		_, p, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		if string(p) != strconv.Itoa(i) {
			t.Fatalf("answer %d is %q", i, p)
		}
	}
	elapsed := time.Since(start)
	st := h.Stats()
	if st.Throttled == 0 {
		t.Error("Stats.Throttled is 0 after a client sent three times its burst at once")
	}
	// 600 messages at 200/s after a burst of 200 take at least 2 s; a
	// generous bound, not a timing assertion.
	if elapsed < time.Second {
		t.Errorf("%d messages answered in %v: not throttled to %d/s", messages, elapsed, rate)
	}
	conn.Close()
	if d := <-gone; d.code != websocket.CloseNormalClosure {
		t.Errorf("OnDisconnect code %d (%v), want 1000", d.code, d.err)
	}
	t.Logf("%d messages at once, %d/s allowed: answered in %v, %d throttled waits", messages, rate, elapsed, st.Throttled)
}

// A throttled read loop ends with the client: Shutdown does not wait out a
// long throttle, and no goroutine is left (startHub's cleanup checks).
func TestThrottleEndsOnShutdown(t *testing.T) {
	gone := make(chan disconnect, 1)
	h := hub.New(hub.Config{
		MaxMessageRate: 0.01, // one message per 100 s
		MessageBurst:   1,
		OnDisconnect:   onDisconnect(gone),
	})
	srv := httptest.NewServer(h)
	defer srv.Close()
	defer checkNoHubGoroutines(t)
	conn := dial(t, "ws"+strings.TrimPrefix(srv.URL, "http"))
	for range 2 {
		if err := conn.WriteMessage(websocket.TextMessage, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "a throttled wait", func() bool { return h.Stats().Throttled == 1 })
	// The client reads, to answer the server's close frame.
	go func() {
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				return
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v, want the throttled client closed in time", err)
	}
	if d := <-gone; d.code != websocket.CloseGoingAway {
		t.Errorf("OnDisconnect code %d (%v), want 1001", d.code, d.err)
	}
}
