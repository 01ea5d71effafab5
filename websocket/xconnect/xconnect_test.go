package xconnect_test

import (
	"crypto/tls"
	"encoding/binary"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/latchws/latch/websocket/xconnect"
)

// TestServersAdvertiseExtendedConnect: in a program that imports the
// package, net/http's HTTP/2 server sends SETTINGS_ENABLE_CONNECT_PROTOCOL
// = 1 (RFC 8441 §3) in its first SETTINGS frame: the init came first.
func TestServersAdvertiseExtendedConnect(t *testing.T) {
	if !xconnect.Enabled() {
		t.Fatal("Enabled() = false")
	}
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	cfg := srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	cfg.NextProtos = []string{"h2"}
	c, err := tls.Dial("tcp", srv.Listener.Addr().String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	// Client preface and an empty SETTINGS frame (RFC 9113 §3.4).
	if _, err := io.WriteString(c, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"); err != nil {
		t.Fatal(err)
	}
	var head [9]byte
	if _, err := io.ReadFull(c, head[:]); err != nil {
		t.Fatal(err)
	}
	length := int(head[0])<<16 | int(head[1])<<8 | int(head[2])
	if head[3] != 4 || length%6 != 0 {
		t.Fatalf("first frame type %d length %d, want SETTINGS", head[3], length)
	}
	payload := make([]byte, length)
	if _, err := io.ReadFull(c, payload); err != nil {
		t.Fatal(err)
	}
	for p := payload; len(p) >= 6; p = p[6:] {
		if binary.BigEndian.Uint16(p) == 0x8 && binary.BigEndian.Uint32(p[2:]) == 1 {
			return
		}
	}
	t.Fatalf("SETTINGS %x without ENABLE_CONNECT_PROTOCOL = 1", payload)
}
