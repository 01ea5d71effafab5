package websocket

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkEngineEcho is one client's request/response loop against an
// echo server on each driver, over loopback. The client reads with
// AppendMessage and allocates nothing, so allocs/op are the server's.
func BenchmarkEngineEcho(b *testing.B) {
	for _, size := range []int{64, 1 << 10, 64 << 10} {
		for _, goroutines := range []bool{false, true} {
			if !goroutines && !epollAvailable {
				continue
			}
			name := "epoll"
			if goroutines {
				name = "goroutines"
			}
			b.Run(fmt.Sprintf("%s/%dB", name, size), func(b *testing.B) {
				e, err := NewEngine(EngineConfig{Goroutines: goroutines})
				if err != nil {
					b.Fatal(err)
				}
				defer e.Close()
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					c, err := (&Upgrader{}).Upgrade(w, r, nil)
					if err != nil {
						return
					}
					e.Serve(c, Callbacks{OnMessage: func(c *Conn, mt int, p []byte) { c.WriteMessage(mt, p) }})
				}))
				defer srv.Close()
				c, _, err := DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
				if err != nil {
					b.Fatal(err)
				}
				defer c.CloseNow()
				msg := bytes.Repeat([]byte{'x'}, size)
				buf := make([]byte, 0, size)
				for range 100 { // warm the pools
					c.WriteMessage(BinaryMessage, msg)
					_, buf, _ = c.AppendMessage(buf[:0])
				}
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					if err := c.WriteMessage(BinaryMessage, msg); err != nil {
						b.Fatal(err)
					}
					if _, buf, err = c.AppendMessage(buf[:0]); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkEngineFanout is a broadcast made on an event loop: one
// publisher's messages, written by its OnMessage to every subscriber on the
// same loop (as a hub's Publish does there), in bursts that arrive
// together. Subscribers drain at TCP level. It reports the write system
// calls per delivered message (Linux's /proc/self/io).
func BenchmarkEngineFanout(b *testing.B) {
	if !epollAvailable {
		b.Skip("a broadcast from an event loop needs epoll")
	}
	for _, burst := range []int{1, 16} {
		b.Run(fmt.Sprintf("burst%d", burst), func(b *testing.B) {
			const subscribers = 200
			e, err := NewEngine(EngineConfig{Loops: 1})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			msg := []byte(`{"channel":"bench","data":"0123456789abcdef0123456789abcdef"}`)
			pm, err := NewPreparedMessage(TextMessage, msg)
			if err != nil {
				b.Fatal(err)
			}
			var mu sync.Mutex
			var subs []*Conn
			joined := make(chan struct{}, subscribers)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c, err := (&Upgrader{}).Upgrade(w, r, nil)
				if err != nil {
					return
				}
				if r.URL.Path == "/pub" {
					e.Serve(c, Callbacks{OnMessage: func(*Conn, int, []byte) {
						mu.Lock()
						for _, s := range subs {
							s.WritePreparedMessage(pm)
						}
						mu.Unlock()
					}})
					return
				}
				mu.Lock()
				subs = append(subs, c)
				mu.Unlock()
				e.Serve(c, Callbacks{})
				joined <- struct{}{}
			}))
			defer srv.Close()
			url := "ws" + strings.TrimPrefix(srv.URL, "http")
			var received atomic.Int64
			for range subscribers {
				nc, _ := rawClient(b, url, 0)
				<-joined
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
			pub, _, err := DefaultDialer.Dial(url+"/pub", nil)
			if err != nil {
				b.Fatal(err)
			}
			defer pub.CloseNow()
			var frames []byte
			one := maskedFrame(1, false, msg)
			for range burst {
				frames = append(frames, one...)
			}
			raw := pub.NetConn()
			frameSize := int64(2 + len(msg))
			want := int64(0)
			writes := syscw()
			if writes < 0 {
				b.Skip("no /proc/self/io to count system calls")
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				raw.Write(frames) // one burst, in one segment
				want += subscribers * int64(burst) * frameSize
				for received.Load() < want {
					runtime.Gosched()
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(syscw()-writes)/float64(int64(b.N)*subscribers*int64(burst)), "writes/delivery")
		})
	}
}
