package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/latchws/latch/server"
	"github.com/latchws/latch/websocket"
)

// TestHTTP2WebSockets: with TLS, /ws and /echo take WebSockets over HTTP/2
// (RFC 8441) on one connection, the http.Server timeouts, which apply per
// stream, do not cut them, and Shutdown sends them 1001.
func TestHTTP2WebSockets(t *testing.T) {
	t.Parallel()
	certFile, keyFile, roots := writeCert(t)
	srv, addr := serve(t, server.Config{
		TLSCertFile: certFile, TLSKeyFile: keyFile,
		HTTPReadTimeout: 300 * time.Millisecond, HTTPWriteTimeout: 300 * time.Millisecond,
	})
	pool := &websocket.HTTP2Pool{}
	defer pool.CloseIdleConnections()
	d := &websocket.Dialer{HandshakeTimeout: 5 * time.Second, TLSClientConfig: &tls.Config{RootCAs: roots}, HTTP2: pool}
	ws, resp, err := d.Dial("wss://"+addr+"/ws", nil)
	if err != nil {
		t.Fatalf("dial /ws: %v", err)
	}
	defer ws.CloseNow()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK {
		t.Fatalf("/ws answered %d over %s, want 200 over HTTP/2", resp.StatusCode, resp.Proto)
	}
	echo, resp, err := d.Dial("wss://"+addr+"/echo", nil)
	if err != nil {
		t.Fatalf("dial /echo: %v", err)
	}
	defer echo.CloseNow()
	if resp.ProtoMajor != 2 {
		t.Fatalf("/echo over %s, want HTTP/2", resp.Proto)
	}
	c := &client{t: t, conn: ws}
	if m := c.read(); m["type"] != "welcome" {
		t.Fatalf("first message %v, want welcome", m)
	}
	c.do(`{"op":"subscribe","channel":"news","id":"1"}`, `{"type":"ack","id":"1"}`)
	time.Sleep(700 * time.Millisecond) // past both timeouts
	c.quiet()
	big := bytes.Repeat([]byte("latch"), 200_000)
	if err := echo.WriteMessage(websocket.BinaryMessage, big); err != nil {
		t.Fatal(err)
	}
	echo.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, p, err := echo.ReadMessage(); err != nil || !bytes.Equal(p, big) {
		t.Fatalf("echo of 1 MB: %d bytes, %v", len(p), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	errs := make(chan error, 1)
	go func() { errs <- srv.Shutdown(ctx) }()
	if code := c.readClose(); code != websocket.CloseGoingAway {
		t.Errorf("/ws close %d, want 1001", code)
	}
	if _, _, err := echo.ReadMessage(); websocket.CloseStatus(err) != websocket.CloseGoingAway {
		t.Errorf("/echo: %v, want close 1001", err)
	}
	if err := <-errs; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// TestHTTP2Off: with DisableHTTP2 a TLS server speaks HTTP/1.1 only, and an
// HTTP/2-capable dialer still gets its WebSocket.
func TestHTTP2Off(t *testing.T) {
	t.Parallel()
	certFile, keyFile, roots := writeCert(t)
	_, addr := serve(t, server.Config{TLSCertFile: certFile, TLSKeyFile: keyFile, DisableHTTP2: true})
	pool := &websocket.HTTP2Pool{}
	defer pool.CloseIdleConnections()
	d := &websocket.Dialer{HandshakeTimeout: 5 * time.Second, TLSClientConfig: &tls.Config{RootCAs: roots}, HTTP2: pool}
	conn, resp, err := d.Dial("wss://"+addr+"/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d over %s, want 101 over HTTP/1.1", resp.StatusCode, resp.Proto)
	}
	conn.WriteMessage(websocket.TextMessage, []byte("hi"))
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, p, err := conn.ReadMessage(); err != nil || string(p) != "hi" {
		t.Fatalf("echo %q %v", p, err)
	}
}

// TestH2C: with H2C, a cleartext server takes WebSockets over HTTP/2 with
// prior knowledge, and HTTP/1.1 upgrades as before.
func TestH2C(t *testing.T) {
	t.Parallel()
	_, addr := serve(t, server.Config{H2C: true})
	pool := &websocket.HTTP2Pool{PriorKnowledge: true}
	defer pool.CloseIdleConnections()
	for _, d := range []*websocket.Dialer{
		{HandshakeTimeout: 5 * time.Second, HTTP2: pool},
		{HandshakeTimeout: 5 * time.Second},
	} {
		conn, resp, err := d.Dial("ws://"+addr+"/echo", nil)
		if err != nil {
			t.Fatal(err)
		}
		wantMajor := 1
		if d.HTTP2 != nil {
			wantMajor = 2
		}
		if resp.ProtoMajor != wantMajor {
			t.Fatalf("dialled over %s, want HTTP/%d", resp.Proto, wantMajor)
		}
		conn.WriteMessage(websocket.TextMessage, []byte("hi"))
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, p, err := conn.ReadMessage(); err != nil || string(p) != "hi" {
			t.Fatalf("echo %q %v", p, err)
		}
		conn.Close()
	}
}

// TestHTTP2Settings: over TLS the server's first SETTINGS frame offers
// extended CONNECT (RFC 8441 §3) and RFC 9113's default frame size of
// 16 KiB rather than Go's 1 MiB: Go's HTTP/2 client keeps a request-body
// buffer of the server's frame size, up to 512 KiB, for every WebSocket.
func TestHTTP2Settings(t *testing.T) {
	t.Parallel()
	certFile, keyFile, roots := writeCert(t)
	_, addr := serve(t, server.Config{TLSCertFile: certFile, TLSKeyFile: keyFile})
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	// Client preface and an empty SETTINGS frame (RFC 9113 §3.4).
	if _, err := io.WriteString(c, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"); err != nil {
		t.Fatal(err)
	}
	var head [9]byte
	if _, err := io.ReadFull(c, head[:]); err != nil {
		t.Fatal(err)
	}
	length := int(head[0])<<16 | int(head[1])<<8 | int(head[2])
	if head[3] != 4 || length%6 != 0 {
		t.Fatalf("first frame type %d length %d, want SETTINGS", head[3], length)
	}
	payload := make([]byte, length)
	if _, err := io.ReadFull(c, payload); err != nil {
		t.Fatal(err)
	}
	settings := map[uint16]uint32{}
	for p := payload; len(p) >= 6; p = p[6:] {
		settings[binary.BigEndian.Uint16(p)] = binary.BigEndian.Uint32(p[2:])
	}
	const maxFrameSize, enableConnect = 0x5, 0x8
	if settings[enableConnect] != 1 {
		t.Errorf("SETTINGS %v without ENABLE_CONNECT_PROTOCOL = 1", settings)
	}
	// Absent means the default, 16,384 (RFC 9113 §6.5.2).
	if v, ok := settings[maxFrameSize]; ok && v != 16<<10 {
		t.Errorf("SETTINGS_MAX_FRAME_SIZE %d, want 16384", v)
	}
}
