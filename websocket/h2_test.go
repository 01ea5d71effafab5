package websocket

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/latchws/latch/websocket/xconnect" // servers of this test binary offer RFC 8441
)

// h2Seen is what an HTTP/2 test server's handler saw of one request.
type h2Seen struct {
	proto, method, protocol string
	err                     error
}

// h2TestServer serves u's upgrades over TLS with h2 (cleartext h2c with
// prior knowledge if h2c), runs handler on each Conn and, as an HTTP/2
// handler must, returns only once the Conn is closed. It counts the TCP
// connections it accepts.
type h2TestServer struct {
	srv   *httptest.Server
	seen  chan h2Seen
	conns atomic.Int32
	wg    sync.WaitGroup
}

func newH2TestServer(t testing.TB, u *Upgrader, h2c bool, handler func(*Conn), configure ...func(*http.Server)) *h2TestServer {
	t.Helper()
	if u == nil {
		u = &Upgrader{}
	}
	s := &h2TestServer{seen: make(chan h2Seen, 100)}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.wg.Add(1)
		defer s.wg.Done()
		c, err := u.Upgrade(w, r, nil)
		select {
		case s.seen <- h2Seen{proto: r.Proto, method: r.Method, protocol: r.Header.Get(":protocol"), err: err}:
		default:
		}
		if err != nil {
			return
		}
		handler(c)
		<-c.Done()
	}))
	s.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	for _, f := range configure {
		f(s.srv.Config)
	}
	if h2c {
		s.srv.Config.Protocols = new(http.Protocols)
		s.srv.Config.Protocols.SetUnencryptedHTTP2(true)
		s.srv.Config.Protocols.SetHTTP1(true)
		s.srv.Start()
	} else {
		s.srv.EnableHTTP2 = true
		s.srv.StartTLS()
	}
	t.Cleanup(func() {
		s.srv.Close()
		waited := make(chan struct{})
		go func() { s.wg.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-time.After(10 * time.Second):
			t.Error("a handler is still waiting for its connection to close 10 s after the test")
		}
	})
	return s
}

// url is the server's WebSocket URL for path.
func (s *h2TestServer) url(path string) string {
	return "ws" + strings.TrimPrefix(s.srv.URL, "http") + path
}

// dialer dials the server over HTTP/2, through pool.
func (s *h2TestServer) dialer(pool *HTTP2Pool) *Dialer {
	d := &Dialer{HTTP2: pool, HandshakeTimeout: 5 * time.Second}
	if s.srv.TLS != nil {
		d.TLSClientConfig = s.srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	}
	return d
}

func (s *h2TestServer) nextSeen(t *testing.T) h2Seen {
	t.Helper()
	select {
	case r := <-s.seen:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("the server saw no request")
		return h2Seen{}
	}
}

func echoConn(c *Conn) {
	defer c.Close()
	for {
		mt, p, err := c.ReadMessage()
		if err != nil {
			return
		}
		if err := c.WriteMessage(mt, p); err != nil {
			return
		}
	}
}

// TestH2EchoOverExtendedConnect: the server takes an RFC 8441 CONNECT and
// every message kind crosses the stream, compressed or not, over TLS h2
// and over h2c.
func TestH2EchoOverExtendedConnect(t *testing.T) {
	for _, tc := range []struct {
		name     string
		h2c      bool
		compress bool
	}{{"h2", false, false}, {"h2-deflate", false, true}, {"h2c", true, false}} {
		t.Run(tc.name, func(t *testing.T) {
			u := &Upgrader{EnableCompression: tc.compress, Subprotocols: []string{"chat"}}
			s := newH2TestServer(t, u, tc.h2c, echoConn)
			pool := &HTTP2Pool{PriorKnowledge: tc.h2c}
			defer pool.CloseIdleConnections()
			d := s.dialer(pool)
			d.EnableCompression = tc.compress
			d.Subprotocols = []string{"chat"}
			c, resp, err := d.Dial(s.url("/ws"), nil)
			if err != nil {
				t.Fatalf("dial: %v (resp %v)", err, resp)
			}
			defer c.CloseNow()
			seen := s.nextSeen(t)
			if seen.err != nil || seen.method != http.MethodConnect || seen.proto != "HTTP/2.0" || seen.protocol != "websocket" {
				t.Fatalf("server saw %+v, want an HTTP/2.0 CONNECT with :protocol websocket", seen)
			}
			if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
				t.Fatalf("response %d %s, want 200 over HTTP/2", resp.StatusCode, resp.Proto)
			}
			if c.Subprotocol() != "chat" {
				t.Fatalf("subprotocol %q, want chat", c.Subprotocol())
			}
			if got := resp.Header.Get("Sec-Websocket-Extensions") != ""; got != tc.compress {
				t.Fatalf("compression negotiated %v, want %v", got, tc.compress)
			}
			big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
			for _, m := range []struct {
				mt int
				p  []byte
			}{{TextMessage, []byte("hello")}, {BinaryMessage, []byte{0, 1, 2, 255}}, {BinaryMessage, big}, {TextMessage, nil}} {
				if err := c.WriteMessage(m.mt, m.p); err != nil {
					t.Fatal(err)
				}
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				mt, p, err := c.ReadMessage()
				if err != nil || mt != m.mt || !bytes.Equal(p, m.p) {
					t.Fatalf("echo of %d bytes: type %d, %d bytes, err %v", len(m.p), mt, len(p), err)
				}
			}
			// Ping → pong, answered by the server's default handler.
			pong := make(chan string, 1)
			c.SetPongHandler(func(s string) error { pong <- s; return nil })
			if err := c.WriteControl(PingMessage, []byte("p1"), time.Now().Add(time.Second)); err != nil {
				t.Fatal(err)
			}
			go c.ReadMessage()
			select {
			case p := <-pong:
				if p != "p1" {
					t.Fatalf("pong %q", p)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no pong")
			}
		})
	}
}

// TestH2StreamsShareOneConnection: WebSockets of one pool to one server
// are streams of one TCP connection; closing one, cleanly or not, leaves
// the others working.
func TestH2StreamsShareOneConnection(t *testing.T) {
	s := newH2TestServer(t, nil, false, func(c *Conn) {
		mt, p, err := c.ReadMessage()
		if err != nil {
			return
		}
		switch string(p) {
		case "abort":
			c.CloseNow()
			return
		case "close":
			c.CloseWithCode(CloseNormalClosure, "bye")
			return
		}
		c.WriteMessage(mt, p)
		echoConn(c)
	})
	pool := &HTTP2Pool{}
	defer pool.CloseIdleConnections()
	d := s.dialer(pool)
	const n = 10
	conns := make([]*Conn, n)
	for i := range conns {
		c, _, err := d.Dial(s.url("/ws"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		conns[i] = c
	}
	if got := s.conns.Load(); got != 1 {
		t.Fatalf("%d TCP connections for %d WebSockets, want 1", got, n)
	}
	// One closes cleanly from the server, one is reset, one closes from
	// the client.
	conns[0].WriteMessage(TextMessage, []byte("close"))
	_, _, err := conns[0].ReadMessage()
	var ce *CloseError
	if !errors.As(err, &ce) || ce.Code != CloseNormalClosure || ce.Text != "bye" {
		t.Fatalf("server close: %v, want 1000 bye", err)
	}
	conns[1].WriteMessage(TextMessage, []byte("abort"))
	conns[1].SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := conns[1].ReadMessage(); err == nil || errors.As(err, &ce) || isTimeout(err) {
		t.Fatalf("after the server reset the stream: %v, want a stream error", err)
	}
	if err := conns[2].Close(); err != nil {
		t.Fatalf("client close: %v", err)
	}
	for i, c := range conns[3:] {
		msg := []byte{'m', byte(i)}
		if err := c.WriteMessage(BinaryMessage, msg); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, p, err := c.ReadMessage(); err != nil || !bytes.Equal(p, msg) {
			t.Fatalf("stream %d after others closed: %q %v", i+3, p, err)
		}
	}
	if got := s.conns.Load(); got != 1 {
		t.Fatalf("%d TCP connections after closes, want still 1", got)
	}
}

// TestH2ServerTimeoutsDoNotCutWebSockets: http.Server's ReadTimeout and
// WriteTimeout apply to each HTTP/2 stream; Upgrade lifts them, as it
// clears a hijacked connection's deadlines.
func TestH2ServerTimeoutsDoNotCutWebSockets(t *testing.T) {
	s := newH2TestServer(t, nil, false, echoConn, func(hs *http.Server) {
		hs.ReadTimeout = 300 * time.Millisecond
		hs.WriteTimeout = 300 * time.Millisecond
	})
	pool := &HTTP2Pool{}
	defer pool.CloseIdleConnections()
	c, _, err := s.dialer(pool).Dial(s.url("/ws"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	for i := range 3 {
		time.Sleep(250 * time.Millisecond) // 750 ms in all, past both timeouts
		if err := c.WriteMessage(TextMessage, []byte("x")); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, _, err := c.ReadMessage(); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
	}
}

// TestH2ReadDeadline: a read deadline on the server Conn works through
// the stream's ResponseController.
func TestH2ReadDeadline(t *testing.T) {
	readErr := make(chan error, 1)
	s := newH2TestServer(t, &Upgrader{HeartbeatInterval: -1}, false, func(c *Conn) {
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, _, err := c.ReadMessage()
		readErr <- err
		c.Close()
	})
	pool := &HTTP2Pool{}
	defer pool.CloseIdleConnections()
	c, _, err := s.dialer(pool).Dial(s.url("/ws"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	start := time.Now()
	select {
	case err := <-readErr:
		if !isTimeout(err) {
			t.Fatalf("server read: %v, want a timeout", err)
		}
		if time.Since(start) < 200*time.Millisecond {
			t.Fatalf("the read ended after %v, before its deadline", time.Since(start))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the server's read deadline did not fire")
	}
}

// TestH2Heartbeat: the server's heartbeat pings a client over the stream
// and drops it, resetting the stream, when no pong comes back.
func TestH2Heartbeat(t *testing.T) {
	readErr := make(chan error, 1)
	s := newH2TestServer(t, &Upgrader{HeartbeatInterval: 100 * time.Millisecond}, false, func(c *Conn) {
		_, _, err := c.ReadMessage()
		readErr <- err
	})
	pool := &HTTP2Pool{}
	defer pool.CloseIdleConnections()
	c, _, err := s.dialer(pool).Dial(s.url("/ws"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	var pings atomic.Int32
	c.SetPingHandler(func(string) error { pings.Add(1); return nil }) // no pong
	clientErr := make(chan error, 1)
	go func() {
		_, _, err := c.ReadMessage()
		clientErr <- err
	}()
	select {
	case err := <-readErr:
		if !errors.Is(err, ErrHeartbeatTimeout) {
			t.Fatalf("server read: %v, want ErrHeartbeatTimeout", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the heartbeat did not drop a silent client")
	}
	if pings.Load() == 0 {
		t.Fatal("the server's heartbeat sent no ping")
	}
	select {
	case err := <-clientErr:
		if err == nil {
			t.Fatal("the client read a message")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the client did not see its stream end")
	}
}

// TestH2StreamEnd: after the closing handshake the server ends the stream
// with END_STREAM (the body ends in io.EOF); without it, the stream is
// reset.
func TestH2StreamEnd(t *testing.T) {
	s := newH2TestServer(t, &Upgrader{ReadLimit: 16}, false, func(c *Conn) {
		_, p, err := c.ReadMessage()
		if err == nil && string(p) == "abort" {
			c.CloseNow()
		}
	})
	rt, done := rawH2(t, s)
	defer done()
	// A message over the read limit fails the connection with 1009: the
	// close frame, then END_STREAM at once (where TCP would send FIN), not
	// after the close timeout.
	{
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		pr, pw := io.Pipe()
		req, _ := http.NewRequestWithContext(ctx, "CONNECT", s.srv.URL+"/ws", pr)
		req.Header = http.Header{"Sec-Websocket-Version": {"13"}, ":protocol": {"websocket"}}
		resp, err := rt.RoundTrip(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("CONNECT: %v %v", resp, err)
		}
		go pw.Write(append([]byte{0x82, 0x80 | 20, 0, 0, 0, 0}, make([]byte, 20)...))
		start := time.Now()
		got, err := io.ReadAll(resp.Body)
		if err != nil || len(got) < 4 || got[0] != 0x88 || got[2] != 0x03 || got[3] != 0xf1 {
			t.Fatalf("over the limit: body %x, err %v; want close 1009 then END_STREAM", got, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("the stream ended %v after the failure, want at once", d)
		}
		pw.Close()
		cancel()
	}
	for _, abort := range []bool{false, true} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		pr, pw := io.Pipe()
		req, _ := http.NewRequestWithContext(ctx, "CONNECT", s.srv.URL+"/ws", pr)
		req.Header = http.Header{"Sec-Websocket-Version": {"13"}, ":protocol": {"websocket"}}
		resp, err := rt.RoundTrip(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("CONNECT: %v %v", resp, err)
		}
		// Masked with a zero key, so the payload reads as is.
		if abort {
			go pw.Write([]byte{0x81, 0x85, 0, 0, 0, 0, 'a', 'b', 'o', 'r', 't'})
		} else {
			go pw.Write([]byte{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8}) // close 1000
		}
		got, err := io.ReadAll(resp.Body)
		if abort {
			if err == nil {
				t.Fatalf("abortive close: body ended cleanly after %x, want a stream reset", got)
			}
		} else {
			if err != nil || !bytes.Equal(got, []byte{0x88, 0x02, 0x03, 0xe8}) {
				t.Fatalf("clean close: body %x, err %v; want the close frame then END_STREAM", got, err)
			}
		}
		pw.Close()
		resp.Body.Close()
		cancel()
	}
}

// rawH2 opens one HTTP/2 connection to s and returns net/http's client
// for it, which sends any request (:protocol included) as it is.
func rawH2(t *testing.T, s *h2TestServer) (http.RoundTripper, func()) {
	t.Helper()
	cfg := s.srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	cfg.NextProtos = []string{"h2"}
	tr := &http.Transport{}
	tr.Clone() // sets TLSNextProto up
	nc, err := tls.Dial("tcp", s.srv.Listener.Addr().String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tr.TLSNextProto["h2"](s.srv.Listener.Addr().String(), nc), tr.CloseIdleConnections
}

// TestH2UpgradeFailures: a wrong CONNECT gets the status an HTTP/1.1
// upgrade would, and the connection serves the next stream.
func TestH2UpgradeFailures(t *testing.T) {
	s := newH2TestServer(t, &Upgrader{}, false, echoConn)
	rt, done := rawH2(t, s)
	defer done()
	for _, tc := range []struct {
		name     string
		method   string
		protocol string
		header   map[string]string
		status   int
	}{
		{"ok", "CONNECT", "websocket", nil, 200},
		{"other protocol", "CONNECT", "webtransport", nil, 501},
		{"no version", "CONNECT", "websocket", map[string]string{"Sec-WebSocket-Version": ""}, 400},
		{"version 8", "CONNECT", "websocket", map[string]string{"Sec-WebSocket-Version": "8"}, 426},
		{"foreign origin", "CONNECT", "websocket", map[string]string{"Origin": "https://evil.example"}, 403},
		{"GET over h2", "GET", "", nil, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{"Sec-Websocket-Version": {"13"}}
			if tc.protocol != "" {
				h.Set(":protocol", tc.protocol)
			}
			for k, v := range tc.header {
				if v == "" {
					h.Del(k)
				} else {
					h.Set(k, v)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			pr, pw := io.Pipe()
			defer pw.Close()
			req, _ := http.NewRequestWithContext(ctx, tc.method, s.srv.URL+"/ws", nil)
			req.Header = h
			if tc.method == "CONNECT" {
				req.Body = pr
			}
			resp, err := rt.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.status == 426 && resp.Header.Get("Sec-Websocket-Version") != "13" {
				t.Fatalf("426 without Sec-WebSocket-Version: 13: %v", resp.Header)
			}
		})
	}
	if got := s.conns.Load(); got != 1 {
		t.Fatalf("%d TCP connections, want 1", got)
	}
}

// TestH2FallsBackToHTTP1: a pool dialing a server that speaks h2 without
// extended CONNECT (Go's default) or HTTP/1.1 only gets an HTTP/1.1
// WebSocket.
func TestH2FallsBackToHTTP1(t *testing.T) {
	for _, h2 := range []bool{true, false} {
		u := &Upgrader{}
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := u.Upgrade(w, r, nil)
			if err == nil {
				echoConn(c)
			}
		}))
		if h2 {
			// An HTTP/2 server without SETTINGS_ENABLE_CONNECT_PROTOCOL
			// (this test binary turns it on for net/http's): its first
			// SETTINGS frame is empty.
			srv.TLS = &tls.Config{NextProtos: []string{"h2", "http/1.1"}}
			srv.Config.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){
				"h2": func(_ *http.Server, c *tls.Conn, _ http.Handler) {
					c.Write([]byte{0, 0, 0, 4, 0, 0, 0, 0, 0})
					io.Copy(io.Discard, c)
				},
			}
		}
		srv.StartTLS()
		pool := &HTTP2Pool{}
		d := &Dialer{HTTP2: pool, TLSClientConfig: srv.Client().Transport.(*http.Transport).TLSClientConfig}
		for range 2 {
			c, resp, err := d.Dial("wss"+strings.TrimPrefix(srv.URL, "https")+"/ws", nil)
			if err != nil {
				t.Fatalf("h2 %v: %v", h2, err)
			}
			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("h2 %v: status %d, want 101 (HTTP/1.1)", h2, resp.StatusCode)
			}
			c.WriteMessage(TextMessage, []byte("hi"))
			if _, p, err := c.ReadMessage(); err != nil || string(p) != "hi" {
				t.Fatalf("h2 %v: echo %q %v", h2, p, err)
			}
			c.Close()
		}
		pool.CloseIdleConnections()
		srv.Close()
	}
}

// TestH2ClientDeadlineAndAbort: on the client's stream a read deadline
// fails the read with a timeout, and CloseNow resets the stream: the
// server's read fails without a close frame, and the connection serves
// the next WebSocket.
func TestH2ClientDeadlineAndAbort(t *testing.T) {
	serverErr := make(chan error, 2)
	s := newH2TestServer(t, &Upgrader{HeartbeatInterval: -1}, false, func(c *Conn) {
		_, _, err := c.ReadMessage()
		serverErr <- err
		c.Close() // a failed read leaves closing to the application, as over TCP
	})
	pool := &HTTP2Pool{}
	defer pool.CloseIdleConnections()
	d := s.dialer(pool)
	c, _, err := d.Dial(s.url("/ws"), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	start := time.Now()
	if _, _, err := c.ReadMessage(); !isTimeout(err) {
		t.Fatalf("client read: %v, want a timeout", err)
	}
	if time.Since(start) < 150*time.Millisecond {
		t.Fatalf("the read ended after %v, before its deadline", time.Since(start))
	}
	select {
	case err := <-serverErr:
		var ce *CloseError
		if err == nil || (errors.As(err, &ce) && ce.Code != CloseAbnormalClosure) {
			t.Fatalf("server read after the client's stream ended: %v, want no close frame", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the server did not see the client's stream end")
	}
	c2, _, err := d.Dial(s.url("/ws"), nil)
	if err != nil {
		t.Fatal(err)
	}
	c2.CloseNow()
	select {
	case err := <-serverErr:
		var ce *CloseError
		if err == nil || (errors.As(err, &ce) && ce.Code != CloseAbnormalClosure) {
			t.Fatalf("server read after CloseNow: %v, want no close frame", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the server did not see CloseNow")
	}
	if n := s.conns.Load(); n != 1 {
		t.Fatalf("%d TCP connections, want 1", n)
	}
}
