package server_test

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchws/latch/server"
	"github.com/latchws/latch/websocket"
)

// histConfig: "h" keeps 100 publications, "small" 5, "plain" none; all
// open to anyone.
func histConfig() server.Config {
	open := func(ns server.Namespace) server.Namespace {
		ns.Subscribe, ns.Publish = server.AccessAnonymous, server.AccessAnonymous
		return ns
	}
	return server.Config{Namespaces: []server.Namespace{
		open(server.Namespace{Name: "h", HistorySize: 100}),
		open(server.Namespace{Name: "small", HistorySize: 5}),
		open(server.Namespace{Name: "plain"}),
	}}
}

// subscribeAt subscribes c to ch with an optional recover and returns the
// ack's offset and epoch, checking the ack's shape.
func (c *client) subscribeAt(ch, recover string) (uint64, string) {
	c.t.Helper()
	msg := `{"op":"subscribe","channel":"` + ch + `","id":"sub"`
	if recover != "" {
		msg += `,"recover":` + recover
	}
	c.send(msg + "}")
	return c.historyAck("sub", recover != "", false)
}

// historyAck reads an ack of a history subscribe, exactly in the encoder's
// field order, and returns its position; withRecovered says whether it
// must carry recovered, and recovered its value.
func (c *client) historyAck(id string, withRecovered, recovered bool) (uint64, string) {
	c.t.Helper()
	raw := c.readRaw()
	var ack struct {
		Type      string
		ID        string
		Offset    *uint64
		Epoch     *string
		Recovered *bool
	}
	if err := json.Unmarshal([]byte(raw), &ack); err != nil || ack.Type != "ack" || ack.ID != id || ack.Offset == nil || ack.Epoch == nil || *ack.Epoch == "" {
		c.t.Fatalf("got %s, want an ack %q with offset and epoch", raw, id)
	}
	want := `{"type":"ack","id":"` + id + `","offset":` + strconv.FormatUint(*ack.Offset, 10) + `,"epoch":` + strconv.Quote(*ack.Epoch)
	if withRecovered {
		want += `,"recovered":` + strconv.FormatBool(recovered)
	}
	if want += "}"; raw != want {
		c.t.Fatalf("got  %s\nwant %s", raw, want)
	}
	return *ack.Offset, *ack.Epoch
}

// publishN publishes n numbered messages from c (not subscribed to ch),
// starting at from.
func (c *client) publishN(ch string, from, n int) {
	c.t.Helper()
	for i := from; i < from+n; i++ {
		c.do(`{"op":"publish","channel":"`+ch+`","data":{"n":`+strconv.Itoa(i)+`},"id":"p"}`, `{"type":"ack","id":"p"}`)
	}
}

// expectAt expects the message of publishN's i at offset off.
func (c *client) expectAt(ch string, off uint64, i int) {
	c.t.Helper()
	c.expect(`{"type":"message","channel":"` + ch + `","offset":` + strconv.FormatUint(off, 10) + `,"data":{"n":` + strconv.Itoa(i) + `}}`)
}

func TestHistoryOffsets(t *testing.T) {
	t.Parallel()
	_, addr := serve(t, histConfig())
	a, b := connect(t, addr), connect(t, addr)
	off, epoch := a.subscribeAt("h:a", "")
	if off != 0 {
		t.Fatalf("a new channel's top is %d, want 0", off)
	}
	// The data is kept byte for byte; offset comes right after channel.
	a.send(`{"op":"publish","channel":"h:a","data":  { "x" : [1, 2.50] } ,"id":"1"}`)
	a.expect(`{"type":"message","channel":"h:a","offset":1,"data":{ "x" : [1, 2.50] }}`)
	a.expect(`{"type":"ack","id":"1"}`)
	b.publishN("h:a", 2, 2)
	a.expectAt("h:a", 2, 2)
	a.expectAt("h:a", 3, 3)

	off, epoch2 := b.subscribeAt("h:a", "")
	if off != 3 || epoch2 != epoch {
		t.Errorf("second subscriber's ack at %d %q, want 3 %q", off, epoch2, epoch)
	}
	// Subscribing again answers the position, nothing is replayed.
	off, _ = b.subscribeAt("h:a", "")
	if off != 3 {
		t.Errorf("repeated subscribe at %d, want 3", off)
	}
	b.quiet()
	// Channels count separately.
	if off, _ := b.subscribeAt("h:other", ""); off != 0 {
		t.Errorf("another channel at %d, want 0", off)
	}
	// Without history, messages carry no offset.
	a.do(`{"op":"subscribe","channel":"plain:x","id":"s"}`, `{"type":"ack","id":"s"}`)
	a.do(`{"op":"publish","channel":"plain:x","data":1,"id":"p"}`, `{"type":"message","channel":"plain:x","data":1}`)
	a.expect(`{"type":"ack","id":"p"}`)
}

// A client that comes back with its position gets exactly what it
// missed, then the live messages after it: whether or not the node kept
// the channel's feed meanwhile (another subscriber).
func TestHistoryRecovery(t *testing.T) {
	t.Parallel()
	for _, keep := range []bool{false, true} {
		name := "alone"
		if keep {
			name = "with another subscriber"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv, addr := serve(t, histConfig())
			pub := connect(t, addr)
			var other *client
			if keep {
				other = connect(t, addr)
				other.subscribeAt("h:r", "")
			}
			a := connect(t, addr)
			_, epoch := a.subscribeAt("h:r", "")
			pub.publishN("h:r", 1, 2)
			a.expectAt("h:r", 1, 1)
			a.expectAt("h:r", 2, 2)
			clients := srv.Hub().Len()
			_ = a.conn.Close()
			waitFor(t, func() bool { return srv.Hub().Len() == clients-1 })

			pub.publishN("h:r", 3, 5) // offsets 3-7, missed
			a2 := connect(t, addr)
			a2.send(`{"op":"subscribe","channel":"h:r","recover":{"offset":2,"epoch":"` + epoch + `"},"id":"sub"}`)
			for i := 3; i <= 7; i++ {
				a2.expectAt("h:r", uint64(i), i)
			}
			if off, ep := a2.historyAck("sub", true, true); off != 7 || ep != epoch {
				t.Errorf("ack at %d %q, want 7 %q", off, ep, epoch)
			}
			pub.publishN("h:r", 8, 1)
			a2.expectAt("h:r", 8, 8)
			a2.quiet()
			if other != nil {
				for i := 1; i <= 8; i++ {
					other.expectAt("h:r", uint64(i), i)
				}
				other.quiet()
			}
			if got := metricLine(t, addr, `latch_recoveries_total{result="recovered"}`); !strings.HasSuffix(got, " 1") {
				t.Errorf("metric %q, want 1", got)
			}
		})
	}
}

// recoverPos is the recover field for off and epoch.
func recoverPos(off uint64, epoch string) string {
	return `{"offset":` + strconv.FormatUint(off, 10) + `,"epoch":` + strconv.Quote(epoch) + `}`
}

// What cannot be recovered entirely is not replayed at all.
func TestHistoryNotRecovered(t *testing.T) {
	t.Parallel()
	_, addr := serve(t, histConfig())
	pub := connect(t, addr)
	cases := []struct {
		name    string
		off     uint64
		epochOK bool
		want    bool
		replay  []uint64
	}{
		{"wrong epoch", 18, false, false, nil},
		{"empty epoch", 0, false, false, nil},
		{"too old", 3, true, false, nil},
		{"from the start", 0, true, false, nil},
		{"just too old", 14, true, false, nil},
		{"oldest kept is next", 15, true, true, []uint64{16, 17, 18, 19, 20}},
		{"at the top", 20, true, true, nil},
		{"ahead of the top", 21, true, false, nil},
	}
	for i, tt := range cases {
		// Each on a channel of its own: 20 publications, 16-20 kept.
		ch := "small:c" + strconv.Itoa(i)
		pub.publishN(ch, 1, 20)
		top := pub.history(`{"op":"history","channel":"`+ch+`","id":"h"}`, "h")
		if top.Offset != 20 || len(top.Publications) != 5 || top.Publications[0].Offset != 16 {
			t.Fatalf("history of %s: %+v, want top 20 and offsets 16-20", ch, top)
		}
		epoch := top.Epoch
		if !tt.epochOK {
			epoch = "x" + epoch
			if tt.name == "empty epoch" {
				epoch = ""
			}
		}
		c := connect(t, addr)
		c.send(`{"op":"subscribe","channel":"` + ch + `","recover":` + recoverPos(tt.off, epoch) + `,"id":"sub"}`)
		for _, off := range tt.replay {
			c.expectAt(ch, off, int(off))
		}
		// Not recovered: the ack comes first, nothing replayed.
		if off, ep := c.historyAck("sub", true, tt.want); off != 20 || ep != top.Epoch {
			t.Errorf("%s: ack at %d %q, want 20 %q", tt.name, off, ep, top.Epoch)
		}
		// Live messages follow as usual.
		pub.publishN(ch, 21, 1)
		c.expectAt(ch, 21, 21)
		c.quiet()
	}
	if got := metricLine(t, addr, `latch_recoveries_total{result="not_recovered"}`); !strings.HasSuffix(got, " 6") {
		t.Errorf("metric %q, want 6", got)
	}

	// Without history, recover is answered, never honoured.
	c := connect(t, addr)
	c.do(`{"op":"subscribe","channel":"plain:x","recover":{"offset":1,"epoch":"e"},"id":"s"}`, `{"type":"ack","id":"s","recovered":false}`)
	for _, r := range []string{`{"offset":1}`, `{"epoch":"e"}`, `5`, `null`, `{"offset":-1,"epoch":"e"}`, `{"offset":"1","epoch":"e"}`} {
		c := connect(t, addr)
		c.send(`{"op":"subscribe","channel":"h:x","recover":` + r + `,"id":"b"}`)
		c.expectError("b", "bad_request")
	}
}

// historyAnswer is a decoded history message.
type historyAnswer struct {
	Type, ID, Channel, Epoch string
	Offset                   uint64
	Publications             []struct {
		Offset uint64
		Time   int64
		Data   json.RawMessage
	}
}

// history sends msg and decodes the answer, checking its exact shape.
func (c *client) history(msg, id string) historyAnswer {
	c.t.Helper()
	c.send(msg)
	raw := c.readRaw()
	var h historyAnswer
	if err := json.Unmarshal([]byte(raw), &h); err != nil || h.Type != "history" || h.ID != id {
		c.t.Fatalf("got %s, want a history answer %q", raw, id)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `{"type":"history","id":%q,"channel":%q,"epoch":%q,"offset":%d,"publications":[`, id, h.Channel, h.Epoch, h.Offset)
	for i, p := range h.Publications {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"offset":%d,"time":%d,"data":%s}`, p.Offset, p.Time, p.Data)
	}
	b.WriteString("]}")
	if raw != b.String() {
		c.t.Fatalf("got  %s\nwant %s", raw, b.String())
	}
	return h
}

func offsets(h historyAnswer) []uint64 {
	var out []uint64
	for _, p := range h.Publications {
		out = append(out, p.Offset)
	}
	return out
}

// The history op: since, limit and reverse, data byte for byte.
func TestHistoryOp(t *testing.T) {
	t.Parallel()
	_, addr := serve(t, histConfig())
	c := connect(t, addr)
	h := c.history(`{"op":"history","channel":"h:x","id":"0"}`, "0")
	if h.Channel != "h:x" || h.Offset != 0 || h.Epoch == "" || len(h.Publications) != 0 {
		t.Fatalf("empty history: %+v", h)
	}
	_, epoch := c.subscribeAt("h:x", "")
	if epoch != h.Epoch {
		t.Errorf("subscribe epoch %q, history epoch %q", epoch, h.Epoch)
	}

	start := time.Now()
	datas := make([]string, 10)
	for i := range datas {
		datas[i] = fmt.Sprintf(`{ "i" : %d, "s": "\u00e9<&>", "f": 1.50 }`, i+1)
		c.send(`{"op":"publish","channel":"h:x","data":` + datas[i] + `,"id":"p"}`)
		c.expect(`{"type":"message","channel":"h:x","offset":` + strconv.Itoa(i+1) + `,"data":` + datas[i] + `}`)
		c.expect(`{"type":"ack","id":"p"}`)
	}
	end := time.Now()

	h = c.history(`{"op":"history","channel":"h:x","id":"all"}`, "all")
	if h.Offset != 10 || h.Epoch != epoch || len(h.Publications) != 10 {
		t.Fatalf("history: %+v", h)
	}
	last := int64(0)
	for i, p := range h.Publications {
		if p.Offset != uint64(i+1) || string(p.Data) != datas[i] {
			t.Errorf("publication %d: offset %d data %s, want %d %s", i, p.Offset, p.Data, i+1, datas[i])
		}
		if p.Time < start.UnixMilli() || p.Time > end.UnixMilli() || p.Time < last {
			t.Errorf("publication %d: time %d outside [%d, %d] or before %d", i, p.Time, start.UnixMilli(), end.UnixMilli(), last)
		}
		last = p.Time
	}
	for _, tt := range []struct {
		query string
		want  []uint64
	}{
		{`"since":7`, []uint64{8, 9, 10}},
		{`"since":0`, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{`"limit":3`, []uint64{1, 2, 3}},
		{`"since":2,"limit":3`, []uint64{3, 4, 5}},
		{`"reverse":true,"limit":2`, []uint64{10, 9}},
		{`"reverse":true,"since":7`, []uint64{10, 9, 8}},
		{`"reverse":false,"limit":100`, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{`"since":10`, nil},
		{`"since":99`, nil},
	} {
		h := c.history(`{"op":"history","channel":"h:x",`+tt.query+`,"id":"q"}`, "q")
		if fmt.Sprint(offsets(h)) != fmt.Sprint(tt.want) || h.Offset != 10 {
			t.Errorf("%s: offsets %v top %d, want %v top 10", tt.query, offsets(h), h.Offset, tt.want)
		}
	}
	// At most 100 by default.
	for i := range 120 {
		c.send(`{"op":"publish","channel":"h:big","data":` + strconv.Itoa(i) + `}`)
		c.expect(`{"type":"ack"}`)
	}
	if h := c.history(`{"op":"history","channel":"h:big","id":"b"}`, "b"); len(h.Publications) != 100 || h.Publications[0].Offset != 21 || h.Offset != 120 {
		t.Errorf("h:big: %d publications from %v, top %d; want 100 from 21 (size 100), top 120", len(h.Publications), offsets(h)[:1], h.Offset)
	}

	for _, bad := range []string{`"since":-1`, `"since":"3"`, `"since":1.5`, `"limit":0`, `"limit":101`, `"limit":-1`, `"limit":"3"`, `"limit":2.5`, `"reverse":"yes"`, `"reverse":1`} {
		c := connect(t, addr)
		c.send(`{"op":"history","channel":"h:x",` + bad + `,"id":"e"}`)
		if m := c.read(); m["code"] != "bad_request" || m["id"] != "e" {
			t.Errorf("%s: %v, want bad_request", bad, m)
		}
	}
	c.send(`{"op":"history","channel":"plain:x","id":"n"}`)
	c.expectError("n", "not_available")
	c.send(`{"op":"history","channel":"none:x","id":"u"}`)
	c.expectError("u", "unknown_namespace")
	c.send(`{"op":"history","id":"m"}`)
	c.expectError("m", "bad_request")
}

// Concurrent publishers on one history channel: every subscriber gets
// each offset exactly once, in order, and each publisher's messages in the
// order it sent them.
func TestHistoryConcurrentPublishers(t *testing.T) {
	t.Parallel()
	const publishers, each = 4, 50
	_, addr := serve(t, histConfig())
	subs := []*client{connect(t, addr), connect(t, addr), connect(t, addr)}
	for _, s := range subs {
		s.subscribeAt("h:c", "")
	}
	pubs := make([]*client, publishers)
	for i := range pubs {
		pubs[i] = connect(t, addr)
	}
	var wg sync.WaitGroup
	errs := make(chan error, publishers)
	for p, c := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				msg := fmt.Sprintf(`{"op":"publish","channel":"h:c","data":[%d,%d],"id":"%d"}`, p, i, i)
				if err := c.conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
					errs <- err
					return
				}
			}
			for i := range each {
				_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, got, err := c.conn.ReadMessage()
				if err != nil {
					errs <- err
					return
				}
				if want := fmt.Sprintf(`{"type":"ack","id":"%d"}`, i); string(got) != want {
					errs <- fmt.Errorf("publisher %d: got %s, want %s", p, got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for n, s := range subs {
		next := make([]int, publishers)
		for off := 1; off <= publishers*each; off++ {
			raw := s.readRaw()
			var m struct {
				Type   string
				Offset int
				Data   [2]int
			}
			if err := json.Unmarshal([]byte(raw), &m); err != nil || m.Type != "message" {
				t.Fatalf("subscriber %d: %s", n, raw)
			}
			if m.Offset != off {
				t.Fatalf("subscriber %d: offset %d, want %d (%s)", n, m.Offset, off, raw)
			}
			p, i := m.Data[0], m.Data[1]
			if p < 0 || p >= publishers || i != next[p] {
				t.Fatalf("subscriber %d: publisher %d's message %d at offset %d, want its %d", n, p, i, off, next[p])
			}
			next[p]++
		}
		s.quiet()
	}
}
