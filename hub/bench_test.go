package hub_test

import (
	"context"
	"net"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchws/latch/hub"
	"github.com/latchws/latch/websocket"
)

// benchHub serves a hub whose clients all join channel "bench", connects
// n clients that drain what they receive at TCP level (cheaper than a
// WebSocket reader per client), adding the byte counts to received, and
// returns the hub and a function that ends it all.
func benchHub(b *testing.B, cfg hub.Config, n int, received *atomic.Int64) (*hub.Hub, func()) {
	var h *hub.Hub
	joined := make(chan struct{}, n)
	cfg.OnConnect = func(c *hub.Client) {
		h.Subscribe(c, "bench")
		joined <- struct{}{}
	}
	h = hub.New(cfg)
	srv := httptest.NewServer(h)
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	var raws []net.Conn
	for range n {
		c, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			b.Fatal(err)
		}
		<-joined
		nc := c.NetConn()
		raws = append(raws, nc)
		go func() {
			buf := make([]byte, 32<<10)
			for {
				k, err := nc.Read(buf)
				received.Add(int64(k))
				if err != nil {
					return
				}
			}
		}()
	}
	return h, func() {
		for _, nc := range raws {
			nc.Close()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		h.Shutdown(ctx)
		srv.Close()
	}
}

var benchMessage = []byte(`{"channel":"bench","data":"0123456789abcdef0123456789abcdef"}`)

// BenchmarkPublish1000 measures one Publish to 1000 subscribers on
// loopback: encoding once and queueing 1000 times. DropOldest keeps the
// queues bounded if the clients fall behind.
func BenchmarkPublish1000(b *testing.B) {
	const subscribers = 1000
	var received atomic.Int64
	h, end := benchHub(b, hub.Config{SlowConsumer: hub.DropOldest}, subscribers, &received)
	defer end()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if n := h.Publish("bench", websocket.TextMessage, benchMessage); n != subscribers {
			b.Fatalf("queued for %d", n)
		}
	}
	b.StopTimer()
}

// BenchmarkFanoutBurst publishes bursts of 16 messages to 200 subscribers
// and waits until every subscriber has received them all. It reports the
// write system calls per delivered message (Linux's /proc/self/io): the
// writer sends what is queued for a client together, so a burst costs a
// client a few writes, not one per message.
func BenchmarkFanoutBurst(b *testing.B) {
	const subscribers, burst = 200, 16
	var received atomic.Int64
	h, end := benchHub(b, hub.Config{}, subscribers, &received)
	defer end()
	frameSize := int64(2 + len(benchMessage))
	writes := syscw(b)
	b.ReportAllocs()
	b.ResetTimer()
	want := int64(0)
	for b.Loop() {
		for range burst {
			h.Publish("bench", websocket.TextMessage, benchMessage)
		}
		want += subscribers * burst * frameSize
		for received.Load() < want {
			runtime.Gosched()
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(syscw(b)-writes)/float64(int64(b.N)*subscribers*burst), "writes/delivery")
}

// syscw is the count of write system calls of this process.
func syscw(b *testing.B) int64 {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		b.Skip("no /proc/self/io to count system calls")
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "syscw: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	b.Skip("no syscw in /proc/self/io")
	return 0
}
