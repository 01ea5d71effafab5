package server_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/latchws/latch/internal/testutil"

	"github.com/latchws/latch/server"
	"github.com/latchws/latch/websocket"
)

// waitClosed reads until the server closes conn and returns how long that
// took; it fails the test if the connection is still open at its deadline.
func waitClosed(t *testing.T, conn net.Conn, br *bufio.Reader) time.Duration {
	t.Helper()
	start := time.Now()
	_, err := io.Copy(io.Discard, br)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v", time.Since(start))
	}
	return time.Since(start)
}

func TestHTTPIdleTimeoutClosesKeepAlive(t *testing.T) {
	t.Parallel()
	const idle = 300 * time.Millisecond
	_, addr := serve(t, server.Config{HTTPIdleTimeout: idle})
	conn, br := testutil.DialHTTP(t, addr)
	for range 2 { // the connection is kept alive between requests
		fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Close {
			t.Fatalf("GET /healthz: %d, close %v; want 200 kept alive", resp.StatusCode, resp.Close)
		}
	}
	if d := waitClosed(t, conn, br); d < idle/2 {
		t.Fatalf("closed after %v, before the idle timeout %v", d, idle)
	}
}

// A negative idle timeout is none, even with a read timeout set (which
// net/http would use for a zero IdleTimeout).
func TestHTTPIdleTimeoutOff(t *testing.T) {
	t.Parallel()
	const read = 200 * time.Millisecond
	_, addr := serve(t, server.Config{HTTPIdleTimeout: -1, HTTPReadTimeout: read})
	conn, br := testutil.DialHTTP(t, addr)
	for i := range 2 {
		if i > 0 {
			time.Sleep(3 * read) // idle for longer than the read timeout
		}
		fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d on the kept-alive connection: %v", i+1, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

func TestHTTPReadTimeoutCutsSlowBody(t *testing.T) {
	t.Parallel()
	_, addr := serve(t, server.Config{HTTPReadTimeout: 300 * time.Millisecond})
	conn, br := testutil.DialHTTP(t, addr)
	// 1000 bytes announced, sent one every 20 ms: 20 s if never cut.
	const size = 1000
	fmt.Fprintf(conn, "POST /healthz HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n", addr, size)
	sent := make(chan int, 1)
	go func() {
		n := 0
		for ; n < size; n++ {
			if _, err := conn.Write([]byte{'x'}); err != nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		sent <- n
	}()
	waitClosed(t, conn, br)
	conn.Close() // ends the writer if the server's close has not yet
	if n := <-sent; n >= size {
		t.Fatalf("the whole body of %d bytes was read", n)
	}
}

func TestMaxHeaderBytes(t *testing.T) {
	t.Parallel()
	_, addr := serve(t, server.Config{})

	// 64 KiB of headers: twice the default bound.
	conn, br := testutil.DialHTTP(t, addr)
	go func() {
		var req strings.Builder
		fmt.Fprintf(&req, "GET /ws HTTP/1.1\r\nHost: %s\r\n", addr)
		for i := range 64 {
			fmt.Fprintf(&req, "X-Fill-%d: %s\r\n", i, strings.Repeat("f", 1000))
		}
		req.WriteString("\r\n")
		_, _ = io.WriteString(conn, req.String())
	}()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("64 KiB of headers: status %d, want 431", resp.StatusCode)
	}

	// A handshake with a few KiB of cookies is fine.
	h := http.Header{}
	for i := range 8 {
		h.Add("Cookie", fmt.Sprintf("c%d=%s", i, strings.Repeat("v", 500)))
	}
	c, _, err := dialWS(t, addr, h, nil)
	if err != nil {
		t.Fatalf("handshake with 4 KiB of cookies: %v", err)
	}
	cl := &client{t: t, conn: c}
	if m := cl.read(); m["type"] != "welcome" {
		t.Fatalf("first message %v, want a welcome", m)
	}
}

// The HTTP bounds end at the upgrade: a WebSocket outlives all three.
func TestWebSocketOutlivesHTTPTimeouts(t *testing.T) {
	t.Parallel()
	const bound = 300 * time.Millisecond
	_, addr := serve(t, server.Config{HTTPReadTimeout: bound, HTTPWriteTimeout: bound, HTTPIdleTimeout: bound})
	ws := connect(t, addr)
	echo, _, err := (&websocket.Dialer{HandshakeTimeout: 5 * time.Second}).Dial("ws://"+addr+"/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	for i := range 3 {
		// Waiting is the point: each round is past every bound again.
		time.Sleep(2 * bound)
		ws.do(fmt.Sprintf(`{"op":"ping","id":"%d"}`, i), fmt.Sprintf(`{"type":"pong","id":"%d"}`, i))
		msg := fmt.Sprint("round ", i)
		if err := echo.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatalf("round %d: echo write: %v", i, err)
		}
		_ = echo.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, got, err := echo.ReadMessage(); err != nil || string(got) != msg {
			t.Fatalf("round %d: echo read %q, %v", i, got, err)
		}
	}
}

// handshake sends a WebSocket upgrade for path with the given Host over a
// fresh connection to addr and returns the status and body.
func handshake(t *testing.T, addr, path, host string) (int, string) {
	t.Helper()
	conn, br := testutil.DialHTTP(t, addr)
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", path, host)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("Host %q: %v", host, err)
	}
	defer resp.Body.Close()
	var body []byte
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ = io.ReadAll(resp.Body)
	}
	return resp.StatusCode, string(body)
}

// On a loopback address only localhost names and IP literals are served
// by default: a DNS-rebound name is refused with 421.
func TestAllowedHostsDefaultOnLoopback(t *testing.T) {
	t.Parallel()
	_, addr := serve(t, server.Config{Addr: "127.0.0.1:0"})
	_, port, _ := net.SplitHostPort(addr)
	for _, tt := range []struct {
		path, host string
		want       int
	}{
		{"/ws", "evil.example", http.StatusMisdirectedRequest},
		{"/echo", "evil.example:" + port, http.StatusMisdirectedRequest},
		{"/ws", "localhost:" + port, http.StatusSwitchingProtocols},
		{"/ws", "127.0.0.1:" + port, http.StatusSwitchingProtocols},
		{"/echo", "app.localhost:" + port, http.StatusSwitchingProtocols},
	} {
		status, body := handshake(t, addr, tt.path, tt.host)
		if status != tt.want {
			t.Errorf("%s with Host %q: status %d, want %d", tt.path, tt.host, status, tt.want)
		}
		if status == http.StatusMisdirectedRequest && !strings.Contains(body, "-allowed-hosts") {
			t.Errorf("421 body %q does not name -allowed-hosts", body)
		}
	}
	// Probes are exempt.
	for _, path := range []string{"/healthz", "/readyz"} {
		conn, br := testutil.DialHTTP(t, addr)
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: kube-probe.internal\r\n\r\n", path)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s with a foreign Host: %d, want 200", path, resp.StatusCode)
		}
	}
}

func TestAllowedHostsConfigured(t *testing.T) {
	t.Parallel()
	_, addr := serve(t, server.Config{AllowedHosts: []string{"latch.example", "*.latch.example"}})
	for host, want := range map[string]int{
		"latch.example":        http.StatusSwitchingProtocols,
		"eu.latch.example:443": http.StatusSwitchingProtocols,
		"evil.example":         http.StatusMisdirectedRequest,
		"localhost":            http.StatusMisdirectedRequest,
		"127.0.0.1":            http.StatusSwitchingProtocols,
	} {
		if status, _ := handshake(t, addr, "/ws", host); status != want {
			t.Errorf("Host %q: status %d, want %d", host, status, want)
		}
	}
	if _, err := server.New(server.Config{AllowedHosts: []string{"[bad"}}); err == nil {
		t.Error("New accepted the host pattern \"[bad\"")
	}
}
