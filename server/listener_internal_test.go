package server

import (
	"bufio"
	"net"
	"net/http"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestLimitListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var refused atomic.Int64
	ln := newLimitListener(inner, 2, func() { refused.Add(1) })
	defer ln.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		t.Helper()
		c, err := net.DialTimeout("tcp", inner.Addr().String(), 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		return c
	}
	var server []net.Conn
	for range 2 {
		dial()
		select {
		case c := <-accepted:
			server = append(server, c)
		case <-time.After(5 * time.Second):
			t.Fatal("connection within the budget not accepted")
		}
	}
	// The wrapper keeps what the websocket package and net/http look for.
	if _, ok := server[0].(syscall.Conn); !ok {
		t.Error("accepted TCP connection lost SyscallConn")
	}
	if _, ok := server[0].(interface{ CloseWrite() error }); !ok {
		t.Error("accepted TCP connection lost CloseWrite")
	}

	// Over the budget: 503 without the request being read, and closed.
	c := dial()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !resp.Close {
		t.Fatalf("over the budget: %d, Retry-After %q, close %v", resp.StatusCode, resp.Header.Get("Retry-After"), resp.Close)
	}
	if n := refused.Load(); n != 1 {
		t.Fatalf("refusals counted %d, want 1", n)
	}

	// A connection closed twice frees one slot, not two.
	server[0].Close()
	server[0].Close()
	if n := ln.live.Load(); n != 1 {
		t.Fatalf("live connections %d after one closed twice, want 1", n)
	}
	dial()
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("connection not accepted after a slot was freed")
	}
	server[1].Close()
}
