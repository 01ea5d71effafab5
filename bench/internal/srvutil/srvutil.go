// Package srvutil holds what every bench echo server shares: flags, the
// readiness line the runner waits for, a GC-on-signal hook so the runner can
// measure live memory, and an optional pprof listener.
package srvutil

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof" // served only when -pprof is set
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"
)

// Flags common to all bench servers.
type Flags struct {
	Addr     string
	Compress bool
	Pprof    string
}

// Parse reads the common flags.
func Parse() *Flags {
	f := &Flags{}
	flag.StringVar(&f.Addr, "addr", "127.0.0.1:9001", "listen address (loopback only)")
	flag.BoolVar(&f.Compress, "compress", false, "negotiate permessage-deflate (RFC 7692)")
	flag.StringVar(&f.Pprof, "pprof", "", "serve net/http/pprof on this loopback address")
	flag.Parse()
	if host, _, err := net.SplitHostPort(f.Addr); err != nil || host != "127.0.0.1" {
		fmt.Fprintln(os.Stderr, "bench server: -addr must be 127.0.0.1:PORT")
		os.Exit(2)
	}
	if f.Pprof != "" {
		go func() { _ = http.ListenAndServe(f.Pprof, nil) }()
	}
	go gcOnSignal()
	return f
}

// gcOnSignal forces a full GC and returns freed pages to the OS on SIGUSR1,
// then prints "gc" so the runner knows RSS now reflects live memory only.
func gcOnSignal() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR1)
	for range ch {
		runtime.GC()
		debug.FreeOSMemory()
		fmt.Println("gc")
	}
}

// Ready waits until addr accepts TCP connections, then prints "ready" for
// the runner. Servers call it after they start listening.
func Ready(addr string) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			fmt.Println("ready")
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Fprintln(os.Stderr, "bench server: not listening after 10s")
	os.Exit(1)
}

// Listen opens the TCP listener.
func Listen(addr string) net.Listener {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench server:", err)
		os.Exit(1)
	}
	return ln
}

// ReadLimit is the largest message every server accepts; the matrix sends at
// most 64 KiB, above some libraries' defaults.
const ReadLimit = 1 << 20
