//go:build linux

package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/latchws/latch/internal/testutil"

	"github.com/latchws/latch/server"
)

// childNofile is the descriptor limit of the child server: with the 64
// held in reserve, about 50 connections fit.
const childNofile = 128

// TestDescriptorLimitChild is the server process of TestDescriptorLimit,
// run in a child with a lowered RLIMIT_NOFILE; alone it skips. It prints
// its address, then obeys "fill" (open files until no descriptor is left)
// and "free" (close them) from stdin, answering "ok" to each.
func TestDescriptorLimitChild(t *testing.T) {
	if os.Getenv("LATCH_TEST_FDLIMIT_CHILD") != "1" {
		t.Skip("the child process of TestDescriptorLimit")
	}
	lim := syscall.Rlimit{Cur: childNofile, Max: childNofile}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{Addr: "127.0.0.1:0", LogOutput: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	fmt.Printf("addr %s\n", ln.Addr())
	var fill []*os.File
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		switch sc.Text() {
		case "fill":
			// Until nothing more opens twice in a row: descriptors of
			// connections the parent just closed are freed a moment later.
			for quiet := 0; quiet < 2; {
				n := len(fill)
				for {
					f, err := os.Open(os.DevNull)
					if err != nil {
						break
					}
					fill = append(fill, f)
				}
				if len(fill) == n {
					quiet++
				} else {
					quiet = 0
				}
				time.Sleep(100 * time.Millisecond)
			}
		case "free":
			for _, f := range fill {
				f.Close()
			}
			fill = nil
		}
		fmt.Println("ok")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
}

// At the descriptor limit a new client gets 503 at once, both when the
// connection budget is spent and when accept itself fails with EMFILE;
// once descriptors are free again, upgrades succeed.
func TestDescriptorLimit(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^TestDescriptorLimitChild$", "-test.v")
	cmd.Env = append(os.Environ(), "LATCH_TEST_FDLIMIT_CHILD=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close() // the child shuts down
		timer := time.AfterFunc(10*time.Second, func() { cmd.Process.Kill() })
		cmd.Wait()
		timer.Stop()
	})
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func(prefix string) string {
		t.Helper()
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					t.Fatal("the child exited")
				}
				if rest, ok := strings.CutPrefix(line, prefix); ok {
					return rest
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("no %q line from the child within 20s", prefix)
			}
		}
	}
	addr := next("addr ")
	command := func(c string) {
		t.Helper()
		fmt.Fprintln(stdin, c)
		next("ok")
	}

	// The connection budget: open WebSockets until one is refused.
	var open []net.Conn
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	refused := false
	for range childNofile {
		status, conn, err := testutil.TryUpgrade(addr, "/echo")
		if err != nil {
			t.Fatalf("upgrade %d: %v (a client must get an answer, not a timeout)", len(open)+1, err)
		}
		if status == http.StatusServiceUnavailable {
			refused = true
			break
		}
		if status != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade %d: status %d", len(open)+1, status)
		}
		open = append(open, conn)
	}
	if !refused || len(open) < 10 {
		t.Fatalf("%d upgrades before a 503 (refused %v); want a 503 after at least 10", len(open), refused)
	}
	t.Logf("%d WebSockets open, then 503", len(open))
	for _, c := range open {
		c.Close()
	}
	open = nil
	waitUpgrade(t, addr)

	// No descriptor left at all: accept fails with EMFILE, and the spare
	// descriptor answers.
	command("fill")
	status, conn, err := testutil.TryUpgrade(addr, "/echo")
	if err != nil || status != http.StatusServiceUnavailable {
		if conn != nil {
			conn.Close()
		}
		t.Fatalf("at EMFILE: status %d, %v; want 503", status, err)
	}
	command("free")
	waitUpgrade(t, addr)

	body := get(t, "http://"+addr+"/metrics", http.StatusOK)
	var n int
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, `latch_upgrades_rejected_total{reason="descriptors"} `); ok {
			fmt.Sscan(rest, &n)
		}
	}
	if n < 2 {
		t.Errorf("latch_upgrades_rejected_total{reason=\"descriptors\"} = %d, want at least 2", n)
	}
}

// waitUpgrade polls until an upgrade succeeds again; the first client
// after a shortage may still be refused.
func waitUpgrade(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		status, conn, err := testutil.TryUpgrade(addr, "/echo")
		if status == http.StatusSwitchingProtocols {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("service did not resume: status %d, %v", status, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
