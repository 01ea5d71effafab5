package server_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"testing"
	"time"

	"github.com/latchws/latch/server"
)

func TestAdminAddr(t *testing.T) {
	t.Parallel()
	debug := http.NewServeMux()
	debug.HandleFunc("/debug/pprof/", pprof.Index)
	srv, err := server.New(server.Config{
		Addr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", AdminDebugHandler: debug, LogOutput: io.Discard,
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adminAddr, err := srv.ListenAdmin()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	public, admin := "http://"+ln.Addr().String(), "http://"+adminAddr.String()

	get(t, public+"/metrics", http.StatusNotFound)
	get(t, public+"/debug/pprof/", http.StatusNotFound)
	get(t, public+"/healthz", http.StatusOK)
	if body := get(t, admin+"/metrics", http.StatusOK); !strings.Contains(body, "latch_connections ") ||
		!strings.Contains(body, `latch_upgrades_rejected_total{reason="descriptors"} 0`) {
		t.Errorf("admin /metrics lacks latch_ metrics:\n%.500s", body)
	}
	if body := get(t, admin+"/debug/pprof/", http.StatusOK); !strings.Contains(body, "goroutine") {
		t.Errorf("admin /debug/pprof/ is not pprof's index:\n%.300s", body)
	}
	get(t, admin+"/", http.StatusNotFound) // the admin port serves nothing else
	if again, err := srv.ListenAdmin(); err != nil || again.String() != adminAddr.String() {
		t.Errorf("second ListenAdmin = %v, %v; want the same address", again, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Serve returned %v", err)
	}
	if c, err := net.DialTimeout("tcp", adminAddr.String(), 2*time.Second); err == nil {
		c.Close()
		t.Fatal("the admin address still accepts connections after Shutdown")
	}
}

// Without an admin address /metrics stays on the public port.
func TestMetricsOnPublicPortByDefault(t *testing.T) {
	t.Parallel()
	srv, addr := serve(t, server.Config{})
	if a, err := srv.ListenAdmin(); a != nil || err != nil {
		t.Errorf("ListenAdmin without AdminAddr = %v, %v", a, err)
	}
	get(t, "http://"+addr+"/metrics", http.StatusOK)
	get(t, "http://"+addr+"/debug/pprof/", http.StatusNotFound)
}
