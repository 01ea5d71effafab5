package server_test

import (
	"bytes"
	"context"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	cws "github.com/coder/websocket"
	"github.com/latchws/latch/hub"
	"github.com/latchws/latch/internal/testutil"
	"github.com/latchws/latch/server"
)

// The peer is coder/websocket, an independent implementation.

// tracked reports each return of its handler: hijacked connections are
// not waited for by httptest.Server.Close, so tests wait on this to know
// the connection's goroutine has finished.
type tracked struct {
	h        http.Handler
	returned chan struct{}
}

func (tr *tracked) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() { tr.returned <- struct{}{} }()
	tr.h.ServeHTTP(w, r)
}

func (tr *tracked) waitReturned(t *testing.T) {
	t.Helper()
	select {
	case <-tr.returned:
	case <-time.After(5 * time.Second):
		t.Fatal("handler did not return within 5s")
	}
}

// start serves h on loopback and returns its tracker and ws:// URL.
func start(t *testing.T, h http.Handler) (*tracked, string) {
	t.Helper()
	tr := &tracked{h: h, returned: make(chan struct{}, 8)}
	srv := httptest.NewServer(tr)
	t.Cleanup(srv.Close)
	return tr, "ws" + strings.TrimPrefix(srv.URL, "http")
}

func dial(t *testing.T, ctx context.Context, url string) *cws.Conn {
	t.Helper()
	c, _, err := cws.Dial(ctx, url, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// roundTrip sends one message in pieces (one frame per piece) while
// reading the echo concurrently: a large echo is streamed back while it is
// still arriving, so a client that wrote everything before reading could
// fill both TCP buffers and deadlock.
func roundTrip(ctx context.Context, c *cws.Conn, typ cws.MessageType, pieces ...[]byte) (cws.MessageType, []byte, error) {
	werr := make(chan error, 1)
	go func() {
		w, err := c.Writer(ctx, typ)
		if err != nil {
			werr <- err
			return
		}
		for _, p := range pieces {
			if _, err := w.Write(p); err != nil {
				werr <- err
				return
			}
		}
		werr <- w.Close()
	}()
	gotTyp, got, rerr := c.Read(ctx)
	if err := <-werr; err != nil {
		return 0, nil, err
	}
	return gotTyp, got, rerr
}

func TestEcho(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	tr, url := start(t, server.NewEchoHandler(nil, 0, nil))
	c := dial(t, ctx, url)
	c.SetReadLimit(4 << 20)

	rng := rand.New(rand.NewPCG(1, 2))
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	bigText := bytes.Repeat([]byte("ü€abc"), (1<<20)/10)

	tests := []struct {
		name   string
		typ    cws.MessageType
		pieces [][]byte
	}{
		{"text", cws.MessageText, [][]byte{[]byte("hello, latch")}},
		{"binary", cws.MessageBinary, [][]byte{{0x00, 0xff, 0x80, 0x7f}}},
		{"empty text", cws.MessageText, nil},
		{"empty binary", cws.MessageBinary, nil},
		{"fragmented text", cws.MessageText, [][]byte{[]byte("frag"), []byte("men"), []byte("ted")}},
		// "€" split across fragments: only the whole message must be UTF-8. RFC 6455 §5.6
		{"split rune", cws.MessageText, [][]byte{[]byte("a\xe2\x82"), []byte("\xacb")}},
		{"1 MiB binary", cws.MessageBinary, [][]byte{big}},
		{"1 MiB binary fragmented", cws.MessageBinary, [][]byte{big[:1000], big[1000 : 600<<10], big[600<<10:]}},
		{"1 MiB text", cws.MessageText, [][]byte{bigText}},
	}
	// Subtests share one connection, in order: the server must keep echoing
	// after each kind of message.
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := bytes.Join(tt.pieces, nil)
			typ, got, err := roundTrip(ctx, c, tt.typ, tt.pieces...)
			if err != nil {
				t.Fatalf("round trip: %v", err)
			}
			if typ != tt.typ {
				t.Errorf("type = %v, want %v", typ, tt.typ)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("payload differs: got %d bytes, want %d", len(got), len(want))
			}
		})
	}

	if err := c.Close(cws.StatusNormalClosure, ""); err != nil {
		t.Fatalf("close: %v", err)
	}
	tr.waitReturned(t)
}

func TestEchoReadLimit(t *testing.T) {
	t.Parallel()
	const limit = 1024
	ctx := testContext(t)
	tr, url := start(t, server.NewEchoHandler(nil, limit, nil))
	c := dial(t, ctx, url)

	// Exactly the limit is allowed.
	atLimit := bytes.Repeat([]byte{'a'}, limit)
	typ, got, err := roundTrip(ctx, c, cws.MessageBinary, atLimit)
	if err != nil || typ != cws.MessageBinary || !bytes.Equal(got, atLimit) {
		t.Fatalf("message of %d bytes: (%v, %d bytes, %v), want its echo", limit, typ, len(got), err)
	}

	// One byte more fails the connection with 1009. RFC 6455 §7.4.1
	if err := c.Write(ctx, cws.MessageBinary, make([]byte, limit+1)); err != nil {
		t.Fatalf("write: %v", err)
	}
	_, _, err = c.Read(ctx)
	if code := cws.CloseStatus(err); code != cws.StatusMessageTooBig {
		t.Fatalf("client got close code %d (%v), want 1009", code, err)
	}
	tr.waitReturned(t)
}

func TestEchoLogsCloseCode(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	logs := &testutil.SyncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tr, url := start(t, server.NewEchoHandler(nil, 0, logger))
	c := dial(t, ctx, url)

	if err := c.Close(4001, "done"); err != nil {
		t.Fatalf("close: %v", err)
	}
	tr.waitReturned(t)
	// The handler returns once the connection is upgraded; the line comes
	// when the hub has seen the close.
	deadline := time.Now().Add(5 * time.Second)
	for out := logs.String(); !strings.Contains(out, "level=DEBUG") || !strings.Contains(out, "code=4001"); out = logs.String() {
		if time.Now().After(deadline) {
			t.Fatalf("log = %q, want a debug line with code=4001", out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestEchoLogLevel(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	logs := &testutil.SyncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	h := server.NewEchoHandler(nil, 0, logger)
	tr, url := start(t, h)
	c := dial(t, ctx, url)

	if err := c.Close(cws.StatusNormalClosure, ""); err != nil {
		t.Fatalf("close: %v", err)
	}
	tr.waitReturned(t)
	// The end has been logged, at debug level, once the hub counts it.
	deadline := time.Now().Add(5 * time.Second)
	for h.(*hub.Hub).Stats().Disconnected != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the echo hub did not count the disconnect")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if out := logs.String(); out != "" {
		t.Errorf("log at info level = %q, want nothing: connection ends are debug", out)
	}
}

func TestEchoRejectsBadHandshake(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	tr, url := start(t, server.NewEchoHandler(nil, 0, nil))

	t.Run("plain GET", func(t *testing.T) {
		resp, err := http.Get("http" + strings.TrimPrefix(url, "ws"))
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("status = %d, want 400", resp.StatusCode)
		}
		tr.waitReturned(t)
	})

	// A nil Upgrader means the library defaults, which check the origin.
	t.Run("cross origin", func(t *testing.T) {
		c, resp, err := cws.Dial(ctx, url, &cws.DialOptions{
			HTTPHeader: http.Header{"Origin": {"http://evil.example"}},
		})
		if err == nil {
			c.CloseNow()
			t.Fatal("dial with a foreign Origin succeeded, want 403")
		}
		if resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("dial error %v, response %v; want status 403", err, resp)
		}
		tr.waitReturned(t)
	})
}
