package e2e

import (
	"net"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/latchws/latch/internal/browsertest"
)

// freeAddr returns a loopback address with a port that was free a moment
// ago, so that latch can be restarted on the same one.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestBrowserChat runs the demo page in two headless Chromium tabs against
// the real binary, through a restart on the same port.
func TestBrowserChat(t *testing.T) {
	browsertest.Require(t)
	addr := freeAddr(t)
	// A long shutdown timeout: on a loaded machine a browser may answer the
	// close frame slowly; the test still requires the handshake to finish.
	p1 := startLatch(t, "-addr", addr, "-shutdown-timeout", "30s")
	if p1.addr != addr {
		t.Fatalf("latch listens on %s, want %s", p1.addr, addr)
	}

	pages := openDemoTabs(t, 75*time.Second, "page 1", "page 2")
	for _, pg := range pages {
		pg.Load(t, "http://"+addr+"/#lobby")
	}
	pages[0].signIn(t, "alice")
	pages[1].signIn(t, "bob")
	// Both subscribed: each sees the other's join.
	for _, pg := range pages {
		pg.waitOnline(t, "alice", "bob")
	}
	// Chromium offers permessage-deflate and latch accepts it by default.
	if n := p1.metric(t, `latch_compressed_connections_total{route="/ws"}`); n != 2 {
		t.Errorf("compressed /ws connections = %v, want both pages", n)
	}
	pages[0].Type(t, "hello from alice\n") // Enter sends.
	for _, pg := range pages {
		pg.WaitMessage(t, "alice: hello from alice")
	}

	// SIGTERM: every page gets 1001 and starts reconnecting.
	p1.signal(t, syscall.SIGTERM)
	for _, pg := range pages {
		st := pg.WaitState(t, "reconnecting")
		if !strings.Contains(st[1], "(closed 1001)") {
			t.Errorf("%s: state %q, want the 1001 of a graceful shutdown", pg.Name, st[1])
		}
	}
	p1.waitExit(t, 35*time.Second)
	if strings.Contains(p1.stderr.String(), "shutdown incomplete") {
		t.Errorf("first latch: shutdown incomplete:\n%s", p1.stderr)
	}

	// The same port again; the pages come back by themselves, with fresh
	// tokens (the new process has a new demo secret). Its history is new:
	// nothing to recover, so the pages start afresh.
	p2 := startLatch(t, "-addr", addr)
	for _, pg := range pages {
		pg.WaitState(t, "open")
		pg.waitOnline(t, "alice", "bob")
		browsertest.Wait(t, pg.DemoPage, "a fresh start", jsRows, func(v []string) bool {
			return slices.Equal(v, []string{"— could not recover, reloaded history"})
		})
	}
	if n := p2.metric(t, `latch_compressed_connections_total{route="/ws"}`); n != 2 {
		t.Errorf("after restart: compressed /ws connections = %v, want both pages", n)
	}
	pages[1].Send(t, "back after restart")
	for _, pg := range pages {
		pg.waitMessages(t, "bob: back after restart")
	}
	if n := p2.metric(t, "latch_publishes_total"); n != 1 {
		t.Errorf("second latch: %v publishes, want 1", n)
	}
}
