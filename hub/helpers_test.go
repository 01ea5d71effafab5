package hub_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/latchws/latch/hub"
	"github.com/latchws/latch/websocket"
)

// startHub serves a hub on a loopback httptest server. Cleanup shuts the
// hub down and checks that none of its goroutines is left.
// With onEngine (TestOnEngine's run of the whole suite) the hub serves its
// clients on a websocket.Engine.
func startHub(t *testing.T, cfg hub.Config) (*hub.Hub, string) {
	t.Helper()
	var e *websocket.Engine
	if onEngine {
		e = newEngine(t)
		cfg.Engine = e
	}
	h := hub.New(cfg)
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.Shutdown(ctx)
		srv.Close()
		if e != nil {
			e.Close()
		}
		checkNoHubGoroutines(t)
	})
	return h, "ws" + strings.TrimPrefix(srv.URL, "http")
}

// onEngine is set in the run of the suite that TestOnEngine starts.
var onEngine = os.Getenv("LATCH_HUB_TEST_ENGINE") == "1"

// newEngine returns an engine that is epoll's on Linux, where the suite
// must not pass by quietly falling back to goroutines.
func newEngine(t *testing.T) *websocket.Engine {
	t.Helper()
	e, err := websocket.NewEngine(websocket.EngineConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS == "linux" && e.Driver() != "epoll" {
		t.Fatalf("engine driver %q on Linux", e.Driver())
	}
	return e
}

// TestOnEngine runs every other test of the package again with the hub's
// clients on an engine (startHub), in a child process of this test binary.
func TestOnEngine(t *testing.T) {
	if onEngine {
		return // the child: the other tests are the point
	}
	args := []string{"-test.run=.", "-test.skip=^TestOnEngine$", "-test.count=1", "-test.timeout=5m"}
	if testing.Verbose() {
		args = append(args, "-test.v")
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "LATCH_HUB_TEST_ENGINE=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PASS") {
		t.Fatalf("the suite on an engine failed: %v\n%s", err, out)
	}
	if testing.Verbose() {
		t.Logf("%s", out)
	}
}

// checkNoHubGoroutines fails if a goroutine is still running code of the
// hub package, waiting a bounded time for ending ones.
func checkNoHubGoroutines(t *testing.T) {
	t.Helper()
	var stacks string
	for range 100 {
		buf := make([]byte, 1<<20)
		stacks = string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "latch/hub.") {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("hub goroutines left behind:\n%s", hubStacks(stacks))
}

func hubStacks(all string) string {
	var out []string
	for _, g := range strings.Split(all, "\n\n") {
		if strings.Contains(g, "latch/hub.") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

func dial(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (HTTP %d)", url, err, status)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// dialStatus dials expecting a rejection and returns the HTTP status.
func dialStatus(t *testing.T, url string, hdr http.Header) int {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(url, hdr)
	if err == nil {
		c.CloseNow()
		t.Fatalf("dial %s: upgrade succeeded, want a rejection", url)
	}
	if resp == nil {
		t.Fatalf("dial %s: %v, no HTTP response", url, err)
	}
	return resp.StatusCode
}

// rawClient is a WebSocket client written by hand over TCP, with a small
// receive buffer, that reads only when the test tells it to: a consumer
// that stops reading.
type rawClient struct {
	conn net.Conn
	br   *bufio.Reader
}

func dialRaw(t *testing.T, url string) *rawClient {
	t.Helper()
	addr := strings.TrimPrefix(url, "ws://")
	path := "/"
	if i := strings.IndexAny(addr, "/?"); i >= 0 {
		addr, path = addr[:i], strings.TrimPrefix(addr[i:], "/")
		path = "/" + path
	}
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			// A small window makes the server's writes block soon.
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return errors.Join(err, serr)
	}}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(nc, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", path, addr)
	br := bufio.NewReaderSize(nc, 1024)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("raw handshake: HTTP %d", resp.StatusCode)
	}
	nc.SetDeadline(time.Time{})
	return &rawClient{conn: nc, br: br}
}

type rawFrame struct {
	op      byte
	payload []byte
}

// readFrame reads one unmasked server frame (RFC 6455 §5.2).
func (r *rawClient) readFrame() (rawFrame, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r.br, hdr[:]); err != nil {
		return rawFrame{}, err
	}
	n := uint64(hdr[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(r.br, b[:]); err != nil {
			return rawFrame{}, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(r.br, b[:]); err != nil {
			return rawFrame{}, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if hdr[1]&0x80 != 0 || n > 1<<20 {
		return rawFrame{}, fmt.Errorf("unexpected frame header %x, length %d", hdr, n)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r.br, p); err != nil {
		return rawFrame{}, err
	}
	return rawFrame{op: hdr[0] & 0x0f, payload: p}, nil
}

// sendClose sends a masked close frame with code (RFC 6455 §5.5.1).
func (r *rawClient) sendClose(code int) error {
	frame := []byte{0x88, 0x82, 1, 2, 3, 4, byte(code >> 8), byte(code)}
	for i := range 2 {
		frame[6+i] ^= frame[2+i]
	}
	_, err := r.conn.Write(frame)
	return err
}

// disconnects collects OnDisconnect calls.
type disconnect struct {
	id   uint64
	code int
	err  error
}

func onDisconnect(ch chan<- disconnect) func(c *hub.Client, code int, err error) {
	return func(c *hub.Client, code int, err error) {
		ch <- disconnect{c.ID(), code, err}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
