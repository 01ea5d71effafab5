package nats

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchws/latch/broker"
	"github.com/latchws/latch/history"
	natsserver "github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// startJetStream runs an embedded NATS server with JetStream, storing in
// a temporary directory; cleanup shuts it down.
func startJetStream(t testing.TB) *natsserver.Server {
	t.Helper()
	s, err := natsserver.NewServer(&natsserver.Options{
		Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: t.TempDir(),
	})
	if err != nil {
		t.Fatalf("nats-server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatal("nats-server not ready in 10s")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// startJetStreamCluster runs n JetStream servers joined in one cluster
// and waits until its meta group has a leader that knows all n.
func startJetStreamCluster(t testing.TB, n int) []*natsserver.Server {
	t.Helper()
	// Every server routes to every other, so the ports are chosen first.
	ports := make([]int, n)
	var routes []string
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", ports[i]))
	}
	var servers []*natsserver.Server
	for i := range n {
		o := &natsserver.Options{
			ServerName: fmt.Sprintf("js%d", i+1), Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
			JetStream: true, StoreDir: t.TempDir(),
			Cluster: natsserver.ClusterOpts{Name: "latch-js", Host: "127.0.0.1", Port: ports[i]},
			Routes:  natsserver.RoutesFromStr(strings.Join(routes, ",")),
		}
		s, err := natsserver.NewServer(o)
		if err != nil {
			t.Fatalf("nats-server: %v", err)
		}
		go s.Start()
		t.Cleanup(func() {
			s.Shutdown()
			s.WaitForShutdown()
		})
		servers = append(servers, s)
	}
	for _, s := range servers {
		if !s.ReadyForConnections(15 * time.Second) {
			t.Fatal("nats-server not ready in 15s")
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		ready := false
		for _, s := range servers {
			if s.JetStreamIsLeader() && len(s.JetStreamClusterPeers()) == n {
				ready = true
			}
		}
		if ready {
			return servers
		}
		if time.Now().After(deadline) {
			t.Fatal("JetStream cluster not ready in 20s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// connect opens a NATS connection to s (first) and the others, closed at
// the end of the test.
func connect(t testing.TB, servers ...*natsserver.Server) *natsgo.Conn {
	t.Helper()
	var urls []string
	for _, s := range servers {
		urls = append(urls, s.ClientURL())
	}
	nc, err := natsgo.Connect(strings.Join(urls, ","), natsgo.DontRandomize(), natsgo.MaxReconnects(-1),
		natsgo.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func newHistory(t testing.TB, nc *natsgo.Conn, cfg HistoryConfig) *History {
	t.Helper()
	h, err := NewHistory(nc, cfg)
	if err != nil {
		t.Fatalf("NewHistory: %v", err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// payload encodes a position as the tests' publication data.
func payload(tag string) func(history.Position) []byte {
	return func(p history.Position) []byte { return fmt.Appendf(nil, "%s@%d/%s", tag, p.Offset, p.Epoch) }
}

var week = history.Retention{Size: 1000, TTL: 7 * 24 * time.Hour}

func mustAppend(t testing.TB, h *History, ch string, r history.Retention, tag string) history.Position {
	t.Helper()
	p, err := h.Append(ctxT(t, 10*time.Second), ch, r, payload(tag))
	if err != nil {
		t.Fatalf("Append(%s): %v", ch, err)
	}
	return p
}

func offsets(pubs []history.Publication) []uint64 {
	var out []uint64
	for _, p := range pubs {
		out = append(out, p.Offset)
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

func TestHistoryNames(t *testing.T) {
	for _, c := range []struct{ channel, subject, stream string }{
		{"lobby", "latch.history._.lobby", "LATCH_HISTORY__"},
		{"chat:lobby", "latch.history.chat.chat_clobby", "LATCH_HISTORY_chat"},
		{"a_b.c:d:e#ann", "latch.history.a__b_dc.a__b_dc_cd_ce_hann", "LATCH_HISTORY_a__b_dc"},
		{"ns:x#", "latch.history.ns.ns_cx_h", "LATCH_HISTORY_ns"},
	} {
		subj, ns, err := historySubject(c.channel)
		if err != nil || subj != c.subject || historyStreamName(ns) != c.stream {
			t.Errorf("%q: %q %q %v, want %q %q", c.channel, subj, historyStreamName(ns), err, c.subject, c.stream)
		}
	}
	for _, bad := range []string{"", "a b", "a*", "a>", "x/y", strings.Repeat("a", broker.MaxChannelLen+1)} {
		if _, _, err := historySubject(bad); !errors.Is(err, broker.ErrInvalidChannel) {
			t.Errorf("%q: err %v, want ErrInvalidChannel", bad, err)
		}
	}
	// The token escaping must agree with Subject, which carries the live
	// messages, on every name Subject accepts.
	for _, ch := range []string{"a", "a_b", "a.b:c", "__", "_d", "x-y:z.w_"} {
		s, err := Subject(ch)
		tok, err2 := channelToken(ch)
		if err != nil || err2 != nil || s != SubjectPrefix+tok {
			t.Errorf("%q: Subject %q, token %q", ch, s, tok)
		}
	}
	long := strings.Repeat("n", 100)
	name := historyStreamName(long)
	if len(name) > len(HistoryStreamPrefix)+40 || name == historyStreamName(long+"m") {
		t.Errorf("long namespace stream name %q", name)
	}
}

func TestHistoryAppendTopRead(t *testing.T) {
	s := startJetStream(t)
	h := newHistory(t, connect(t, s), HistoryConfig{})
	ctx := ctxT(t, 20*time.Second)
	const ch = "chat:room"

	top, err := h.Top(ctx, ch)
	if err != nil || top.Offset != 0 || top.Epoch == "" {
		t.Fatalf("Top of a fresh namespace = %+v, %v", top, err)
	}
	p1 := mustAppend(t, h, ch, week, "m")
	if p1.Offset != 1 || p1.Epoch == "" {
		t.Fatalf("first Append = %+v", p1)
	}
	for i := 2; i <= 10; i++ {
		if p := mustAppend(t, h, ch, week, "m"); p.Offset != uint64(i) || p.Epoch != p1.Epoch {
			t.Fatalf("Append %d = %+v, epoch %s", i, p, p1.Epoch)
		}
	}
	if top, err := h.Top(ctx, ch); err != nil || top != (history.Position{Offset: 10, Epoch: p1.Epoch}) {
		t.Fatalf("Top = %+v, %v", top, err)
	}

	for _, c := range []struct {
		q    history.Query
		want []uint64
	}{
		{history.Query{}, span(1, 10)},
		{history.Query{Since: 4}, span(5, 10)},
		{history.Query{Since: 4, Limit: 3}, span(5, 7)},
		{history.Query{Since: 4, Limit: 3, Reverse: true}, span(10, 8)},
		{history.Query{Reverse: true}, span(10, 1)},
		{history.Query{Since: 9}, span(10, 10)},
		{history.Query{Since: 10}, nil},
		{history.Query{Since: 99}, nil},
		{history.Query{Since: 8, Limit: 5, Reverse: true}, span(10, 9)},
	} {
		pubs, top, err := h.Read(ctx, ch, c.q)
		if err != nil || !slices.Equal(offsets(pubs), c.want) || top.Offset != 10 || top.Epoch != p1.Epoch {
			t.Errorf("Read %+v = %v top %+v %v, want %v", c.q, offsets(pubs), top, err, c.want)
			continue
		}
		for _, p := range pubs {
			if want := fmt.Sprintf("m@%d/%s", p.Offset, p1.Epoch); string(p.Data) != want {
				t.Errorf("data %q, want %q", p.Data, want)
			}
			if time.Since(p.Time) > time.Minute || p.Time.After(time.Now().Add(time.Second)) {
				t.Errorf("time %v", p.Time)
			}
		}
	}

	// Another channel of the namespace shares the stream, not the offsets.
	if p := mustAppend(t, h, "chat:other", week, "o"); p.Offset != 1 || p.Epoch == p1.Epoch {
		t.Fatalf("other channel = %+v", p)
	}
	if pubs, top, err := h.Read(ctx, ch, history.Query{Since: 8}); err != nil || !slices.Equal(offsets(pubs), span(9, 10)) || top.Offset != 10 {
		t.Fatalf("Read after other channel = %v %+v %v", offsets(pubs), top, err)
	}
	// An empty channel of an existing stream: Top fixes the epoch that
	// the first Append then uses, on any node.
	h2 := newHistory(t, connect(t, s), HistoryConfig{})
	e1, err := h.Top(ctx, "chat:empty")
	if err != nil || e1.Offset != 0 {
		t.Fatalf("Top empty = %+v %v", e1, err)
	}
	if e2, err := h2.Top(ctx, "chat:empty"); err != nil || e2 != e1 {
		t.Fatalf("Top empty elsewhere = %+v %v, want %+v", e2, err, e1)
	}
	if pubs, top, err := h2.Read(ctx, "chat:empty", history.Query{}); err != nil || len(pubs) != 0 || top != e1 {
		t.Fatalf("Read empty = %v %+v %v", pubs, top, err)
	}
	if p := mustAppend(t, h2, "chat:empty", week, "e"); p != (history.Position{Offset: 1, Epoch: e1.Epoch}) {
		t.Fatalf("Append after Top = %+v, want offset 1 epoch %s", p, e1.Epoch)
	}
	if pubs, _, err := h.Read(ctx, "chat:empty", history.Query{}); err != nil || !slices.Equal(offsets(pubs), []uint64{1}) {
		t.Fatalf("Read after marker = %v %v", offsets(pubs), err)
	}

	// Errors.
	if _, err := h.Append(ctx, "bad channel", week, payload("x")); !errors.Is(err, broker.ErrInvalidChannel) {
		t.Errorf("Append bad channel: %v", err)
	}
	if _, err := h.Append(ctx, ch, history.Retention{Size: 0, TTL: time.Hour}, payload("x")); err == nil {
		t.Error("Append with Size 0: no error")
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Append(ctx, ch, week, payload("x")); !errors.Is(err, history.ErrClosed) {
		t.Errorf("Append after Close: %v", err)
	}
	if _, err := h.Top(ctx, ch); !errors.Is(err, history.ErrClosed) {
		t.Errorf("Top after Close: %v", err)
	}
	if _, _, err := h.Read(ctx, ch, history.Query{}); !errors.Is(err, history.ErrClosed) {
		t.Errorf("Read after Close: %v", err)
	}
}

// Three nodes (three connections, three Histories) append to one channel
// at once: exactly the offsets 1..N, each once, all under one epoch.
func TestHistoryConcurrentNodes(t *testing.T) {
	s := startJetStream(t)
	var nodes []*History
	for range 3 {
		nodes = append(nodes, newHistory(t, connect(t, s), HistoryConfig{}))
	}
	const ch, perWorker, workers = "race:one", 25, 4
	ctx := ctxT(t, 25*time.Second)
	var mu sync.Mutex
	got := map[uint64]string{}
	epochs := map[string]bool{}
	var wg sync.WaitGroup
	for n, h := range nodes {
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perWorker {
					tag := fmt.Sprintf("n%dw%di%d", n, w, i)
					p, err := h.Append(ctx, ch, week, payload(tag))
					if err != nil {
						t.Errorf("Append: %v", err)
						return
					}
					mu.Lock()
					if prev, dup := got[p.Offset]; dup {
						t.Errorf("offset %d given to %s and %s", p.Offset, prev, tag)
					}
					got[p.Offset] = tag
					epochs[p.Epoch] = true
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	const total = 3 * workers * perWorker
	if len(got) != total || len(epochs) != 1 {
		t.Fatalf("%d offsets under %d epochs, want %d under 1", len(got), len(epochs), total)
	}
	pubs, top, err := nodes[1].Read(ctx, ch, history.Query{})
	if err != nil || top.Offset != total || len(pubs) != total {
		t.Fatalf("Read = %d pubs, top %+v, %v", len(pubs), top, err)
	}
	for i, p := range pubs {
		want := fmt.Sprintf("%s@%d/%s", got[p.Offset], p.Offset, top.Epoch)
		if p.Offset != uint64(i+1) || string(p.Data) != want {
			t.Fatalf("publication %d: offset %d data %q, want %q", i, p.Offset, p.Data, want)
		}
	}
	// The stream holds exactly N messages on the subject: no retry stored
	// a publication twice.
	st, err := nodes[0].js.Stream(ctx, historyStreamName("race"))
	if err != nil {
		t.Fatal(err)
	}
	if n := st.CachedInfo().State.Msgs; n != total {
		t.Fatalf("stream holds %d messages, want %d", n, total)
	}
}

// The retention maps to the namespace stream; Size keeps the last Size
// offsets, TTL expires them, and then the epoch changes.
func TestHistoryRetention(t *testing.T) {
	s := startJetStream(t)
	h := newHistory(t, connect(t, s), HistoryConfig{Memory: true})
	ctx := ctxT(t, 25*time.Second)
	small := history.Retention{Size: 3, TTL: time.Hour}
	for range 7 {
		mustAppend(t, h, "small:x", small, "s")
	}
	st, err := h.js.Stream(ctx, historyStreamName("small"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	if cfg.MaxMsgsPerSubject != 4 || cfg.MaxAge != time.Hour || cfg.Storage != jetstream.MemoryStorage ||
		cfg.Replicas != 1 || cfg.AllowDirect || !equalS(cfg.Subjects, []string{"latch.history.small.*"}) {
		t.Fatalf("stream config %+v", cfg)
	}
	pubs, top, err := h.Read(ctx, "small:x", history.Query{})
	if err != nil || top.Offset != 7 || !slices.Equal(offsets(pubs), span(5, 7)) {
		t.Fatalf("Read = %v top %+v %v, want 5..7", offsets(pubs), top, err)
	}
	if pubs, _, err := h.Read(ctx, "small:x", history.Query{Since: 1, Limit: 2}); err != nil || !slices.Equal(offsets(pubs), span(5, 6)) {
		t.Fatalf("Read since 1 = %v %v, want 5,6", offsets(pubs), err)
	}

	// A new retention for the namespace updates its stream.
	bigger := history.Retention{Size: 5, TTL: 30 * time.Minute}
	mustAppend(t, h, "small:x", bigger, "s")
	if info, err := st.Info(ctx); err != nil || info.Config.MaxMsgsPerSubject != 6 || info.Config.MaxAge != 30*time.Minute {
		t.Fatalf("updated config %+v %v", info.Config, err)
	}

	// TTL: everything expires; the next Append starts at 1 in a new epoch
	// (and a Top in between agrees with it).
	short := history.Retention{Size: 100, TTL: 2 * time.Second}
	old := mustAppend(t, h, "brief:y", short, "b")
	mustAppend(t, h, "brief:y", short, "b")
	h2 := newHistory(t, connect(t, s), HistoryConfig{})
	if top, err := h2.Top(ctx, "brief:y"); err != nil || top != (history.Position{Offset: 2, Epoch: old.Epoch}) {
		t.Fatalf("Top from another node = %+v %v, want 2/%s", top, err, old.Epoch)
	}
	waitFor(t, 10*time.Second, "history to expire", func() bool {
		pubs, _, err := h.Read(ctx, "brief:y", history.Query{})
		return err == nil && len(pubs) == 0
	})
	top, err = h2.Top(ctx, "brief:y")
	if err != nil || top.Offset != 0 || top.Epoch == old.Epoch {
		t.Fatalf("Top after expiry = %+v %v (old epoch %s)", top, err, old.Epoch)
	}
	// h still caches the expired tip: its Append must notice.
	if p := mustAppend(t, h, "brief:y", short, "b"); p != (history.Position{Offset: 1, Epoch: top.Epoch}) {
		t.Fatalf("Append after expiry = %+v, want 1/%s", p, top.Epoch)
	}
	// Expiry without a Top in between: a new epoch too.
	prev := top.Epoch
	waitFor(t, 10*time.Second, "history to expire again", func() bool {
		m, err := h.js.Stream(ctx, historyStreamName("brief"))
		if err != nil {
			return false
		}
		info, err := m.Info(ctx)
		return err == nil && info.State.Msgs == 0
	})
	if p := mustAppend(t, h2, "brief:y", short, "b"); p.Offset != 1 || p.Epoch == prev {
		t.Fatalf("Append after second expiry = %+v (previous epoch %s)", p, prev)
	}
}

func equalS(a, b []string) bool {
	return strings.Join(a, "\x00") == strings.Join(b, "\x00")
}

// seek finds an offset among many interleaved messages of other channels.
func TestHistorySeekInterleaved(t *testing.T) {
	s := startJetStream(t)
	h := newHistory(t, connect(t, s), HistoryConfig{Memory: true})
	ctx := ctxT(t, 25*time.Second)
	for i := range 60 {
		mustAppend(t, h, "mix:a", week, "a")
		for range i % 5 {
			mustAppend(t, h, "mix:b", week, "b")
		}
	}
	for since := uint64(0); since <= 60; since += 7 {
		for _, rev := range []bool{false, true} {
			pubs, top, err := h.Read(ctx, "mix:a", history.Query{Since: since, Limit: 4, Reverse: rev})
			var want []uint64
			switch {
			case since >= 60:
			case rev:
				want = span(60, max(since+1, 57))
			default:
				want = span(since+1, min(since+4, 60))
			}
			if err != nil || top.Offset != 60 || !slices.Equal(offsets(pubs), want) {
				t.Errorf("since %d reverse %v: %v %+v %v, want %v", since, rev, offsets(pubs), top, err, want)
			}
		}
	}
}

// A 3-server JetStream cluster with R3 streams: every acknowledged Append
// is still readable after one server dies, from the survivors.
func TestHistoryClusterSurvivesServerLoss(t *testing.T) {
	servers := startJetStreamCluster(t, 3)
	// Each node talks to a different server first.
	var nodes []*History
	for i := range servers {
		order := append([]*natsserver.Server{servers[i]}, append(append([]*natsserver.Server{}, servers[:i]...), servers[i+1:]...)...)
		nodes = append(nodes, newHistory(t, connect(t, order...), HistoryConfig{Replicas: 3, Timeout: 2 * time.Second}))
	}
	ctx := ctxT(t, 28*time.Second)
	const ch = "ha:room"
	// The stream must exist on all three before the load.
	mustAppend(t, nodes[0], ch, week, "first")
	st, err := nodes[0].js.Stream(ctx, historyStreamName("ha"))
	if err != nil || st.CachedInfo().Config.Replicas != 3 {
		t.Fatalf("stream: %v", err)
	}

	var mu sync.Mutex
	acked := map[uint64]string{1: "first"}
	failed := 0
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for n, h := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				tag := fmt.Sprintf("n%di%d", n, i)
				actx, cancel := context.WithTimeout(ctx, 3*time.Second)
				p, err := h.Append(actx, ch, week, payload(tag))
				cancel()
				if err != nil {
					if !errors.Is(err, history.ErrUnavailable) {
						t.Errorf("Append: %v", err)
					}
					mu.Lock()
					failed++
					mu.Unlock()
					continue // unknown outcome: not counted as acked
				}
				mu.Lock()
				if prev, dup := acked[p.Offset]; dup {
					t.Errorf("offset %d acked to %s and %s", p.Offset, prev, tag)
				}
				acked[p.Offset] = tag
				mu.Unlock()
			}
		}()
	}
	countAcked := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	waitFor(t, 10*time.Second, "appends before the failure", func() bool { return countAcked() >= 60 })
	// Kill the stream leader, the worst case.
	var victim int
	for i, s := range servers {
		if s.JetStreamIsStreamLeader(natsserver.DEFAULT_GLOBAL_ACCOUNT, historyStreamName("ha")) {
			victim = i
		}
	}
	servers[victim].Shutdown()
	before := countAcked()
	waitFor(t, 15*time.Second, "appends after the failure", func() bool { return countAcked() >= before+60 })
	close(stop)
	wg.Wait()

	survivor := nodes[(victim+1)%3]
	var pubs []history.Publication
	var top history.Position
	waitFor(t, 10*time.Second, "a readable history", func() bool {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		pubs, top, err = survivor.Read(rctx, ch, history.Query{})
		return err == nil
	})
	got := map[uint64]string{}
	stored := map[string]bool{}
	for i, p := range pubs {
		if p.Offset != uint64(i+1) {
			t.Fatalf("publication %d has offset %d: gap or duplicate", i, p.Offset)
		}
		tag, _, _ := strings.Cut(string(p.Data), "@")
		if stored[tag] {
			t.Errorf("%s stored twice", tag)
		}
		stored[tag] = true
		got[p.Offset] = tag
	}
	mu.Lock()
	defer mu.Unlock()
	for off, tag := range acked {
		if got[off] != tag {
			t.Errorf("acked offset %d (%s) reads as %q", off, tag, got[off])
		}
	}
	if uint64(len(pubs)) != top.Offset || len(acked) > len(pubs) {
		t.Errorf("%d publications, top %d, %d acked", len(pubs), top.Offset, len(acked))
	}
	t.Logf("%d acked, %d failed, %d stored; leader was js%d", len(acked), failed, len(pubs), victim+1)
}

// BenchmarkHistoryAppend measures one node appending to one channel on a
// single JetStream server (R1, file storage).
func BenchmarkHistoryAppend(b *testing.B) {
	s := startJetStream(b)
	h := newHistory(b, connect(b, s), HistoryConfig{})
	ctx := context.Background()
	data := make([]byte, 128)
	enc := func(history.Position) []byte { return data }
	if _, err := h.Append(ctx, "bench:ch", week, enc); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := h.Append(ctx, "bench:ch", week, enc); err != nil {
			b.Fatal(err)
		}
	}
}

// An Append whose publish got no answer but was stored finds its own
// message on the next attempt instead of storing it again.
func TestHistoryLostAckNotStoredTwice(t *testing.T) {
	s := startJetStream(t)
	h := newHistory(t, connect(t, s), HistoryConfig{Memory: true})
	ctx := ctxT(t, 10*time.Second)
	const ch = "lost:ack"
	first := mustAppend(t, h, ch, week, "a")
	subj, ns, _ := historySubject(ch)
	st, err := h.stream(ctx, ns, &week)
	if err != nil {
		t.Fatal(err)
	}
	cs := h.chanState(ch)
	cs.sem <- struct{}{}
	defer func() { <-cs.sem }()
	// The lost publish: stored right after the first message, with the
	// call's id, as if its acknowledgement had been lost.
	expect := cs.tip.seq
	m := &natsgo.Msg{Subject: subj, Data: []byte("lost"), Header: natsgo.Header{}}
	m.Header.Set(hdrOffset, "2")
	m.Header.Set(hdrEpoch, first.Epoch)
	m.Header.Set(hdrID, "call-1")
	if _, err := h.js.PublishMsg(ctx, m, jetstream.WithExpectLastSequencePerSubject(expect)); err != nil {
		t.Fatal(err)
	}
	ap := &appender{h: h, subj: subj, ns: ns, r: week, st: st, cs: cs, id: "call-1", encode: payload("again"),
		unsure: []uint64{expect}}
	cs.known = false
	pos, done, err := ap.try(ctx)
	if !done || err != nil || pos != (history.Position{Offset: 2, Epoch: first.Epoch}) {
		t.Fatalf("try = %+v %v %v, want offset 2 found", pos, done, err)
	}
	// Another call's lost publish at that place is not taken for this one.
	ap = &appender{h: h, subj: subj, ns: ns, r: week, st: st, cs: cs, id: "call-2", encode: payload("b"),
		unsure: []uint64{expect}}
	cs.known = false
	if pos, done, err := ap.try(ctx); !done || err != nil || pos.Offset != 3 {
		t.Fatalf("try = %+v %v %v, want a new offset 3", pos, done, err)
	}
	pubs, _, err := h.Read(ctx, ch, history.Query{})
	if err != nil || len(pubs) != 3 || string(pubs[1].Data) != "lost" {
		t.Fatalf("Read = %d pubs %v", len(pubs), err)
	}
}
