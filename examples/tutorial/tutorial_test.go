package main

import (
	"bytes"
	"context"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	cws "github.com/coder/websocket"
	"github.com/latchws/latch/internal/testutil"
	"github.com/latchws/latch/websocket"
)

// The client in these tests is coder/websocket, an independent
// implementation, so the server is checked against someone else's reading
// of RFC 6455 rather than its own.

const returnWithin = 2 * time.Second

// tracked wraps a handler and reports each time a request to it returns:
// a hijacked connection is invisible to httptest.Server.Close, so the tests
// wait on this instead, both to assert the read loop ended and to leak no
// goroutine.
type tracked struct {
	h        http.Handler
	returned chan struct{}
}

func (tr *tracked) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() { tr.returned <- struct{}{} }()
	tr.h.ServeHTTP(w, r)
}

// waitReturned fails the test unless one request to tr returned within d.
func (tr *tracked) waitReturned(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-tr.returned:
	case <-time.After(d):
		t.Fatalf("handler did not return within %v", d)
	}
}

// captureLog redirects the standard logger for the test. Tests that use it
// must not run in parallel.
func captureLog(t *testing.T) *testutil.SyncBuffer {
	t.Helper()
	b := &testutil.SyncBuffer{}
	prevOut, prevFlags := log.Writer(), log.Flags()
	log.SetOutput(b)
	log.SetFlags(0)
	t.Cleanup(func() {
		log.SetOutput(prevOut)
		log.SetFlags(prevFlags)
	})
	return b
}

// serve starts a loopback server for h and returns the ws:// URL of /ws.
func serve(t *testing.T, h http.Handler) (*tracked, string) {
	t.Helper()
	tr := &tracked{h: h, returned: make(chan struct{}, 4)}
	srv := httptest.NewServer(tr) // listens on 127.0.0.1
	t.Cleanup(srv.Close)
	return tr, "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
}

func dial(t *testing.T, ctx context.Context, url string) *cws.Conn {
	t.Helper()
	c, _, err := cws.Dial(ctx, url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestEcho(t *testing.T) {
	captureLog(t)
	ctx := testContext(t)
	tr, url := serve(t, newMux())
	c := dial(t, ctx, url)

	msgs := []struct {
		typ  cws.MessageType
		data []byte
	}{
		{cws.MessageText, []byte("hello, latch")},
		{cws.MessageText, []byte("héllo ✓")},
		{cws.MessageBinary, []byte{0x00, 0xff, 0xfe, 0x80}},
		{cws.MessageText, bytes.Repeat([]byte("x"), 3000)}, // larger than the 1024-byte buffers
	}
	for i, m := range msgs {
		if err := c.Write(ctx, m.typ, m.data); err != nil {
			t.Fatalf("message %d: write: %v", i, err)
		}
		typ, got, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("message %d: read: %v", i, err)
		}
		if typ != m.typ || !bytes.Equal(got, m.data) {
			t.Fatalf("message %d: echo = (%v, %q), want (%v, %q)", i, typ, got, m.typ, m.data)
		}
	}

	if err := c.Close(cws.StatusNormalClosure, ""); err != nil {
		t.Fatalf("close: %v", err)
	}
	tr.waitReturned(t, returnWithin)
}

func TestClientCloseCodeEchoed(t *testing.T) {
	logs := captureLog(t)
	ctx := testContext(t)
	tr, url := serve(t, newMux())
	c := dial(t, ctx, url)

	// Make sure the server is inside its read loop before closing.
	if err := c.Write(ctx, cws.MessageText, []byte("ping")); err != nil {
		t.Fatalf("write: %v", err)
	}
	if _, _, err := c.Read(ctx); err != nil {
		t.Fatalf("read: %v", err)
	}

	// coder's Close sends 4000, then reads until a close frame arrives, and
	// returns nil only if that frame carries the same code: RFC 6455 §5.5.1
	// makes the server echo it. A dropped TCP connection (1006) or another
	// code is an error.
	if err := c.Close(4000, "bye"); err != nil {
		t.Fatalf("close(4000): %v (want the server to echo 4000)", err)
	}

	tr.waitReturned(t, returnWithin)
	// The article logs unexpected close errors: 4000 is one, so the server's
	// ReadMessage must have reported the client's code.
	if out := logs.String(); !strings.Contains(out, "4000") {
		t.Errorf("server log = %q, want the close code 4000 reported by ReadMessage", out)
	}
}

func TestVanishedClientEndsReadLoop(t *testing.T) {
	captureLog(t)
	ctx := testContext(t)
	tr, url := serve(t, newMux())
	c := dial(t, ctx, url)

	if err := c.Write(ctx, cws.MessageText, []byte("ping")); err != nil {
		t.Fatalf("write: %v", err)
	}
	if _, _, err := c.Read(ctx); err != nil {
		t.Fatalf("read: %v", err)
	}
	// Drop TCP without a close frame, as a crashed client or a pulled
	// cable would (RFC 6455 §7.1.5: the close is abnormal, 1006).
	if err := c.CloseNow(); err != nil {
		t.Fatalf("close now: %v", err)
	}
	tr.waitReturned(t, returnWithin)
}

// TestServerCloseSendsCloseFrame uses the article's server-side close path
// ("a. Server side actively closes": ws.Close) in a handler that closes
// after one message. With Latch, Close performs the closing handshake, so
// the client sees a clean 1000, not an abnormal 1006. RFC 6455 §7.1.2
func TestServerCloseSendsCloseFrame(t *testing.T) {
	captureLog(t)
	ctx := testContext(t)
	closeErr := make(chan error, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		ws, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			log.Println(err)
			closeErr <- err
			return
		}
		if err := ws.WriteMessage(websocket.TextMessage, []byte("bye")); err != nil {
			log.Println(err)
		}
		closeErr <- ws.Close()
	})
	tr, url := serve(t, mux)
	c := dial(t, ctx, url)

	typ, got, err := c.Read(ctx)
	if err != nil || typ != cws.MessageText || string(got) != "bye" {
		t.Fatalf("read = (%v, %q, %v), want (text, \"bye\", nil)", typ, got, err)
	}
	_, _, err = c.Read(ctx)
	if code := cws.CloseStatus(err); code != cws.StatusNormalClosure {
		t.Fatalf("client saw close code %d (%v), want 1000 from the server's close frame", code, err)
	}

	tr.waitReturned(t, returnWithin)
	if err := <-closeErr; err != nil {
		t.Errorf("server ws.Close() = %v, want nil after a completed handshake", err)
	}
}
