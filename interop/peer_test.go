package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// eventTimeout bounds every wait for a peer observation.
const eventTimeout = 10 * time.Second

// event is one observation a peer reports, as a JSON line.
type event struct {
	Conn     string `json:"conn"`
	Event    string `json:"event"` // listening, open, message, ping, pong, close, error
	Type     string `json:"type"`  // message: text or binary
	Len      int    `json:"len"`
	CRC      uint32 `json:"crc"`  // message: CRC-32 (IEEE) of the payload bytes
	Data     string `json:"data"` // ping, pong: payload
	Protocol string `json:"protocol"`
	Code     int    `json:"code"`
	Reason   string `json:"reason"`
	Clean    bool   `json:"clean"`
	Port     int    `json:"port"`
	Error    string `json:"error"`
	// open: the Sec-WebSocket-Extensions response header as the peer sent
	// or received it (nil: the peer cannot tell), the offer it received as
	// a server, and whether its own API says permessage-deflate is in force
	// (nil: no such API).
	Extensions *string `json:"extensions"`
	Offer      string  `json:"offer"`
	Active     *bool   `json:"active"`
}

// peer is a WebSocket implementation under the common peer protocol: data
// messages are echoed with their type; text messages "cmd frag", "cmd ping
// PAYLOAD" and "cmd close CODE REASON" make the peer act.
type peer interface {
	// dial makes the peer connect to url as a client.
	dial(t *testing.T, id, url string, protocols []string) *peerConn
	// serve returns the URL at which the peer's server accepts connection id.
	serve(t *testing.T, id string) (url string, pc *peerConn)
}

// peerConn is one connection as the peer sees it.
type peerConn struct {
	id     string
	events chan event
	open   event // the peer's "open" event, once seen
}

// waitFor returns the next event of the given kind; an "error" event or a
// timeout fails the test. Other kinds are skipped (logged).
func (pc *peerConn) waitFor(t *testing.T, kind string) event {
	t.Helper()
	timer := time.NewTimer(eventTimeout)
	defer timer.Stop()
	for {
		select {
		case ev := <-pc.events:
			if ev.Event == kind {
				return ev
			}
			if ev.Event == "error" {
				t.Fatalf("peer conn %s: error while waiting for %q: %s", pc.id, kind, ev.Error)
			}
			t.Logf("peer conn %s: skipping %+v while waiting for %q", pc.id, ev, kind)
		case <-timer.C:
			t.Fatalf("peer conn %s: no %q event within %v", pc.id, kind, eventTimeout)
		}
	}
}

// router hands peer events to the connection they belong to.
type router struct {
	mu    sync.Mutex
	conns map[string]*peerConn // guarded by mu
}

func newRouter() *router { return &router{conns: map[string]*peerConn{}} }

func (r *router) register(id string) *peerConn {
	pc := &peerConn{id: id, events: make(chan event, 256)}
	r.mu.Lock()
	r.conns[id] = pc
	r.mu.Unlock()
	return pc
}

// deliver never blocks: the routing goroutine must keep draining the peer.
func (r *router) deliver(t *testing.T, ev event) {
	r.mu.Lock()
	pc := r.conns[ev.Conn]
	r.mu.Unlock()
	if pc == nil {
		t.Logf("peer event for unknown conn: %+v", ev)
		return
	}
	select {
	case pc.events <- ev:
	default:
		t.Errorf("peer conn %s: event buffer full, dropped %+v", ev.Conn, ev)
	}
}

// requirePeer skips (or fails in CI) when a peer is not installed.
func requirePeer(t *testing.T, ok bool, what string) {
	t.Helper()
	if ok {
		return
	}
	msg := fmt.Sprintf("%s is not available; run scripts/install-peers.sh", what)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// procPeer is a peer running as a subprocess (node/peer.js, python/peer.py).
type procPeer struct {
	r      *router
	stdin  io.WriteCloser
	inMu   sync.Mutex // guards stdin writes
	port   int
	stderr *lockedBuffer
}

// startProcPeer runs the command, waits for its "listening" line and routes
// the rest of its stdout. The process is stopped in t.Cleanup.
func startProcPeer(t *testing.T, name string, args ...string) *procPeer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 2 * time.Second
	p := &procPeer{r: newRouter(), stderr: &lockedBuffer{}}
	cmd.Stderr = p.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.stdin = stdin
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", name, err)
	}
	exited := make(chan struct{})
	listening := make(chan int, 1)
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var ev event
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Errorf("%s: bad output line %q: %v", name, sc.Text(), err)
				continue
			}
			if ev.Event == "listening" {
				listening <- ev.Port
				continue
			}
			p.r.deliver(t, ev)
		}
	}()
	t.Cleanup(func() {
		// Closing stdin asks the peer to exit; the context kills it otherwise.
		stdin.Close()
		select {
		case <-exited:
		case <-time.After(3 * time.Second):
			cancel()
		}
		cmd.Wait()
		cancel()
		<-exited
		if t.Failed() {
			t.Logf("%s stderr:\n%s", name, p.stderr.String())
		}
	})
	select {
	case p.port = <-listening:
	case <-exited:
		t.Fatalf("%s exited before listening; stderr:\n%s", name, p.stderr.String())
	case <-time.After(15 * time.Second):
		t.Fatalf("%s did not start listening; stderr:\n%s", name, p.stderr.String())
	}
	return p
}

func (p *procPeer) dial(t *testing.T, id, url string, protocols []string) *peerConn {
	t.Helper()
	return p.connect(t, id, url, protocols, "")
}

// connect tells the peer to dial url; deflate names one of its compression
// configurations ("" = the peer's default).
func (p *procPeer) connect(t *testing.T, id, url string, protocols []string, deflate string) *peerConn {
	t.Helper()
	pc := p.r.register(id)
	if protocols == nil {
		protocols = []string{}
	}
	cmd := map[string]any{"cmd": "connect", "conn": id, "url": url, "protocols": protocols}
	if deflate != "" {
		cmd["deflate"] = deflate
	}
	line, err := json.Marshal(cmd)
	if err != nil {
		t.Fatal(err)
	}
	p.inMu.Lock()
	defer p.inMu.Unlock()
	if _, err := p.stdin.Write(append(line, '\n')); err != nil {
		t.Fatalf("tell peer to connect: %v", err)
	}
	return pc
}

func (p *procPeer) serve(t *testing.T, id string) (string, *peerConn) {
	return fmt.Sprintf("ws://127.0.0.1:%d/%s", p.port, id), p.r.register(id)
}

// lockedBuffer collects a subprocess's stderr.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.TrimSpace(b.buf.String())
}
