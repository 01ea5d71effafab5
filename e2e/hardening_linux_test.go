//go:build linux

package e2e

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"testing"
	"time"
)

// tryUpgrade sends a WebSocket handshake for /echo, every step bounded by
// 2 s so that a client left in the backlog fails, and returns the status
// with the connection still open on 101.
func tryUpgrade(addr string) (int, net.Conn, error) {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return 0, nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprintf(conn, "GET /echo HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", addr)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		conn.Close()
		return 0, nil, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		conn.Close()
		return resp.StatusCode, nil, nil
	}
	_ = conn.SetDeadline(time.Time{})
	return resp.StatusCode, conn, nil
}

// With its descriptor limit lowered by prlimit, latch answers 503 at the
// limit instead of leaving clients to time out, and serves again once
// connections close.
func TestProcDescriptorLimit503(t *testing.T) {
	t.Parallel()
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("prlimit (util-linux) is not installed")
	}
	const nofile = 160
	p := startLatchUnder(t, []string{prlimit, fmt.Sprintf("--nofile=%d:%d", nofile, nofile)})
	var open []net.Conn
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	refused := false
	for range nofile {
		start := time.Now()
		status, conn, err := tryUpgrade(p.addr)
		if err != nil {
			t.Fatalf("upgrade %d: %v after %v (a client must get an answer, not a timeout)", len(open)+1, err, time.Since(start))
		}
		if status == http.StatusServiceUnavailable {
			refused = true
			break
		}
		if status != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade %d: status %d", len(open)+1, status)
		}
		open = append(open, conn)
	}
	if !refused || len(open) < 10 {
		t.Fatalf("%d upgrades before a 503 (refused %v); want a 503 after at least 10", len(open), refused)
	}
	t.Logf("%d WebSockets open under RLIMIT_NOFILE %d, then 503", len(open), nofile)
	for _, c := range open {
		c.Close()
	}
	open = nil

	deadline := time.Now().Add(5 * time.Second)
	for {
		status, conn, err := tryUpgrade(p.addr)
		if status == http.StatusSwitchingProtocols {
			conn.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("service did not resume: status %d, %v", status, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := p.metric(t, `latch_upgrades_rejected_total{reason="descriptors"}`); n < 1 {
		t.Errorf("descriptor refusals counted %v, want at least 1", n)
	}
}
