package testutil

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"
)

// DialHTTP opens a TCP connection to addr for hand-written requests; every
// read and write on it must be done within 10 s. Cleanup closes it.
func DialHTTP(t testing.TB, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	return conn, bufio.NewReader(conn)
}

// TryUpgrade sends a WebSocket handshake for path to addr, every step
// bounded by 2 s so that a client left waiting in a listen backlog fails,
// and returns the status, with the connection still open on 101.
func TryUpgrade(addr, path string) (int, net.Conn, error) {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return 0, nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", path, addr)
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
