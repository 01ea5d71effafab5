package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/latchws/latch/websocket"
)

// rawClient speaks just enough RFC 6455 over a bare TCP connection to
// subscribe and then stop reading, which no WebSocket library lets a
// client do on purpose.
type rawClient struct {
	conn net.Conn
	br   *bufio.Reader
}

// dialRaw connects to /ws with a small receive buffer, so that the
// server's writes back up after little data.
func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	return dialRawPath(t, addr, "/ws")
}

// dialRawPath is dialRaw for any route.
func dialRawPath(t *testing.T, addr, path string) *rawClient {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return errors.Join(err, serr)
	}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	key := make([]byte, 16)
	rand.Read(key)
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", path, addr, base64.StdEncoding.EncodeToString(key))
	br := bufio.NewReader(conn)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("raw upgrade: status %d", resp.StatusCode)
	}
	return &rawClient{conn: conn, br: br}
}

// writeText sends one masked text frame. RFC 6455 §5.3
func (c *rawClient) writeText(t *testing.T, payload string) {
	t.Helper()
	if len(payload) > 125 {
		t.Fatal("writeText sends short frames only")
	}
	var mask [4]byte
	rand.Read(mask[:])
	frame := []byte{0x81, 0x80 | byte(len(payload))}
	frame = append(frame, mask[:]...)
	for i := range len(payload) {
		frame = append(frame, payload[i]^mask[i%4])
	}
	if _, err := c.conn.Write(frame); err != nil {
		t.Fatal(err)
	}
}

// writeClose sends a masked close frame with code.
func (c *rawClient) writeClose(t *testing.T, code int) {
	t.Helper()
	var mask [4]byte
	rand.Read(mask[:])
	body := []byte{byte(code >> 8), byte(code)}
	frame := append([]byte{0x88, 0x80 | 2}, mask[:]...)
	frame = append(frame, body[0]^mask[0], body[1]^mask[1])
	if _, err := c.conn.Write(frame); err != nil {
		t.Fatal(err)
	}
}

// readFrame reads one unmasked server frame. RFC 6455 §5.2
func (c *rawClient) readFrame() (opcode byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(c.br, b[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(c.br, b[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > 1<<20 {
		return 0, nil, fmt.Errorf("frame of %d bytes", n)
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(c.br, payload)
	return h[0] & 0x0f, payload, err
}

// TestSlowConsumer subscribes a client that then stops reading, publishes
// far more than its queue and TCP buffers hold, and checks that the other
// subscribers get everything without waiting for it, and that latch closes
// it with 1008 under the Disconnect policy.
func TestSlowConsumer(t *testing.T) {
	const (
		sendQueue = 16
		// 7.5 MiB in all: more than the slow client's queue plus the TCP
		// buffers between it and the server (at most ~4 MiB here).
		messages = 120
		size     = 64 << 10 // bytes of data per message
		fast     = 2
	)
	// Publications of 64 KiB of data are over the default /ws limit.
	p := startLatch(t, "-send-queue", fmt.Sprint(sendQueue), "-max-message-size", fmt.Sprint(size+1024), "-log-level", "warn")
	url := p.url("/ws")

	slow := dialRaw(t, p.addr)
	slow.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	slow.writeText(t, `{"op":"subscribe","channel":"firehose","id":"s"}`)
	for _, want := range []string{`"welcome"`, `{"type":"ack","id":"s"}`} {
		op, msg, err := slow.readFrame()
		if err != nil || op != websocket.TextMessage || !bytes.Contains(msg, []byte(want)) {
			t.Fatalf("slow client: %d %q %v, want %s", op, msg, err, want)
		}
	}
	// From here on the slow client reads nothing.

	var subs []*goClient
	for i := range fast {
		c := dialGo(t, url, fmt.Sprint("fast", i), false)
		<-c.answers // welcome
		if m := c.request(`{"op":"subscribe","channel":"firehose","id":"s"}`); m["type"] != "ack" {
			t.Fatalf("subscribe: %v", m)
		}
		subs = append(subs, c)
	}
	pub := dialGo(t, url, "publisher", false)
	<-pub.answers

	// One publication at a time, each acknowledged.
	start := time.Now()
	fill := strings.Repeat("x", size)
	for i := range messages {
		msg := fmt.Sprintf(`{"op":"publish","channel":"firehose","id":"%d","data":"%d %s"}`, i, i, fill)
		if m := pub.request(msg); m["type"] != "ack" {
			t.Fatalf("publish %d: %v", i, m)
		}
	}
	for _, c := range subs {
		deadline := time.Now().Add(10 * time.Second)
		for {
			c.mu.Lock()
			n := len(c.res.received)
			c.mu.Unlock()
			if n == messages {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s got %d of %d messages", c.res.name, n, messages)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	elapsed := time.Since(start)
	// A fan-out that waited for the slow client would stall until the
	// server's write timeout (10 s) gave up on it. (The close frame checked
	// below proves the same from the other side: after a write timeout the
	// hub drops the connection without one.)
	if elapsed > 9*time.Second {
		t.Errorf("fast clients took %v for %d messages: held up by the slow one?", elapsed, messages)
	}
	for _, c := range subs {
		c.mu.Lock()
		for i, d := range c.res.received {
			if want := fmt.Sprintf(`"%d %s"`, i, fill); d.data != want {
				t.Errorf("%s: message %d out of order or altered (%.20s...)", c.res.name, i, d.data)
				break
			}
		}
		c.mu.Unlock()
	}
	if n := p.metric(t, "latch_slow_consumer_disconnects_total"); n != 1 {
		t.Errorf("latch_slow_consumer_disconnects_total = %v, want 1", n)
	}

	// Reading again, the slow client finds what was on the wire, then
	// close 1008 "slow consumer", then the end of the connection.
	slow.conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	got, code := 0, 0
	for range messages + 2 {
		op, payload, err := slow.readFrame()
		if err != nil {
			t.Fatalf("slow client: %v after %d messages, before any close frame", err, got)
		}
		if op == websocket.CloseMessage {
			if len(payload) < 2 {
				t.Fatalf("close frame without a code")
			}
			code = int(binary.BigEndian.Uint16(payload))
			if string(payload[2:]) != "slow consumer" {
				t.Errorf("close reason %q, want \"slow consumer\"", payload[2:])
			}
			break
		}
		got++
	}
	if code != websocket.ClosePolicyViolation {
		t.Fatalf("slow client: close code %d, want 1008", code)
	}
	// Answer the close (RFC 6455 §5.5.1); the server then ends the TCP
	// connection and forgets the client.
	slow.writeClose(t, code)
	if _, _, err := slow.readFrame(); !errors.Is(err, io.EOF) {
		t.Errorf("after the closing handshake: %v, want EOF", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for p.metric(t, "latch_connections") != fast+1 {
		if time.Now().After(deadline) {
			t.Fatalf("latch_connections still %v, want %d", p.metric(t, "latch_connections"), fast+1)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := p.metric(t, `latch_close_codes_total{code="1008"}`); n != 1 {
		t.Errorf(`latch_close_codes_total{code="1008"} = %v, want 1`, n)
	}
	if got >= messages {
		t.Errorf("slow client got all %d messages: it was never slow", got)
	}
	t.Logf("slow consumer: %d fast subscribers got %d×%d KiB in %v; the slow one got %d before close 1008",
		fast, messages, size>>10, elapsed.Round(time.Millisecond), got)

	p.signal(t, syscall.SIGTERM)
	for _, c := range append(subs, pub) {
		select {
		case <-c.done:
			if c.res.code != websocket.CloseGoingAway {
				t.Errorf("%s: close code %d, want 1001", c.res.name, c.res.code)
			}
		case <-time.After(12 * time.Second):
			t.Fatalf("%s not closed after SIGTERM", c.res.name)
		}
	}
	p.waitExit(t, 12*time.Second)
}
