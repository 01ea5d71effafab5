package server_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/latchws/latch/server"
	"github.com/latchws/latch/websocket"
)

// dialEcho dials /echo and returns the connection, or the HTTP status of
// the refusal.
func dialEcho(t *testing.T, addr string) (*websocket.Conn, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := (&websocket.Dialer{}).DialContext(ctx, "ws://"+addr+"/echo", nil)
	if err != nil {
		if resp == nil {
			t.Fatalf("dial /echo: %v", err)
		}
		return nil, resp.StatusCode
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	return c, http.StatusSwitchingProtocols
}

// dialWSStatus dials /ws expecting a refusal and returns its status.
func dialWSStatus(t *testing.T, addr string) int {
	t.Helper()
	_, resp, err := dialWS(t, addr, nil, nil)
	if err == nil || resp == nil {
		t.Fatalf("dial /ws: %v, %v; want an HTTP refusal", err, resp)
	}
	return resp.StatusCode
}

// metric returns the line of /metrics for name (with its labels), or "".
func metricLine(t *testing.T, addr, name string) string {
	t.Helper()
	for _, line := range strings.Split(get(t, "http://"+addr+"/metrics", http.StatusOK), "\n") {
		if strings.HasPrefix(line, name+" ") {
			return line
		}
	}
	return ""
}

// -max-connections counts /ws and /echo together.
func TestMaxConnectionsCoversEcho(t *testing.T) {
	t.Parallel()
	_, addr := serve(t, server.Config{MaxConnections: 3})
	connect(t, addr)
	connect(t, addr)
	echo, st := dialEcho(t, addr)
	if st != http.StatusSwitchingProtocols {
		t.Fatalf("/echo within the limit: HTTP %d", st)
	}
	if _, st := dialEcho(t, addr); st != http.StatusServiceUnavailable {
		t.Errorf("/echo beyond the limit: HTTP %d, want 503", st)
	}
	if st := dialWSStatus(t, addr); st != http.StatusServiceUnavailable {
		t.Errorf("/ws beyond the limit: HTTP %d, want 503", st)
	}
	if line := metricLine(t, addr, `latch_upgrades_rejected_total{reason="max_connections"}`); !strings.HasSuffix(line, " 2") {
		t.Errorf("metric %q, want 2 rejections", line)
	}
	// Closing the /echo connection frees a slot for /ws.
	if err := echo.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		conn, resp, err := dialWS(t, addr, nil, nil)
		if err == nil {
			conn.CloseNow()
			break
		}
		if resp == nil || resp.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("/ws after /echo closed: %v, %v", err, resp)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// -max-connections-per-ip counts /ws and /echo together; beyond it, 429.
func TestMaxConnectionsPerIP(t *testing.T) {
	t.Parallel()
	_, addr := serve(t, server.Config{MaxConnectionsPerIP: 2})
	a := connect(t, addr)
	if _, st := dialEcho(t, addr); st != http.StatusSwitchingProtocols {
		t.Fatalf("/echo within the limit: HTTP %d", st)
	}
	// Every test client comes from 127.0.0.1.
	if st := dialWSStatus(t, addr); st != http.StatusTooManyRequests {
		t.Errorf("/ws beyond the per-IP limit: HTTP %d, want 429", st)
	}
	if _, st := dialEcho(t, addr); st != http.StatusTooManyRequests {
		t.Errorf("/echo beyond the per-IP limit: HTTP %d, want 429", st)
	}
	if line := metricLine(t, addr, `latch_upgrades_rejected_total{reason="per_ip"}`); !strings.HasSuffix(line, " 2") {
		t.Errorf("metric %q, want 2 rejections", line)
	}
	a.quiet()
}

// A client that sends many requests before it reads any answer gets every
// answer in order, and is not closed as a slow consumer for its own
// answers (issue 10, finding 5: it used to get 1008 after ~300).
func TestPipelinedRequests(t *testing.T) {
	t.Parallel()
	const requests = 2000
	srv, addr := serve(t, server.Config{SendQueue: 16})
	c := connect(t, addr)
	_ = c.conn.SetWriteDeadline(time.Now().Add(20 * time.Second))
	for i := range requests {
		c.send(`{"op":"ping","id":"` + strconv.Itoa(i) + `"}`)
	}
	for i := range requests {
		c.expect(`{"type":"pong","id":"` + strconv.Itoa(i) + `"}`)
	}
	c.quiet()
	if st := srv.Hub().Stats(); st.SlowDisconnects != 0 || st.CloseCodes[websocket.ClosePolicyViolation] != 0 {
		t.Errorf("SlowDisconnects %d, CloseCodes %v; want none", st.SlowDisconnects, st.CloseCodes)
	}
	if err := c.conn.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return srv.Hub().Stats().CloseCodes[websocket.CloseNormalClosure] == 1 })
}

// A client that sends three times its burst at once, far above
// -max-message-rate, is throttled: every request is answered and the
// throttle counter rises. (Sent at once, not paced: a paced sender slowed
// down by a loaded machine may stay within the rate.)
func TestMessageRateThrottled(t *testing.T) {
	t.Parallel()
	const rate, requests = 50, 150
	srv, addr := serve(t, server.Config{MaxMessageRate: rate})
	c := connect(t, addr)
	start := time.Now()
	go func() {
		for i := range requests {
			msg := fmt.Sprintf(`{"op":"ping","id":"%d"}`, i)
			if c.conn.WriteMessage(websocket.TextMessage, []byte(msg)) != nil {
				return
			}
		}
	}()
	for i := range requests {
		c.expect(fmt.Sprintf(`{"type":"pong","id":"%d"}`, i))
	}
	elapsed := time.Since(start)
	if n := srv.Hub().Stats().Throttled; n == 0 {
		t.Error("no throttled wait for a client sending faster than the rate")
	}
	line := metricLine(t, addr, "latch_throttled_messages_total")
	if line == "" || strings.HasSuffix(line, " 0") {
		t.Errorf("metric line %q, want a count above 0", line)
	}
	// 150 messages at 50/s after a burst of 50: at least 2 s (generous).
	if elapsed < time.Second {
		t.Errorf("answered in %v: not throttled", elapsed)
	}
}
