package hub_test

import (
	"context"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/latchws/latch/hub"
	"github.com/latchws/latch/websocket"
)

// BenchmarkPublish1000 measures one Publish to 1000 subscribers on
// loopback: encoding once and queueing 1000 times. The clients discard
// what they receive at TCP level; DropOldest keeps the queues bounded if
// they fall behind.
func BenchmarkPublish1000(b *testing.B) {
	const subscribers = 1000
	var h *hub.Hub
	joined := make(chan struct{}, subscribers)
	h = hub.New(hub.Config{
		SlowConsumer: hub.DropOldest,
		OnConnect: func(c *hub.Client) {
			h.Subscribe(c, "bench")
			joined <- struct{}{}
		},
	})
	srv := httptest.NewServer(h)
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	var raws []net.Conn
	for range subscribers {
		c, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			b.Fatal(err)
		}
		<-joined
		nc := c.NetConn()
		raws = append(raws, nc)
		// Drain at TCP level: cheaper than a WebSocket reader per client.
		go func() {
			buf := make([]byte, 32<<10)
			for {
				if _, err := nc.Read(buf); err != nil {
					return
				}
			}
		}()
	}
	msg := []byte(`{"channel":"bench","data":"0123456789abcdef0123456789abcdef"}`)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if n := h.Publish("bench", websocket.TextMessage, msg); n != subscribers {
			b.Fatalf("queued for %d", n)
		}
	}
	b.StopTimer()
	for _, nc := range raws {
		nc.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h.Shutdown(ctx)
}
