package nats

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchws/latch/broker"
	latch "github.com/latchws/latch/server"
	"github.com/latchws/latch/websocket"
	natsserver "github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
)

// startCluster runs two embedded NATS servers on 127.0.0.1 joined by a
// route, and waits until each sees the other. Cleanup shuts them down.
func startCluster(t testing.TB) (*natsserver.Server, *natsserver.Server) {
	t.Helper()
	start := func(name string, routes string) *natsserver.Server {
		o := &natsserver.Options{
			ServerName: name, Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
			Cluster: natsserver.ClusterOpts{Name: "latch-test", Host: "127.0.0.1", Port: -1},
		}
		if routes != "" {
			o.Routes = natsserver.RoutesFromStr(routes)
		}
		s, err := natsserver.NewServer(o)
		if err != nil {
			t.Fatalf("nats-server %s: %v", name, err)
		}
		go s.Start()
		if !s.ReadyForConnections(5 * time.Second) {
			s.Shutdown()
			t.Fatalf("nats-server %s not ready in 5s", name)
		}
		t.Cleanup(func() {
			s.Shutdown()
			s.WaitForShutdown()
		})
		return s
	}
	s1 := start("n1", "")
	s2 := start("n2", fmt.Sprintf("nats://%s", s1.ClusterAddr()))
	deadline := time.Now().Add(10 * time.Second)
	for s1.NumRoutes() == 0 || s2.NumRoutes() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("NATS route not up in 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return s1, s2
}

// latchNode is a latch server on a loopback port with a NATS broker.
type latchNode struct {
	srv  *latch.Server
	addr string
}

// startNode builds a latch server whose broker dials urls in that order
// (no randomising, so the test knows which NATS server each node uses).
// Cleanup shuts it down, which closes the broker.
func startNode(t testing.TB, urls []string, opts ...Option) *latchNode {
	t.Helper()
	return startLatch(t, func(h broker.Handler) (broker.Broker, error) {
		return New(urls, h, append([]Option{
			WithReconnectDelay(20*time.Millisecond, 100*time.Millisecond),
			WithTimeout(2 * time.Second),
			WithNATSOptions(natsgo.DontRandomize())}, opts...)...)
	})
}

// startLatch runs a latch server on a loopback port; bf nil means the
// in-process broker.
func startLatch(t testing.TB, bf latch.BrokerFunc) *latchNode {
	t.Helper()
	srv, err := latch.New(latch.Config{
		Addr:      "127.0.0.1:0",
		LogOutput: io.Discard,
		SendQueue: 4096,
		Broker:    bf,
	})
	if err != nil {
		t.Fatalf("latch node: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve = %v", err)
		}
	})
	return &latchNode{srv: srv, addr: ln.Addr().String()}
}

// lockedBuffer is a bytes.Buffer safe for the logger's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// wsClient is a /ws client whose messages a goroutine reads into in.
type wsClient struct {
	conn *websocket.Conn
	in   chan []byte   // closed when the connection ends
	done chan struct{} // closed when the reader has returned
	err  error         // why the connection ended; read after done
}

func dialNode(t testing.TB, n *latchNode) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d := &websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	conn, _, err := d.DialContext(ctx, "ws://"+n.addr+"/ws", nil)
	if err != nil {
		t.Fatalf("dial %s: %v", n.addr, err)
	}
	c := &wsClient{conn: conn, in: make(chan []byte, 1<<14), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		defer close(c.in)
		for {
			_, p, err := conn.ReadMessage()
			if err != nil {
				c.err = err
				return
			}
			c.in <- p
		}
	}()
	t.Cleanup(func() {
		_ = conn.CloseNow()
		<-c.done
	})
	if m := c.next(t); m.Type != "welcome" {
		t.Fatalf("first message %+v, want welcome", m)
	}
	return c
}

// wire is every server→client message shape.
type wire struct {
	Type    string `json:"type"`
	ID      string `json:"id"`
	Code    string `json:"code"`
	Channel string `json:"channel"`
	Data    struct {
		P int   `json:"p"`
		N int   `json:"n"`
		T int64 `json:"t"` // send time, Unix ns (benchmark)
	} `json:"data"`
}

func (c *wsClient) send(t testing.TB, msg string) {
	t.Helper()
	if err := c.conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// next returns the next message, failing after 10 s or if the connection
// ended.
func (c *wsClient) next(t testing.TB) wire {
	t.Helper()
	select {
	case p, ok := <-c.in:
		if !ok {
			<-c.done
			t.Fatalf("connection ended: %v", c.err)
		}
		var m wire
		if err := json.Unmarshal(p, &m); err != nil {
			t.Fatalf("bad message %q: %v", p, err)
		}
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message in 10s")
	}
	return wire{}
}

// publish sends one publish and returns its answer: "ack" or an error code.
func (c *wsClient) publish(t testing.TB, p, n int) string {
	t.Helper()
	c.send(t, fmt.Sprintf(`{"op":"publish","channel":"room","data":{"p":%d,"n":%d},"id":"%d"}`, p, n, n))
	return c.answer(t, n)
}

func (c *wsClient) answer(t testing.TB, n int) string {
	t.Helper()
	a, err := c.tryAnswer(n)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// tryPublish is publish for goroutines other than the test's.
func (c *wsClient) tryPublish(p, n int) (string, error) {
	msg := fmt.Sprintf(`{"op":"publish","channel":"room","data":{"p":%d,"n":%d},"id":"%d"}`, p, n, n)
	if err := c.conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		return "", fmt.Errorf("write: %w", err)
	}
	return c.tryAnswer(n)
}

// tryAnswer reads the answer to request n: "ack" or an error code.
func (c *wsClient) tryAnswer(n int) (string, error) {
	var p []byte
	select {
	case msg, ok := <-c.in:
		if !ok {
			<-c.done
			return "", fmt.Errorf("connection ended: %w", c.err)
		}
		p = msg
	case <-time.After(10 * time.Second):
		return "", fmt.Errorf("no answer to %d in 10s", n)
	}
	var m wire
	if err := json.Unmarshal(p, &m); err != nil {
		return "", fmt.Errorf("bad message %q: %w", p, err)
	}
	switch {
	case m.ID != fmt.Sprint(n):
		return "", fmt.Errorf("answer %s, want one for id %d", p, n)
	case m.Type == "ack":
		return "ack", nil
	case m.Type == "error":
		return m.Code, nil
	}
	return "", fmt.Errorf("answer %s is neither ack nor error", p)
}

// received tracks what one subscriber got, per publisher, in order.
type received struct {
	seqs map[int][]int // publisher → message numbers in arrival order
}

// drain moves the messages waiting in c into r without blocking.
func (r *received) drain(t testing.TB, c *wsClient) {
	t.Helper()
	for {
		select {
		case p, ok := <-c.in:
			if !ok {
				<-c.done
				t.Fatalf("subscriber connection ended: %v", c.err)
			}
			var m wire
			if err := json.Unmarshal(p, &m); err != nil || m.Type != "message" || m.Channel != "room" {
				t.Fatalf("subscriber got %q, want a message on room", p)
			}
			r.seqs[m.Data.P] = append(r.seqs[m.Data.P], m.Data.N)
		default:
			return
		}
	}
}

func (r *received) has(p, n int) bool {
	for _, x := range r.seqs[p] {
		if x == n {
			return true
		}
	}
	return false
}

// Three latch nodes on a two-server NATS cluster; clients on every node.
// Publishes from any node reach every subscriber in order per publisher.
// Then the NATS server two nodes use dies: the WebSockets stay open, those
// nodes move to the other server, every publish meanwhile is answered (ack
// or "unavailable"), and traffic resumes.
func TestClusterFailover(t *testing.T) {
	s1, s2 := startCluster(t)
	u1, u2 := s1.ClientURL(), s2.ClientURL()
	var log0 lockedBuffer
	nodes := []*latchNode{
		startNode(t, []string{u1, u2}, WithLogger(slog.New(slog.NewTextHandler(&log0, nil)))),
		startNode(t, []string{u1, u2}),
		startNode(t, []string{u2, u1}),
	}
	var subs []*wsClient
	var pubs []*wsClient
	for _, n := range nodes {
		for range 2 {
			c := dialNode(t, n)
			c.send(t, `{"op":"subscribe","channel":"room","id":"0"}`)
			if a := c.answer(t, 0); a != "ack" {
				t.Fatalf("subscribe: %s", a)
			}
			subs = append(subs, c)
		}
		pubs = append(pubs, dialNode(t, n))
	}
	recv := make([]*received, len(subs))
	for i := range recv {
		recv[i] = &received{seqs: make(map[int][]int)}
	}
	// Interest crosses the route asynchronously: wait until each server
	// has its own nodes' subscriptions plus the one the route sends for
	// the other server's (one per subject, however many nodes).
	interest := func(s *natsserver.Server) int { return s.GlobalAccount().Interest("latch.ch.room") }
	waitFor(t, 10*time.Second, "subscriptions on both servers", func() bool {
		return interest(s1) >= 3 && interest(s2) >= 2
	})

	// checkOrder: per subscriber and publisher, strictly increasing
	// numbers: order kept, no duplicates.
	checkOrder := func(phase string) {
		t.Helper()
		for i, r := range recv {
			for p, seq := range r.seqs {
				for k := 1; k < len(seq); k++ {
					if seq[k] <= seq[k-1] {
						t.Fatalf("%s: subscriber %d got publisher %d's %d after %d", phase, i, p, seq[k], seq[k-1])
					}
				}
			}
		}
	}
	// expectAll waits until every subscriber has every (publisher, n) in want.
	expectAll := func(phase string, who []int, want map[int][]int) {
		t.Helper()
		waitFor(t, 15*time.Second, phase+": all messages delivered", func() bool {
			for _, i := range who {
				recv[i].drain(t, subs[i])
				for p, ns := range want {
					for _, n := range ns {
						if !recv[i].has(p, n) {
							return false
						}
					}
				}
			}
			return true
		})
		checkOrder(phase)
	}
	everyone := []int{0, 1, 2, 3, 4, 5}

	// Phase 1: 40 pipelined publishes from each node; all acked, all
	// delivered everywhere.
	const per = 40
	want := make(map[int][]int)
	for p, c := range pubs {
		for n := 1; n <= per; n++ {
			c.send(t, fmt.Sprintf(`{"op":"publish","channel":"room","data":{"p":%d,"n":%d},"id":"%d"}`, p, n, n))
		}
	}
	for p, c := range pubs {
		for n := 1; n <= per; n++ {
			if a := c.answer(t, n); a != "ack" {
				t.Fatalf("phase 1: publisher %d message %d: %s", p, n, a)
			}
			want[p] = append(want[p], n)
		}
	}
	expectAll("phase 1", everyone, want)
	for i, r := range recv {
		for p := range pubs {
			if len(r.seqs[p]) != per {
				t.Fatalf("phase 1: subscriber %d got %d messages from publisher %d, want %d", i, len(r.seqs[p]), p, per)
			}
		}
	}

	// Phase 2: publishers run request by request while s1 dies.
	brokers := make([]broker.Broker, len(nodes))
	for i, n := range nodes {
		brokers[i] = n.srv.Broker()
	}
	type result struct {
		acked      []int // acked, sent after s1 was fully down
		errs, acks int
	}
	results := make([]result, len(pubs))
	downFlag := make(chan struct{})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for p, c := range pubs {
		wg.Go(func() {
			n := per
			for i := 0; i < 5000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				down := false
				select {
				case <-downFlag:
					down = true
				default:
				}
				n++
				a, err := c.tryPublish(p, n)
				if err != nil {
					t.Errorf("publisher %d message %d: %v", p, n, err)
					return
				}
				switch a {
				case "ack":
					results[p].acks++
					if down {
						results[p].acked = append(results[p].acked, n)
					}
				case "unavailable":
					results[p].errs++
				default:
					t.Errorf("publisher %d message %d: answer %q, want ack or unavailable", p, n, a)
					return
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	s1.Shutdown()
	s1.WaitForShutdown()
	close(downFlag)
	// Nodes 0 and 1 reconnect to s2; node 2 never lost its server.
	waitFor(t, 15*time.Second, "nodes 0 and 1 to reconnect", func() bool {
		a, b := brokers[0].Stats(), brokers[1].Stats()
		return a.Connected && a.Reconnects >= 1 && b.Connected && b.Reconnects >= 1
	})
	time.Sleep(100 * time.Millisecond) // publishes after the reconnect, too
	close(stop)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for _, want := range []string{"NATS disconnected", "NATS reconnected"} {
		if !strings.Contains(log0.String(), want) {
			t.Errorf("node 0 did not log %q; log:\n%s", want, log0.String())
		}
	}
	if st := brokers[2].Stats(); st.Reconnects != 0 || !st.Connected {
		t.Fatalf("node 2 stats %+v: it should have kept its connection to s2", st)
	}
	for p, r := range results {
		t.Logf("during the outage, publisher %d: %d acked, %d unavailable", p, r.acks, r.errs)
		if r.acks == 0 {
			t.Errorf("publisher %d: no publish acked during or after the outage", p)
		}
	}
	// Every publish acked by s2 after s1 was gone reached node 2's
	// subscribers, which were on s2 all along: an ack is never a lost
	// message. (Nodes 0 and 1 may miss what s2 accepted before they
	// re-subscribed there: at most once across an outage.)
	gap := make(map[int][]int)
	for p, r := range results {
		gap[p] = r.acked
	}
	expectAll("phase 2", []int{4, 5}, gap)
	for i := range subs {
		recv[i].drain(t, subs[i])
	}
	checkOrder("phase 2")

	// Phase 3: all nodes on s2; traffic resumes everywhere, on the same
	// WebSockets.
	waitFor(t, 10*time.Second, "three subscriptions on s2", func() bool { return len(latchSubjects(t, s2)) == 3 })
	start := per + 5000 + 1
	want = make(map[int][]int)
	for p, c := range pubs {
		for n := start; n < start+per; n++ {
			if a := c.publish(t, p, n); a != "ack" {
				t.Fatalf("phase 3: publisher %d message %d: %s", p, n, a)
			}
			want[p] = append(want[p], n)
		}
	}
	expectAll("phase 3", everyone, want)
	for i, r := range recv {
		for p := range pubs {
			seq := r.seqs[p]
			if tail := seq[len(seq)-per:]; tail[0] != start || tail[per-1] != start+per-1 {
				t.Fatalf("phase 3: subscriber %d, publisher %d: last %d messages %v", i, p, per, tail)
			}
		}
	}
	for i, c := range append(subs, pubs...) {
		select {
		case <-c.done:
			t.Fatalf("client %d lost its WebSocket: %v", i, c.err)
		default:
		}
	}
	var sumErr uint64
	for _, b := range brokers {
		sumErr += b.Stats().PublishErrors
	}
	var sumUnavail int
	for _, r := range results {
		sumUnavail += r.errs
	}
	if sumErr != uint64(sumUnavail) {
		t.Errorf("brokers counted %d publish errors, clients got %d unavailable", sumErr, sumUnavail)
	}
}
