package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
)

// fakeBroker records interest transitions and fails Subscribe on demand.
type fakeBroker struct {
	mu      sync.Mutex
	subs    map[string]bool
	calls   []string
	failSub error
}

func newFake() *fakeBroker { return &fakeBroker{subs: make(map[string]bool)} }

func (f *fakeBroker) Publish(context.Context, string, []byte) error { return nil }
func (f *fakeBroker) Stats() Stats                                  { return Stats{} }
func (f *fakeBroker) Close() error                                  { return nil }

func (f *fakeBroker) Subscribe(ch string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failSub != nil {
		return f.failSub
	}
	if f.subs[ch] {
		return fmt.Errorf("double Subscribe(%s)", ch)
	}
	f.subs[ch] = true
	f.calls = append(f.calls, "+"+ch)
	return nil
}

func (f *fakeBroker) Unsubscribe(ch string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.subs[ch] {
		return fmt.Errorf("Unsubscribe(%s) without Subscribe", ch)
	}
	delete(f.subs, ch)
	f.calls = append(f.calls, "-"+ch)
	return nil
}

func (f *fakeBroker) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func TestInterestTransitions(t *testing.T) {
	t.Parallel()
	f := newFake()
	in := NewInterest(f)
	for range 3 {
		if err := in.Add("a"); err != nil {
			t.Fatal(err)
		}
	}
	if err := in.Add("b"); err != nil {
		t.Fatal(err)
	}
	if in.Count("a") != 3 || in.Count("b") != 1 || in.Len() != 2 {
		t.Fatalf("counts a=%d b=%d len=%d", in.Count("a"), in.Count("b"), in.Len())
	}
	for range 2 {
		if err := in.Remove("a"); err != nil {
			t.Fatal(err)
		}
	}
	if got := f.log(); fmt.Sprint(got) != "[+a +b]" {
		t.Fatalf("calls = %v, want [+a +b] (no Unsubscribe while subscribers remain)", got)
	}
	if err := in.Remove("a"); err != nil {
		t.Fatal(err)
	}
	if err := in.Remove("a"); !errors.Is(err, ErrNotSubscribed) {
		t.Fatalf("Remove beyond zero = %v", err)
	}
	if err := in.Remove("never"); !errors.Is(err, ErrNotSubscribed) {
		t.Fatalf("Remove(never) = %v", err)
	}
	if got := f.log(); fmt.Sprint(got) != "[+a +b -a]" {
		t.Fatalf("calls = %v", got)
	}
	if in.Len() != 1 {
		t.Fatalf("Len = %d, want 1", in.Len())
	}
	in.mu.Lock()
	entries := len(in.chans)
	in.mu.Unlock()
	if entries != 1 {
		t.Fatalf("%d entries kept, want 1 (no leak for idle channels)", entries)
	}
}

func TestInterestSubscribeError(t *testing.T) {
	t.Parallel()
	f := newFake()
	boom := errors.New("boom")
	f.failSub = boom
	in := NewInterest(f)
	if err := in.Add("a"); !errors.Is(err, boom) {
		t.Fatalf("Add = %v, want boom", err)
	}
	if in.Count("a") != 0 || in.Len() != 0 {
		t.Fatal("a failed Add was counted")
	}
	f.mu.Lock()
	f.failSub = nil
	f.mu.Unlock()
	if err := in.Add("a"); err != nil {
		t.Fatal(err)
	}
	if got := f.log(); fmt.Sprint(got) != "[+a]" {
		t.Fatalf("calls = %v", got)
	}
}

// Concurrent Add/Remove on a few channels: the broker sees strictly
// alternating Subscribe/Unsubscribe per channel (fakeBroker errors on a
// double call) and ends with no interest.
func TestInterestConcurrent(t *testing.T) {
	t.Parallel()
	f := newFake()
	in := NewInterest(f)
	chans := []string{"a", "b", "c"}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 200 {
				ch := chans[(w+i)%len(chans)]
				if err := in.Add(ch); err != nil {
					t.Error(err)
					return
				}
				if err := in.Remove(ch); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if in.Len() != 0 {
		t.Fatalf("Len = %d after balanced Add/Remove", in.Len())
	}
	f.mu.Lock()
	left := len(f.subs)
	f.mu.Unlock()
	if left != 0 {
		t.Fatalf("broker still subscribed to %d channels", left)
	}
	if n := len(f.log()); n < 2 {
		t.Fatalf("only %d broker calls", n)
	}
}
