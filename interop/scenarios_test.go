package interop

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/latchws/latch/websocket"
)

// fragText is what "cmd frag" sends as a fragmented text message; every
// peer builds the same string.
var fragText = strings.Repeat("Hello, frägmented wörld ✓ ", 400)

// fragBinary is what "cmd frag" sends next as a fragmented binary message.
func fragBinary() []byte {
	b := make([]byte, 3000)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

const mib = 1 << 20

// offered is what clients offer in the subprotocol scenario; servers accept
// only chat.v1 of it, so there is exactly one right answer.
var offered = []string{"x.unknown", "chat.v1"}

// caps says which scenarios a peer can take part in.
type caps struct {
	noFragments bool   // the peer's API cannot send fragmented messages
	noPing      bool   // the peer's API cannot send pings
	pingPayload string // non-empty: the peer chooses its ping payload itself
}

type scenario struct {
	name      string
	protocols bool // the client offers subprotocols
	skip      func(caps) bool
	run       func(t *testing.T, c latchConn, pc *peerConn, pcaps caps)
}

var scenarios = []scenario{
	{name: "text", run: runText},
	{name: "binary", run: runBinary},
	{name: "fragmented-latch-to-peer", run: runFragmentsToPeer},
	{name: "fragmented-peer-to-latch", run: runFragmentsFromPeer, skip: func(c caps) bool { return c.noFragments }},
	{name: "1MiB-both-ways", run: runBig},
	{name: "ping-latch-to-peer", run: runPingFromLatch},
	{name: "ping-peer-to-latch", run: runPingFromPeer, skip: func(c caps) bool { return c.noPing }},
	{name: "close-latch-1000", run: runCloseNormal},
	{name: "close-latch-4001", run: runCloseCode},
	{name: "close-peer-4000", run: runClosePeer},
	{name: "subprotocol", protocols: true, run: runSubprotocol},
}

// latchServer accepts Latch server connections for the tests at /ws/ID.
type latchServer struct {
	srv      *httptest.Server
	upgrader websocket.Upgrader
	takeover *websocket.Upgrader // non-nil: used for URLs with ?latch=takeover
	mu       sync.Mutex
	waiting  map[string]chan *websocket.Conn // guarded by mu
	offers   map[string]string               // guarded by mu: Sec-WebSocket-Extensions offered, by id
}

// newLatchServer starts an httptest server (127.0.0.1); extra handlers (the
// browser page) are mounted beside /ws/.
func newLatchServer(t *testing.T, extra map[string]http.Handler) *latchServer {
	ls := &latchServer{upgrader: websocket.Upgrader{Subprotocols: []string{"chat.v1", "chat.v2"}}}
	ls.start(t, extra)
	return ls
}

func (ls *latchServer) start(t *testing.T, extra map[string]http.Handler) {
	ls.waiting = map[string]chan *websocket.Conn{}
	ls.offers = map[string]string{}
	mux := http.NewServeMux()
	for p, h := range extra {
		mux.Handle(p, h)
	}
	mux.HandleFunc("/ws/", func(w http.ResponseWriter, r *http.Request) {
		id := strings.TrimPrefix(r.URL.Path, "/ws/")
		up := &ls.upgrader
		if ls.takeover != nil && r.URL.Query().Get("latch") == "takeover" {
			up = ls.takeover
		}
		ls.mu.Lock()
		ls.offers[id] = r.Header.Get("Sec-WebSocket-Extensions")
		ls.mu.Unlock()
		ch := ls.slot(id)
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			t.Errorf("upgrade %s: %v", r.URL.Path, err)
			return
		}
		ch <- c
	})
	ls.srv = httptest.NewServer(mux)
	t.Cleanup(ls.srv.Close)
}

// offer returns the Sec-WebSocket-Extensions header the client of id sent.
func (ls *latchServer) offer(id string) string {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.offers[id]
}

func (ls *latchServer) slot(id string) chan *websocket.Conn {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ch := ls.waiting[id]
	if ch == nil {
		ch = make(chan *websocket.Conn, 1)
		ls.waiting[id] = ch
	}
	return ch
}

func (ls *latchServer) url(id string) string {
	return "ws" + strings.TrimPrefix(ls.srv.URL, "http") + "/ws/" + id
}

func (ls *latchServer) accept(t *testing.T, id string) *websocket.Conn {
	t.Helper()
	select {
	case c := <-ls.slot(id):
		t.Cleanup(func() { c.CloseNow() })
		return c
	case <-time.After(eventTimeout):
		t.Fatalf("peer did not connect to %s", ls.url(id))
		return nil
	}
}

// driver is how the Latch side of a connection runs: blocking, its
// messages read by the scenario, or on an event engine, its messages
// delivered by callback (onEngine).
type driver struct {
	suffix, prefix string // of subtest names and connection ids
	engine         bool
	side           func(*testing.T, *websocket.Conn) latchConn
}

var drivers = []driver{
	{side: func(_ *testing.T, c *websocket.Conn) latchConn { return c }},
	{suffix: "-engine", prefix: "e", engine: true, side: onEngine},
}

// runMatrix runs every scenario with Latch as the server (the peer dials)
// and, unless serverOnly, with Latch as the client (the peer serves), each
// on a blocking Conn and again on an event engine (latch-server-engine,
// latch-client-engine).
func runMatrix(t *testing.T, p peer, pcaps caps, ls *latchServer, clientOnly bool) {
	for _, drv := range drivers {
		runDriver(t, p, pcaps, ls, clientOnly, drv)
	}
}

func runDriver(t *testing.T, p peer, pcaps caps, ls *latchServer, clientOnly bool, drv driver) {
	suffix, prefix, side := drv.suffix, drv.prefix, drv.side
	t.Run("latch-server"+suffix, func(t *testing.T) {
		for i, sc := range scenarios {
			if sc.skip != nil && sc.skip(pcaps) {
				continue
			}
			t.Run(sc.name, func(t *testing.T) {
				id := fmt.Sprintf("%ss%d-%s", prefix, i, sc.name)
				var protos []string
				if sc.protocols {
					protos = offered
				}
				pc := p.dial(t, id, ls.url(id), protos)
				c := side(t, ls.accept(t, id))
				openedBy(t, pc, sc.protocols)
				sc.run(t, c, pc, pcaps)
			})
		}
	})
	if clientOnly {
		return
	}
	t.Run("latch-client"+suffix, func(t *testing.T) {
		for i, sc := range scenarios {
			if sc.skip != nil && sc.skip(pcaps) {
				continue
			}
			t.Run(sc.name, func(t *testing.T) {
				id := fmt.Sprintf("%sc%d-%s", prefix, i, sc.name)
				url, pc := p.serve(t, id)
				d := websocket.Dialer{HandshakeTimeout: eventTimeout}
				if sc.protocols {
					d.Subprotocols = offered
				}
				c, resp, err := d.Dial(url, nil)
				if err != nil {
					t.Fatalf("dial %s: %v (response %v)", url, err, resp)
				}
				t.Cleanup(func() { c.CloseNow() })
				openedBy(t, pc, sc.protocols)
				sc.run(t, side(t, c), pc, pcaps)
			})
		}
	})
}

// openedBy records the peer's open event and checks that a subprotocol was
// chosen only when one was offered.
func openedBy(t *testing.T, pc *peerConn, protocols bool) {
	t.Helper()
	pc.open = pc.waitFor(t, "open")
	if !protocols && pc.open.Protocol != "" {
		t.Fatalf("peer reports subprotocol %q though none was offered", pc.open.Protocol)
	}
}

// echo sends one message, checks what the peer saw and reads the echo back.
func echo(t *testing.T, c latchConn, pc *peerConn, typ int, msg []byte) {
	t.Helper()
	c.SetWriteDeadline(time.Now().Add(eventTimeout))
	if err := c.WriteMessage(typ, msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	checkPeerGot(t, pc, typ, msg)
	readExpect(t, c, typ, msg)
}

func checkPeerGot(t *testing.T, pc *peerConn, typ int, msg []byte) {
	t.Helper()
	ev := pc.waitFor(t, "message")
	want := map[int]string{websocket.TextMessage: "text", websocket.BinaryMessage: "binary"}[typ]
	if ev.Type != want || ev.Len != len(msg) || ev.CRC != crc32.ChecksumIEEE(msg) {
		t.Fatalf("peer got %s len %d crc %08x; want %s len %d crc %08x",
			ev.Type, ev.Len, ev.CRC, want, len(msg), crc32.ChecksumIEEE(msg))
	}
}

func readExpect(t *testing.T, c latchConn, typ int, msg []byte) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(eventTimeout))
	gotTyp, got, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if gotTyp != typ || !bytes.Equal(got, msg) {
		t.Fatalf("read type %d len %d (%.40q); want type %d len %d (%.40q)", gotTyp, len(got), got, typ, len(msg), msg)
	}
}

func runText(t *testing.T, c latchConn, pc *peerConn, _ caps) {
	for _, s := range []string{"hello", "héllo wörld ✓ 🚀", ""} {
		echo(t, c, pc, websocket.TextMessage, []byte(s))
	}
}

func runBinary(t *testing.T, c latchConn, pc *peerConn, _ caps) {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	for _, b := range [][]byte{all, {0xff, 0xfe, 0x00}, {}} {
		echo(t, c, pc, websocket.BinaryMessage, b)
	}
}

// runFragmentsToPeer writes messages through NextWriter in several Writes,
// cut inside multi-byte runes (RFC 6455 §5.4, §5.6), and larger than the
// default write buffer so they cannot leave as one frame.
func runFragmentsToPeer(t *testing.T, c latchConn, pc *peerConn, _ caps) {
	send := func(typ int, msg []byte, cuts ...int) {
		t.Helper()
		w, err := c.NextWriter(typ)
		if err != nil {
			t.Fatalf("NextWriter: %v", err)
		}
		prev := 0
		for _, cut := range append(cuts, len(msg)) {
			if _, err := w.Write(msg[prev:cut]); err != nil {
				t.Fatalf("write fragment: %v", err)
			}
			prev = cut
		}
		if err := w.Close(); err != nil {
			t.Fatalf("close writer: %v", err)
		}
		checkPeerGot(t, pc, typ, msg)
		readExpect(t, c, typ, msg)
	}
	text := []byte(fragText)
	send(websocket.TextMessage, text, 10, 30*133+27, 30*300+1)
	send(websocket.BinaryMessage, bytes.Repeat(fragBinary(), 3), 1, 5000)
}

func runFragmentsFromPeer(t *testing.T, c latchConn, _ *peerConn, _ caps) {
	if err := c.WriteMessage(websocket.TextMessage, []byte("cmd frag")); err != nil {
		t.Fatal(err)
	}
	readExpect(t, c, websocket.TextMessage, []byte(fragText))
	readExpect(t, c, websocket.BinaryMessage, fragBinary())
}

func runBig(t *testing.T, c latchConn, pc *peerConn, _ caps) {
	bin := make([]byte, mib)
	for i := range bin {
		bin[i] = byte(i*7 + i>>11)
	}
	echo(t, c, pc, websocket.BinaryMessage, bin)
	// Mixed 1-, 2- and 3-byte runes, cut to whole runes and padded to 1 MiB.
	text := []byte(strings.Repeat("abc é ✓ ", mib/8))[:mib]
	for !utf8.Valid(text) {
		text = text[:len(text)-1]
	}
	text = append(text, bytes.Repeat([]byte("x"), mib-len(text))...)
	echo(t, c, pc, websocket.TextMessage, text)
}

func runPingFromLatch(t *testing.T, c latchConn, pc *peerConn, _ caps) {
	pongs := make(chan string, 4)
	c.SetPongHandler(func(s string) error { pongs <- s; return nil })
	const payload = "latch-ping-42"
	if err := c.WriteControl(websocket.PingMessage, []byte(payload), time.Now().Add(eventTimeout)); err != nil {
		t.Fatalf("ping: %v", err)
	}
	// The peer answers the ping before it echoes the next message, so the
	// pong has been handled by the time the echo is read (RFC 6455 §5.5.3).
	echo(t, c, pc, websocket.TextMessage, []byte("after ping"))
	select {
	case got := <-pongs:
		if got != payload {
			t.Fatalf("pong payload %q, want %q", got, payload)
		}
	default:
		t.Fatal("no pong handled before the echo arrived")
	}
}

func runPingFromPeer(t *testing.T, c latchConn, pc *peerConn, pcaps caps) {
	pings := make(chan string, 4)
	answer := c.PingHandler()
	c.SetPingHandler(func(s string) error { pings <- s; return answer(s) })
	payload := "peer-ping-7"
	if pcaps.pingPayload != "" {
		payload = pcaps.pingPayload
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte("cmd ping "+payload)); err != nil {
		t.Fatal(err)
	}
	// The peer reports the pong with a text message once it has it.
	readExpect(t, c, websocket.TextMessage, []byte("pong "+payload))
	if ev := pc.waitFor(t, "pong"); ev.Data != payload {
		t.Fatalf("peer saw pong %q, want %q", ev.Data, payload)
	}
	select {
	case got := <-pings:
		if got != payload {
			t.Fatalf("Latch saw ping %q, want %q", got, payload)
		}
	default:
		t.Fatal("Latch's ping handler did not run")
	}
}

// expectPeerClose checks the peer saw a clean closing handshake with code.
func expectPeerClose(t *testing.T, pc *peerConn, code int, reason string) {
	t.Helper()
	ev := pc.waitFor(t, "close")
	if ev.Code != code || ev.Reason != reason || !ev.Clean {
		t.Fatalf("peer saw close %d %q clean=%v; want %d %q clean=true", ev.Code, ev.Reason, ev.Clean, code, reason)
	}
}

// closeQuickly: with a live peer the handshake completes at once, far below
// the 5 s CloseTimeout that a missing close frame would cost.
const closeQuickly = 1500 * time.Millisecond

func runCloseNormal(t *testing.T, c latchConn, pc *peerConn, _ caps) {
	start := time.Now()
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(start); d > closeQuickly {
		t.Fatalf("Close took %v; the peer's close frame was not seen", d)
	}
	expectPeerClose(t, pc, websocket.CloseNormalClosure, "")
	c.SetReadDeadline(time.Now().Add(eventTimeout))
	if _, _, err := c.ReadMessage(); err == nil {
		t.Fatal("read after Close succeeded")
	}
}

func runCloseCode(t *testing.T, c latchConn, pc *peerConn, _ caps) {
	start := time.Now()
	if err := c.CloseWithCode(4001, "bye"); err != nil {
		t.Fatalf("CloseWithCode: %v", err)
	}
	if d := time.Since(start); d > closeQuickly {
		t.Fatalf("CloseWithCode took %v; the peer's close frame was not seen", d)
	}
	expectPeerClose(t, pc, 4001, "bye")
}

func runClosePeer(t *testing.T, c latchConn, pc *peerConn, _ caps) {
	if err := c.WriteMessage(websocket.TextMessage, []byte("cmd close 4000 done")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(eventTimeout))
	_, _, err := c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != 4000 || ce.Text != "done" {
		t.Fatalf("read error %v; want *CloseError 4000 \"done\"", err)
	}
	if got := websocket.CloseStatus(err); got != 4000 {
		t.Fatalf("CloseStatus = %d, want 4000", got)
	}
	// Latch echoes the code (RFC 6455 §5.5.1); the reason is its own choice.
	start := time.Now()
	ev := pc.waitFor(t, "close")
	if ev.Code != 4000 || !ev.Clean {
		t.Fatalf("peer saw close %d %q clean=%v; want 4000 echoed, clean", ev.Code, ev.Reason, ev.Clean)
	}
	// Peers report the close once TCP is gone: a server closes it right after
	// the exchange, a client right after the server does (RFC 6455 §7.1.1).
	// Peers that wait for a lingering socket give up only after seconds.
	if d := time.Since(start); d > closeQuickly {
		t.Fatalf("peer saw the end of the connection only after %v", d)
	}
}

func runSubprotocol(t *testing.T, c latchConn, pc *peerConn, _ caps) {
	if got := c.Subprotocol(); got != "chat.v1" {
		t.Fatalf("Latch Subprotocol() = %q, want chat.v1", got)
	}
	if pc.open.Protocol != "chat.v1" {
		t.Fatalf("peer's subprotocol = %q, want chat.v1", pc.open.Protocol)
	}
	echo(t, c, pc, websocket.TextMessage, []byte("negotiated"))
}
