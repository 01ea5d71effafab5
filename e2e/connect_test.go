package e2e

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/latchws/latch/internal/testutil"
)

// connectRun is one finished `latch connect`.
type connectRun struct {
	stdout, stderr string
	code           int
}

// runConnect runs `latch connect args...` with stdin and waits, at most
// 15 s, for it to exit.
func runConnect(t *testing.T, stdin string, args ...string) connectRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, buildLatch(t), append([]string{"connect"}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := connectRun{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("latch connect %v did not exit within 15s\nstderr:\n%s", args, r.stderr)
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("latch connect %v: %v", args, err)
	}
	return r
}

func TestConnectEcho(t *testing.T) {
	t.Parallel()
	p := startLatch(t)
	lines := []string{"hello", "", "héllo wörld ✓", strings.Repeat("long line ", 100)}
	stdin := strings.Join(lines, "\n") + "\n"

	for _, tc := range []struct {
		name string
		args []string
	}{
		{"plain", nil},
		{"compression", []string{"-compression"}},
	} {
		r := runConnect(t, stdin, append(tc.args, "-wait", "300ms", p.url("/echo"))...)
		if r.code != 0 {
			t.Errorf("%s: exit code %d, want 0\nstderr:\n%s", tc.name, r.code, r.stderr)
		}
		if r.stdout != stdin {
			t.Errorf("%s: stdout %q, want the input echoed %q", tc.name, r.stdout, stdin)
		}
	}
	// Only the run with -compression negotiated permessage-deflate.
	if n := p.metric(t, `latch_compressed_connections_total{route="/echo"}`); n != 1 {
		t.Errorf("compressed /echo connections = %v, want 1", n)
	}
}

func TestConnectPubSub(t *testing.T) {
	t.Parallel()
	p := startLatch(t)
	stdin := `{"op":"subscribe","channel":"news","id":"s1"}
{"op":"publish","channel":"news","data":{"headline":"latch ships"},"id":"p1"}
{"op":"ping","id":"k"}
`
	r := runConnect(t, stdin, "-compression", "-subprotocol", "latch.v1", "-wait", "300ms", p.url("/ws"))
	if r.code != 0 {
		t.Fatalf("exit code %d, want 0\nstderr:\n%s", r.code, r.stderr)
	}
	got := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	want := []string{
		`^\{"type":"welcome","client":"[0-9]+"\}$`,
		`^\{"type":"ack","id":"s1"\}$`,
		// The subscribed publisher gets its message before its ack.
		`^\{"type":"message","channel":"news","data":\{"headline":"latch ships"\}\}$`,
		`^\{"type":"ack","id":"p1"\}$`,
		`^\{"type":"pong","id":"k"\}$`,
	}
	if len(got) != len(want) {
		t.Fatalf("stdout has %d lines, want %d:\n%s", len(got), len(want), r.stdout)
	}
	for i, re := range want {
		if !regexp.MustCompile(re).MatchString(got[i]) {
			t.Errorf("stdout line %d = %s, want %s", i+1, got[i], re)
		}
	}
	if n := p.metric(t, `latch_compressed_connections_total{route="/ws"}`); n != 1 {
		t.Errorf("compressed /ws connections = %v, want 1", n)
	}
}

// TestConnectCompressionOff checks that -compression is harmless against a
// server that does not compress.
func TestConnectCompressionOff(t *testing.T) {
	t.Parallel()
	p := startLatch(t, "-compression=false")
	big := strings.Repeat("x", 4096) + "\n"
	r := runConnect(t, big, "-compression", "-wait", "300ms", p.url("/echo"))
	if r.code != 0 || r.stdout != big {
		t.Errorf("exit code %d, %d bytes out, want 0 and the %d bytes echoed\nstderr:\n%s", r.code, len(r.stdout), len(big), r.stderr)
	}
	if n := p.metric(t, `latch_compressed_connections_total{route="/echo"}`); n != 0 {
		t.Errorf("compressed /echo connections = %v, want 0", n)
	}
}

// TestConnectShutdown checks that SIGTERM reaches an /echo client: it gets
// 1001 with its reason, answers it, and the server exits promptly and
// cleanly.
func TestConnectShutdown(t *testing.T) {
	t.Parallel()
	p := startLatch(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, buildLatch(t), "connect", p.url("/echo"))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr testutil.SyncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	// One echo proves the connection is up before the signal.
	if _, err := io.WriteString(stdin, "before\n"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len("before\n"))
	if _, err := io.ReadFull(stdout, buf); err != nil || string(buf) != "before\n" {
		t.Fatalf("echo %q, %v", buf, err)
	}

	start := time.Now()
	p.signal(t, syscall.SIGTERM)
	rest, _ := io.ReadAll(stdout) // EOF once connect exited
	err = cmd.Wait()
	if err != nil {
		t.Errorf("latch connect: %v, want exit 0 on 1001\nstderr:\n%s", err, stderr.String())
	}
	if len(rest) != 0 {
		t.Errorf("unexpected output after the echo: %q", rest)
	}
	if want := `server closed the connection: code 1001, reason "server shutting down"`; !strings.Contains(stderr.String(), want) {
		t.Errorf("connect stderr %q, want %q", stderr.String(), want)
	}
	p.waitExit(t, 7*time.Second)
	// The closing handshake completed, so latch did not wait out its 5 s
	// shutdown timeout.
	if d := p.exitedAt.Sub(start); d > 3*time.Second {
		t.Errorf("latch exited %v after SIGTERM, want well under the 5s timeout", d)
	}
	if s := p.stderr.String(); strings.Contains(s, "shutdown incomplete") {
		t.Errorf("latch logged an incomplete shutdown:\n%s", s)
	}
}
