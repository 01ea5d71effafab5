package history

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestCovers(t *testing.T) {
	top := Position{Offset: 10, Epoch: "e"}
	tests := []struct {
		name   string
		pos    Position
		oldest uint64
		want   bool
	}{
		{"at top", Position{10, "e"}, 11, true},
		{"at top, older kept", Position{10, "e"}, 3, true},
		{"next kept", Position{4, "e"}, 5, true},
		{"older kept", Position{4, "e"}, 2, true},
		{"from scratch, all kept", Position{0, "e"}, 1, true},
		{"next dropped", Position{4, "e"}, 6, false},
		{"none kept", Position{4, "e"}, 11, false},
		{"ahead of top", Position{11, "e"}, 1, false},
		{"other epoch", Position{10, "f"}, 1, false},
		{"no epoch", Position{10, ""}, 1, false},
	}
	for _, tt := range tests {
		if got := Covers(tt.pos, top, tt.oldest); got != tt.want {
			t.Errorf("%s: Covers(%+v, %+v, %d) = %v, want %v", tt.name, tt.pos, top, tt.oldest, got, tt.want)
		}
	}
}

// fakeStore answers Read with what it is given, and records the query.
type fakeStore struct {
	pubs []Publication
	top  Position
	err  error
	q    Query
}

func (f *fakeStore) Append(context.Context, string, Retention, func(Position) []byte) (Position, error) {
	return Position{}, errors.New("fake: no Append")
}
func (f *fakeStore) Top(context.Context, string) (Position, error) { return f.top, f.err }
func (f *fakeStore) Read(_ context.Context, _ string, q Query) ([]Publication, Position, error) {
	f.q = q
	return f.pubs, f.top, f.err
}
func (f *fakeStore) Close() error { return nil }

func pubsAt(offs ...uint64) []Publication {
	out := make([]Publication, len(offs))
	for i, o := range offs {
		out[i] = Publication{Offset: o, Data: []byte{byte(o)}}
	}
	return out
}

func TestRecoverFake(t *testing.T) {
	top := Position{Offset: 10, Epoch: "e"}
	tests := []struct {
		name    string
		pubs    []Publication
		pos     Position
		limit   int
		want    []uint64 // nil: not recovered
		wantErr bool
	}{
		{name: "missed three", pubs: pubsAt(8, 9, 10), pos: Position{7, "e"}, limit: 5, want: []uint64{8, 9, 10}},
		{name: "missed exactly limit", pubs: pubsAt(8, 9, 10), pos: Position{7, "e"}, limit: 3, want: []uint64{8, 9, 10}},
		{name: "no limit", pubs: pubsAt(8, 9, 10), pos: Position{7, "e"}, limit: 0, want: []uint64{8, 9, 10}},
		{name: "at top", pos: Position{10, "e"}, limit: 5, want: []uint64{}},
		{name: "epoch differs", pubs: pubsAt(8, 9, 10), pos: Position{7, "old"}, limit: 5},
		{name: "ahead of top", pos: Position{12, "e"}, limit: 5},
		{name: "more than limit missing", pubs: pubsAt(8, 9), pos: Position{7, "e"}, limit: 2},
		{name: "next no longer kept", pubs: pubsAt(9, 10), pos: Position{7, "e"}, limit: 5},
		{name: "none kept", pos: Position{7, "e"}, limit: 5},
		{name: "store returned a gap", pubs: pubsAt(8, 10), pos: Position{7, "e"}, limit: 5},
		{name: "store returned too few", pubs: pubsAt(8, 9), pos: Position{7, "e"}, limit: 5},
		{name: "store returned extra at top", pubs: pubsAt(11), pos: Position{10, "e"}, limit: 5},
		{name: "error", pos: Position{7, "e"}, limit: 5, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeStore{pubs: tt.pubs, top: top}
			if tt.wantErr {
				f.err = ErrUnavailable
			}
			pubs, gotTop, ok, err := Recover(context.Background(), f, "c", tt.pos, tt.limit)
			if f.q.Since != tt.pos.Offset || f.q.Limit != max(tt.limit, 0) || f.q.Reverse {
				t.Errorf("Read with %+v, want Since %d, Limit %d, oldest first", f.q, tt.pos.Offset, tt.limit)
			}
			if tt.wantErr {
				if !errors.Is(err, ErrUnavailable) || ok || pubs != nil {
					t.Fatalf("= %v, %v, %v; want the store's error", offsets(pubs), ok, err)
				}
				return
			}
			if err != nil || gotTop != top {
				t.Fatalf("err %v, top %+v; want nil, %+v", err, gotTop, top)
			}
			if ok != (tt.want != nil) {
				t.Fatalf("recovered %v, want %v", ok, tt.want != nil)
			}
			if !ok && pubs != nil {
				t.Fatalf("not recovered, yet returned %v", offsets(pubs))
			}
			if ok && !equal(offsets(pubs), tt.want) {
				t.Fatalf("recovered %v, want %v", offsets(pubs), tt.want)
			}
		})
	}
}

func TestRecoverMemory(t *testing.T) {
	clk := newClock()
	m := NewMemory(MemoryConfig{Now: clk.Now})
	defer m.Close()
	ctx := context.Background()
	r := Retention{Size: 5, TTL: time.Minute}

	// A client that subscribed to the empty channel recovers under its epoch.
	empty := mustTop(t, m, "c")
	for range 3 {
		mustAppend(t, m, "c", r)
	}
	pubs, top, ok, err := Recover(ctx, m, "c", empty, 10)
	if err != nil || !ok || !equal(offsets(pubs), span(1, 3)) || top.Offset != 3 {
		t.Fatalf("from the empty channel: %v, %+v, %v, %v", offsets(pubs), top, ok, err)
	}
	for i, p := range pubs {
		if string(p.Data) != empty.Epoch+"/"+string(rune('1'+i)) {
			t.Fatalf("publication %d holds %q", p.Offset, p.Data)
		}
	}

	for range 5 {
		mustAppend(t, m, "c", r) // 4..8 kept
	}
	at := func(off uint64) Position { return Position{Offset: off, Epoch: empty.Epoch} }
	tests := []struct {
		name  string
		pos   Position
		limit int
		want  []uint64 // nil: not recovered
	}{
		{"at top", at(8), 10, []uint64{}},
		{"next is the oldest kept", at(3), 10, span(4, 8)},
		{"a few missed", at(6), 10, span(7, 8)},
		{"exactly limit", at(6), 2, span(7, 8)},
		{"more than limit", at(5), 2, nil},
		{"next dropped by Size", at(2), 10, nil},
		{"ahead of top", at(9), 10, nil},
		{"other epoch", Position{Offset: 6, Epoch: "other"}, 10, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pubs, top, ok, err := Recover(ctx, m, "c", tt.pos, tt.limit)
			if err != nil || top != at(8) {
				t.Fatalf("err %v, top %+v", err, top)
			}
			if ok != (tt.want != nil) || (ok && !equal(offsets(pubs), tt.want)) || (!ok && pubs != nil) {
				t.Fatalf("= %v, %v; want %v", offsets(pubs), ok, tt.want)
			}
		})
	}

	// Expired by TTL: the top is still known, so only a client at the top recovers.
	clk.Add(2 * time.Minute)
	if _, _, ok, _ := Recover(ctx, m, "c", at(7), 10); ok {
		t.Fatal("recovered after the publications expired")
	}
	if pubs, _, ok, _ := Recover(ctx, m, "c", at(8), 10); !ok || len(pubs) != 0 {
		t.Fatalf("at the top after expiry: %v, %v; want recovered with nothing", offsets(pubs), ok)
	}
}
