package e2e

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/latchws/latch/internal/testutil"
)

var (
	buildOnce sync.Once
	buildDir  string
	latchBin  string
	buildErr  error
)

// TestMain removes the binary built by buildLatch.
func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// buildLatch compiles cmd/latch once per test binary, with the race
// detector when the tests run with it.
func buildLatch(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "latch-e2e-")
		if buildErr != nil {
			return
		}
		latchBin = filepath.Join(buildDir, "latch")
		args := []string{"build", "-o", latchBin}
		if raceEnabled {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, "../cmd/latch")...).CombinedOutput()
		if err != nil {
			buildErr = errors.New("go build: " + err.Error() + "\n" + string(out))
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return latchBin
}

// latchProc is a running latch server.
type latchProc struct {
	cmd      *exec.Cmd
	addr     string // host:port it listens on
	stderr   *testutil.SyncBuffer
	exited   chan struct{} // closed after cmd.Wait returned
	err      error         // cmd.Wait's result, once exited is closed
	exitedAt time.Time     // when cmd.Wait returned, once exited is closed

	adminAddr string // host:port of -admin-addr, if given
	apiAddr   string // host:port of the server API's own address, if configured
}

// startLatch runs the latch binary on 127.0.0.1:0 with extra flags and
// waits for its listening line. Cleanup kills it if it is still running.
func startLatch(t *testing.T, flags ...string) *latchProc {
	t.Helper()
	return startLatchUnder(t, nil, flags...)
}

// startLatchUnder is startLatch with the binary run by a wrapper command,
// such as prlimit.
func startLatchUnder(t *testing.T, wrapper []string, flags ...string) *latchProc {
	t.Helper()
	bin := buildLatch(t)
	args := append(slices.Clone(wrapper), bin, "serve", "-addr", "127.0.0.1:0")
	args = append(args, flags...)
	p := &latchProc{cmd: exec.Command(args[0], args[1:]...), stderr: &testutil.SyncBuffer{}, exited: make(chan struct{})}
	p.cmd.Stderr = p.stderr
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start latch: %v", err)
	}
	lines := make(chan string, 8)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		p.err = p.cmd.Wait()
		p.exitedAt = time.Now()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("latch stderr:\n%s", p.stderr)
		}
	})
	select {
	case line := <-lines:
		const prefix = "latch: listening on http://"
		const tlsPrefix = "latch: listening on https://"
		switch {
		case strings.HasPrefix(line, prefix):
			p.addr = strings.TrimPrefix(line, prefix)
		case strings.HasPrefix(line, tlsPrefix):
			p.addr = strings.TrimPrefix(line, tlsPrefix)
		default:
			t.Fatalf("first line %q, want %q + address", line, prefix)
		}
	case <-p.exited:
		t.Fatalf("latch exited before listening: %v\n%s", p.err, p.stderr)
	case <-time.After(15 * time.Second):
		t.Fatalf("latch did not listen within 15s\n%s", p.stderr)
	}
	if slices.Contains(flags, "-admin-addr") {
		const prefix = "latch: admin on http://"
		select {
		case line := <-lines:
			if !strings.HasPrefix(line, prefix) {
				t.Fatalf("second line %q, want %q + address", line, prefix)
			}
			p.adminAddr = strings.TrimPrefix(line, prefix)
		case <-time.After(5 * time.Second):
			t.Fatalf("latch printed no admin address within 5s\n%s", p.stderr)
		}
	}
	// The API's address, when it has one, comes next; else the routes.
	select {
	case line := <-lines:
		p.apiAddr, _ = strings.CutPrefix(line, "latch: api on http://")
		if p.apiAddr == line {
			p.apiAddr = ""
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("latch printed nothing after its addresses within 5s\n%s", p.stderr)
	}
	return p
}

func (p *latchProc) url(path string) string { return "ws://" + p.addr + path }

func (p *latchProc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// waitExit fails unless latch exits within d with status 0.
func (p *latchProc) waitExit(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(d):
		t.Fatalf("latch did not exit within %v", d)
	}
	if p.err != nil {
		t.Fatalf("latch exited with %v, want status 0", p.err)
	}
}

// metric scrapes /metrics and returns the value of the sample line that
// starts with name (a full name with labels, e.g. `x{code="1"}`).
func (p *latchProc) metric(t *testing.T, name string) float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addr := p.addr
	if p.adminAddr != "" {
		addr = p.adminAddr // /metrics moved there (and it is plain HTTP when latch serves TLS)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return v
		}
	}
	t.Fatalf("no metric %s in /metrics", name)
	return 0
}
