package websocket

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
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
