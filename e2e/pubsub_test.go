package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/latchws/latch/internal/testutil"
	"github.com/latchws/latch/websocket"
)

const (
	nChannels    = 4
	goClients    = 12
	nodeClients  = 8
	publishes    = 25 // per client
	shutdownWait = 10 * time.Second
)

func channelName(n int) string { return "room." + strconv.Itoa(n%nChannels) }

// result is what one client saw, Go or Node.js alike.
type result struct {
	name     string
	channels []string
	received []delivery
	acked    []publication
	errors   []string
	code     int  // close code received
	clean    bool // closing handshake completed
}

type delivery struct {
	channel, data string
	at            int64 // receive time, µs since the Unix epoch
}

type publication struct{ key, channel, data string }

// goClient is one Go connection. Its reader goroutine records messages and
// hands answers (ack, pong, error) to the publisher.
type goClient struct {
	res     result
	conn    *websocket.Conn
	answers chan map[string]any
	done    chan struct{} // closed when the reader ended
	mu      sync.Mutex    // guards res.received and res.errors while the reader runs
}

func dialGo(t *testing.T, url, name string, subprotocol bool) *goClient {
	t.Helper()
	d := &websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	if subprotocol {
		d.Subprotocols = []string{"latch.v1"}
	}
	conn, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatalf("%s: dial: %v", name, err)
	}
	t.Cleanup(func() { conn.CloseNow() })
	if subprotocol && conn.Subprotocol() != "latch.v1" {
		t.Errorf("%s: subprotocol %q, want latch.v1", name, conn.Subprotocol())
	}
	c := &goClient{res: result{name: name}, conn: conn, answers: make(chan map[string]any, 16), done: make(chan struct{})}
	go c.read()
	return c
}

func (c *goClient) read() {
	defer close(c.done)
	for {
		_, p, err := c.conn.ReadMessage()
		at := time.Now().UnixMicro()
		if err != nil {
			// A *CloseError means a close frame arrived, which the
			// connection answered: the handshake was clean.
			c.res.code = websocket.CloseStatus(err)
			c.res.clean = c.res.code > 0
			return
		}
		// Publications are taken apart by hand, without decoding their
		// data: it is compared byte for byte, and large payloads would make
		// a full decode dominate the race-enabled run. Channel names need no
		// JSON escaping.
		const prefix = `{"type":"message","channel":"`
		if rest, ok := strings.CutPrefix(string(p), prefix); ok {
			ch, data, ok := strings.Cut(rest, `","data":`)
			c.mu.Lock()
			if ok && strings.HasSuffix(data, "}") {
				c.res.received = append(c.res.received, delivery{ch, data[:len(data)-1], at})
			} else {
				c.res.errors = append(c.res.errors, "bad message shape: "+string(p))
			}
			c.mu.Unlock()
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(p, &m); err != nil || m["type"] == "message" {
			c.mu.Lock()
			c.res.errors = append(c.res.errors, "unexpected message: "+string(p))
			c.mu.Unlock()
			continue
		}
		select {
		case c.answers <- m:
		case <-time.After(5 * time.Second):
			return // nobody waits for answers: the test failed already
		}
	}
}

// request sends msg and returns the answer, or nil once the connection
// ended or after 5 s.
func (c *goClient) request(msg string) map[string]any {
	if err := c.conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		return nil
	}
	select {
	case m := <-c.answers:
		return m
	case <-c.done:
		return nil
	case <-time.After(5 * time.Second):
		return nil
	}
}

// publishAll publishes to the client's channels in turn until done,
// counting acks; it stops at the first publish not acknowledged.
func (c *goClient) publishAll(idx int, acks *atomic.Int64) {
	for j := range publishes {
		key := fmt.Sprintf("%s-%d", c.res.name, j)
		ch := channelName(idx + j)
		// The space after the comma checks the byte-for-byte forwarding.
		data := fmt.Sprintf(`{"k":%q, "t":%d}`, key, time.Now().UnixMicro())
		m := c.request(`{"op":"publish","channel":"` + ch + `","id":"` + key + `","data":` + data + `}`)
		if m == nil || m["type"] != "ack" || m["id"] != key {
			if m != nil {
				c.mu.Lock()
				c.res.errors = append(c.res.errors, fmt.Sprint(m["code"]))
				c.mu.Unlock()
			}
			return
		}
		c.res.acked = append(c.res.acked, publication{key, ch, data})
		acks.Add(1)
	}
}

// nodeReport is the last line of testdata/pubsub.js.
type nodeReport struct {
	Clients []struct {
		Name     string
		ID       string
		Protocol string
		Channels []string
		Received [][]any // channel, data, µs
		Acked    [][3]string
		Errors   []string
		Code     int
		WasClean bool
	}
}

// nodeClients runs testdata/pubsub.js. It returns a function that lets
// the clients publish and one that waits for their report.
type nodeProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	stderr *testutil.SyncBuffer
}

// startNode returns nil, after t.Skip, when Node.js or ws is missing
// outside CI.
func startNode(t *testing.T, url string) *nodeProc {
	t.Helper()
	modules, err := filepath.Abs("../interop/node/node_modules")
	if err != nil {
		t.Fatal(err)
	}
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(modules, "ws", "package.json"))
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Node.js with ws is required in CI (npm ci in interop/node): %v", err)
		}
		t.Skipf("skipping: Node.js with ws not found (install node, then npm ci in interop/node): %v", err)
	}
	p := &nodeProc{
		cmd:    exec.Command(node, "testdata/pubsub.js", url, strconv.Itoa(nodeClients), strconv.Itoa(publishes), strconv.Itoa(nChannels)),
		lines:  make(chan string, 4),
		stderr: &testutil.SyncBuffer{},
	}
	p.cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	p.cmd.Stderr = p.stderr
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start node: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 16<<20)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		_ = p.cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		p.stdin.Close()
		select {
		case <-exited:
		case <-time.After(time.Second):
			_ = p.cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("node stderr:\n%s", p.stderr)
		}
	})
	return p
}

// line returns node's next stdout line, failing after d.
func (p *nodeProc) line(t *testing.T, d time.Duration) string {
	t.Helper()
	select {
	case l, ok := <-p.lines:
		if !ok {
			t.Fatalf("node exited early: %v\n%s", p.cmd.ProcessState, p.stderr)
		}
		return l
	case <-time.After(d):
		t.Fatalf("no output from node within %v\n%s", d, p.stderr)
	}
	return ""
}

// TestPubSubShutdown runs Go and Node.js clients that subscribe and publish
// concurrently, sends SIGTERM halfway through, and checks that every
// acknowledged publication reached every subscriber before its close 1001,
// that every client got 1001 with a clean closing handshake, and that
// latch exits 0 in time.
func TestPubSubShutdown(t *testing.T) {
	p := startLatch(t, "-shutdown-timeout", shutdownWait.String(), "-log-level", "warn")
	url := p.url("/ws")
	node := startNode(t, url)

	// Subscribe everyone first: client i takes channels i and i+1.
	var gos []*goClient
	for i := range goClients {
		c := dialGo(t, url, "g"+strconv.Itoa(i), i%2 == 0)
		if m := <-c.answers; m["type"] != "welcome" {
			t.Fatalf("first message %v, want welcome", m)
		}
		for j, ch := range []string{channelName(i), channelName(i + 1)} {
			id := "sub" + strconv.Itoa(j)
			if m := c.request(`{"op":"subscribe","channel":"` + ch + `","id":"` + id + `"}`); m["type"] != "ack" || m["id"] != id {
				t.Fatalf("%s: subscribe %s: %v", c.res.name, ch, m)
			}
			c.res.channels = append(c.res.channels, ch)
		}
		gos = append(gos, c)
	}
	if l := node.line(t, 15*time.Second); l != `{"ready":true}` {
		t.Fatalf("node said %q, want ready", l)
	}

	// Publish from everyone at once; SIGTERM once half the Go
	// publications are acknowledged, while publishing goes on.
	var acks atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	if _, err := io.WriteString(node.stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	for i, c := range gos {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.publishAll(i, &acks)
		}()
	}
	for acks.Load() < goClients*publishes/2 {
		if time.Since(start) > 20*time.Second {
			t.Fatalf("only %d acks after 20s", acks.Load())
		}
		time.Sleep(time.Millisecond)
	}
	fanoutSum := p.metric(t, "latch_fanout_duration_seconds_sum")
	fanoutCount := p.metric(t, "latch_fanout_duration_seconds_count")
	p.signal(t, syscall.SIGTERM)
	sigAt := time.Now()

	wg.Wait()
	for _, c := range gos {
		select {
		case <-c.done:
		case <-time.After(shutdownWait + 2*time.Second):
			t.Fatalf("%s: not closed %v after SIGTERM", c.res.name, shutdownWait+2*time.Second)
		}
	}
	var rep nodeReport
	if err := json.Unmarshal([]byte(node.line(t, shutdownWait+5*time.Second)), &rep); err != nil {
		t.Fatalf("node report: %v", err)
	}
	p.waitExit(t, shutdownWait+2*time.Second)
	exitAfter := p.exitedAt.Sub(sigAt)

	results := make([]result, 0, goClients+nodeClients)
	for _, c := range gos {
		results = append(results, c.res)
	}
	if len(rep.Clients) != nodeClients {
		t.Fatalf("node reported %d clients, want %d", len(rep.Clients), nodeClients)
	}
	for _, nc := range rep.Clients {
		if nc.Protocol != "latch.v1" {
			t.Errorf("%s: subprotocol %q, want latch.v1", nc.Name, nc.Protocol)
		}
		if nc.ID == "" {
			t.Errorf("%s: no welcome", nc.Name)
		}
		r := result{name: nc.Name, channels: nc.Channels, errors: nc.Errors, code: nc.Code, clean: nc.WasClean}
		for _, d := range nc.Received {
			ch, _ := d[0].(string)
			data, _ := d[1].(string)
			at, _ := d[2].(float64)
			r.received = append(r.received, delivery{ch, data, int64(at)})
		}
		for _, a := range nc.Acked {
			r.acked = append(r.acked, publication{a[0], a[1], a[2]})
		}
		results = append(results, r)
	}
	latencies := check(t, results)

	slices.Sort(latencies)
	pct := func(q float64) time.Duration {
		return time.Duration(latencies[int(q*float64(len(latencies)-1))]) * time.Microsecond
	}
	var totalAcked int
	for _, r := range results {
		totalAcked += len(r.acked)
	}
	t.Logf("%d clients (%d Go, %d Node.js), %d publications acknowledged, %d deliveries; "+
		"publish→receive latency p50 %v, p99 %v, max %v; hub fan-out (encode+queue) mean %v over %.0f publishes; "+
		"exit %v after SIGTERM (race build: %v)",
		len(results), goClients, nodeClients, totalAcked, len(latencies), pct(0.5), pct(0.99), pct(1),
		time.Duration(fanoutSum/fanoutCount*float64(time.Second)), fanoutCount, exitAfter.Round(time.Millisecond), raceEnabled)
}

// check verifies the delivery guarantees over all clients and returns the
// latencies (µs) of the deliveries.
func check(t *testing.T, results []result) []int64 {
	t.Helper()
	type pub struct {
		publication
		acked bool
	}
	pubs := map[string]*pub{} // every publication any client acked
	for _, r := range results {
		for _, a := range r.acked {
			pubs[a.key] = &pub{a, true}
		}
	}
	if len(pubs) < goClients*publishes/2 {
		t.Errorf("only %d publications acknowledged", len(pubs))
	}
	var latencies []int64
	for _, r := range results {
		if r.code != websocket.CloseGoingAway || !r.clean {
			t.Errorf("%s: close code %d, clean %v; want 1001 with a clean handshake", r.name, r.code, r.clean)
		}
		for _, e := range r.errors {
			// Publishing while the server drains is refused, or unanswered.
			if e != "unavailable" {
				t.Errorf("%s: unexpected error %q", r.name, e)
			}
		}
		got := map[string]int{}
		for _, d := range r.received {
			var body struct {
				K string
				T int64
			}
			if err := json.Unmarshal([]byte(d.data), &body); err != nil {
				t.Errorf("%s: received data %q: %v", r.name, d.data, err)
				continue
			}
			if !slices.Contains(r.channels, d.channel) {
				t.Errorf("%s: got %s on %s, not subscribed", r.name, body.K, d.channel)
			}
			got[body.K]++
			if p, ok := pubs[body.K]; ok && (p.data != d.data || p.channel != d.channel) {
				t.Errorf("%s: got %s as %s %q, published as %s %q", r.name, body.K, d.channel, d.data, p.channel, p.data)
			}
			latencies = append(latencies, d.at-body.T)
		}
		for key, n := range got {
			if n > 1 {
				t.Errorf("%s: got %s %d times", r.name, key, n)
			}
		}
		// The guarantee: every acknowledged publication on a channel the
		// client was subscribed to (all were, before publishing began)
		// arrived before the close.
		missing := 0
		for key, p := range pubs {
			if slices.Contains(r.channels, p.channel) && got[key] == 0 {
				missing++
				if missing <= 3 {
					t.Errorf("%s: acknowledged publication %s on %s never arrived", r.name, key, p.channel)
				}
			}
		}
		if missing > 3 {
			t.Errorf("%s: %d acknowledged publications missing in all", r.name, missing)
		}
	}
	if len(latencies) == 0 {
		t.Fatal("no deliveries")
	}
	return latencies
}
