package nats

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchws/latch/broker"
	natsgo "github.com/nats-io/nats.go"
)

// Two nodes on one NATS server: a message published on A reaches B's
// Handler for subscribed channels only, and each publisher's messages
// arrive in order.
func TestTwoNodes(t *testing.T) {
	t.Parallel()
	s := startServer(t, 0)
	var ra, rb sink
	a := newNode(t, s.ClientURL(), ra.handle)
	b := newNode(t, s.ClientURL(), rb.handle)
	ctx := context.Background()

	const ch = "room.1:chat_x"
	if err := b.Subscribe(ch); err != nil {
		t.Fatal(err)
	}
	// Publishes from 3 goroutines on A and one on B, 50 each.
	const per = 50
	var wg sync.WaitGroup
	for p := range 4 {
		node := a
		if p == 3 {
			node = b
		}
		wg.Go(func() {
			for i := range per {
				if err := node.Publish(ctx, ch, fmt.Appendf(nil, "%d-%d", p, i)); err != nil {
					t.Errorf("publisher %d, message %d: %v", p, i, err)
					return
				}
			}
		})
	}
	// A channel B has no interest in.
	if err := a.Publish(ctx, "elsewhere", []byte("x")); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	waitFor(t, 5*time.Second, "B to receive all messages", func() bool { return rb.len() >= 4*per })

	next := make([]int, 4)
	for _, m := range rb.all() {
		if m.channel != ch {
			t.Fatalf("B received %+v for a channel it did not subscribe", m)
		}
		p, i, _ := strings.Cut(m.payload, "-")
		pn, _ := strconv.Atoi(p)
		in, _ := strconv.Atoi(i)
		if in != next[pn] {
			t.Fatalf("publisher %d: got message %d, want %d (order per publisher)", pn, in, next[pn])
		}
		next[pn]++
	}
	if got := ra.len(); got != 0 {
		t.Fatalf("A, without interest, received %d messages", got)
	}
	time.Sleep(50 * time.Millisecond) // room for an unexpected extra delivery
	if got := rb.len(); got != 4*per {
		t.Fatalf("B received %d messages, want %d", got, 4*per)
	}
	sa, sb := a.Stats(), b.Stats()
	if sa.Published != 3*per+1 || sa.Received != 0 || sa.PublishErrors != 0 || !sa.Connected || sa.Reconnects != 0 {
		t.Fatalf("A stats = %+v", sa)
	}
	if sb.Published != per || sb.Received != 4*per || sb.Dropped != 0 || !sb.Connected {
		t.Fatalf("B stats = %+v", sb)
	}

	// A node subscribed to a channel receives its own publishes, through
	// NATS like everyone else's.
	if err := a.Subscribe(ch); err != nil {
		t.Fatal(err)
	}
	if err := a.Publish(ctx, ch, []byte("self")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "A to receive its own message", func() bool { return ra.len() == 1 })
	waitFor(t, 5*time.Second, "B to receive it too", func() bool { return rb.len() == 4*per+1 })
}

// A node holds a NATS subscription for a channel only while it has
// interest; Interest turns local subscriber counts into exactly that.
func TestInterestBasedSubscriptions(t *testing.T) {
	t.Parallel()
	s := startServer(t, 0)
	var r sink
	n := newNode(t, s.ClientURL(), r.handle)
	if got := latchSubjects(t, s); len(got) != 0 {
		t.Fatalf("subscriptions before any interest: %v", got)
	}
	in := broker.NewInterest(n)
	for range 3 {
		if err := in.Add("news.eu"); err != nil {
			t.Fatal(err)
		}
	}
	if err := in.Add("sport"); err != nil {
		t.Fatal(err)
	}
	// Subscribe waits for the server: visible at once.
	want := []string{"latch.ch.news_deu", "latch.ch.sport"}
	if got := latchSubjects(t, s); !slices.Equal(got, want) {
		t.Fatalf("server subscriptions = %v, want %v", got, want)
	}
	if err := in.Remove("news.eu"); err != nil {
		t.Fatal(err)
	}
	if err := in.Remove("news.eu"); err != nil {
		t.Fatal(err)
	}
	if got := latchSubjects(t, s); !slices.Equal(got, want) {
		t.Fatalf("with one subscriber left: %v, want %v", got, want)
	}
	if err := in.Remove("news.eu"); err != nil {
		t.Fatal(err)
	}
	if err := in.Remove("sport"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "no subscriptions left on the server", func() bool { return len(latchSubjects(t, s)) == 0 })

	// Idempotent at the broker level: one server subscription.
	for range 2 {
		if err := n.Subscribe("x"); err != nil {
			t.Fatal(err)
		}
	}
	if got := latchSubjects(t, s); !slices.Equal(got, []string{"latch.ch.x"}) {
		t.Fatalf("after double Subscribe: %v", got)
	}
	for range 2 {
		if err := n.Unsubscribe("x"); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "x unsubscribed", func() bool { return len(latchSubjects(t, s)) == 0 })
}

// Hostile names are refused before they reach NATS, and channels whose
// naive subjects would overlap stay apart.
func TestHostileChannelNames(t *testing.T) {
	t.Parallel()
	s := startServer(t, 0)
	var ra, rb sink
	a := newNode(t, s.ClientURL(), ra.handle)
	b := newNode(t, s.ClientURL(), rb.handle)
	ctx := context.Background()
	for _, ch := range []string{">", "*", "a.>", "a.*", "a b", "a\r\nPUB x 1", ""} {
		if err := b.Subscribe(ch); !errors.Is(err, broker.ErrInvalidChannel) {
			t.Errorf("Subscribe(%q) = %v, want ErrInvalidChannel", ch, err)
		}
		if err := a.Publish(ctx, ch, []byte("x")); !errors.Is(err, broker.ErrInvalidChannel) {
			t.Errorf("Publish(%q) = %v, want ErrInvalidChannel", ch, err)
		}
	}
	if got := latchSubjects(t, s); len(got) != 0 {
		t.Fatalf("server subscriptions after hostile names: %v", got)
	}
	if st := a.Stats(); st.PublishErrors != 7 || st.Published != 0 {
		t.Fatalf("A stats = %+v", st)
	}

	// B listens on "a" and "a_db"; "a.b" must reach neither.
	for _, ch := range []string{"a", "a_db"} {
		if err := b.Subscribe(ch); err != nil {
			t.Fatal(err)
		}
	}
	for _, ch := range []string{"a.b", "a:b", "a_b", "a.", "a_db", "a"} {
		if err := a.Publish(ctx, ch, []byte(ch)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "two deliveries", func() bool { return rb.len() >= 2 })
	time.Sleep(50 * time.Millisecond)
	got := rb.all()
	slices.SortFunc(got, func(x, y msg) int { return strings.Compare(x.channel, y.channel) })
	want := []msg{{"a", "a"}, {"a_db", "a_db"}}
	if !slices.Equal(got, want) {
		t.Fatalf("B received %v, want %v", got, want)
	}
}

// NATS goes away: publishes fail promptly with ErrUnavailable and the
// stats say so. NATS comes back on the same port: the nodes reconnect on
// their own, their subscriptions (including one made during the outage)
// are restored and traffic flows again.
func TestOutageAndRecovery(t *testing.T) {
	t.Parallel()
	s1 := startServer(t, 0)
	port := serverPort(t, s1)
	var ra, rb sink
	a := newNode(t, nodeURL(port), ra.handle)
	b := newNode(t, nodeURL(port), rb.handle)
	if err := b.Subscribe("before"); err != nil {
		t.Fatal(err)
	}
	if err := a.Publish(context.Background(), "before", []byte("1")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "first message", func() bool { return rb.len() == 1 })

	s1.Shutdown()
	s1.WaitForShutdown()

	// Right after the shutdown a node may not have noticed yet: the publish
	// must still fail, bounded by ctx.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	start := time.Now()
	err := a.Publish(ctx, "before", []byte("lost"))
	cancel()
	if !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("Publish during outage = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Fatalf("Publish took %v, not bounded by its 1s context", d)
	}
	waitFor(t, 5*time.Second, "both nodes to see the outage", func() bool {
		return !a.Stats().Connected && !b.Stats().Connected
	})
	// Once the outage is known, failing takes no round trip; a context
	// without deadline is fine.
	start = time.Now()
	if err := a.Publish(context.Background(), "before", []byte("lost")); !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("Publish during known outage = %v", err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("Publish during known outage took %v", d)
	}
	// Interest registered during the outage is sent on reconnect.
	start = time.Now()
	if err := b.Subscribe("during"); err != nil {
		t.Fatalf("Subscribe during outage = %v", err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("Subscribe during outage took %v", d)
	}
	time.Sleep(100 * time.Millisecond) // let the outage last a measurable while
	if st := a.Stats(); st.PublishErrors != 2 || st.Published != 1 || st.Disconnected <= 0 {
		t.Fatalf("A stats during outage = %+v", st)
	}

	s2 := startServer(t, port)
	waitFor(t, 10*time.Second, "both nodes to reconnect", func() bool {
		sa, sb := a.Stats(), b.Stats()
		return sa.Connected && sb.Connected && sa.Reconnects == 1 && sb.Reconnects == 1
	})
	want := []string{"latch.ch.before", "latch.ch.during"}
	waitFor(t, 5*time.Second, "subscriptions restored on the new server", func() bool {
		return slices.Equal(latchSubjects(t, s2), want)
	})
	for _, ch := range []string{"before", "during"} {
		if err := a.Publish(context.Background(), ch, []byte("2")); err != nil {
			t.Fatalf("Publish(%s) after recovery: %v", ch, err)
		}
	}
	waitFor(t, 5*time.Second, "traffic after recovery", func() bool { return rb.len() == 3 })
	got := rb.all()
	want2 := []msg{{"before", "1"}, {"before", "2"}, {"during", "2"}}
	slices.SortFunc(got, func(x, y msg) int { return strings.Compare(x.channel+x.payload, y.channel+y.payload) })
	if !slices.Equal(got, want2) {
		t.Fatalf("B received %v, want %v (nothing published during the outage)", got, want2)
	}
	sa := a.Stats()
	if sa.Disconnected < 100*time.Millisecond || sa.Published != 3 || sa.PublishErrors != 2 {
		t.Fatalf("A stats after recovery = %+v", sa)
	}
	// Disconnected stops growing once connected again.
	time.Sleep(50 * time.Millisecond)
	if d := a.Stats().Disconnected; d != sa.Disconnected {
		t.Fatalf("Disconnected grew while connected: %v → %v", sa.Disconnected, d)
	}
}

func TestCloseAndErrors(t *testing.T) {
	t.Parallel()
	s := startServer(t, 0)

	if _, err := New(nil, func(string, []byte) {}); err == nil {
		t.Fatal("New without URLs succeeded")
	}
	if _, err := New([]string{s.ClientURL()}, nil); err == nil {
		t.Fatal("New with nil handler succeeded")
	}
	// Nothing listens on a closed server's port.
	dead := startServer(t, 0)
	deadURL := dead.ClientURL()
	dead.Shutdown()
	dead.WaitForShutdown()
	if _, err := New([]string{deadURL}, func(string, []byte) {}); !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("New with no server = %v, want ErrUnavailable", err)
	}

	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	var calls sync.WaitGroup
	calls.Add(1)
	n, err := New([]string{s.ClientURL()}, func(string, []byte) {
		defer calls.Done()
		entered <- struct{}{}
		<-release
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Subscribe("c"); err != nil {
		t.Fatal(err)
	}
	if err := n.Publish(context.Background(), "c", []byte("x")); err != nil {
		t.Fatal(err)
	}
	<-entered
	closed := make(chan error, 1)
	go func() { closed <- n.Close() }()
	select {
	case <-closed:
		t.Fatal("Close returned while the Handler was running")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	calls.Wait()
	if err := n.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := n.Publish(context.Background(), "c", nil); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("Publish after Close = %v", err)
	}
	if err := n.Subscribe("d"); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("Subscribe after Close = %v", err)
	}
	if err := n.Unsubscribe("c"); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("Unsubscribe after Close = %v", err)
	}
	if st := n.Stats(); st.Connected || st.Received != 1 {
		t.Fatalf("stats after Close = %+v", st)
	}

	// A payload over the server's limit is an error, not unavailability.
	m := newNode(t, s.ClientURL(), func(string, []byte) {})
	big := make([]byte, 2<<20) // default max_payload is 1 MiB
	if err := m.Publish(context.Background(), "c", big); err == nil || errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("oversized Publish = %v", err)
	}
	// A cancelled context fails before anything is sent.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := m.Publish(ctx, "c", nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Publish(cancelled) = %v", err)
	}
}

// A Handler that falls behind loses messages beyond the pending limits,
// and Stats.Dropped says how many.
func TestSlowHandlerDropsCounted(t *testing.T) {
	t.Parallel()
	s := startServer(t, 0)
	a := newNode(t, s.ClientURL(), func(string, []byte) {})
	release := make(chan struct{})
	var slowErrs atomic.Int64
	var r sink
	b := newNode(t, s.ClientURL(), func(ch string, p []byte) {
		<-release
		r.handle(ch, p)
	}, WithPendingLimits(2, -1), WithNATSOptions(natsgo.ErrorHandler(func(_ *natsgo.Conn, _ *natsgo.Subscription, err error) {
		if errors.Is(err, natsgo.ErrSlowConsumer) {
			slowErrs.Add(1)
		}
	})))
	if err := b.Subscribe("c"); err != nil {
		t.Fatal(err)
	}
	const total = 10
	for i := range total {
		if err := a.Publish(context.Background(), "c", []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	// Release the handler only once every message has arrived: at most one
	// in the handler and two pending, the rest dropped. Releasing at the
	// first drop let late messages in.
	waitFor(t, 5*time.Second, "drops to be counted", func() bool { return b.Stats().Dropped >= total-3 })
	close(release)
	waitFor(t, 5*time.Second, "every message received or dropped", func() bool {
		st := b.Stats()
		return st.Received+st.Dropped == total
	})
	st := b.Stats()
	if st.Received < 2 || st.Received > 3 || uint64(r.len()) != st.Received {
		t.Fatalf("stats = %+v, handler saw %d; want 2 or 3 received (limit 2 pending + 1 in the Handler)", st, r.len())
	}
	if slowErrs.Load() == 0 {
		t.Fatal("the NATS error handler did not hear of the slow consumer")
	}
	// Counts survive Unsubscribe.
	if err := b.Unsubscribe("c"); err != nil {
		t.Fatal(err)
	}
	if got := b.Stats().Dropped; got != st.Dropped {
		t.Fatalf("Dropped after Unsubscribe = %d, want %d", got, st.Dropped)
	}
}
