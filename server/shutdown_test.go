package server_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/latchws/latch/server"
	"github.com/latchws/latch/websocket"
)

// TestShutdownReachesEcho checks that /echo clients, which are not in the
// hub, get 1001 with a closing handshake as /ws clients do.
func TestShutdownReachesEcho(t *testing.T) {
	t.Parallel()
	srv, addr := serve(t, server.Config{})
	d := &websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	echo1, _ := dialPath(t, addr, "/echo", d)
	echo2, _ := dialPath(t, addr, "/echo", d)
	ws := connect(t, addr)
	// The first echo client is mid-conversation: one round trip done.
	if err := echo1.WriteMessage(websocket.TextMessage, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	_ = echo1.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, p, err := echo1.ReadMessage(); err != nil || string(p) != "hi" {
		t.Fatalf("echo: %q, %v", p, err)
	}

	type end struct {
		name string
		err  error
	}
	ends := make(chan end, 3)
	for name, c := range map[string]*websocket.Conn{"echo1": echo1, "echo2": echo2, "ws": ws.conn} {
		go func() {
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, _, err := c.ReadMessage()
			ends <- end{name, err}
		}()
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v, want nil after clean handshakes", err)
	}
	t.Logf("Shutdown took %v", time.Since(start))
	for range 3 {
		select {
		case e := <-ends:
			// A *CloseError means the close frame arrived and our reader
			// answered it: the handshake completed (RFC 6455 §5.5.1).
			var ce *websocket.CloseError
			if !errors.As(e.err, &ce) || ce.Code != websocket.CloseGoingAway || ce.Text != "server shutting down" {
				t.Errorf("%s: read ended with %v, want close 1001 \"server shutting down\"", e.name, e.err)
			}
		case <-time.After(8 * time.Second):
			t.Fatal("a client got no close within 8s")
		}
	}
}

// TestShutdownEchoBounded checks that an /echo client that never answers
// the close frame does not hold Shutdown past its context.
func TestShutdownEchoBounded(t *testing.T) {
	t.Parallel()
	srv, addr := serve(t, server.Config{})
	mute, _ := dialPath(t, addr, "/echo", &websocket.Dialer{HandshakeTimeout: 5 * time.Second})
	// A round trip proves the server tracks it; from then on nobody reads,
	// so the server's close frame goes unanswered.
	if err := mute.WriteMessage(websocket.BinaryMessage, []byte{1}); err != nil {
		t.Fatal(err)
	}
	_ = mute.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, p, err := mute.ReadMessage(); err != nil || len(p) != 1 {
		t.Fatalf("echo: %v, %v", p, err)
	}

	const bound = 500 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	start := time.Now()
	err := srv.Shutdown(ctx)
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want context.DeadlineExceeded", err)
	}
	if took < bound || took > bound+2*time.Second {
		t.Errorf("Shutdown took %v, want just over %v", took, bound)
	}
	// The dropped client still finds the close frame that went unanswered.
	_ = mute.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := mute.ReadMessage(); websocket.CloseStatus(err) != websocket.CloseGoingAway {
		t.Errorf("mute client read %v, want the 1001 sent before the drop", err)
	}
}
