package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/latchws/latch/auth"
	"github.com/latchws/latch/websocket"
)

// The load of TestClusterRecovery, bounded in count and in time.
const (
	crNodes         = 3
	crClients       = 30                   // 10 per latch node
	crChannels      = 5                    // room:0 .. room:4
	crSubscriptions = 3                    // channels per client, publishing to each in turn
	crRate          = 20                   // publishes per client per second
	crInflight      = 4                    // unanswered publishes per client, at most
	crMaxPublishes  = 1000                 // per client: 50 s at crRate, a bound if a phase stalls
	crStream        = "LATCH_HISTORY_room" // the namespace's JetStream stream
	crRecoverBound  = 15 * time.Second     // generous; the target is 5 s
)

// crEnv is what the clients of TestClusterRecovery share with the test.
type crEnv struct {
	t          *testing.T
	nodes      []*latchProc   // immutable once the clients run
	killed     atomic.Int32   // the node killed with SIGKILL; -1 before
	killAt     atomic.Int64   // when, Unix nanoseconds
	natsKillAt atomic.Int64   // when a NATS server was shut down; 0 before
	ready      sync.WaitGroup // the clients' first subscriptions
	publish    chan struct{}  // closed: start publishing
	stopPub    chan struct{}  // closed: stop publishing
	stop       chan struct{}  // closed: close the connections and return
	wg         sync.WaitGroup
}

// crData is what every publication of the test carries.
type crData struct {
	P int `json:"p"` // the publisher: a client's index, -1 for the test itself
	S int `json:"s"` // the publisher's sequence number
}

// crMsg is a server message, the fields the test reads.
type crMsg struct {
	Type         string          `json:"type"`
	ID           string          `json:"id"`
	Channel      string          `json:"channel"`
	Offset       uint64          `json:"offset"`
	Epoch        string          `json:"epoch"`
	Recovered    *bool           `json:"recovered"`
	Code         string          `json:"code"`
	Message      string          `json:"message"`
	Data         json.RawMessage `json:"data"`
	Publications []struct {
		Offset uint64          `json:"offset"`
		Data   json.RawMessage `json:"data"`
	} `json:"publications"`
}

// crClient subscribes to a few channels, publishes to them and records
// all it gets. run owns the connection and node; mu guards the record,
// written by run and by the connection's reading goroutine, read by the
// test.
type crClient struct {
	env      *crEnv
	id       int
	channels []string // immutable
	node     int      // the node it is connected to; owned by run
	gone     atomic.Bool

	mu        sync.Mutex
	seq       int                          // next publish
	inflight  int                          // publishes sent on this connection, unanswered
	sent      map[int]string               // seq → channel
	acked     map[int]bool                 // seqs acked
	unknown   []int                        // seqs unanswered when their connection died
	errs      map[string]int               // error codes of publishes
	natsErrs  int                          // unavailable after the NATS server's shutdown
	lastAck   time.Time                    // when the latest publish ack came
	ackGap    time.Duration                // longest wait between acks after the NATS shutdown
	first     map[string]uint64            // the offset of the first subscribe ack
	epoch     map[string]string            // the channel's epoch, from the latest ack
	got       map[string][]uint64          // offsets received, in order
	data      map[string]map[uint64]crData // what each offset carried
	resumeAt  map[string]int               // len(got) at the resubscription; -1: none
	recovered map[string]bool              // the recover acks' "recovered"
	recovery  time.Duration                // kill → the last recovered ack; 0: none yet
	died      bool                         // its connection died
}

func newCrClient(env *crEnv, id int) *crClient {
	c := &crClient{
		env: env, id: id, node: id % crNodes,
		sent: map[int]string{}, acked: map[int]bool{}, errs: map[string]int{},
		first: map[string]uint64{}, epoch: map[string]string{}, got: map[string][]uint64{},
		data: map[string]map[uint64]crData{}, resumeAt: map[string]int{}, recovered: map[string]bool{},
	}
	for k := range crSubscriptions {
		ch := "room:" + strconv.Itoa((id+k)%crChannels)
		c.channels = append(c.channels, ch)
		c.data[ch] = map[uint64]crData{}
		c.resumeAt[ch] = -1
	}
	return c
}

// run connects, subscribes, publishes until told to stop and, when its
// node is killed, reconnects to a survivor and recovers.
func (c *crClient) run() {
	env := c.env
	defer env.wg.Done()
	defer c.gone.Store(true)
	conn, ok := c.dial()
	ok = ok && c.subscribe(conn, false)
	env.ready.Done()
	if !ok {
		return
	}
	select {
	case <-env.publish:
	case <-env.stop:
		conn.CloseNow()
		return
	}
	for {
		dead := make(chan struct{})
		go c.read(conn, dead)
		if !c.publishUntil(conn, dead) {
			conn.CloseNow()
			<-dead
			return
		}
		c.mu.Lock()
		c.died = true
		for seq := c.seq - c.inflight; seq < c.seq; seq++ {
			c.unknown = append(c.unknown, seq)
		}
		c.inflight = 0
		c.mu.Unlock()
		if int(env.killed.Load()) != c.node {
			env.t.Errorf("client %d: its connection to node %d, which was not killed, died", c.id, c.node)
			return
		}
		// Round robin over the survivors.
		var survivors []int
		for n := range env.nodes {
			if n != c.node {
				survivors = append(survivors, n)
			}
		}
		c.node = survivors[c.id%len(survivors)]
		if conn, ok = c.dial(); !ok {
			return
		}
		if !c.subscribe(conn, true) {
			conn.CloseNow()
			return
		}
		c.mu.Lock()
		c.recovery = time.Since(time.Unix(0, env.killAt.Load()))
		c.mu.Unlock()
	}
}

// dial connects to the client's node with a fresh token and reads the
// welcome.
func (c *crClient) dial() (*websocket.Conn, bool) {
	tok, err := auth.SignHS256([]byte(e2eSecret), auth.Identity{User: "u" + strconv.Itoa(c.id), ExpiresAt: time.Now().Add(time.Hour)}, time.Now())
	if err != nil {
		c.env.t.Errorf("client %d: token: %v", c.id, err)
		return nil, false
	}
	d := &websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	conn, _, err := d.Dial(c.env.nodes[c.node].url("/ws?token="+tok), nil)
	if err != nil {
		c.env.t.Errorf("client %d: dial node %d: %v", c.id, c.node, err)
		return nil, false
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, b, err := conn.ReadMessage()
	var m crMsg
	if err == nil {
		err = json.Unmarshal(b, &m)
	}
	if err != nil || m.Type != "welcome" {
		c.env.t.Errorf("client %d: node %d: %q %v, want a welcome", c.id, c.node, b, err)
		conn.CloseNow()
		return nil, false
	}
	_ = conn.SetReadDeadline(time.Time{})
	return conn, true
}

// subscribe subscribes to the client's channels, with recover from the
// last offset received when resume, and reads until every ack came.
func (c *crClient) subscribe(conn *websocket.Conn, resume bool) bool {
	type position struct {
		Offset uint64 `json:"offset"`
		Epoch  string `json:"epoch"`
	}
	type request struct {
		Op      string    `json:"op"`
		Channel string    `json:"channel"`
		Recover *position `json:"recover,omitempty"`
		ID      string    `json:"id"`
	}
	var reqs [][]byte
	c.mu.Lock()
	for i, ch := range c.channels {
		req := request{Op: "subscribe", Channel: ch, ID: "s" + strconv.Itoa(i)}
		if resume {
			last := c.first[ch]
			if n := len(c.got[ch]); n > 0 {
				last = c.got[ch][n-1]
			}
			req.Recover = &position{last, c.epoch[ch]}
			c.resumeAt[ch] = len(c.got[ch])
		}
		b, _ := json.Marshal(req)
		reqs = append(reqs, b)
	}
	c.mu.Unlock()
	_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	for _, b := range reqs {
		if err := conn.WriteMessage(websocket.TextMessage, b); err != nil {
			c.env.t.Errorf("client %d: subscribe on node %d: %v", c.id, c.node, err)
			return false
		}
	}
	_ = conn.SetReadDeadline(time.Now().Add(crRecoverBound))
	defer conn.SetReadDeadline(time.Time{})
	// Per channel until its ack: the highest offset received, which must
	// not pass the ack's (docs/protocol.md: the missed ones before the
	// ack, the rest after it).
	before := map[string]uint64{}
	acked := map[string]bool{}
	for acks := 0; acks < len(c.channels); {
		_, b, err := conn.ReadMessage()
		if err != nil {
			c.env.t.Errorf("client %d: waiting for subscribe acks from node %d: %v", c.id, c.node, err)
			return false
		}
		m := c.handle(b)
		if m.Type == "message" && !acked[m.Channel] {
			before[m.Channel] = max(before[m.Channel], m.Offset)
		}
		i, err := strconv.Atoi(strings.TrimPrefix(m.ID, "s"))
		if !strings.HasPrefix(m.ID, "s") || err != nil || i >= len(c.channels) {
			continue
		}
		ch := c.channels[i]
		if m.Type != "ack" || m.Epoch == "" {
			c.env.t.Errorf("client %d: subscribe %s (resume %v) on node %d: %s, want an ack with an epoch", c.id, ch, resume, c.node, b)
			return false
		}
		acks++
		acked[ch] = true
		if before[ch] > m.Offset {
			c.env.t.Errorf("client %d: subscribe %s (resume %v) on node %d: offset %d received before the ack, which says %s", c.id, ch, resume, c.node, before[ch], b)
		}
		c.mu.Lock()
		if resume {
			c.recovered[ch] = m.Recovered != nil && *m.Recovered
		} else {
			c.first[ch] = m.Offset
		}
		c.epoch[ch] = m.Epoch
		c.mu.Unlock()
	}
	return true
}

// read records what the connection brings until it ends.
func (c *crClient) read(conn *websocket.Conn, dead chan<- struct{}) {
	defer close(dead)
	for {
		_, b, err := conn.ReadMessage()
		if err != nil {
			return
		}
		c.handle(b)
	}
}

// publishUntil publishes at crRate, at most crInflight unanswered, until
// the connection dies (true) or the test stops the clients (false).
func (c *crClient) publishUntil(conn *websocket.Conn, dead <-chan struct{}) bool {
	tick := time.NewTicker(time.Second / crRate)
	defer tick.Stop()
	for {
		select {
		case <-dead:
			return true
		case <-c.env.stop:
			return false
		case <-tick.C:
		}
		select {
		case <-c.env.stopPub:
			continue
		default:
		}
		c.mu.Lock()
		if c.inflight >= crInflight || c.seq >= crMaxPublishes {
			c.mu.Unlock()
			continue
		}
		seq := c.seq
		ch := c.channels[seq%len(c.channels)]
		c.seq++
		c.inflight++
		c.sent[seq] = ch
		c.mu.Unlock()
		msg := fmt.Sprintf(`{"op":"publish","channel":%q,"data":{"p":%d,"s":%d},"id":"p%d"}`, ch, c.id, seq, seq)
		_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_ = conn.WriteMessage(websocket.TextMessage, []byte(msg)) // a failure ends the reader too
	}
}

// handle records one server message and returns it decoded.
func (c *crClient) handle(b []byte) crMsg {
	var m crMsg
	if err := json.Unmarshal(b, &m); err != nil {
		c.env.t.Errorf("client %d: not JSON: %q", c.id, b)
		return m
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case m.Type == "message":
		var d crData
		seen, subscribed := c.data[m.Channel]
		if err := json.Unmarshal(m.Data, &d); err != nil || m.Offset == 0 || !subscribed {
			c.env.t.Errorf("client %d: unexpected message %s", c.id, b)
			return m
		}
		c.got[m.Channel] = append(c.got[m.Channel], m.Offset)
		if _, dup := seen[m.Offset]; !dup {
			seen[m.Offset] = d
		}
	case strings.HasPrefix(m.ID, "p"):
		seq, err := strconv.Atoi(m.ID[1:])
		if err != nil {
			c.env.t.Errorf("client %d: answer with id %q", c.id, m.ID)
			return m
		}
		c.inflight--
		natsDown := c.env.natsKillAt.Load() != 0
		switch {
		case m.Type == "ack":
			now := time.Now()
			if natsDown && !c.lastAck.IsZero() {
				c.ackGap = max(c.ackGap, now.Sub(c.lastAck))
			}
			c.lastAck = now
			c.acked[seq] = true
		case m.Type == "error" && m.Code == "unavailable":
			c.errs[m.Code]++
			if natsDown {
				c.natsErrs++
			}
		default:
			c.errs[m.Code]++
			c.env.t.Errorf("client %d: publish %d on node %d: %s, want an ack (or unavailable)", c.id, seq, c.node, b)
		}
	}
	return m
}

// nAcked returns how many of the client's publishes were acked.
func (c *crClient) nAcked() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.acked)
}

// Recovery with real NATS JetStream (the test): three latch
// nodes on a three-server JetStream cluster with R3 history; clients
// publish and receive continuously. One latch node is killed with
// SIGKILL: its clients reconnect to the others and recover with no gap
// and no duplicate, checked by offsets. Then a NATS server, the history
// stream's leader, is shut down while publishing goes on: no acked
// publish is lost from the history, and every client still gets every
// offset once, in order.
func TestClusterRecovery(t *testing.T) {
	// Not parallel: the recovery times are figures worth reporting, and
	// six servers and thirty clients under the race detector already fill
	// two cores.
	nats := startNATSCluster(t, crNodes)
	var urls []string
	for _, s := range nats {
		urls = append(urls, strconv.Quote(s.ClientURL()))
	}
	// send_queue: a client recovers at most half of it (docs/protocol.md);
	// 1024 leaves room for a few seconds of this load.
	cfg := "broker = [" + strings.Join(urls, ", ") + "]\nsend_queue = 1024\n" +
		"[auth]\nhmac_secret = \"" + e2eSecret + "\"\n" +
		"[jetstream]\nreplicas = 3\n" +
		"[[namespace]]\nname = \"room\"\nsubscribe = \"user\"\npublish = \"user\"\nhistory_size = 10000\nhistory_ttl = \"10m\"\n"
	file := filepath.Join(t.TempDir(), "latch.toml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	env := &crEnv{t: t, publish: make(chan struct{}), stopPub: make(chan struct{}), stop: make(chan struct{})}
	env.killed.Store(-1)
	for range crNodes {
		env.nodes = append(env.nodes, startLatch(t, "-config", file))
	}
	began := time.Now()

	// The checker reads the history through node 1, which survives.
	checker := dialToken(t, env.nodes[1].url("/ws?token="+mint(t, auth.Identity{User: "checker", ExpiresAt: time.Now().Add(time.Hour)})))
	checker.next() // welcome
	// The first publication creates the namespace's stream: before it
	// a subscribe ack names an epoch the stream will not keep
	// (docs/protocol.md), and recovery from it would fail.
	for i := range crChannels {
		// Not crRequest: a publish answered unavailable may be stored,
		// so each attempt publishes data of its own.
		for attempt := 0; ; attempt++ {
			checker.send(fmt.Sprintf(`{"op":"publish","channel":"room:%d","data":{"p":-1,"s":%d},"id":"q"}`, i, i+crChannels*attempt))
			m := checker.next()
			if m["type"] == "ack" {
				break
			}
			if m["code"] != "unavailable" || attempt == 20 {
				t.Fatalf("publish to room:%d: %v", i, m)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	clients := make([]*crClient, crClients)
	env.ready.Add(crClients)
	env.wg.Add(crClients)
	for i := range clients {
		clients[i] = newCrClient(env, i)
		go clients[i].run()
	}
	stopClients := sync.OnceFunc(func() {
		close(env.stop)
		env.wg.Wait()
	})
	t.Cleanup(stopClients)
	env.ready.Wait()
	if t.Failed() {
		t.FailNow()
	}
	close(env.publish)
	ackedBy := func() []int {
		n := make([]int, len(clients))
		for i, c := range clients {
			n[i] = c.nAcked()
		}
		return n
	}
	waitAcks := func(what string, base []int, more int, d time.Duration) {
		t.Helper()
		crWait(t, d, what, func() bool {
			for i, n := range ackedBy() {
				if n < base[i]+more && !clients[i].gone.Load() {
					return false
				}
			}
			return true
		})
	}
	waitAcks("10 acked publishes per client (warm-up)", make([]int, len(clients)), 10, 15*time.Second)

	// SIGKILL node 0; its clients reconnect to nodes 1 and 2.
	const victim = 0
	var victims []*crClient
	for _, c := range clients {
		if c.id%crNodes == victim {
			victims = append(victims, c)
		}
	}
	env.killAt.Store(time.Now().UnixNano())
	env.killed.Store(victim)
	env.nodes[victim].signal(t, syscall.SIGKILL)
	// Each late or failed one is reported below.
	crPoll(crRecoverBound+5*time.Second, func() bool {
		for _, c := range victims {
			c.mu.Lock()
			done := c.recovery != 0
			c.mu.Unlock()
			if !done && !c.gone.Load() {
				return false
			}
		}
		return true
	})
	waitAcks("10 more acked publishes per client after the recovery", ackedBy(), 10, 15*time.Second)

	// Shut down a NATS server while the clients publish: the one that
	// holds the most of the survivors' NATS connections (the broker's and
	// the stores', so that they reconnect elsewhere and miss what is
	// published meanwhile), made the history stream's leader first (so
	// that JetStream elects another with appends in flight).
	target := 0
	for i, s := range nats {
		if s.NumClients() > nats[target].NumClients() {
			target = i
		}
	}
	moveStreamLeader(t, nats, crStream, target)
	latchConns := nats[target].NumClients()
	base := ackedBy()
	natsKill := time.Now()
	env.natsKillAt.Store(natsKill.UnixNano())
	nats[target].Shutdown()
	waitAcks("10 acked publishes per client after the NATS server's shutdown", base, 10, 20*time.Second)
	natsOutage := time.Since(natsKill)

	// Stop publishing, wait for every answer, then for quiet: every
	// client has every channel's top.
	close(env.stopPub)
	answered := crPoll(10*time.Second, func() bool {
		for _, c := range clients {
			c.mu.Lock()
			n := c.inflight
			c.mu.Unlock()
			if n > 0 && !c.gone.Load() {
				return false
			}
		}
		return true
	})
	if !answered {
		t.Error("not every publish was answered within 10s of the last")
	}
	// Waiting for quiet: what is missing then is reported below.
	var tops map[string]uint64
	crPoll(15*time.Second, func() bool {
		tops = crTops(t, checker)
		for _, c := range clients {
			if c.gone.Load() {
				continue // it failed already
			}
			c.mu.Lock()
			for _, ch := range c.channels {
				got := c.got[ch]
				if len(got) == 0 && c.first[ch] < tops[ch] || len(got) > 0 && got[len(got)-1] < tops[ch] {
					c.mu.Unlock()
					return false
				}
			}
			c.mu.Unlock()
		}
		return true
	})
	if again := crTops(t, checker); !maps.Equal(again, tops) {
		t.Fatalf("the channels' tops moved after the publishers stopped: %v, then %v", tops, again)
	}
	stopClients()
	elapsed := time.Since(began)

	// The history: offsets 1..top, each publication once.
	hist := map[string]map[uint64]crData{}
	where := map[crData]string{} // publication → channel@offset
	for i := range crChannels {
		ch := "room:" + strconv.Itoa(i)
		hist[ch] = crHistory(t, checker, ch, tops[ch])
		for off := uint64(1); off <= tops[ch]; off++ {
			d, ok := hist[ch][off]
			if !ok {
				continue // reported by crHistory
			}
			at := ch + "@" + strconv.FormatUint(off, 10)
			if prev, dup := where[d]; dup {
				t.Errorf("publication %+v is in the history twice: %s and %s", d, prev, at)
			}
			where[d] = at
		}
	}

	var recoveries []time.Duration
	var received, acked, unknown, unknownKept, unavailable, natsErrs int
	var ackGap time.Duration
	for _, c := range clients {
		c.mu.Lock()
		// Every acked publish is in the history, on its channel.
		var lost []int
		for seq := range c.acked {
			if at, ok := where[crData{c.id, seq}]; !ok || !strings.HasPrefix(at, c.sent[seq]+"@") {
				lost = append(lost, seq)
			}
		}
		if len(lost) > 0 {
			slices.Sort(lost)
			t.Errorf("client %d: %d acked publishes not in the history (seqs %v)", c.id, len(lost), lost[:min(len(lost), 10)])
		}
		for _, seq := range c.unknown {
			if _, ok := where[crData{c.id, seq}]; ok {
				unknownKept++
			}
		}
		// Every offset after the first ack, once, in order, with the
		// history's data.
		for _, ch := range c.channels {
			if problem := crRun(c.got[ch], c.first[ch], tops[ch], c.resumeAt[ch]); problem != "" {
				t.Errorf("client %d (node %d at the end), %s: %s", c.id, c.node, ch, problem)
			}
			for off, d := range c.data[ch] {
				if h, ok := hist[ch][off]; ok && h != d {
					t.Errorf("client %d, %s@%d: got %+v, the history has %+v", c.id, ch, off, d, h)
				}
			}
			received += len(c.got[ch])
		}
		if c.id%crNodes == victim {
			for _, ch := range c.channels {
				if !c.recovered[ch] {
					t.Errorf("client %d of the killed node: %s recovered %v, want true", c.id, ch, c.recovered[ch])
				}
			}
			if c.recovery == 0 || c.recovery > crRecoverBound {
				t.Errorf("client %d of the killed node: recovered after %v, want within %v", c.id, c.recovery, crRecoverBound)
			}
			recoveries = append(recoveries, c.recovery)
		} else if c.died {
			t.Errorf("client %d: its connection died though its node was not killed", c.id)
		}
		acked += len(c.acked)
		unknown += len(c.unknown)
		unavailable += c.errs["unavailable"]
		natsErrs += c.natsErrs
		ackGap = max(ackGap, c.ackGap)
		c.mu.Unlock()
	}
	slices.Sort(recoveries)
	var p50, worst time.Duration
	if n := len(recoveries); n > 0 {
		p50, worst = recoveries[n/2], recoveries[n-1]
	}
	t.Logf("recovery after SIGKILL of a latch node: %d clients, p50 %v, max %v (target: all within 5s)", len(recoveries), p50.Round(time.Millisecond), worst.Round(time.Millisecond))
	t.Logf("NATS server %d (the stream leader, with %d of the survivors' connections) shut down: %d publishes unavailable after it (%d in all), longest wait between a client's acks %v; 10 acks per client %v after it",
		target, latchConns, natsErrs, unavailable, ackGap.Round(time.Millisecond), natsOutage.Round(time.Millisecond))
	var total uint64
	for _, top := range tops {
		total += top
	}
	t.Logf("%d publications in the history, %d acked publishes, %d unanswered when their node died (%d of them kept), %d messages received; %v from the first latch start",
		total, acked, unknown, unknownKept, received, elapsed.Round(time.Millisecond))

	for n, p := range env.nodes {
		if n != victim {
			t.Logf("node %d: %v publications fanned out from the history to fill a gap, %v lost", n,
				p.metric(t, "latch_history_gap_fills_total"), p.metric(t, "latch_history_gaps_lost_total"))
		}
	}

	// The survivors shut down cleanly.
	checker.conn.CloseNow()
	for n, p := range env.nodes {
		if n != victim {
			p.signal(t, syscall.SIGTERM)
		}
	}
	for n, p := range env.nodes {
		if n != victim {
			p.waitExit(t, 10*time.Second)
		}
	}
}

// crRun checks that offsets are after+1..top, each once, and describes
// the first difference ("" if none). resumeAt is the index where the
// client resubscribed, -1 if it did not.
func crRun(offsets []uint64, after, top uint64, resumeAt int) string {
	want := after + 1
	for i, off := range offsets {
		if off != want {
			kind := "a gap"
			if off < want {
				kind = "a duplicate"
			}
			where := ""
			if resumeAt >= 0 {
				where = fmt.Sprintf(" (resubscribed with recover after %d messages)", resumeAt)
			}
			from := max(0, i-3)
			return fmt.Sprintf("%s at message %d: offsets ...%v, want %d next%s", kind, i, offsets[from:min(len(offsets), i+3)], want, where)
		}
		want++
	}
	if want != top+1 {
		return fmt.Sprintf("received up to offset %d, the channel's top is %d", want-1, top)
	}
	return ""
}

// crWait polls cond every 20 ms for up to d, failing the test with what
// it waited for if cond stays false.
func crWait(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !crPoll(d, cond) {
		t.Fatalf("waited %v for %s", d, what)
	}
}

// crPoll polls cond every 20 ms for up to d and returns its last value.
func crPoll(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// crRequest sends req, whose id is "q", on the checker's connection and
// returns the answer. While the history is unavailable (JetStream
// electing a leader) it asks again, for up to 10 s.
func crRequest(t *testing.T, c *wsClient, req string) crMsg {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.send(req)
		var m crMsg
		for m.ID != "q" {
			_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, b, err := c.conn.ReadMessage()
			if err != nil {
				t.Fatalf("checker: %s: %v", req, err)
			}
			m = crMsg{}
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatalf("checker: not JSON: %q", b)
			}
		}
		if m.Type == "error" && m.Code == "unavailable" && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if m.Type == "error" {
			t.Fatalf("checker: %s: %s %s", req, m.Code, m.Message)
		}
		return m
	}
}

// crTops returns every channel's top offset as the checker's node reports it.
func crTops(t *testing.T, c *wsClient) map[string]uint64 {
	t.Helper()
	tops := map[string]uint64{}
	for i := range crChannels {
		ch := "room:" + strconv.Itoa(i)
		tops[ch] = crRequest(t, c, fmt.Sprintf(`{"op":"history","channel":%q,"reverse":true,"limit":1,"id":"q"}`, ch)).Offset
	}
	return tops
}

// crHistory reads the channel's history through the checker, 100 at a
// time, and checks that it holds offsets 1..top, in order.
func crHistory(t *testing.T, c *wsClient, ch string, top uint64) map[uint64]crData {
	t.Helper()
	out := map[uint64]crData{}
	var since uint64
	for page := uint64(0); since < top && page <= top/100+1; page++ {
		m := crRequest(t, c, fmt.Sprintf(`{"op":"history","channel":%q,"since":%d,"limit":100,"id":"q"}`, ch, since))
		if len(m.Publications) == 0 {
			break
		}
		for _, p := range m.Publications {
			if p.Offset != since+1 {
				t.Errorf("history of %s: offset %d after %d", ch, p.Offset, since)
				return out
			}
			var d crData
			if err := json.Unmarshal(p.Data, &d); err != nil {
				t.Errorf("history of %s@%d: data %s", ch, p.Offset, p.Data)
			}
			out[p.Offset] = d
			since = p.Offset
		}
	}
	if since != top {
		t.Errorf("history of %s: offsets up to %d, its top is %d", ch, since, top)
	}
	return out
}
