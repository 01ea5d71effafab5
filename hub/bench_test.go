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

// BenchmarkFanoutBurst publishes bursts of 16 messages to 200 subscribers
// and waits until every subscriber has received them all. It reports the
// write system calls per delivered message (Linux's /proc/self/io): the
// writer sends what is queued for a client together, so a burst costs a
// client a few writes, not one per message.
func BenchmarkFanoutBurst(b *testing.B) {
	const subscribers, burst = 200, 16
	var h *hub.Hub
	joined := make(chan struct{}, subscribers)
	h = hub.New(hub.Config{
		OnConnect: func(c *hub.Client) {
			h.Subscribe(c, "bench")
			joined <- struct{}{}
		},
	})
	srv := httptest.NewServer(h)
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	msg := []byte(`{"channel":"bench","data":"0123456789abcdef0123456789abcdef"}`)
	frameSize := int64(2 + len(msg))
	var received atomic.Int64
	var raws []net.Conn
	for range subscribers {
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
				n, err := nc.Read(buf)
				received.Add(int64(n))
				if err != nil {
					return
				}
			}
		}()
	}
	writes := syscw(b)
	b.ReportAllocs()
	b.ResetTimer()
	want := int64(0)
	for b.Loop() {
		for range burst {
			h.Publish("bench", websocket.TextMessage, msg)
		}
		want += subscribers * burst * frameSize
		for received.Load() < want {
			runtime.Gosched()
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(syscw(b)-writes)/float64(int64(b.N)*subscribers*burst), "writes/delivery")
	for _, nc := range raws {
		nc.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h.Shutdown(ctx)
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
