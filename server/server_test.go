package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/latchws/latch/server"
	"github.com/latchws/latch/websocket"
)

// The protocol tests use this module's websocket client; the e2e tests add
// Node.js ws as an independent peer.

// serve starts a latch server on loopback and returns it with its base
// address (host:port). Cleanup shuts it down.
// testEngine is the engine the suite's servers use: epoll where it runs
// (Linux, as in CI), and goroutines in the run TestOnGoroutines starts.
var testEngine = func() string {
	if e := os.Getenv("LATCH_SERVER_TEST_ENGINE"); e != "" {
		return e
	}
	if runtime.GOOS == "linux" {
		return server.EngineEpoll
	}
	return server.EngineAuto
}()

// TestOnGoroutines runs every other test of the package again with the
// WebSockets on goroutines (-engine=goroutines), in a child process (but
// the JavaScript client's unit tests, which run no server).
func TestOnGoroutines(t *testing.T) {
	if os.Getenv("LATCH_SERVER_TEST_ENGINE") != "" {
		return // the child: the other tests are the point
	}
	cmd := exec.Command(os.Args[0], "-test.run=.", "-test.skip=^(TestOnGoroutines|TestJSClientUnit)$", "-test.count=1", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), "LATCH_SERVER_TEST_ENGINE="+server.EngineGoroutines)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PASS") {
		t.Fatalf("the suite on goroutines failed: %v\n%s", err, out)
	}
}

func serve(t *testing.T, cfg server.Config) (*server.Server, string) {
	t.Helper()
	if cfg.LogOutput == nil {
		cfg.LogOutput = io.Discard
	}
	if cfg.Engine == "" {
		cfg.Engine = testEngine
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if want := cfg.Engine; want != server.EngineAuto && srv.Engine() != want {
		t.Fatalf("Engine() = %q, want %q", srv.Engine(), want)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
		}
	})
	return srv, ln.Addr().String()
}

// client is a test connection to /ws.
type client struct {
	t    *testing.T
	conn *websocket.Conn
	id   string // from the welcome
}

func dialWS(t *testing.T, addr string, header http.Header, d *websocket.Dialer) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	if d == nil {
		d = &websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := d.DialContext(ctx, "ws://"+addr+"/ws", header)
	if err == nil {
		t.Cleanup(func() { _ = c.CloseNow() })
	}
	return c, resp, err
}

// connect dials /ws and reads the welcome.
func connect(t *testing.T, addr string) *client {
	t.Helper()
	conn, _, err := dialWS(t, addr, nil, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c := &client{t: t, conn: conn}
	m := c.read()
	if m["type"] != "welcome" || m["client"] == "" {
		t.Fatalf("first message %v, want a welcome with a client id", m)
	}
	c.id = m["client"].(string)
	return c
}

func (c *client) send(msg string) {
	c.t.Helper()
	if err := c.conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		c.t.Fatalf("write %s: %v", msg, err)
	}
}

// readRaw reads one text message, failing the test after 5 s.
func (c *client) readRaw() string {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	typ, p, err := c.conn.ReadMessage()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	if typ != websocket.TextMessage {
		c.t.Fatalf("got message type %d, want text", typ)
	}
	return string(p)
}

func (c *client) read() map[string]any {
	c.t.Helper()
	raw := c.readRaw()
	var m map[string]any
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		c.t.Fatalf("message %q is not a JSON object: %v", raw, err)
	}
	return m
}

// expect reads one message and compares it with want exactly.
func (c *client) expect(want string) {
	c.t.Helper()
	if got := c.readRaw(); got != want {
		c.t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// do sends msg and expects the answer want.
func (c *client) do(msg, want string) {
	c.t.Helper()
	c.send(msg)
	c.expect(want)
}

// quiet proves nothing is queued for c: a ping's pong is the next message.
func (c *client) quiet() {
	c.t.Helper()
	c.do(`{"op":"ping","id":"quiet"}`, `{"type":"pong","id":"quiet"}`)
}

// readClose reads until the connection ends and returns its close code.
func (c *client) readClose() int {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for range 1000 {
		_, p, err := c.conn.ReadMessage()
		if err != nil {
			return websocket.CloseStatus(err)
		}
		c.t.Logf("message before close: %s", p)
	}
	c.t.Fatal("connection still open after 1000 messages")
	return 0
}

func TestWelcomeAndPing(t *testing.T) {
	t.Parallel()
	_, addr := serve(t, server.Config{})
	a, b := connect(t, addr), connect(t, addr)
	if a.id == b.id {
		t.Errorf("two clients share the id %q", a.id)
	}
	a.do(`{"op":"ping","id":"4"}`, `{"type":"pong","id":"4"}`)
	a.do(`{"op":"ping"}`, `{"type":"pong"}`)
	a.do(`{"op":"ping","id":""}`, `{"type":"pong","id":""}`)
	// Unknown keys are ignored; ids are echoed as JSON strings.
	a.do(`{"op":"ping","id":"q\"<","extra":[1]}`, `{"type":"pong","id":"q\"\u003c"}`)
	if a.conn.Subprotocol() != "" {
		t.Errorf("subprotocol %q selected though none was offered", a.conn.Subprotocol())
	}

	conn, _, err := dialWS(t, addr, nil, &websocket.Dialer{Subprotocols: []string{"other", server.Subprotocol}})
	if err != nil {
		t.Fatal(err)
	}
	if conn.Subprotocol() != "latch.v1" {
		t.Errorf("subprotocol = %q, want latch.v1", conn.Subprotocol())
	}
}

func TestSubscribePublish(t *testing.T) {
	t.Parallel()
	_, addr := serve(t, server.Config{})
	a, b, c := connect(t, addr), connect(t, addr), connect(t, addr)

	a.do(`{"op":"subscribe","channel":"chat","id":"1"}`, `{"type":"ack","id":"1"}`)
	b.do(`{"op":"subscribe","channel":"chat","id":"1"}`, `{"type":"ack","id":"1"}`)
	// Subscribing twice is acknowledged and delivers once.
	b.do(`{"op":"subscribe","channel":"chat","id":"again"}`, `{"type":"ack","id":"again"}`)

	// The data is forwarded byte for byte, inner whitespace included.
	const data = `{ "text" : "héllo", "n": [1, 2.50, null] }`
	want := `{"type":"message","channel":"chat","data":` + data + `}`
	b.send(`{"op":"publish","channel":"chat","id":"p1","data":` + data + `}`)
	// A subscribed publisher gets its own message before the ack.
	b.expect(want)
	b.expect(`{"type":"ack","id":"p1"}`)
	a.expect(want)
	b.quiet()
	c.quiet() // not subscribed: nothing for c

	// A publisher need not be subscribed; null is a value.
	c.do(`{"op":"publish","channel":"chat","data":null,"id":"p2"}`, `{"type":"ack","id":"p2"}`)
	a.expect(`{"type":"message","channel":"chat","data":null}`)
	b.expect(`{"type":"message","channel":"chat","data":null}`)

	// Channels are separate.
	c.do(`{"op":"publish","channel":"other","data":1,"id":"p3"}`, `{"type":"ack","id":"p3"}`)
	a.quiet()

	// After unsubscribing, nothing more arrives.
	a.do(`{"op":"unsubscribe","channel":"chat","id":"u"}`, `{"type":"ack","id":"u"}`)
	c.do(`{"op":"publish","channel":"chat","data":"x","id":"p4"}`, `{"type":"ack","id":"p4"}`)
	b.expect(`{"type":"message","channel":"chat","data":"x"}`)
	a.quiet()
}

func TestProtocolErrors(t *testing.T) {
	t.Parallel()
	_, addr := serve(t, server.Config{MaxChannels: 2})
	long := strings.Repeat("x", 65)
	tests := []struct {
		name, msg      string
		id, code       string // id "" means the error must carry none
		omitID, binary bool
	}{
		{name: "not JSON", msg: `hello`, code: "bad_request"},
		{name: "trailing garbage", msg: `{"op":"ping"} x`, code: "bad_request"},
		{name: "array", msg: `[{"op":"ping"}]`, code: "bad_request"},
		{name: "null", msg: `null`, code: "bad_request"},
		{name: "binary", msg: `{"op":"ping","id":"b"}`, code: "bad_request", binary: true},
		{name: "id not a string", msg: `{"op":"ping","id":5}`, code: "bad_request"},
		{name: "id too long", msg: `{"op":"ping","id":"` + long + `"}`, code: "bad_request"},
		{name: "missing op", msg: `{"id":"e1"}`, id: "e1", code: "bad_request"},
		{name: "op not a string", msg: `{"op":7,"id":"e2"}`, id: "e2", code: "bad_request"},
		{name: "op case", msg: `{"OP":"ping","id":"e3"}`, id: "e3", code: "bad_request"},
		{name: "unknown op", msg: `{"op":"jump","id":"e4"}`, id: "e4", code: "unknown_op"},
		{name: "missing channel", msg: `{"op":"subscribe","id":"e5"}`, id: "e5", code: "bad_request"},
		{name: "channel not a string", msg: `{"op":"subscribe","channel":1,"id":"e6"}`, id: "e6", code: "bad_request"},
		{name: "empty channel", msg: `{"op":"subscribe","channel":"","id":"e7"}`, id: "e7", code: "bad_channel"},
		{name: "channel with space", msg: `{"op":"publish","channel":"a b","data":1,"id":"e8"}`, id: "e8", code: "bad_channel"},
		{name: "channel too long", msg: `{"op":"subscribe","channel":"` + strings.Repeat("c", 129) + `","id":"e9"}`, id: "e9", code: "bad_channel"},
		{name: "non-ASCII channel", msg: `{"op":"subscribe","channel":"é","id":"e10"}`, id: "e10", code: "bad_channel"},
		{name: "publish without data", msg: `{"op":"publish","channel":"c","id":"e11"}`, id: "e11", code: "bad_request"},
		{name: "not subscribed", msg: `{"op":"unsubscribe","channel":"never","id":"e12"}`, id: "e12", code: "not_subscribed"},
	}
	// A fresh connection per case keeps the abuse limit out of the way.
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := connect(t, addr)
			typ := websocket.TextMessage
			if tt.binary {
				typ = websocket.BinaryMessage
			}
			if err := c.conn.WriteMessage(typ, []byte(tt.msg)); err != nil {
				t.Fatal(err)
			}
			m := c.read()
			if m["type"] != "error" || m["code"] != tt.code {
				t.Fatalf("answer %v, want an error with code %s", m, tt.code)
			}
			if msg, _ := m["message"].(string); msg == "" {
				t.Errorf("error %v has no message text", m)
			}
			id, hasID := m["id"]
			switch {
			case tt.id == "" && hasID:
				t.Errorf("error carries id %v, want none", id)
			case tt.id != "" && id != tt.id:
				t.Errorf("error id = %v, want %q", id, tt.id)
			}
			c.quiet() // an error does not end the connection
		})
	}

	t.Run("channel limits", func(t *testing.T) {
		c := connect(t, addr)
		name128 := strings.Repeat("A", 125) + "_.:"
		c.do(`{"op":"subscribe","channel":"`+name128+`","id":"1"}`, `{"type":"ack","id":"1"}`)
		c.do(`{"op":"subscribe","channel":"b-9","id":"2"}`, `{"type":"ack","id":"2"}`)
		c.send(`{"op":"subscribe","channel":"c","id":"3"}`)
		if m := c.read(); m["code"] != "too_many_channels" || m["id"] != "3" {
			t.Fatalf("third channel: %v, want too_many_channels", m)
		}
		// An existing subscription does not count again; freeing one makes room.
		c.do(`{"op":"subscribe","channel":"b-9","id":"4"}`, `{"type":"ack","id":"4"}`)
		c.do(`{"op":"unsubscribe","channel":"b-9","id":"5"}`, `{"type":"ack","id":"5"}`)
		c.do(`{"op":"subscribe","channel":"c","id":"6"}`, `{"type":"ack","id":"6"}`)
	})
}

func TestAbuseCloses1008(t *testing.T) {
	t.Parallel()
	_, addr := serve(t, server.Config{})
	c := connect(t, addr)
	for i := range 9 {
		c.send(`{"op":"nope"}`)
		if m := c.read(); m["code"] != "unknown_op" {
			t.Fatalf("error %d: %v", i+1, m)
		}
	}
	c.quiet() // nine errors are tolerated
	c.send(`{"op":"nope"}`)
	if m := c.read(); m["code"] != "unknown_op" {
		t.Fatalf("error 10: %v", m) // the tenth error is still reported
	}
	if code := c.readClose(); code != websocket.ClosePolicyViolation {
		t.Fatalf("close code %d, want 1008", code)
	}
	// Other clients are unaffected.
	connect(t, addr).quiet()
}

func TestOversizeCloses1009(t *testing.T) {
	t.Parallel()
	const limit = 1024
	_, addr := serve(t, server.Config{MaxMessageSize: limit})
	c := connect(t, addr)
	c.do(`{"op":"subscribe","channel":"c","id":"s"}`, `{"type":"ack","id":"s"}`)

	prefix, suffix := `{"op":"publish","channel":"c","data":"`, `"}`
	fill := strings.Repeat("z", limit-len(prefix)-len(suffix))
	c.send(prefix + fill + suffix) // exactly the limit
	c.expect(`{"type":"message","channel":"c","data":"` + fill + `"}`)
	c.expect(`{"type":"ack"}`)

	c.send(prefix + fill + "z" + suffix)
	if code := c.readClose(); code != websocket.CloseMessageTooBig {
		t.Fatalf("close code %d, want 1009", code)
	}
}

func TestOrigin(t *testing.T) {
	t.Parallel()
	_, addr := serve(t, server.Config{AllowedOrigins: []string{"app.example.com"}})
	tests := []struct {
		origin string
		status int
	}{
		{"http://evil.example", http.StatusForbidden},
		{"http://app.example.com.evil.example", http.StatusForbidden},
		{"https://app.example.com", http.StatusSwitchingProtocols},
		{"http://" + addr, http.StatusSwitchingProtocols}, // same origin
	}
	for _, tt := range tests {
		conn, resp, err := dialWS(t, addr, http.Header{"Origin": {tt.origin}}, nil)
		if resp == nil {
			t.Fatalf("origin %s: no response (%v)", tt.origin, err)
		}
		if resp.StatusCode != tt.status {
			t.Errorf("origin %s: status %d, want %d", tt.origin, resp.StatusCode, tt.status)
		}
		if conn != nil {
			conn.CloseNow()
		}
	}
}

func TestMaxConnections(t *testing.T) {
	t.Parallel()
	srv, addr := serve(t, server.Config{MaxConnections: 2})
	a := connect(t, addr)
	connect(t, addr)
	_, resp, err := dialWS(t, addr, nil, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("third connection: %v, %v; want HTTP 503", err, resp)
	}
	// Room frees up once a client has gone.
	if err := a.conn.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return srv.Hub().Len() == 1 })
	connect(t, addr).quiet()

	body := get(t, "http://"+addr+"/metrics", http.StatusOK)
	for _, want := range []string{
		`latch_upgrades_rejected_total{reason="max_connections"} 1`,
		`latch_connections 2`,
		`latch_connections_accepted_total 3`,
		`latch_close_codes_total{code="1000"} 1`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestHTTPEndpoints(t *testing.T) {
	t.Parallel()
	_, addr := serve(t, server.Config{})
	base := "http://" + addr
	c := connect(t, addr)
	c.do(`{"op":"subscribe","channel":"m","id":"1"}`, `{"type":"ack","id":"1"}`)
	c.send(`{"op":"publish","channel":"m","data":12345}`)
	c.expect(`{"type":"message","channel":"m","data":12345}`)
	c.expect(`{"type":"ack"}`)
	c.send(`{"op":"bogus"}`)
	c.read()

	if body := get(t, base+"/healthz", http.StatusOK); body != "ok\n" {
		t.Errorf("/healthz body %q", body)
	}
	get(t, base+"/readyz", http.StatusOK)
	if body := get(t, base+"/", http.StatusOK); !strings.Contains(strings.ToLower(body), "<html") {
		t.Errorf("/ is not the demo page: %.200s", body)
	}
	get(t, base+"/nope", http.StatusNotFound)

	metrics := get(t, base+"/metrics", http.StatusOK)
	for _, want := range []string{
		"latch_connections 1",
		`latch_upgrades_rejected_total{reason="draining"} 0`,
		"latch_messages_received_total 3",
		"latch_received_bytes_total ",
		"latch_messages_sent_total ",
		"latch_sent_bytes_total ",
		"latch_queue_dropped_total 0",
		"latch_slow_consumer_disconnects_total 0",
		"latch_publishes_total 1",
		"latch_fanout_duration_seconds_count 1",
		"latch_fanout_recipients_sum 1",
		`latch_protocol_errors_total{code="unknown_op"} 1`,
		`latch_protocol_errors_total{code="bad_request"} 0`,
		"go_goroutines ",
		"process_open_fds ",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestShutdown(t *testing.T) {
	t.Parallel()
	srv, addr := serve(t, server.Config{})
	base := "http://" + addr
	readers := []*client{connect(t, addr), connect(t, addr)}
	// This one does not read until told to, so the shutdown waits for its
	// closing handshake and the draining state can be observed meanwhile.
	late := connect(t, addr)
	late.do(`{"op":"subscribe","channel":"c","id":"1"}`, `{"type":"ack","id":"1"}`)
	readers[0].do(`{"op":"publish","channel":"c","data":"queued","id":"p"}`, `{"type":"ack","id":"p"}`)

	codes := make(chan int, len(readers))
	for _, c := range readers {
		go func() {
			_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, _, err := c.conn.ReadMessage()
			codes <- websocket.CloseStatus(err)
		}()
	}
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
		defer cancel()
		shut <- srv.Shutdown(ctx)
	}()

	for range readers {
		select {
		case code := <-codes:
			if code != websocket.CloseGoingAway {
				t.Errorf("client got close code %d, want 1001", code)
			}
		case <-time.After(8 * time.Second):
			t.Fatal("no close within 8s")
		}
	}
	waitFor(t, func() bool { return status(t, base+"/readyz") == http.StatusServiceUnavailable })
	get(t, base+"/healthz", http.StatusOK)
	if _, resp, err := dialWS(t, addr, nil, nil); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("upgrade while draining: %v, %v; want HTTP 503", err, resp)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v before the last closing handshake", err)
	default:
	}

	// What was queued before the shutdown is delivered before the 1001.
	late.expect(`{"type":"message","channel":"c","data":"queued"}`)
	if code := late.readClose(); code != websocket.CloseGoingAway {
		t.Errorf("late client got close code %d, want 1001", code)
	}
	select {
	case err := <-shut:
		if err != nil {
			t.Errorf("Shutdown: %v, want nil after clean handshakes", err)
		}
	case <-time.After(8 * time.Second):
		t.Fatal("Shutdown did not return")
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	for _, cfg := range []server.Config{
		{TLSCertFile: "cert.pem"},
		{MaxConnections: -1},
		{MaxConnectionsPerIP: -1},
		{MaxMessageSize: -1},
		{LogLevel: "loud"},
		{LogFormat: "xml"},
		{TLSCertFile: "/nonexistent/cert.pem", TLSKeyFile: "/nonexistent/key.pem"},
	} {
		cfg.LogOutput = io.Discard
		if _, err := server.New(cfg); err == nil || !strings.HasPrefix(err.Error(), "server: ") {
			t.Errorf("New(%+v) = %v, want a server: error", cfg, err)
		}
	}
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func status(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// get fetches url, checks its status and returns the body.
func get(t *testing.T, url string, want int) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	if _, err := io.Copy(&body, resp.Body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != want {
		t.Fatalf("GET %s: %d, want %d", url, resp.StatusCode, want)
	}
	return body.String()
}

// On the event engine (the default on Linux) an idle WebSocket, on /ws or
// /echo, holds no goroutine of the server's.
func TestIdleClientsHoldNoGoroutine(t *testing.T) {
	if testEngine != server.EngineEpoll {
		t.Skip("goroutines: one per client by design (this run checks the rest)")
	}
	const clients = 100
	_, addr := serve(t, server.Config{})
	before := runtime.NumGoroutine()
	for range clients {
		connect(t, addr)
		if c, st := dialEcho(t, addr); st != http.StatusSwitchingProtocols {
			t.Fatalf("/echo: HTTP %d", st)
		} else if err := c.WriteMessage(websocket.TextMessage, []byte("hi")); err != nil {
			t.Fatal(err)
		} else if _, p, err := c.ReadMessage(); err != nil || string(p) != "hi" {
			t.Fatalf("/echo: %q, %v", p, err)
		}
	}
	time.Sleep(200 * time.Millisecond) // the writers and handlers end
	if added := runtime.NumGoroutine() - before; added > 20 {
		t.Fatalf("%d idle clients on /ws and %d on /echo added %d goroutines", clients, clients, added)
	}
}
