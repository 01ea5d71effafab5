//go:build unix

package websocket

import (
	"crypto/tls"
	"net/http"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BenchmarkMultiplex1000 opens 1,000 WebSockets from one Go client to one
// Go server over TLS, either as streams of one HTTP/2 connection (RFC 8441)
// or as 1,000 HTTP/1.1 connections, and echoes a 64-byte message on every
// one of them per op. It reports the process's CPU time per echoed message
// (client and server together, from getrusage) and the memory per
// WebSocket (heap and stacks in use after GC, both ends, divided by 1,000).
// Go's HTTP/2 client keeps a request-body buffer per stream of the server's
// SETTINGS_MAX_FRAME_SIZE, up to 512 KiB, and a Go server announces 1 MiB:
// the 16 KiB variant has the server announce RFC 9113's default instead.
func BenchmarkMultiplex1000(b *testing.B) {
	const n = 1000
	for _, tc := range []struct {
		name      string
		h2        bool
		frameSize int // the server's SETTINGS_MAX_FRAME_SIZE; 0: Go's default, 1 MiB
	}{{"http1.1", false, 0}, {"h2", true, 0}, {"h2-16KiB-frames", true, 16 << 10}} {
		b.Run(tc.name, func(b *testing.B) {
			var base runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&base)
			s := newH2TestServer(b, &Upgrader{}, false, echoConn, func(srv *http.Server) {
				if !tc.h2 {
					srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
				}
				// Go's HTTP/2 server allows 250 streams at once by default.
				srv.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: 2 * n, MaxReadFrameSize: tc.frameSize}
			})
			pool := &HTTP2Pool{}
			d := s.dialer(pool)
			if !tc.h2 {
				d.HTTP2 = nil
			}
			conns := make([]*Conn, n)
			for i := range conns {
				c, _, err := d.Dial(s.url("/"), nil)
				if err != nil {
					b.Fatal(err)
				}
				conns[i] = c
			}
			defer func() {
				for _, c := range conns {
					c.CloseNow()
				}
			}()
			if tc.h2 && s.conns.Load() != 1 || !tc.h2 && s.conns.Load() != n {
				b.Fatalf("%d TCP connections for %d WebSockets", s.conns.Load(), n)
			}
			msg := make([]byte, 64)
			echoAll := func() {
				var wg sync.WaitGroup
				for _, c := range conns {
					wg.Go(func() {
						if err := c.WriteMessage(BinaryMessage, msg); err != nil {
							b.Error(err)
							return
						}
						if _, _, err := c.ReadMessage(); err != nil {
							b.Error(err)
						}
					})
				}
				wg.Wait()
			}
			echoAll()
			time.Sleep(100 * time.Millisecond)
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			perWS := float64(ms.HeapInuse+ms.StackInuse-base.HeapInuse-base.StackInuse) / n
			var r0, r1 syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
			b.ResetTimer()
			for b.Loop() {
				echoAll()
			}
			b.StopTimer()
			syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
			cpu := time.Duration(r1.Utime.Nano() + r1.Stime.Nano() - r0.Utime.Nano() - r0.Stime.Nano())
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*n), "cpu-ns/msg")
			b.ReportMetric(perWS, "B/ws")
		})
	}
}
