package nats

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchws/latch/broker"
	"github.com/nats-io/nats-server/v2/server"
)

// startServer runs an embedded NATS server on 127.0.0.1 (port 0: any free
// port) and shuts it down at the end of the test.
func startServer(t testing.TB, port int) *server.Server {
	t.Helper()
	if port == 0 {
		port = -1
	}
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatalf("nats-server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(5 * time.Second) {
		s.Shutdown()
		t.Fatal("nats-server not ready in 5s")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

func serverPort(t *testing.T, s *server.Server) int {
	t.Helper()
	return s.Addr().(*net.TCPAddr).Port
}

// latchSubjects lists the latch subjects the server holds subscriptions
// for, one entry per subscription, sorted; not the control channel that
// every latch node holds (the server API's commands, server/control.go).
func latchSubjects(t *testing.T, s *server.Server) []string {
	t.Helper()
	control, _ := Subject("_latch.control")
	sz, err := s.Subsz(&server.SubszOptions{Subscriptions: true, Limit: 10000})
	if err != nil {
		t.Fatalf("Subsz: %v", err)
	}
	var subs []string
	for _, d := range sz.Subs {
		if strings.HasPrefix(d.Subject, "latch.") && d.Subject != control {
			subs = append(subs, d.Subject)
		}
	}
	slices.Sort(subs)
	return subs
}

// waitFor polls cond every 10ms for at most d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type msg struct{ channel, payload string }

// sink collects what a node's Handler receives.
type sink struct {
	mu  sync.Mutex
	got []msg
}

func (s *sink) handle(channel string, payload []byte) {
	s.mu.Lock()
	s.got = append(s.got, msg{channel, string(payload)})
	s.mu.Unlock()
}

func (s *sink) all() []msg {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

func (s *sink) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

// newNode connects a Broker to url with fast reconnects, closed at the end
// of the test.
func newNode(t *testing.T, url string, h broker.Handler, opts ...Option) *Broker {
	t.Helper()
	opts = append([]Option{WithReconnectDelay(20*time.Millisecond, 100*time.Millisecond), WithTimeout(2 * time.Second)}, opts...)
	b, err := New([]string{url}, h, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

func nodeURL(port int) string { return fmt.Sprintf("nats://127.0.0.1:%d", port) }
