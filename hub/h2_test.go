package hub_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchws/latch/hub"
	"github.com/latchws/latch/websocket"
	_ "github.com/latchws/latch/websocket/xconnect" // RFC 8441 on this binary's servers
)

// TestHubOverHTTP2: clients on streams of one HTTP/2 connection are
// registered, receive what is published, leave cleanly one by one (the
// others stay), and get 1001 from Shutdown; no hub goroutine is left.
func TestHubOverHTTP2(t *testing.T) {
	const clients = 5
	var h *hub.Hub
	ready := make(chan uint64, clients)
	gone := make(chan disconnect, clients)
	h = hub.New(hub.Config{OnConnect: subscribeFromQuery(&h, ready), OnDisconnect: onDisconnect(gone)})
	var tcpConns atomic.Int32
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			tcpConns.Add(1)
		}
	}
	srv.StartTLS()
	defer srv.Close()
	pool := &websocket.HTTP2Pool{}
	defer pool.CloseIdleConnections()
	d := &websocket.Dialer{HTTP2: pool, TLSClientConfig: srv.Client().Transport.(*http.Transport).TLSClientConfig}
	url := "wss" + strings.TrimPrefix(srv.URL, "https") + "/?ch=news"
	conns := make([]*websocket.Conn, clients)
	for i := range conns {
		c, resp, err := d.Dial(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.ProtoMajor != 2 {
			t.Fatalf("dialled over %s, want HTTP/2", resp.Proto)
		}
		defer c.CloseNow()
		conns[i] = c
		<-ready
	}
	if n := tcpConns.Load(); n != 1 {
		t.Fatalf("%d TCP connections, want 1", n)
	}
	if n := h.Publish("news", websocket.TextMessage, []byte("hello")); n != clients {
		t.Fatalf("Publish reached %d clients, want %d", n, clients)
	}
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, p, err := c.ReadMessage(); err != nil || string(p) != "hello" {
			t.Fatalf("client %d: %q %v", i, p, err)
		}
	}
	// A client leaving closes its stream only.
	if err := conns[0].Close(); err != nil {
		t.Fatal(err)
	}
	if d := <-gone; d.code != websocket.CloseNormalClosure {
		t.Fatalf("OnDisconnect code %d (%v), want 1000", d.code, d.err)
	}
	if n := h.Publish("news", websocket.TextMessage, []byte("again")); n != clients-1 {
		t.Fatalf("Publish reached %d clients, want %d", n, clients-1)
	}
	errs := make(chan error, clients)
	for _, c := range conns[1:] {
		go func() {
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, p, err := c.ReadMessage(); err != nil || string(p) != "again" {
				errs <- err
				return
			}
			_, _, err := c.ReadMessage()
			errs <- err
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for range clients - 1 {
		if err := <-errs; !websocket.IsCloseError(err, websocket.CloseGoingAway) {
			t.Errorf("client read: %v, want close 1001", err)
		}
	}
	checkNoHubGoroutines(t)
}
