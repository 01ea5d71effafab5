package load

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// echoServer is a gorilla echo server on 127.0.0.1 that writes through a
// 512-byte buffer via NextWriter, so large echoes come back fragmented.
func echoServer(t *testing.T, compress bool) string {
	t.Helper()
	up := websocket.Upgrader{WriteBufferSize: 512, EnableCompression: compress}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			mt, p, err := c.ReadMessage()
			if err != nil {
				return
			}
			wr, err := c.NextWriter(mt)
			if err != nil {
				return
			}
			_, _ = wr.Write(p)
			if wr.Close() != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestRunCountsVerifiedEchoes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		size     int
		inFlight int
		compress bool
	}{
		{"small", 64, 1, false},
		{"fragmented", 4000, 1, false},
		{"pipelined", 64, 8, false},
		{"compressed", 4000, 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{
				Addr: echoServer(t, tc.compress), Conns: 3, InFlight: tc.inFlight, Size: tc.size,
				Compress: tc.compress, Warmup: 20 * time.Millisecond, Duration: 200 * time.Millisecond,
				MaxMsgs: 100_000, MaxSamples: 1000,
			}
			conns, err := Dial(cfg, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer CloseAll(conns)
			if tc.compress && !conns[0].deflate {
				t.Fatal("permessage-deflate not negotiated")
			}
			started, ended := false, false
			res, err := Run(conns, cfg, func() { started = true }, func() { ended = true })
			if err != nil {
				t.Fatal(err)
			}
			if !started || !ended {
				t.Fatal("measurement hooks not called")
			}
			if res.Msgs == 0 || res.P50 <= 0 || res.P99 < res.P50 {
				t.Fatalf("implausible result %+v", res)
			}
			if err := EchoOnce(conns, 5*time.Second); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestReadMessageRejectsWrongEcho(t *testing.T) {
	// A server that echoes a different payload must be caught.
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		mt, p, err := c.ReadMessage()
		if err != nil {
			return
		}
		p[0] ^= 1
		_ = c.WriteMessage(mt, p)
	}))
	defer srv.Close()
	cfg := Config{Addr: strings.TrimPrefix(srv.URL, "http://"), Conns: 1, InFlight: 1, Size: 32}
	conns, err := Dial(cfg, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer CloseAll(conns)
	if err := EchoOnce(conns, 5*time.Second); err == nil || !strings.Contains(err.Error(), "echo differs") {
		t.Fatalf("got %v, want an echo mismatch", err)
	}
}
