package server_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/latchws/latch/server"
	"github.com/latchws/latch/websocket"
)

// /ws carries small JSON requests and is bounded at 64 KiB by default;
// /echo keeps the websocket package's 16 MiB.
func TestDefaultMessageLimits(t *testing.T) {
	t.Parallel()
	_, addr := serve(t, server.Config{})

	c := connect(t, addr)
	c.do(`{"op":"subscribe","channel":"c","id":"s"}`, `{"type":"ack","id":"s"}`)
	prefix, suffix := `{"op":"publish","channel":"c","data":"`, `"}`
	fill := strings.Repeat("z", int(server.DefaultMaxMessageSize)-len(prefix)-len(suffix))
	c.send(prefix + fill + suffix) // exactly 64 KiB
	c.expect(`{"type":"message","channel":"c","data":"` + fill + `"}`)
	c.expect(`{"type":"ack"}`)
	// The server may close before the whole message is written.
	_ = c.conn.WriteMessage(websocket.TextMessage, []byte(prefix+fill+"z"+suffix))
	if code := c.readClose(); code != websocket.CloseMessageTooBig {
		t.Fatalf("/ws, 64 KiB + 1: close code %d, want 1009", code)
	}

	echo, _, err := (&websocket.Dialer{HandshakeTimeout: 5 * time.Second}).Dial("ws://"+addr+"/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	big := bytes.Repeat([]byte{0xa5}, 1<<20)
	if err := echo.WriteMessage(websocket.BinaryMessage, big); err != nil {
		t.Fatal(err)
	}
	_ = echo.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, got, err := echo.ReadMessage(); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("/echo, 1 MiB: %d bytes, %v", len(got), err)
	}
}
