package hub

import (
	"testing"

	"github.com/latchws/latch/websocket"
)

// The send queue starts small and grows; messages keep their order across
// growth and wrap-around, and the policy applies only at SendQueue.
func TestQueueGrowsInOrder(t *testing.T) {
	h := New(Config{SendQueue: 20, SlowConsumer: DropOldest})
	c := newClient(h, 1, nil, nil)
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
		q, _, ok := c.next()
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
	if len(c.ring) != 20 || c.dropped.Load() != 0 {
		t.Fatalf("queue of %d slots, %d dropped; want 20 and none", len(c.ring), c.dropped.Load())
	}
	// Full: DropOldest drops exactly one per message from now on.
	c.enqueue(pms[next], 1)
	next++
	if c.dropped.Load() != 1 || len(c.ring) != 20 {
		t.Fatalf("after overflow: %d slots, %d dropped", len(c.ring), c.dropped.Load())
	}
	want++ // the oldest was dropped
	for c.n > 0 {
		pop()
	}
	if want != next {
		t.Fatalf("dequeued up to %d, enqueued %d", want, next)
	}
}
