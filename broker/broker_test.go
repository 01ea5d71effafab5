package broker

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestValidChannel(t *testing.T) {
	t.Parallel()
	good := []string{"a", "chat", "A-Z_a.z:09", "chat:inbox#ann", strings.Repeat("x", MaxChannelLen)}
	bad := []string{"", " ", "a b", "a*", "a>", "a\tb", "a\n", "é", "a/b", "a\x00", strings.Repeat("x", MaxChannelLen+1)}
	for _, n := range good {
		if !ValidChannel(n) || CheckChannel(n) != nil {
			t.Errorf("ValidChannel(%q) = false, want true", n)
		}
	}
	for _, n := range bad {
		if ValidChannel(n) {
			t.Errorf("ValidChannel(%q) = true, want false", n)
		}
		if err := CheckChannel(n); !errors.Is(err, ErrInvalidChannel) {
			t.Errorf("CheckChannel(%q) = %v, want ErrInvalidChannel", n, err)
		}
	}
}

type delivery struct {
	channel string
	payload string
}

type recorder struct {
	mu  sync.Mutex
	got []delivery
}

func (r *recorder) handle(channel string, payload []byte) {
	r.mu.Lock()
	r.got = append(r.got, delivery{channel, string(payload)})
	r.mu.Unlock()
}

func (r *recorder) all() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

func TestMemoryDelivery(t *testing.T) {
	t.Parallel()
	var r recorder
	m := NewMemory(r.handle)
	ctx := context.Background()

	if err := m.Publish(ctx, "news", []byte("before")); err != nil {
		t.Fatalf("Publish without interest: %v", err)
	}
	if got := r.all(); len(got) != 0 {
		t.Fatalf("delivered without interest: %v", got)
	}
	for range 2 { // idempotent
		if err := m.Subscribe("news"); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		if err := m.Publish(ctx, "news", []byte{'0' + byte(i)}); err != nil {
			t.Fatal(err)
		}
		// Synchronous: delivered before Publish returns.
		if got := r.all(); len(got) != i+1 || got[i] != (delivery{"news", string(rune('0' + i))}) {
			t.Fatalf("after publish %d: %v", i, got)
		}
	}
	if err := m.Publish(ctx, "other", []byte("x")); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := m.Unsubscribe("news"); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Publish(ctx, "news", []byte("after")); err != nil {
		t.Fatal(err)
	}
	if got := r.all(); len(got) != 3 {
		t.Fatalf("deliveries = %v, want 3", got)
	}
	st := m.Stats()
	if st.Published != 6 || st.Received != 3 || st.PublishErrors != 0 || !st.Connected {
		t.Fatalf("stats = %+v", st)
	}
}

func TestMemoryErrors(t *testing.T) {
	t.Parallel()
	var r recorder
	m := NewMemory(r.handle)
	if err := m.Subscribe("bad name"); !errors.Is(err, ErrInvalidChannel) {
		t.Fatalf("Subscribe(bad) = %v", err)
	}
	if err := m.Unsubscribe("a>"); !errors.Is(err, ErrInvalidChannel) {
		t.Fatalf("Unsubscribe(bad) = %v", err)
	}
	if err := m.Publish(context.Background(), "*", nil); !errors.Is(err, ErrInvalidChannel) {
		t.Fatalf("Publish(bad) = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := m.Subscribe("c"); err != nil {
		t.Fatal(err)
	}
	if err := m.Publish(ctx, "c", nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Publish(cancelled) = %v", err)
	}
	if got := r.all(); len(got) != 0 {
		t.Fatalf("delivered on error: %v", got)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := m.Publish(context.Background(), "c", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish after Close = %v", err)
	}
	if err := m.Subscribe("c"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Subscribe after Close = %v", err)
	}
	if err := m.Unsubscribe("c"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Unsubscribe after Close = %v", err)
	}
	st := m.Stats()
	if st.PublishErrors != 3 || st.Published != 0 || st.Connected {
		t.Fatalf("stats = %+v", st)
	}
}

// Close waits for a running Handler and none runs afterwards.
func TestMemoryCloseWaitsForHandler(t *testing.T) {
	t.Parallel()
	entered := make(chan struct{})
	release := make(chan struct{})
	m := NewMemory(func(string, []byte) {
		close(entered)
		<-release
	})
	if err := m.Subscribe("c"); err != nil {
		t.Fatal(err)
	}
	pubDone := make(chan error, 1)
	go func() { pubDone <- m.Publish(context.Background(), "c", []byte("x")) }()
	<-entered
	closed := make(chan struct{})
	go func() { m.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned while the Handler was running")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return after the Handler did")
	}
	if err := <-pubDone; err != nil {
		t.Fatalf("Publish = %v", err)
	}
}

// The Handler may call back into the broker without deadlock.
func TestMemoryReentrantHandler(t *testing.T) {
	t.Parallel()
	var m *Memory
	var r recorder
	m = NewMemory(func(ch string, p []byte) {
		r.handle(ch, p)
		if ch == "a" {
			if err := m.Subscribe("b"); err != nil {
				t.Error(err)
			}
			if err := m.Publish(context.Background(), "b", p); err != nil {
				t.Error(err)
			}
		}
	})
	if err := m.Subscribe("a"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- m.Publish(context.Background(), "a", []byte("x")) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("re-entrant Publish deadlocked")
	}
	want := []delivery{{"a", "x"}, {"b", "x"}}
	if got := r.all(); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("deliveries = %v, want %v", got, want)
	}
}
