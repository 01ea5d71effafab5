package websocket

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// newEchoServer serves an echo endpoint; serverErr receives the error that
// ended each server read loop.
func newEchoServer(t *testing.T, u *Upgrader) (url string, serverErr chan error) {
	t.Helper()
	if u == nil {
		u = &Upgrader{}
	}
	serverErr = make(chan error, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := u.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			mt, p, err := c.ReadMessage()
			if err == nil {
				err = c.WriteMessage(mt, p)
			}
			if err != nil {
				select {
				case serverErr <- err:
				default: // nobody is asking
				}
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http"), serverErr
}

func dial(t *testing.T, url string) *Conn {
	t.Helper()
	c, _, err := DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func TestEchoAndCloseHandshake(t *testing.T) {
	url, serverErr := newEchoServer(t, nil)
	c := dial(t, url)
	for _, tc := range []struct {
		mt   int
		data []byte
	}{
		{TextMessage, []byte("hello")},
		{BinaryMessage, []byte{0, 1, 2, 255}},
		{TextMessage, []byte{}},
		{BinaryMessage, bytes.Repeat([]byte("x"), 1<<20)},
		{TextMessage, []byte(strings.Repeat("héllo wörld ", 10000))},
	} {
		if err := c.WriteMessage(tc.mt, tc.data); err != nil {
			t.Fatalf("write: %v", err)
		}
		mt, p, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if mt != tc.mt || !bytes.Equal(p, tc.data) {
			t.Fatalf("echo mismatch: type %d len %d, want type %d len %d", mt, len(p), tc.mt, len(tc.data))
		}
	}
	start := time.Now()
	if err := c.CloseWithCode(4000, "bye"); err != nil {
		t.Fatalf("close: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("close took %v", d)
	}
	select {
	case err := <-serverErr:
		if CloseStatus(err) != 4000 {
			t.Fatalf("server saw %v, want close 4000", err)
		}
		var ce *CloseError
		if !errors.As(err, &ce) || ce.Text != "bye" {
			t.Fatalf("server saw %v, want reason bye", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("server read loop did not end")
	}
	// Reads after close keep returning an error.
	if _, _, err := c.ReadMessage(); err == nil {
		t.Fatal("read after close succeeded")
	}
}

func TestFragmentedWriter(t *testing.T) {
	url, _ := newEchoServer(t, nil)
	c := dial(t, url)
	w, err := c.NextWriter(TextMessage)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Repeat("abcdefgh", 3000)
	for i := 0; i < len(want); i += 1000 {
		if _, err := io.WriteString(w, want[i:min(i+1000, len(want))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	mt, r, err := c.NextReader()
	if err != nil || mt != TextMessage {
		t.Fatalf("next reader: %v %d", err, mt)
	}
	got, err := io.ReadAll(r)
	if err != nil || string(got) != want {
		t.Fatalf("got %d bytes err %v", len(got), err)
	}
}

func TestServerCloseReachesClient(t *testing.T) {
	u := &Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := u.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		c.Close()
	}))
	defer srv.Close()
	c := dial(t, "ws"+strings.TrimPrefix(srv.URL, "http"))
	_, _, err := c.ReadMessage()
	if !IsCloseError(err, CloseNormalClosure) {
		t.Fatalf("client read: %v, want close 1000", err)
	}
}

func TestDeadPeerHeartbeat(t *testing.T) {
	u := &Upgrader{HeartbeatInterval: 100 * time.Millisecond, HeartbeatTimeout: 100 * time.Millisecond}
	errc := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := u.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		_, _, err = c.ReadMessage()
		errc <- err
	}))
	defer srv.Close()
	// A raw client that completes the handshake and then never answers.
	nc, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	req := "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := nc.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ErrHeartbeatTimeout) {
			t.Fatalf("read error %v, want ErrHeartbeatTimeout", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("dead peer not detected")
	}
}
