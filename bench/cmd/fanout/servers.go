package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// server is one running server process under test, pinned with taskset
// (which execs it, so the PID is the server's).
type server struct {
	name  string
	proto protocol
	cmd   *exec.Cmd
	addr  string // the WebSocket listener
	debug string // base URL of its net/http/pprof handlers
	dir   string // scratch directory (Centrifugo's config)
}

// startServer starts the named server on a free loopback port, pinned to
// cpu, with tokens signed by secret and the "bench" history namespace.
func startServer(name string, o *options, secret string) (*server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	s := &server{name: name, addr: addr}
	cpu := strconv.Itoa(o.serverCPU)
	switch name {
	case "latch":
		dbg, err := freeAddr()
		if err != nil {
			return nil, err
		}
		s.proto = latchProto{}
		s.debug = "http://" + dbg
		s.cmd = exec.Command("taskset", "-c", cpu, o.latchBin, "-addr", addr, "-pprof", dbg)
		s.cmd.Env = append(os.Environ(), "LATCH_BENCH_SECRET="+secret)
	case "centrifugo":
		s.proto = centrifugoProto{}
		s.debug = "http://" + addr
		s.dir, err = os.MkdirTemp("", "fanout-centrifugo-")
		if err != nil {
			return nil, err
		}
		cfg := centrifugoConfig(port, secret)
		path := filepath.Join(s.dir, "config.json")
		if err := os.WriteFile(path, cfg, 0o600); err != nil {
			return nil, err
		}
		s.cmd = exec.Command("taskset", "-c", cpu, o.centrifugoBin, "--config", path)
		s.cmd.Dir = s.dir
	default:
		return nil, fmt.Errorf("unknown server %q (latch or centrifugo)", name)
	}
	s.cmd.Stdout = os.Stderr
	s.cmd.Stderr = os.Stderr
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	if err := awaitListening(addr, 20*time.Second); err != nil {
		s.stop()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := awaitListening(strings.TrimPrefix(s.debug, "http://"), 5*time.Second); err != nil {
		s.stop()
		return nil, fmt.Errorf("%s debug listener: %w", name, err)
	}
	return s, nil
}

// centrifugoConfig is the JSON config of Centrifugo v6 equivalent to
// latch-fanout's: HS256 connection tokens with the same secret, a "bench"
// namespace with history (100 publications, 60 s) in which authenticated
// clients may subscribe and publish without being subscribed, no usage
// stats, pprof on the main port (for the GC before the memory reading, as
// latch's -pprof gives), errors-only logging.
func centrifugoConfig(port, secret string) []byte {
	p, _ := strconv.Atoi(port)
	cfg := map[string]any{
		"http_server": map[string]any{"address": "127.0.0.1", "port": p},
		"log":         map[string]any{"level": "error"},
		"usage_stats": map[string]any{"disabled": true},
		"debug":       map[string]any{"enabled": true},
		"client": map[string]any{
			"token": map[string]any{"hmac_secret_key": secret},
		},
		"channel": map[string]any{
			"namespaces": []any{map[string]any{
				"name":                       "bench",
				"history_size":               100,
				"history_ttl":                "60s",
				"allow_subscribe_for_client": true,
				"allow_publish_for_client":   true,
			}},
		},
	}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	return b
}

// stop kills the server (no graceful shutdown: its clients are closed
// right after, and a drain would only add time to the run).
func (s *server) stop() {
	if s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	}
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// gc runs a full GC in the server through net/http/pprof (the heap profile
// with gc=1 calls runtime.GC first): the same hook for both servers.
func (s *server) gc() error {
	resp, err := http.Get(s.debug + "/debug/pprof/heap?gc=1")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: heap profile: HTTP %d", s.name, resp.StatusCode)
	}
	return nil
}

// settledRSS runs GCs until the server's RSS changes by less than 0.5%
// (or 64 KiB) between two readings 300 ms apart, at most 12 rounds.
func (s *server) settledRSS() (int64, error) {
	var prev int64 = -1
	for range 12 {
		if err := s.gc(); err != nil {
			return 0, err
		}
		time.Sleep(300 * time.Millisecond)
		rss, err := rssKiB(s.pid())
		if err != nil {
			return 0, err
		}
		if prev >= 0 {
			d := rss - prev
			if d < 0 {
				d = -d
			}
			if d <= max(64, prev/200) {
				return rss, nil
			}
		}
		prev = rss
	}
	return prev, nil
}

// saveCPUProfile fetches a CPU profile of the server over secs seconds.
func (s *server) saveCPUProfile(path string, secs int) error {
	resp, err := http.Get(s.debug + "/debug/pprof/profile?seconds=" + strconv.Itoa(secs))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile: HTTP %d", resp.StatusCode)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func awaitListening(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("not listening on %s after %v", addr, timeout)
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// cpuTicks is utime+stime of pid (fields 14 and 15 of /proc/PID/stat), in
// clock ticks of 1/clkTck s.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]) // the name may hold spaces
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return ut + st, nil
}

// clkTck is USER_HZ, 100 on every Linux ABI Go supports.
const clkTck = 100

func rssKiB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS for %d", pid)
}

// fdLimit is this process's open-file limit.
func fdLimit() uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	return lim.Cur
}
