package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/latchws/latch/internal/testutil"
)

// The probes of issue 10 against the real binary: HTTP bounds, the Host
// check, the admin address. The descriptor limit is in
// hardening_linux_test.go.

// readUntilClosed fails the test unless the server closes conn before
// its deadline.
func readUntilClosed(t *testing.T, br *bufio.Reader) time.Duration {
	t.Helper()
	start := time.Now()
	_, err := io.Copy(io.Discard, br)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v", time.Since(start))
	}
	return time.Since(start)
}

// upgradeStatus sends a WebSocket handshake with the given Host and
// returns the status; the connection is closed by cleanup.
func upgradeStatus(t *testing.T, addr, path, host string, extra ...string) int {
	t.Helper()
	conn, br := testutil.DialHTTP(t, addr)
	go func() {
		_, _ = fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s\r\n", path, host, strings.Join(extra, ""))
	}()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("%s with Host %q: %v", path, host, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestProcIdleKeepAliveCut(t *testing.T) {
	t.Parallel()
	p := startLatch(t, "-http-idle-timeout", "300ms")
	conn, br := testutil.DialHTTP(t, p.addr)
	fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", p.addr)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("GET /healthz: %d, close %v; want 200 kept alive", resp.StatusCode, resp.Close)
	}
	readUntilClosed(t, br)
}

func TestProcSlowBodyCut(t *testing.T) {
	t.Parallel()
	p := startLatch(t, "-http-read-timeout", "300ms")
	conn, br := testutil.DialHTTP(t, p.addr)
	const size = 1000 // one byte every 20 ms: 20 s if never cut
	fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n", p.addr, size)
	sent := make(chan int, 1)
	go func() {
		n := 0
		for ; n < size; n++ {
			if _, err := conn.Write([]byte{'x'}); err != nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		sent <- n
	}()
	readUntilClosed(t, br)
	conn.Close()
	if n := <-sent; n >= size {
		t.Fatalf("the whole body of %d bytes was read", n)
	}
}

func TestProcOversizedHeaders431(t *testing.T) {
	t.Parallel()
	p := startLatch(t)
	var fill strings.Builder
	for i := range 64 {
		fmt.Fprintf(&fill, "X-Fill-%d: %s\r\n", i, strings.Repeat("f", 1000))
	}
	if status := upgradeStatus(t, p.addr, "/ws", p.addr, fill.String()); status != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("64 KiB of headers: status %d, want 431", status)
	}
	cookies := "Cookie: " + strings.Repeat("session=0123456789abcdef; ", 160) + "\r\n" // ~4 KiB
	if status := upgradeStatus(t, p.addr, "/ws", p.addr, cookies); status != http.StatusSwitchingProtocols {
		t.Errorf("handshake with 4 KiB of cookies: status %d, want 101", status)
	}
}

func TestProcHostCheck(t *testing.T) {
	t.Parallel()
	p := startLatch(t) // on 127.0.0.1: localhost names only by default
	_, port, _ := net.SplitHostPort(p.addr)
	for host, want := range map[string]int{
		"evil.example":           http.StatusMisdirectedRequest,
		"evil.example:" + port:   http.StatusMisdirectedRequest,
		"localhost:" + port:      http.StatusSwitchingProtocols,
		"127.0.0.1:" + port:      http.StatusSwitchingProtocols,
		"chat.localhost:" + port: http.StatusSwitchingProtocols,
	} {
		if status := upgradeStatus(t, p.addr, "/ws", host); status != want {
			t.Errorf("Host %q: status %d, want %d", host, status, want)
		}
	}
	if !strings.Contains(p.stderr.String(), "localhost names") {
		t.Errorf("the start-up log does not say which hosts are allowed:\n%s", p.stderr)
	}

	q := startLatch(t, "-allowed-hosts", "latch.example")
	for host, want := range map[string]int{
		"latch.example": http.StatusSwitchingProtocols,
		"localhost":     http.StatusMisdirectedRequest,
	} {
		if status := upgradeStatus(t, q.addr, "/ws", host); status != want {
			t.Errorf("-allowed-hosts latch.example, Host %q: status %d, want %d", host, status, want)
		}
	}
}

func TestProcAdminAddr(t *testing.T) {
	t.Parallel()
	p := startLatch(t, "-admin-addr", "127.0.0.1:0")
	check := func(url string, want int, contains string) {
		t.Helper()
		client := &http.Client{Timeout: 5 * time.Second}
		resp, err := client.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want || !strings.Contains(string(body), contains) {
			t.Errorf("GET %s: %d, want %d with %q", url, resp.StatusCode, want, contains)
		}
	}
	check("http://"+p.addr+"/metrics", http.StatusNotFound, "")
	check("http://"+p.addr+"/debug/pprof/", http.StatusNotFound, "")
	check("http://"+p.adminAddr+"/metrics", http.StatusOK, "latch_connections ")
	check("http://"+p.adminAddr+"/debug/pprof/", http.StatusOK, "goroutine")
	check("http://"+p.adminAddr+"/debug/pprof/cmdline", http.StatusOK, "serve")
	p.signal(t, syscall.SIGTERM)
	p.waitExit(t, 10*time.Second)
	if c, err := net.DialTimeout("tcp", p.adminAddr, 2*time.Second); err == nil {
		c.Close()
		t.Error("the admin address still accepts connections after exit")
	}
}
