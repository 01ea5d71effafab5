package hub

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/latchws/latch/websocket"
)

// The send queue starts small and grows; messages keep their order across
// growth and wrap-around, and the policy applies only at SendQueue.
func TestQueueGrowsInOrder(t *testing.T) {
	h := New(Config{SendQueue: 20, SlowConsumer: DropOldest})
	c := newClient(h, 1, nil, nil, nil)
	// This test is the writer: it takes messages with next() itself, so
	// enqueue must not start a writer goroutine.
	c.writing = true
	if len(c.ring) != initialQueue {
		t.Fatalf("a new client's queue holds %d slots, want %d", len(c.ring), initialQueue)
	}
	pms := make([]*websocket.PreparedMessage, 40)
	for i := range pms {
		pms[i], _ = websocket.NewPreparedMessage(websocket.BinaryMessage, []byte{byte(i)})
	}
	next, want := 0, 0
	pop := func() {
		t.Helper()
		q, _, ok := nextOne(c)
		if !ok || q.pm != pms[want] {
			t.Fatalf("dequeued message %v, want %d", q.pm, want)
		}
		want++
	}
	// Interleave so the ring wraps before each growth.
	for _, batch := range []int{3, 5, 9} {
		for i := 0; i < batch; i++ {
			if err := c.enqueue(pms[next], 1); err != nil {
				t.Fatal(err)
			}
			next++
		}
		pop()
		pop()
	}
	for c.n < 20 {
		c.enqueue(pms[next], 1)
		next++
	}
	// Room for SendQueue publications plus SendQueue replies, no more.
	if len(c.ring) > 40 || c.dropped.Load() != 0 {
		t.Fatalf("queue of %d slots, %d dropped; want at most 40 and none", len(c.ring), c.dropped.Load())
	}
	// Full: DropOldest drops exactly one per message from now on.
	c.enqueue(pms[next], 1)
	next++
	if c.dropped.Load() != 1 || c.n != 20 || len(c.ring) > 40 {
		t.Fatalf("after overflow: %d slots, %d queued, %d dropped", len(c.ring), c.n, c.dropped.Load())
	}
	want++ // the oldest was dropped
	for c.n > 0 {
		pop()
	}
	if want != next {
		t.Fatalf("dequeued up to %d, enqueued %d", want, next)
	}
}

// newTestClient returns a client whose writer is the test itself: it takes
// messages with next(), so no writer goroutine starts.
func newTestClient(cfg Config) *Client {
	c := newClient(New(cfg), 1, nil, nil, nil)
	c.writing = true
	return c
}

// The tests tell queued messages apart by their length (queued.size):
// PreparedMessage does not show its payload.
var names = []string{"p0", "r0", "p1", "r1", "p2", "r2", "p3", "r3", "late"}

func message(t *testing.T, name string) []byte {
	t.Helper()
	i := slices.Index(names, name)
	if i < 0 {
		t.Fatalf("no test message %q", name)
	}
	return make([]byte, i+1)
}

// drain dequeues everything and names it.
func drain(c *Client) []string {
	var got []string
	for c.n > 0 {
		q, _, _ := nextOne(c)
		got = append(got, names[q.size-1])
	}
	return got
}

// Reply waits while SendQueue replies are queued, and goes on as soon as the
// writer takes one; publications do not make it wait.
func TestReplyWaitsAtTheBound(t *testing.T) {
	c := newTestClient(Config{SendQueue: 3})
	for i := range 3 {
		if err := c.Send(websocket.TextMessage, message(t, fmt.Sprint("p", i))); err != nil {
			t.Fatal(err)
		}
		if err := c.Reply(websocket.TextMessage, message(t, fmt.Sprint("r", i))); err != nil {
			t.Fatal(err)
		}
	}
	returned := make(chan error, 1)
	go func() { returned <- c.Reply(websocket.TextMessage, message(t, "r3")) }()
	select {
	case err := <-returned:
		t.Fatalf("Reply beyond SendQueue replies returned %v at once, want a wait", err)
	case <-time.After(100 * time.Millisecond):
	}
	// The writer takes p0: a publication, so no room for a reply yet.
	if q, _, ok := nextOne(c); !ok || q.reply {
		t.Fatalf("first dequeued: %+v, %v; want publication p0", q, ok)
	}
	select {
	case err := <-returned:
		t.Fatalf("Reply returned %v after a publication left, want it still waiting", err)
	case <-time.After(50 * time.Millisecond):
	}
	// r0 leaves: the waiting Reply goes on.
	if q, _, ok := nextOne(c); !ok || !q.reply {
		t.Fatalf("second dequeued: %+v, %v; want reply r0", q, ok)
	}
	select {
	case err := <-returned:
		if err != nil {
			t.Fatalf("Reply after room was made: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Reply still waiting after the writer took a reply")
	}
	// Order is kept: p1 r1 p2 r2 r3, and the policy never fired.
	got := drain(c)
	if want := []string{"p1", "r1", "p2", "r2", "r3"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("queue order %v, want %v", got, want)
	}
	if c.slow.Load() || c.closed {
		t.Error("replies triggered the slow-consumer policy")
	}
}

// A Reply waiting for room ends with ErrClosed however the client ends.
func TestReplyWaitEndsWithTheClient(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(c *Client)
	}{
		{"Close", func(c *Client) { c.Close(websocket.CloseNormalClosure, "") }},
		{"read loop ended", func(c *Client) { c.finish() }},
		{"slow consumer", func(c *Client) {
			for c.enqueue(c.ring[c.head].pm, 1) == nil {
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestClient(Config{SendQueue: 2})
			for range 2 {
				if err := c.Reply(websocket.TextMessage, message(t, "r0")); err != nil {
					t.Fatal(err)
				}
			}
			returned := make(chan error, 1)
			go func() { returned <- c.Reply(websocket.TextMessage, message(t, "late")) }()
			select {
			case err := <-returned:
				t.Fatalf("Reply returned %v, want a wait", err)
			case <-time.After(50 * time.Millisecond):
			}
			tc.end(c)
			select {
			case err := <-returned:
				if !errors.Is(err, ErrClosed) {
					t.Fatalf("Reply = %v, want ErrClosed", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Reply still waiting after the client ended")
			}
		})
	}
}

// DropOldest drops the oldest publication, never a reply, and keeps the
// order of what stays.
func TestDropOldestKeepsReplies(t *testing.T) {
	c := newTestClient(Config{SendQueue: 2, SlowConsumer: DropOldest})
	for _, m := range []string{"r0", "r1", "p0", "p1", "p2", "p3"} {
		var err error
		if m[0] == 'r' {
			err = c.Reply(websocket.TextMessage, message(t, m))
		} else {
			err = c.Send(websocket.TextMessage, message(t, m))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if c.dropped.Load() != 2 {
		t.Errorf("dropped %d, want 2", c.dropped.Load())
	}
	got := drain(c)
	if want := []string{"r0", "r1", "p2", "p3"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("queue %v, want %v", got, want)
	}
	if c.replies != 0 {
		t.Errorf("replies = %d after draining, want 0", c.replies)
	}
}

// TestCloseCodeOfFailedPeer: a client the connection itself failed (a
// message over the read limit, a message that arrived too slowly) is
// reported with the code it was sent, not as 1006.
func TestCloseCodeOfFailedPeer(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{websocket.ErrReadLimit, websocket.CloseMessageTooBig},
		{fmt.Errorf("read: %w", websocket.ErrMessageTimeout), websocket.ClosePolicyViolation},
		{&websocket.CloseError{Code: 4001}, 4001},
		{io.ErrUnexpectedEOF, websocket.CloseAbnormalClosure},
	} {
		if got := closeCode(tc.err); got != tc.want {
			t.Errorf("closeCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

// nextOne takes one task as the writer would, with a batch of one.
func nextOne(c *Client) (queued, *closeRequest, bool) {
	var b [1]queued
	qs, r, ok := c.next(b[:0])
	if len(qs) == 0 {
		return queued{}, r, ok
	}
	return qs[0], r, ok
}

// TestNextTakesABatch: the writer takes up to a batch's worth of queued
// messages at once, in order, and taking replies wakes a waiting Reply.
func TestNextTakesABatch(t *testing.T) {
	h := New(Config{SendQueue: 100})
	c := newClient(h, 1, nil, nil, nil)
	c.writing = true // this test is the writer
	for i := range 70 {
		if err := c.Send(websocket.TextMessage, []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	var b [maxBatch]queued
	qs, _, ok := c.next(b[:0])
	if !ok || len(qs) != maxBatch || c.n != 70-maxBatch {
		t.Fatalf("took %d of 70 (ok %v), %d left; want %d", len(qs), ok, c.n, maxBatch)
	}
	qs, _, ok = c.next(b[:0])
	if !ok || len(qs) != 70-maxBatch || c.n != 0 {
		t.Fatalf("second batch: %d, %d left", len(qs), c.n)
	}
}
