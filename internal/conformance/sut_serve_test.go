//go:build !gorilla

package conformance

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/latchws/latch/server"
)

// The same server cases through `latch serve` itself (package server, as
// cmd/latch runs it) on its event engine: its /echo route, behind its
// listener, Host check, limiter and hub. What the application saw is not
// observable from outside the server, so this target asserts the wire only
// (every event, the TCP close, the negotiation); the library targets
// assert the application's side of the same cases.
func init() {
	targets = append(targets, target{name: "serve-echo-epoll", role: "server", start: startServe, wireOnly: true})
}

func startServe(t *testing.T, tc tcase, release <-chan struct{}) (*peer, <-chan error) {
	if tc.comp != nil && tc.comp.threshold != 0 {
		t.Skip("latch serve has no compression threshold setting: the library default applies")
	}
	cfg := server.Config{
		Addr:           "127.0.0.1:0",
		Engine:         server.EngineEpoll,
		LogOutput:      io.Discard,
		MaxMessageRate: -1, // cases send bursts
		// The cases' clients: no heartbeat pings between their frames.
		HeartbeatInterval:  -1,
		DisableCompression: tc.comp == nil,
	}
	if tc.comp != nil {
		cfg.CompressionContextTakeover = tc.comp.takeover
	}
	if tc.readLimit > 0 {
		cfg.EchoMaxMessageSize = tc.readLimit
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if srv.Engine() != server.EngineEpoll {
		t.Fatalf("latch serve on %s, want epoll", srv.Engine())
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	addr := ln.Addr().String()
	appErr := make(chan error, 1)
	appErr <- errWireOnly
	if tc.comp == nil {
		p, err := rawClientHandshake(addr)
		if err != nil {
			t.Fatalf("opening handshake with latch serve: %v", err)
		}
		return p, appErr
	}
	p, ext, err := rawClientHandshakeExt(addr, tc.comp.offers)
	if err != nil {
		t.Fatalf("opening handshake with latch serve: %v", err)
	}
	if ext != tc.comp.wantResp {
		p.conn.Close()
		t.Fatalf("latch serve answered offer %q with Sec-WebSocket-Extensions %q, want %q", tc.comp.offers, ext, tc.comp.wantResp)
	}
	if ext != "" {
		if p.z, err = newPMD(ext, strings.Join(tc.comp.offers, ", "), true); err != nil {
			p.conn.Close()
			t.Fatalf("raw client cannot use the response %q: %v", ext, err)
		}
	}
	return p, appErr
}

// errWireOnly stands for the application's error on a wireOnly target.
var errWireOnly = errors.New("conformance: the application's side is not observable")
