package nats

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latchws/latch/broker"
	"github.com/latchws/latch/history"
	"github.com/latchws/latch/presence"
	natsgo "github.com/nats-io/nats.go"
)

func newPresence(t testing.TB, nc *natsgo.Conn, cfg PresenceConfig) *Presence {
	t.Helper()
	p, err := NewPresence(nc, cfg)
	if err != nil {
		t.Fatalf("NewPresence: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// clients lists the client ids present, sorted.
func clients(t *testing.T, p *Presence, channel string) []string {
	t.Helper()
	infos, err := p.List(ctxT(t, 5*time.Second), channel)
	if err != nil {
		t.Fatalf("List(%s): %v", channel, err)
	}
	var ids []string
	for _, i := range infos {
		ids = append(ids, i.Client)
	}
	slices.Sort(ids)
	return ids
}

func TestPresenceKey(t *testing.T) {
	for _, c := range []struct{ channel, client, key string }{
		{"chat:lobby", "17", "chat_clobby.17"},
		{"a.b#ann", "n1-17", "a_db_hann.n1-17"},
		{"x", "a.b_c*>/ é", "x.a_2Eb_5Fc_2A_3E_2F_20_C3_A9"},
	} {
		if k, err := presenceKey(c.channel, c.client); err != nil || k != c.key {
			t.Errorf("presenceKey(%q, %q) = %q, %v; want %q", c.channel, c.client, k, err, c.key)
		}
	}
	if _, err := presenceKey("bad channel", "1"); !errors.Is(err, broker.ErrInvalidChannel) {
		t.Errorf("bad channel: %v", err)
	}
	if _, err := presenceKey("ok", ""); err == nil {
		t.Error("empty client: no error")
	}
}

func TestPresenceAcrossNodes(t *testing.T) {
	s := startJetStream(t)
	a := newPresence(t, connect(t, s), PresenceConfig{TTL: 10 * time.Second})
	b := newPresence(t, connect(t, s), PresenceConfig{TTL: 10 * time.Second})
	ctx := ctxT(t, 20*time.Second)
	at := time.UnixMilli(1700000000123).UTC()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(a.Add(ctx, "chat:lobby", presence.Info{Client: "1", User: "ann", ConnectedAt: at}))
	must(a.Add(ctx, "chat:lobby", presence.Info{Client: "1", User: "ann", ConnectedAt: at})) // again: no error
	must(b.Add(ctx, "chat:lobby", presence.Info{Client: "2", ConnectedAt: at}))
	must(b.Add(ctx, "chat:lobby#ann", presence.Info{Client: "3", User: "ann", ConnectedAt: at}))
	must(b.Add(ctx, "chat:lobby2", presence.Info{Client: "4", ConnectedAt: at}))

	infos, err := a.List(ctx, "chat:lobby")
	if err != nil || len(infos) != 2 {
		t.Fatalf("List = %+v, %v", infos, err)
	}
	slices.SortFunc(infos, func(x, y presence.Info) int { return strings.Compare(x.Client, y.Client) })
	if infos[0].Client != "1" || infos[0].User != "ann" || !infos[0].ConnectedAt.Equal(at) ||
		infos[1].Client != "2" || infos[1].User != "" || !infos[1].ConnectedAt.Equal(at) {
		t.Fatalf("List = %+v", infos)
	}
	if got := clients(t, b, "chat:lobby#ann"); !slices.Equal(got, []string{"3"}) {
		t.Fatalf("personal channel: %v", got)
	}
	if got := clients(t, a, "chat:nobody"); len(got) != 0 {
		t.Fatalf("empty channel: %v", got)
	}
	must(b.Remove(ctx, "chat:lobby", "1")) // another node's entry: removed all the same
	must(b.Remove(ctx, "chat:lobby", "99"))
	if got := clients(t, a, "chat:lobby"); !slices.Equal(got, []string{"2"}) {
		t.Fatalf("after Remove: %v", got)
	}

	// Close deletes this node's entries at once, not at expiry.
	must(b.Close())
	for _, ch := range []string{"chat:lobby", "chat:lobby#ann", "chat:lobby2"} {
		if got := clients(t, a, ch); len(got) != 0 {
			t.Errorf("%s after Close of its node: %v", ch, got)
		}
	}
	if err := b.Add(ctx, "chat:lobby", presence.Info{Client: "5"}); !errors.Is(err, presence.ErrClosed) {
		t.Errorf("Add after Close: %v", err)
	}
	if _, err := b.List(ctx, "chat:lobby"); !errors.Is(err, presence.ErrClosed) {
		t.Errorf("List after Close: %v", err)
	}
	if err := b.Remove(ctx, "chat:lobby", "2"); !errors.Is(err, presence.ErrClosed) {
		t.Errorf("Remove after Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// A node that refreshes keeps its entries past the TTL; a node that
// stops (its connection dies, no Close) loses them within about a TTL.
func TestPresenceExpiry(t *testing.T) {
	t.Parallel()
	s := startJetStream(t)
	// Refreshes come every TTL/3, each bounded by that period: 3 s leaves a
	// loaded machine (the -race suite, the NATS server in this process)
	// two missed refreshes' worth of room; 1.5 s once did not.
	const ttl = 3 * time.Second
	ncDead := connect(t, s)
	live := newPresence(t, connect(t, s), PresenceConfig{TTL: ttl, Memory: true})
	dying := newPresence(t, ncDead, PresenceConfig{TTL: ttl, Memory: true})
	ctx := ctxT(t, 20*time.Second)
	if err := live.Add(ctx, "room", presence.Info{Client: "live"}); err != nil {
		t.Fatal(err)
	}
	if err := dying.Add(ctx, "room", presence.Info{Client: "dying"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * ttl)
	if got := clients(t, live, "room"); !slices.Equal(got, []string{"dying", "live"}) {
		t.Fatalf("after 2 TTL with refreshes: %v", got)
	}
	ncDead.Close()
	died := time.Now()
	waitFor(t, 3*ttl, "the dead node's entry to expire", func() bool {
		return slices.Equal(clients(t, live, "room"), []string{"live"})
	})
	if d := time.Since(died); d > ttl+time.Second {
		t.Errorf("expired after %v, TTL %v", d, ttl)
	}
	// Closing the store of a dead connection is quick and harmless.
	start := time.Now()
	_ = dying.Close()
	if d := time.Since(start); d > 6*time.Second {
		t.Errorf("Close on a dead connection took %v", d)
	}
}

// Dial's connection serves the stores: a History and a Presence on it
// work like on any connection.
func TestDialForStores(t *testing.T) {
	t.Parallel()
	s := startJetStream(t)
	if _, err := Dial(nil); err == nil {
		t.Fatal("Dial without a URL succeeded")
	}
	nc, err := Dial([]string{s.ClientURL()}, WithName("latch stores"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	h, err := NewHistory(nc, HistoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	pos, err := h.Append(context.Background(), "dial:c", history.Retention{Size: 5, TTL: time.Minute}, func(history.Position) []byte { return []byte("x") })
	if err != nil || pos.Offset != 1 {
		t.Fatalf("Append = %v, %v; want offset 1", pos, err)
	}
}
