package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchws/latch/broker"
	"github.com/latchws/latch/server"
	"github.com/latchws/latch/websocket"
)

// fakeBroker is the in-process broker with switchable failures and a log of
// the interest calls, standing in for NATS.
type fakeBroker struct {
	*broker.Memory
	h broker.Handler

	mu     sync.Mutex
	pubErr error    // returned by Publish when set; guarded by mu
	subErr error    // returned by Subscribe when set; guarded by mu
	calls  []string // "+ch" / "-ch"; guarded by mu
	closed bool     // guarded by mu
}

func newFakeBroker() (*fakeBroker, server.BrokerFunc) {
	f := &fakeBroker{}
	return f, func(h broker.Handler) (broker.Broker, error) {
		f.h = h
		f.Memory = broker.NewMemory(h)
		return f, nil
	}
}

func (f *fakeBroker) fail(pub, sub error) {
	f.mu.Lock()
	f.pubErr, f.subErr = pub, sub
	f.mu.Unlock()
}

func (f *fakeBroker) Publish(ctx context.Context, ch string, p []byte) error {
	f.mu.Lock()
	err := f.pubErr
	f.mu.Unlock()
	if err != nil {
		return err
	}
	return f.Memory.Publish(ctx, ch, p)
}

func (f *fakeBroker) Subscribe(ch string) error {
	f.mu.Lock()
	err := f.subErr
	if err == nil {
		f.calls = append(f.calls, "+"+ch)
	}
	f.mu.Unlock()
	if err != nil {
		return err
	}
	return f.Memory.Subscribe(ch)
}

func (f *fakeBroker) Unsubscribe(ch string) error {
	f.mu.Lock()
	f.calls = append(f.calls, "-"+ch)
	f.mu.Unlock()
	return f.Memory.Unsubscribe(ch)
}

func (f *fakeBroker) Close() error {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	return f.Memory.Close()
}

func (f *fakeBroker) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// The broker holds a subscription exactly while the node has local
// subscribers: first subscribe, last unsubscribe or disconnect.
func TestBrokerInterest(t *testing.T) {
	t.Parallel()
	f, bf := newFakeBroker()
	_, addr := serve(t, server.Config{Broker: bf})
	a, b := connect(t, addr), connect(t, addr)
	a.do(`{"op":"subscribe","channel":"x","id":"1"}`, `{"type":"ack","id":"1"}`)
	b.do(`{"op":"subscribe","channel":"x","id":"2"}`, `{"type":"ack","id":"2"}`)
	a.do(`{"op":"subscribe","channel":"x","id":"3"}`, `{"type":"ack","id":"3"}`) // again: no new interest
	b.do(`{"op":"subscribe","channel":"y","id":"4"}`, `{"type":"ack","id":"4"}`)
	// Every node of a cluster holds the control channel (the server
	// API's commands) from the start.
	if got := fmt.Sprint(f.log()); got != "[+_latch.control +x +y]" {
		t.Fatalf("broker calls %s, want [+_latch.control +x +y]", got)
	}
	metrics := get(t, "http://"+addr+"/metrics", 200)
	if !strings.Contains(metrics, "latch_broker_channels 3\n") {
		t.Errorf("metrics lack latch_broker_channels 3")
	}
	a.do(`{"op":"unsubscribe","channel":"x","id":"5"}`, `{"type":"ack","id":"5"}`)
	if got := fmt.Sprint(f.log()); got != "[+_latch.control +x +y]" {
		t.Fatalf("broker calls %s after one of two left x", got)
	}
	// The last subscriber disconnects: its channels are released.
	_ = b.conn.Close()
	waitFor(t, func() bool { return len(f.log()) == 5 })
	got := f.log()
	slices.Sort(got[3:])
	if fmt.Sprint(got) != "[+_latch.control +x +y -x -y]" {
		t.Fatalf("broker calls %v, want [+_latch.control +x +y -x -y]", got)
	}
}

// A message the broker brings from another node reaches the local
// subscribers byte for byte.
func TestBrokerDeliversRemote(t *testing.T) {
	t.Parallel()
	f, bf := newFakeBroker()
	_, addr := serve(t, server.Config{Broker: bf})
	c := connect(t, addr)
	c.do(`{"op":"subscribe","channel":"r","id":"1"}`, `{"type":"ack","id":"1"}`)
	remote := `{"type":"message","channel":"r","data":{"b": 1, "a":2}}`
	f.h("r", []byte(remote))
	c.expect(remote)
	c.quiet()
}

// A broker outage: publishes get "unavailable" (not abuse), nothing is
// delivered, and publishing works again once the broker is back.
func TestBrokerUnavailable(t *testing.T) {
	t.Parallel()
	f, bf := newFakeBroker()
	_, addr := serve(t, server.Config{Broker: bf})
	sub, pub := connect(t, addr), connect(t, addr)
	sub.do(`{"op":"subscribe","channel":"c","id":"s"}`, `{"type":"ack","id":"s"}`)

	down := fmt.Errorf("%w: not connected to NATS", broker.ErrUnavailable)
	f.fail(down, down)
	for i := range 15 { // beyond the abuse limit of 10
		pub.do(fmt.Sprintf(`{"op":"publish","channel":"c","data":%d,"id":"p%d"}`, i, i),
			fmt.Sprintf(`{"type":"error","id":"p%d","code":"unavailable","message":"message broker unavailable, try again"}`, i))
	}
	pub.do(`{"op":"subscribe","channel":"d","id":"d"}`,
		`{"type":"error","id":"d","code":"unavailable","message":"message broker unavailable, try again"}`)
	sub.quiet() // nothing was delivered

	f.fail(nil, nil)
	pub.do(`{"op":"publish","channel":"c","data":"back","id":"ok"}`, `{"type":"ack","id":"ok"}`)
	sub.expect(`{"type":"message","channel":"c","data":"back"}`)
	pub.do(`{"op":"subscribe","channel":"d","id":"d2"}`, `{"type":"ack","id":"d2"}`)

	// A failure that is not an outage is reported the same way, and logged.
	f.fail(errors.New("broker/nats: nats: maximum payload exceeded"), nil)
	pub.do(`{"op":"publish","channel":"c","data":"big","id":"big"}`,
		`{"type":"error","id":"big","code":"unavailable","message":"message broker refused the publish"}`)
	sub.quiet()

	metrics := get(t, "http://"+addr+"/metrics", 200)
	for _, want := range []string{
		`latch_protocol_errors_total{code="unavailable"} 17`,
		"latch_publishes_total 1\n",
		"latch_broker_published_total 1\n",
		"latch_broker_received_total 1\n",
		"latch_broker_connected 1\n",
		"latch_broker_reconnects_total 0\n",
		"latch_broker_disconnected_seconds_total 0\n",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// Shutdown closes the broker after the clients; New fails on a broker
// that cannot be built.
func TestBrokerLifecycle(t *testing.T) {
	t.Parallel()
	f, bf := newFakeBroker()
	srv, err := server.New(server.Config{Broker: bf, LogOutput: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if srv.Broker() != f {
		t.Fatal("Broker() is not the broker BrokerFunc built")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	f.mu.Lock()
	closed := f.closed
	f.mu.Unlock()
	if !closed {
		t.Fatal("Shutdown left the broker open")
	}

	boom := errors.New("boom")
	_, err = server.New(server.Config{LogOutput: io.Discard, Broker: func(broker.Handler) (broker.Broker, error) { return nil, boom }})
	if !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "server: broker: ") {
		t.Fatalf("New with a failing broker = %v", err)
	}
	_, err = server.New(server.Config{LogOutput: io.Discard, Broker: func(broker.Handler) (broker.Broker, error) { return nil, nil }})
	if err == nil {
		t.Fatal("New accepted a nil broker")
	}
	_, err = server.New(server.Config{LogOutput: io.Discard, PublishTimeout: -time.Second})
	if err == nil {
		t.Fatal("New accepted a negative publish timeout")
	}
}

// A publish stuck in the broker ends when the server shuts down, with an
// error to the client, instead of holding up the shutdown.
func TestBrokerPublishEndsOnShutdown(t *testing.T) {
	t.Parallel()
	entered := make(chan struct{}, 1)
	bf := func(h broker.Handler) (broker.Broker, error) {
		return &stuckBroker{Memory: broker.NewMemory(h), entered: entered}, nil
	}
	srv, addr := serve(t, server.Config{Broker: bf, PublishTimeout: time.Minute})
	c := connect(t, addr)
	c.send(`{"op":"publish","channel":"c","data":1,"id":"p"}`)
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("publish did not reach the broker")
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- srv.Shutdown(ctx)
	}()
	// The error races with the 1001 the hub sends at once; an answer
	// that lost the race is not sent, as docs/protocol.md says. Never an
	// ack.
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for range 2 {
		_, p, err := c.conn.ReadMessage()
		if err != nil {
			if code := websocket.CloseStatus(err); code != websocket.CloseGoingAway {
				t.Fatalf("connection ended with %v, want 1001", err)
			}
			break
		}
		if want := `{"type":"error","id":"p","code":"unavailable","message":"server is shutting down"}`; string(p) != want {
			t.Fatalf("got %s, want %s or close 1001", p, want)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// stuckBroker's Publish waits for its context, like NATS without a PONG.
type stuckBroker struct {
	*broker.Memory
	entered chan struct{}
}

func (s *stuckBroker) Publish(ctx context.Context, ch string, p []byte) error {
	s.entered <- struct{}{}
	<-ctx.Done()
	return fmt.Errorf("%w: %w", broker.ErrUnavailable, ctx.Err())
}
