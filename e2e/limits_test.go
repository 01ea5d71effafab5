package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/latchws/latch/websocket"
)

// maskedText appends one masked text frame with payload (≤ 125 bytes) to
// b. RFC 6455 §5.3
func maskedText(b []byte, payload string) []byte {
	var mask [4]byte
	rand.Read(mask[:])
	b = append(b, 0x81, 0x80|byte(len(payload)))
	b = append(b, mask[:]...)
	for i := range len(payload) {
		b = append(b, payload[i]^mask[i%4])
	}
	return b
}

// TestPipeliningClient (issue 10, finding 5): a client that writes 2,000
// requests before reading any answer gets exactly 2,000 answers, in order,
// and is never closed as a slow consumer. The default -send-queue (256)
// and -max-message-rate (1,000/s) apply: the server slows the client down
// instead.
func TestPipeliningClient(t *testing.T) {
	const requests = 2000
	p := startLatch(t, "-log-level", "warn")
	c := dialRaw(t, p.addr)

	var batch []byte
	for i := range requests {
		batch = maskedText(batch, fmt.Sprintf(`{"op":"ping","id":"%d"}`, i))
	}
	c.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.conn.Write(batch); err != nil {
		t.Fatalf("writing %d requests before reading: %v", requests, err)
	}
	c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	op, msg, err := c.readFrame()
	if err != nil || op != websocket.TextMessage || !strings.Contains(string(msg), `"welcome"`) {
		t.Fatalf("first message: %d %q %v, want the welcome", op, msg, err)
	}
	for i := range requests {
		op, msg, err := c.readFrame()
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		if op == websocket.CloseMessage {
			t.Fatalf("close frame %q after %d answers", msg, i)
		}
		if want := fmt.Sprintf(`{"type":"pong","id":"%d"}`, i); string(msg) != want {
			t.Fatalf("answer %d is %q, want %s", i, msg, want)
		}
	}
	if n := p.metric(t, "latch_slow_consumer_disconnects_total"); n != 0 {
		t.Errorf("latch_slow_consumer_disconnects_total = %v, want 0", n)
	}
	c.writeClose(t, websocket.CloseNormalClosure)
	if op, msg, err := c.readFrame(); err != nil || op != websocket.CloseMessage {
		t.Fatalf("after close: %d %q %v, want the close answered", op, msg, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for p.metric(t, "latch_connections") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("connection still counted after the closing handshake")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := p.metric(t, `latch_close_codes_total{code="1000"}`); n != 1 {
		t.Errorf(`latch_close_codes_total{code="1000"} = %v, want 1`, n)
	}
	t.Logf("%d pipelined pings answered in order; throttled waits: %v", requests, p.metric(t, "latch_throttled_messages_total"))
	p.signal(t, syscall.SIGTERM)
	p.waitExit(t, 10*time.Second)
}

// dialStatus opens a WebSocket on url, and returns the connection (closed
// at cleanup) or the HTTP status and body of the refusal.
func dialStatus(t *testing.T, url string) (*websocket.Conn, int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, resp, err := (&websocket.Dialer{}).DialContext(ctx, url, nil)
	if err == nil {
		t.Cleanup(func() { conn.CloseNow() })
		return conn, http.StatusSwitchingProtocols, ""
	}
	if resp == nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	var body []byte
	if resp.Body != nil {
		body, _ = io.ReadAll(resp.Body)
	}
	return nil, resp.StatusCode, string(body)
}

// TestConnectionLimitsAllRoutes (issue 10, finding 7): -max-connections
// counts /ws and /echo together (it used to count /ws only: 10 on /ws and
// 50 on /echo were open under a limit of 10), and -max-connections-per-ip
// does the same per address.
func TestConnectionLimitsAllRoutes(t *testing.T) {
	t.Run("max-connections", func(t *testing.T) {
		p := startLatch(t, "-max-connections", "10", "-log-level", "warn")
		var echoes []*websocket.Conn
		for i := range 10 {
			route := "/ws"
			if i%2 == 1 {
				route = "/echo"
			}
			conn, status, body := dialStatus(t, p.url(route))
			if conn == nil {
				t.Fatalf("connection %d on %s: HTTP %d %q, want it admitted", i, route, status, body)
			}
			if route == "/echo" {
				echoes = append(echoes, conn)
			}
		}
		for _, route := range []string{"/echo", "/ws"} {
			if _, status, body := dialStatus(t, p.url(route)); status != http.StatusServiceUnavailable || !strings.Contains(body, "too many connections") {
				t.Errorf("11th connection on %s: HTTP %d %q, want 503 too many connections", route, status, body)
			}
		}
		if n := p.metric(t, `latch_upgrades_rejected_total{reason="max_connections"}`); n != 2 {
			t.Errorf("max_connections rejections = %v, want 2", n)
		}
		// An /echo connection that ends frees a slot for /ws.
		if err := echoes[0].Close(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			conn, status, _ := dialStatus(t, p.url("/ws"))
			if conn != nil {
				break
			}
			if status != http.StatusServiceUnavailable || time.Now().After(deadline) {
				t.Fatalf("/ws after an /echo connection closed: HTTP %d", status)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	t.Run("max-connections-per-ip", func(t *testing.T) {
		p := startLatch(t, "-max-connections-per-ip", "3", "-log-level", "warn")
		for _, route := range []string{"/ws", "/echo", "/ws"} {
			if conn, status, body := dialStatus(t, p.url(route)); conn == nil {
				t.Fatalf("%s within the per-IP limit: HTTP %d %q", route, status, body)
			}
		}
		for _, route := range []string{"/echo", "/ws"} {
			if _, status, _ := dialStatus(t, p.url(route)); status != http.StatusTooManyRequests {
				t.Errorf("4th connection from 127.0.0.1 on %s: HTTP %d, want 429", route, status)
			}
		}
		if n := p.metric(t, `latch_upgrades_rejected_total{reason="per_ip"}`); n != 2 {
			t.Errorf("per_ip rejections = %v, want 2", n)
		}
	})
}
