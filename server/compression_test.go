package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/latchws/latch/server"
	"github.com/latchws/latch/websocket"
)

// dialPath dials path on addr with d and returns the connection and the
// handshake's Sec-WebSocket-Extensions.
func dialPath(t *testing.T, addr, path string, d *websocket.Dialer) (*websocket.Conn, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := d.DialContext(ctx, "ws://"+addr+path, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	return c, resp.Header.Get("Sec-WebSocket-Extensions")
}

func TestCompression(t *testing.T) {
	t.Parallel()
	// Above the default threshold, so that it really is sent compressed.
	big := strings.Repeat(`{"op":"compressible"}`, 200)
	offer := func(takeover bool) *websocket.Dialer {
		return &websocket.Dialer{HandshakeTimeout: 5 * time.Second, EnableCompression: true, CompressionContextTakeover: takeover}
	}

	t.Run("default", func(t *testing.T) {
		t.Parallel()
		_, addr := serve(t, server.Config{})

		// /echo: a large and a small message round-trip, compressed or not.
		c, ext := dialPath(t, addr, "/echo", offer(false))
		if !strings.HasPrefix(ext, "permessage-deflate") || !c.Compressed() {
			t.Fatalf("/echo: extensions %q, compressed %v; want permessage-deflate", ext, c.Compressed())
		}
		for _, msg := range []string{big, "small"} {
			if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			typ, p, err := c.ReadMessage()
			if err != nil || typ != websocket.TextMessage || string(p) != msg {
				t.Fatalf("/echo of %d bytes: (%d, %d bytes, %v)", len(msg), typ, len(p), err)
			}
		}

		// /ws: a large publication reaches its compressed subscriber.
		ws, ext := dialPath(t, addr, "/ws", offer(false))
		if !strings.HasPrefix(ext, "permessage-deflate") || !ws.Compressed() {
			t.Fatalf("/ws: extensions %q, compressed %v; want permessage-deflate", ext, ws.Compressed())
		}
		cl := &client{t: t, conn: ws}
		if m := cl.read(); m["type"] != "welcome" {
			t.Fatalf("first message %v, want welcome", m)
		}
		cl.do(`{"op":"subscribe","channel":"z","id":"1"}`, `{"type":"ack","id":"1"}`)
		data := `"` + strings.Repeat("abc", 500) + `"`
		cl.send(`{"op":"publish","channel":"z","data":` + data + `}`)
		cl.expect(`{"type":"message","channel":"z","data":` + data + `}`)
		cl.expect(`{"type":"ack"}`)

		// Without context takeover unless configured (RFC 7692 §7.1.1).
		if !strings.Contains(ext, "server_no_context_takeover") || !strings.Contains(ext, "client_no_context_takeover") {
			t.Errorf("/ws extensions %q, want both no_context_takeover parameters", ext)
		}
		// A client that does not offer compression gets none.
		plain, ext := dialPath(t, addr, "/echo", &websocket.Dialer{HandshakeTimeout: 5 * time.Second})
		if ext != "" || plain.Compressed() {
			t.Errorf("no offer: extensions %q, compressed %v; want none", ext, plain.Compressed())
		}

		metrics := get(t, "http://"+addr+"/metrics", http.StatusOK)
		for _, want := range []string{
			`latch_compressed_connections_total{route="/echo"} 1`,
			`latch_compressed_connections_total{route="/ws"} 1`,
		} {
			if !strings.Contains(metrics, want+"\n") {
				t.Errorf("metrics lack %q", want)
			}
		}
	})

	t.Run("context takeover", func(t *testing.T) {
		t.Parallel()
		_, addr := serve(t, server.Config{CompressionContextTakeover: true})
		for _, path := range []string{"/echo", "/ws"} {
			c, ext := dialPath(t, addr, path, offer(true))
			if ext != "permessage-deflate" || !c.Compressed() {
				t.Errorf("%s: extensions %q, want plain permessage-deflate (takeover both ways)", path, ext)
			}
		}
	})

	t.Run("disabled", func(t *testing.T) {
		t.Parallel()
		_, addr := serve(t, server.Config{DisableCompression: true})
		for _, path := range []string{"/echo", "/ws"} {
			c, ext := dialPath(t, addr, path, offer(false))
			if ext != "" || c.Compressed() {
				t.Errorf("%s: extensions %q, compressed %v; want none", path, ext, c.Compressed())
			}
		}
		metrics := get(t, "http://"+addr+"/metrics", http.StatusOK)
		if !strings.Contains(metrics, `latch_compressed_connections_total{route="/ws"} 0`+"\n") {
			t.Errorf("metrics count compressed connections while disabled")
		}
	})
}
