package presence

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func sorted(infos []Info) []Info {
	slices.SortFunc(infos, func(a, b Info) int { return strings.Compare(a.Client, b.Client) })
	return infos
}

func mustList(t *testing.T, m *Memory, ch string) []Info {
	t.Helper()
	infos, err := m.List(context.Background(), ch)
	if err != nil {
		t.Fatalf("List(%q): %v", ch, err)
	}
	return sorted(infos)
}

var (
	t0   = time.Unix(1_700_000_000, 0)
	ann  = Info{Client: "1", User: "ann", ConnectedAt: t0}
	bob  = Info{Client: "2", User: "bob", ConnectedAt: t0.Add(time.Second)}
	anon = Info{Client: "3", ConnectedAt: t0.Add(2 * time.Second)}
)

func TestMemoryAddRemoveList(t *testing.T) {
	m := NewMemory()
	defer m.Close()
	ctx := context.Background()
	if got := mustList(t, m, "c"); len(got) != 0 {
		t.Fatalf("empty channel lists %v", got)
	}
	for _, info := range []Info{ann, bob, anon} {
		if err := m.Add(ctx, "c", info); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Add(ctx, "d", ann); err != nil {
		t.Fatal(err)
	}
	if got := mustList(t, m, "c"); !slices.Equal(got, []Info{ann, bob, anon}) {
		t.Fatalf("c lists %v", got)
	}
	if got := mustList(t, m, "d"); !slices.Equal(got, []Info{ann}) {
		t.Fatalf("d lists %v", got)
	}
	if err := m.Remove(ctx, "c", "2"); err != nil {
		t.Fatal(err)
	}
	if got := mustList(t, m, "c"); !slices.Equal(got, []Info{ann, anon}) {
		t.Fatalf("c after bob left lists %v", got)
	}
	if got := mustList(t, m, "d"); !slices.Equal(got, []Info{ann}) {
		t.Fatalf("removing from c changed d: %v", got)
	}
}

func TestMemoryIdempotent(t *testing.T) {
	m := NewMemory()
	defer m.Close()
	ctx := context.Background()
	for range 3 {
		if err := m.Add(ctx, "c", ann); err != nil {
			t.Fatalf("Add again: %v", err)
		}
	}
	if got := mustList(t, m, "c"); !slices.Equal(got, []Info{ann}) {
		t.Fatalf("three Adds of one client list %v", got)
	}
	// A second Add of the same client replaces its record.
	later := ann
	later.ConnectedAt = t0.Add(time.Hour)
	if err := m.Add(ctx, "c", later); err != nil {
		t.Fatal(err)
	}
	if got := mustList(t, m, "c"); !slices.Equal(got, []Info{later}) {
		t.Fatalf("after re-Add lists %v", got)
	}
	for range 2 {
		if err := m.Remove(ctx, "c", "1"); err != nil {
			t.Fatalf("Remove again: %v", err)
		}
	}
	if err := m.Remove(ctx, "never", "1"); err != nil {
		t.Fatalf("Remove from an unknown channel: %v", err)
	}
	if got := mustList(t, m, "c"); len(got) != 0 {
		t.Fatalf("after Remove lists %v", got)
	}
}

func TestMemoryEmptyChannelForgotten(t *testing.T) {
	m := NewMemory()
	defer m.Close()
	ctx := context.Background()
	m.Add(ctx, "c", ann)
	m.Add(ctx, "c", bob)
	m.Remove(ctx, "c", ann.Client)
	m.Remove(ctx, "c", bob.Client)
	m.Remove(ctx, "gone", "x")
	if n := len(m.chans); n != 0 {
		t.Fatalf("%d channels remembered after everyone left", n)
	}
}

func TestMemoryListIsACopy(t *testing.T) {
	m := NewMemory()
	defer m.Close()
	ctx := context.Background()
	m.Add(ctx, "c", ann)
	got := mustList(t, m, "c")
	got[0].User = "mallory"
	if again := mustList(t, m, "c"); !slices.Equal(again, []Info{ann}) {
		t.Fatalf("changing a listed copy changed the store: %v", again)
	}
}

func TestMemoryConcurrent(t *testing.T) {
	m := NewMemory()
	defer m.Close()
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 200 {
				ch := "c" + strconv.Itoa(i%3)
				id := strconv.Itoa(g*1000 + i)
				if err := m.Add(ctx, ch, Info{Client: id}); err != nil {
					t.Error(err)
					return
				}
				if _, err := m.List(ctx, ch); err != nil {
					t.Error(err)
					return
				}
				if i%2 == 0 {
					if err := m.Remove(ctx, ch, id); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	total := 0
	for i := range 3 {
		total += len(mustList(t, m, "c"+strconv.Itoa(i)))
	}
	if total != 16*100 {
		t.Fatalf("%d present, want %d", total, 16*100)
	}
}

func TestMemoryContext(t *testing.T) {
	m := NewMemory()
	defer m.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := m.Add(ctx, "c", ann); !errors.Is(err, context.Canceled) {
		t.Errorf("Add: %v", err)
	}
	if err := m.Remove(ctx, "c", "1"); !errors.Is(err, context.Canceled) {
		t.Errorf("Remove: %v", err)
	}
	if _, err := m.List(ctx, "c"); !errors.Is(err, context.Canceled) {
		t.Errorf("List: %v", err)
	}
	if got := mustList(t, m, "c"); len(got) != 0 {
		t.Fatalf("a cancelled Add recorded %v", got)
	}
}

func TestMemoryClose(t *testing.T) {
	m := NewMemory()
	ctx := context.Background()
	m.Add(ctx, "c", ann)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Add(ctx, "c", bob); !errors.Is(err, ErrClosed) {
		t.Errorf("Add after Close: %v", err)
	}
	if err := m.Remove(ctx, "c", "1"); !errors.Is(err, ErrClosed) {
		t.Errorf("Remove after Close: %v", err)
	}
	if infos, err := m.List(ctx, "c"); !errors.Is(err, ErrClosed) || infos != nil {
		t.Errorf("List after Close: %v, %v", infos, err)
	}
	if err := m.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
}
