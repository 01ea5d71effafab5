package history

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"
)

// clock is a fake clock, safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Unix(1_700_000_000, 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var ret = Retention{Size: 10, TTL: time.Minute}

// encodeOffset encodes the position as the message, so a read shows which
// position each stored message was encoded for.
func encodeOffset(p Position) []byte {
	return []byte(p.Epoch + "/" + strconv.FormatUint(p.Offset, 10))
}

func mustAppend(t testing.TB, s Store, ch string, r Retention) Position {
	t.Helper()
	pos, err := s.Append(context.Background(), ch, r, encodeOffset)
	if err != nil {
		t.Fatalf("Append(%q): %v", ch, err)
	}
	return pos
}

func mustTop(t testing.TB, s Store, ch string) Position {
	t.Helper()
	top, err := s.Top(context.Background(), ch)
	if err != nil {
		t.Fatalf("Top(%q): %v", ch, err)
	}
	return top
}

func mustRead(t testing.TB, s Store, ch string, q Query) ([]Publication, Position) {
	t.Helper()
	pubs, top, err := s.Read(context.Background(), ch, q)
	if err != nil {
		t.Fatalf("Read(%q, %+v): %v", ch, q, err)
	}
	return pubs, top
}

func offsets(pubs []Publication) []uint64 {
	out := make([]uint64, len(pubs))
	for i, p := range pubs {
		out[i] = p.Offset
	}
	return out
}

func span(from, to uint64) []uint64 {
	var out []uint64
	if from <= to {
		for o := from; o <= to; o++ {
			out = append(out, o)
		}
	} else {
		for o := from; o >= to; o-- {
			out = append(out, o)
		}
	}
	return out
}

func equal(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestMemoryEmptyChannelKeepsItsEpoch(t *testing.T) {
	m := NewMemory(MemoryConfig{})
	defer m.Close()
	top := mustTop(t, m, "c")
	if top.Offset != 0 || len(top.Epoch) != 11 {
		t.Fatalf("Top of a new channel = %+v, want offset 0 and an 11-character epoch", top)
	}
	if again := mustTop(t, m, "c"); again != top {
		t.Fatalf("second Top = %+v, want %+v", again, top)
	}
	pos := mustAppend(t, m, "c", ret)
	if pos != (Position{Offset: 1, Epoch: top.Epoch}) {
		t.Fatalf("first Append = %+v, want offset 1 under the epoch Top gave (%s)", pos, top.Epoch)
	}
	if other := mustTop(t, m, "d"); other.Epoch == top.Epoch {
		t.Fatalf("two channels share epoch %q", other.Epoch)
	}
}

func TestMemoryEncodeGetsPosition(t *testing.T) {
	m := NewMemory(MemoryConfig{})
	defer m.Close()
	for want := uint64(1); want <= 3; want++ {
		var got Position
		pos, err := m.Append(context.Background(), "c", ret, func(p Position) []byte {
			got = p
			return []byte("m" + strconv.FormatUint(p.Offset, 10))
		})
		if err != nil {
			t.Fatal(err)
		}
		if got != pos || got.Offset != want {
			t.Fatalf("encode got %+v, Append returned %+v, want offset %d in both", got, pos, want)
		}
	}
	pubs, _ := mustRead(t, m, "c", Query{})
	for _, p := range pubs {
		if want := "m" + strconv.FormatUint(p.Offset, 10); string(p.Data) != want {
			t.Errorf("offset %d holds %q, want %q", p.Offset, p.Data, want)
		}
	}
}

func TestMemoryConcurrentAppendsContiguous(t *testing.T) {
	const goroutines, each = 32, 200
	m := NewMemory(MemoryConfig{})
	defer m.Close()
	r := Retention{Size: goroutines * each, TTL: time.Hour}
	got := make([][]uint64, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for range each {
				pos, err := m.Append(context.Background(), "c", r, encodeOffset)
				if err != nil {
					t.Error(err)
					return
				}
				got[g] = append(got[g], pos.Offset)
				// Other channels at the same time: the locks are per channel.
				if _, err := m.Append(context.Background(), "other"+strconv.Itoa(g%4), r, encodeOffset); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	seen := make(map[uint64]bool)
	for _, offs := range got {
		for i, o := range offs {
			if seen[o] {
				t.Fatalf("offset %d assigned twice", o)
			}
			seen[o] = true
			if i > 0 && o <= offs[i-1] {
				t.Fatalf("one goroutine got offset %d after %d", o, offs[i-1])
			}
		}
	}
	pubs, top := mustRead(t, m, "c", Query{})
	if top.Offset != goroutines*each || len(pubs) != goroutines*each {
		t.Fatalf("top %d, %d stored; want %d of each", top.Offset, len(pubs), goroutines*each)
	}
	for i, p := range pubs {
		if p.Offset != uint64(i+1) || string(p.Data) != top.Epoch+"/"+strconv.Itoa(i+1) {
			t.Fatalf("publication %d: offset %d, data %q", i, p.Offset, p.Data)
		}
	}
}

func TestMemorySizeBound(t *testing.T) {
	m := NewMemory(MemoryConfig{})
	defer m.Close()
	r := Retention{Size: 5, TTL: time.Hour}
	for range 12 {
		mustAppend(t, m, "c", r)
	}
	pubs, top := mustRead(t, m, "c", Query{})
	if top.Offset != 12 || !equal(offsets(pubs), span(8, 12)) {
		t.Fatalf("top %d, kept %v; want top 12, kept 8..12", top.Offset, offsets(pubs))
	}
	c := m.chans["c"]
	if len(c.ring) != 5 {
		t.Fatalf("ring of %d slots for Size 5", len(c.ring))
	}
}

func TestMemoryRingGrowsLazily(t *testing.T) {
	m := NewMemory(MemoryConfig{})
	defer m.Close()
	r := Retention{Size: 1000, TTL: time.Hour}
	for range 3 {
		mustAppend(t, m, "c", r)
	}
	if n := len(m.chans["c"].ring); n > minRing {
		t.Fatalf("3 publications hold a ring of %d slots", n)
	}
	for range 50 {
		mustAppend(t, m, "c", r)
	}
	if n := len(m.chans["c"].ring); n < 53 || n > 128 {
		t.Fatalf("53 publications hold a ring of %d slots", n)
	}
	pubs, _ := mustRead(t, m, "c", Query{})
	if !equal(offsets(pubs), span(1, 53)) {
		t.Fatalf("kept %v after growth", offsets(pubs))
	}
}

func TestMemorySizeOne(t *testing.T) {
	m := NewMemory(MemoryConfig{})
	defer m.Close()
	r := Retention{Size: 1, TTL: time.Hour}
	for range 4 {
		mustAppend(t, m, "c", r)
	}
	pubs, _ := mustRead(t, m, "c", Query{})
	if !equal(offsets(pubs), []uint64{4}) {
		t.Fatalf("Size 1 keeps %v", offsets(pubs))
	}
}

func TestMemoryRetentionChanges(t *testing.T) {
	clk := newClock()
	m := NewMemory(MemoryConfig{Now: clk.Now})
	defer m.Close()
	for range 20 {
		mustAppend(t, m, "c", Retention{Size: 20, TTL: time.Hour})
		clk.Add(time.Second)
	}
	// A reload shrinks Size: the oldest go at the next Append.
	mustAppend(t, m, "c", Retention{Size: 4, TTL: time.Hour})
	pubs, _ := mustRead(t, m, "c", Query{})
	if !equal(offsets(pubs), span(18, 21)) {
		t.Fatalf("after Size 20 → 4, kept %v; want 18..21", offsets(pubs))
	}
	if n := len(m.chans["c"].ring); n != 4 {
		t.Fatalf("ring of %d slots after Size 4", n)
	}
	// Growing again works from the small ring.
	for range 6 {
		mustAppend(t, m, "c", Retention{Size: 8, TTL: time.Hour})
	}
	pubs, _ = mustRead(t, m, "c", Query{})
	if !equal(offsets(pubs), span(20, 27)) {
		t.Fatalf("after Size 4 → 8, kept %v; want 20..27", offsets(pubs))
	}
	// A shorter TTL applies to what is kept: all but the new one are older.
	clk.Add(10 * time.Second)
	mustAppend(t, m, "c", Retention{Size: 8, TTL: 5 * time.Second})
	if n := m.chans["c"].n; n != 1 {
		t.Fatalf("the Append with TTL 5s left %d kept, want 1", n)
	}
	pubs, _ = mustRead(t, m, "c", Query{})
	if !equal(offsets(pubs), []uint64{28}) {
		t.Fatalf("after TTL 1h → 5s, kept %v; want 28", offsets(pubs))
	}
}

func TestMemoryTTL(t *testing.T) {
	clk := newClock()
	m := NewMemory(MemoryConfig{Now: clk.Now})
	defer m.Close()
	r := Retention{Size: 100, TTL: 10 * time.Second}
	for range 5 { // offsets 1..5 at t=0..4s
		mustAppend(t, m, "c", r)
		clk.Add(time.Second)
	}
	clk.Add(6 * time.Second) // t=11s: 1 and 2 are 10s old or more
	pubs, top := mustRead(t, m, "c", Query{})
	if !equal(offsets(pubs), span(3, 5)) || top.Offset != 5 {
		t.Fatalf("at 11s kept %v, top %d; want 3..5, top 5", offsets(pubs), top.Offset)
	}
	if got := pubs[0].Time; !got.Equal(time.Unix(1_700_000_002, 0)) {
		t.Fatalf("publication 3 time %v", got)
	}
	clk.Add(time.Minute)
	pubs, top2 := mustRead(t, m, "c", Query{})
	if len(pubs) != 0 || top2 != top {
		t.Fatalf("after every TTL: kept %v, top %+v; want none, top %+v (the meta outlives them)", offsets(pubs), top2, top)
	}
	if m.chans["c"].ring != nil {
		t.Fatal("the ring of a channel with nothing kept is not released")
	}
	if pos := mustAppend(t, m, "c", r); pos != (Position{Offset: 6, Epoch: top.Epoch}) {
		t.Fatalf("Append after expiry = %+v, want offset 6 under %s", pos, top.Epoch)
	}
}

func TestMemoryMetaTTL(t *testing.T) {
	clk := newClock()
	m := NewMemory(MemoryConfig{Now: clk.Now, MetaTTL: time.Hour})
	defer m.Close()
	first := mustAppend(t, m, "c", Retention{Size: 10, TTL: time.Minute})
	clk.Add(59 * time.Minute)
	if top := mustTop(t, m, "c"); top != first {
		t.Fatalf("within MetaTTL Top = %+v, want %+v", top, first)
	}
	clk.Add(time.Minute)
	top := mustTop(t, m, "c")
	if top.Offset != 0 || top.Epoch == first.Epoch {
		t.Fatalf("after MetaTTL Top = %+v, want offset 0 under a new epoch (was %s)", top, first.Epoch)
	}
	if pos := mustAppend(t, m, "c", ret); pos != (Position{Offset: 1, Epoch: top.Epoch}) {
		t.Fatalf("Append after MetaTTL = %+v, want 1 under %s", pos, top.Epoch)
	}
}

func TestMemoryMetaOutlivesLongTTL(t *testing.T) {
	clk := newClock()
	m := NewMemory(MemoryConfig{Now: clk.Now, MetaTTL: time.Minute})
	defer m.Close()
	pos := mustAppend(t, m, "c", Retention{Size: 10, TTL: time.Hour})
	clk.Add(30 * time.Minute)
	pubs, top := mustRead(t, m, "c", Query{})
	if top != pos || len(pubs) != 1 {
		t.Fatalf("MetaTTL shorter than TTL: top %+v, %d kept; want %+v and the publication", top, len(pubs), pos)
	}
}

func TestMemorySweepForgetsIdleChannels(t *testing.T) {
	clk := newClock()
	m := NewMemory(MemoryConfig{Now: clk.Now, MetaTTL: time.Hour})
	defer m.Close()
	for i := range 50 {
		mustAppend(t, m, "idle"+strconv.Itoa(i), ret)
	}
	clk.Add(2 * time.Minute) // publications expired, meta kept
	for range 60 {
		mustAppend(t, m, "busy", ret)
	}
	for i := range 50 {
		c := m.chans["idle"+strconv.Itoa(i)]
		if c == nil || c.ring != nil {
			t.Fatalf("idle%d after TTL: channel %v, want kept with its ring released", i, c)
		}
	}
	clk.Add(time.Hour)
	for range 60 {
		mustAppend(t, m, "busy", ret)
	}
	m.mu.Lock()
	n := len(m.chans)
	m.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d channels remembered after MetaTTL, want only busy", n)
	}
}

func TestMemoryMaxChannels(t *testing.T) {
	m := NewMemory(MemoryConfig{MaxChannels: 3})
	defer m.Close()
	a := mustAppend(t, m, "a", ret)
	mustAppend(t, m, "b", ret)
	mustAppend(t, m, "c", ret)
	mustAppend(t, m, "a", ret) // a is now the latest; b the least recent
	mustAppend(t, m, "d", ret) // evicts b
	if len(m.chans) != 3 {
		t.Fatalf("%d channels with MaxChannels 3", len(m.chans))
	}
	if top := mustTop(t, m, "a"); top.Epoch != a.Epoch || top.Offset != 2 {
		t.Fatalf("a = %+v, want kept at 2 under %s", top, a.Epoch)
	}
	// b comes back under a new epoch and evicts c, the least recent.
	bTop := mustTop(t, m, "b")
	if bTop.Offset != 0 {
		t.Fatalf("evicted b = %+v, want offset 0", bTop)
	}
	if _, ok := m.chans["c"]; ok {
		t.Fatal("c kept after b came back")
	}
	pubs, _ := mustRead(t, m, "b", Query{})
	if len(pubs) != 0 {
		t.Fatalf("evicted b still holds %v", offsets(pubs))
	}
}

func TestMemoryMaxChannelsLookingEvictsEmptyFirst(t *testing.T) {
	m := NewMemory(MemoryConfig{MaxChannels: 3})
	defer m.Close()
	mustAppend(t, m, "a", ret)
	b := mustAppend(t, m, "b", ret)
	c := mustAppend(t, m, "c", ret)
	mustTop(t, m, "x")  // full: evicts a, the least recently appended
	for i := range 20 { // each evicts the empty one before it, not b or c
		mustTop(t, m, "y"+strconv.Itoa(i))
	}
	if top := mustTop(t, m, "b"); top != b {
		t.Fatalf("b = %+v after looking at empty channels, want %+v", top, b)
	}
	if top := mustTop(t, m, "c"); top != c {
		t.Fatalf("c = %+v after looking at empty channels, want %+v", top, c)
	}
	// An empty channel that gets appended to moves to the front.
	y := mustTop(t, m, "y19")
	if pos := mustAppend(t, m, "y19", ret); pos.Epoch != y.Epoch || pos.Offset != 1 {
		t.Fatalf("first Append to y19 = %+v, want 1 under %s", pos, y.Epoch)
	}
	mustAppend(t, m, "d", ret) // evicts b now
	if top := mustTop(t, m, "y19"); top.Epoch != y.Epoch {
		t.Fatal("y19 evicted after its Append")
	}
}

func TestMemoryTimesFollowOffsets(t *testing.T) {
	clk := newClock()
	m := NewMemory(MemoryConfig{Now: clk.Now})
	defer m.Close()
	mustAppend(t, m, "c", ret)
	clk.Add(-time.Second) // the wall clock stepped back
	mustAppend(t, m, "c", ret)
	pubs, _ := mustRead(t, m, "c", Query{})
	if pubs[1].Time.Before(pubs[0].Time) {
		t.Fatalf("offset 2 at %v, before offset 1 at %v", pubs[1].Time, pubs[0].Time)
	}
}

func TestMemoryMaxChannelsEpochChanges(t *testing.T) {
	m := NewMemory(MemoryConfig{MaxChannels: 1})
	defer m.Close()
	a := mustAppend(t, m, "a", ret)
	mustAppend(t, m, "b", ret)
	pos := mustAppend(t, m, "a", ret)
	if pos.Offset != 1 || pos.Epoch == a.Epoch {
		t.Fatalf("a after eviction = %+v, want offset 1 under a new epoch (was %s)", pos, a.Epoch)
	}
}

func TestMemoryMaxChannelsConcurrent(t *testing.T) {
	m := NewMemory(MemoryConfig{MaxChannels: 4})
	defer m.Close()
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 300 {
				ch := "c" + strconv.Itoa((g+i)%9)
				if _, err := m.Append(context.Background(), ch, ret, encodeOffset); err != nil {
					t.Error(err)
					return
				}
				if _, _, err := m.Read(context.Background(), ch, Query{}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.chans) > 4 {
		t.Fatalf("%d channels with MaxChannels 4", len(m.chans))
	}
	n := 0
	for c := m.tail; c != nil; c = c.prev {
		if m.chans[c.name] != c {
			t.Fatalf("list holds %q, not the map's", c.name)
		}
		n++
	}
	if n != len(m.chans) {
		t.Fatalf("list of %d, map of %d", n, len(m.chans))
	}
}

func TestMemoryRead(t *testing.T) {
	m := NewMemory(MemoryConfig{})
	defer m.Close()
	for range 15 {
		mustAppend(t, m, "c", ret) // Size 10: 6..15 kept
	}
	tests := []struct {
		q    Query
		want []uint64
	}{
		{Query{}, span(6, 15)},
		{Query{Since: 0, Limit: 3}, span(6, 8)},
		{Query{Since: 3}, span(6, 15)},
		{Query{Since: 9}, span(10, 15)},
		{Query{Since: 9, Limit: 2}, span(10, 11)},
		{Query{Since: 9, Limit: 100}, span(10, 15)},
		{Query{Since: 14}, []uint64{15}},
		{Query{Since: 15}, nil},
		{Query{Since: 99}, nil},
		{Query{Reverse: true}, span(15, 6)},
		{Query{Reverse: true, Limit: 3}, span(15, 13)},
		{Query{Reverse: true, Since: 12}, span(15, 13)},
		{Query{Reverse: true, Since: 12, Limit: 2}, span(15, 14)},
		{Query{Reverse: true, Since: 15}, nil},
		{Query{Limit: -1}, span(6, 15)},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%+v", tt.q), func(t *testing.T) {
			pubs, top := mustRead(t, m, "c", tt.q)
			if top.Offset != 15 {
				t.Errorf("top %d, want 15", top.Offset)
			}
			if !equal(offsets(pubs), tt.want) {
				t.Errorf("offsets %v, want %v", offsets(pubs), tt.want)
			}
			for _, p := range pubs {
				if want := top.Epoch + "/" + strconv.FormatUint(p.Offset, 10); string(p.Data) != want {
					t.Errorf("offset %d holds %q, want %q", p.Offset, p.Data, want)
				}
			}
		})
	}
	pubs, top := mustRead(t, m, "never", Query{})
	if len(pubs) != 0 || top.Offset != 0 || top.Epoch == "" {
		t.Fatalf("Read of a new channel: %v, %+v", offsets(pubs), top)
	}
}

func TestMemoryBadRetention(t *testing.T) {
	m := NewMemory(MemoryConfig{})
	defer m.Close()
	for _, r := range []Retention{{}, {Size: 1}, {TTL: time.Second}, {Size: -1, TTL: time.Second}} {
		if _, err := m.Append(context.Background(), "c", r, encodeOffset); err == nil {
			t.Errorf("Append with %+v succeeded", r)
		}
	}
	if top := mustTop(t, m, "c"); top.Offset != 0 {
		t.Fatalf("rejected appends moved the top to %d", top.Offset)
	}
}

func TestMemoryContext(t *testing.T) {
	m := NewMemory(MemoryConfig{})
	defer m.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Append(ctx, "c", ret, encodeOffset); !errors.Is(err, context.Canceled) {
		t.Errorf("Append: %v", err)
	}
	if _, err := m.Top(ctx, "c"); !errors.Is(err, context.Canceled) {
		t.Errorf("Top: %v", err)
	}
	if _, _, err := m.Read(ctx, "c", Query{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Read: %v", err)
	}
}

func TestMemoryEncodePanicUnlocks(t *testing.T) {
	m := NewMemory(MemoryConfig{})
	defer m.Close()
	func() {
		defer func() { _ = recover() }()
		m.Append(context.Background(), "c", ret, func(Position) []byte { panic("boom") })
	}()
	if pos := mustAppend(t, m, "c", ret); pos.Offset != 1 {
		t.Fatalf("after a panicking encode, Append = %+v, want offset 1", pos)
	}
}

func TestMemoryClose(t *testing.T) {
	m := NewMemory(MemoryConfig{})
	mustAppend(t, m, "c", ret)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := m.Append(ctx, "c", ret, encodeOffset); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: %v", err)
	}
	if _, err := m.Top(ctx, "c"); !errors.Is(err, ErrClosed) {
		t.Errorf("Top after Close: %v", err)
	}
	if _, _, err := m.Read(ctx, "c", Query{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Read after Close: %v", err)
	}
	if _, _, _, err := Recover(ctx, m, "c", Position{}, 10); !errors.Is(err, ErrClosed) {
		t.Errorf("Recover after Close: %v", err)
	}
	if err := m.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
}

func BenchmarkMemoryAppend(b *testing.B) {
	m := NewMemory(MemoryConfig{})
	defer m.Close()
	msg := []byte(`{"type":"message","channel":"chat:lobby","offset":1,"data":"hello"}`)
	encode := func(Position) []byte { return msg }
	r := Retention{Size: 100, TTL: time.Hour}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Append(ctx, "chat:lobby", r, encode); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMemoryAppendParallel(b *testing.B) {
	m := NewMemory(MemoryConfig{})
	defer m.Close()
	msg := []byte(`{"type":"message","channel":"chat:lobby","offset":1,"data":"hello"}`)
	encode := func(Position) []byte { return msg }
	r := Retention{Size: 100, TTL: time.Hour}
	names := make([]string, 64)
	for i := range names {
		names[i] = "chat:" + strconv.Itoa(i)
	}
	var next sync.Mutex
	g := 0
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		next.Lock()
		name := names[g%len(names)]
		g++
		next.Unlock()
		for pb.Next() {
			if _, err := m.Append(context.Background(), name, r, encode); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkMemoryRecover(b *testing.B) {
	m := NewMemory(MemoryConfig{})
	defer m.Close()
	msg := []byte(`{"type":"message","channel":"chat:lobby","offset":1,"data":"hello"}`)
	encode := func(Position) []byte { return msg }
	r := Retention{Size: 100, TTL: time.Hour}
	ctx := context.Background()
	var top Position
	for range 100 {
		top, _ = m.Append(ctx, "chat:lobby", r, encode)
	}
	pos := Position{Offset: top.Offset - 10, Epoch: top.Epoch}
	b.ReportAllocs()
	for b.Loop() {
		pubs, _, ok, err := Recover(ctx, m, "chat:lobby", pos, 100)
		if err != nil || !ok || len(pubs) != 10 {
			b.Fatalf("Recover: %d pubs, %v, %v", len(pubs), ok, err)
		}
	}
}
