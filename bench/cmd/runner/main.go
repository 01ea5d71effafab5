// Command runner runs the bench matrix: for every repeat and workload it
// starts each library's echo server in turn (pinned to one CPU), drives it
// with the one load client (this process, pinned by run.sh to another CPU),
// samples the server's CPU time and RSS from /proc, and writes a markdown
// report with medians and ratios to gorilla from the same repeat.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/latchws/latch/bench/internal/load"
)

type workload struct {
	name     string
	conns    int
	inFlight int
	size     int
	idle     bool
	ping     bool // idle: also ping every connection once
}

var matrix = []workload{
	{name: "1 conn × 1 KiB", conns: 1, inFlight: 1, size: 1024},
	{name: "100 conns × 1 KiB", conns: 100, inFlight: 1, size: 1024},
	{name: "1,000 conns × 64 B", conns: 1000, inFlight: 1, size: 64},
	{name: "100 conns × 64 KiB", conns: 100, inFlight: 1, size: 64 << 10},
	{name: "10 conns × 16 in flight × 64 B", conns: 10, inFlight: 16, size: 64},
	{name: "%s idle conns", inFlight: 1, size: 64, idle: true},
	{name: "%s idle conns, pinged once", inFlight: 1, size: 64, idle: true, ping: true},
}

// withIdleConns names the idle cells after the number of connections they
// open (-idle-conns).
func withIdleConns(ws []workload, n int) []workload {
	ws = slices.Clone(ws)
	for i := range ws {
		if ws[i].idle {
			ws[i].conns = n
			ws[i].name = fmt.Sprintf(ws[i].name, thousands(n))
		}
	}
	return ws
}

// thousands formats n with commas: 15000 -> "15,000".
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// metrics of one cell (one server, one workload, one repeat).
type metrics struct {
	msgsPerSec float64
	cpuPerMsg  float64 // µs of server utime+stime per message
	p50, p99   float64 // µs
	rssMiB     float64
	idleKiB    float64 // per idle connection
	err        error
}

func main() {
	quick := flag.Bool("quick", false, "quick mode: 1 repeat, short windows (~2 min)")
	repeats := flag.Int("repeats", 3, "repeats (servers alternate within each)")
	bin := flag.String("bin", "bin", "directory with the server binaries")
	libsFlag := flag.String("libs", "gorilla,coder,gws,gobwas,nbio,latch,latch-readmessage,latch-engine,floor-goroutines,floor-epoll", "servers, gorilla first (the ratio base)")
	serverCPU := flag.Int("server-cpu", 0, "CPU the servers are pinned to (taskset)")
	compress := flag.Bool("compress", false, "negotiate permessage-deflate")
	out := flag.String("out", "", "markdown file to write (default stdout)")
	only := flag.String("only", "", "run only workloads whose name contains this")
	flag.StringVar(&serverFlags, "server-flags", "", "extra flags for every server, space-separated (e.g. -stream)")
	idleConns := flag.Int("idle-conns", 10000, "connections the idle cells open (the server and this process each need that many descriptors)")
	pprofLib := flag.String("pprof-lib", "", "save pprof profiles of this library's server into profiles/ (CPU over each measured window, heap after the idle GC)")
	flag.Parse()

	warmup, window := 500*time.Millisecond, 3*time.Second
	if *quick {
		*repeats = 1
		warmup, window = 200*time.Millisecond, 1*time.Second
	}
	libs := strings.Split(*libsFlag, ",")
	work := withIdleConns(matrix, *idleConns)
	if *only != "" {
		work = slices.DeleteFunc(work, func(w workload) bool { return !strings.Contains(w.name, *only) })
	}
	if err := checkFDs(work); err != nil {
		fmt.Fprintln(os.Stderr, "runner:", err)
		os.Exit(1)
	}
	results := map[string][][]metrics{} // workload -> repeat -> lib index
	began := time.Now()
	for r := range *repeats {
		for _, w := range work {
			row := make([]metrics, len(libs))
			for i, lib := range libs {
				srvBin, _ := filepath.Abs(filepath.Join(*bin, lib))
				m := runCell(srvBin, lib, *serverCPU, w, *compress, warmup, window, lib == *pprofLib)
				row[i] = m
				fmt.Fprintf(os.Stderr, "[%3.0fs] repeat %d  %-32s %-8s %s\n", time.Since(began).Seconds(), r+1, w.name, lib, m)
			}
			results[w.name] = append(results[w.name], row)
		}
	}
	report := render(work, libs, results, *repeats, window, *compress)
	if *out == "" {
		fmt.Print(report)
		return
	}
	if err := os.WriteFile(*out, []byte(report), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// checkFDs fails early when this process cannot hold the idle cells'
// connections (the servers inherit the same limit through taskset).
func checkFDs(work []workload) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	for _, w := range work {
		if w.idle && lim.Cur < uint64(w.conns+100) {
			return fmt.Errorf("open-file limit %d is below %d for %q (-idle-conns)", lim.Cur, w.conns+100, w.name)
		}
	}
	return nil
}

func (m metrics) String() string {
	if m.err != nil {
		return "ERROR: " + m.err.Error()
	}
	if m.idleKiB > 0 {
		return fmt.Sprintf("rss %.1f MiB, %.2f KiB/conn", m.rssMiB, m.idleKiB)
	}
	return fmt.Sprintf("%.0f msg/s, %.2f µs cpu/msg, p50 %.0f µs, p99 %.0f µs, rss %.1f MiB",
		m.msgsPerSec, m.cpuPerMsg, m.p50, m.p99, m.rssMiB)
}

var serverFlags string

// server is one running bench server process.
type server struct {
	cmd   *exec.Cmd
	lines chan string
}

func startServer(bin string, cpu int, addr string, compress, pprof bool) (*server, error) {
	args := []string{"-c", strconv.Itoa(cpu), bin, "-addr", addr}
	if compress {
		args = append(args, "-compress")
	}
	args = append(args, strings.Fields(serverFlags)...)
	if pprof {
		args = append(args, "-pprof", "127.0.0.1:6060")
	}
	// taskset execs the server, so the PID is the server's.
	cmd := exec.Command("taskset", args...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, lines: make(chan string, 16)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		close(s.lines)
	}()
	if err := s.await("ready", 10*time.Second); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

func (s *server) await(line string, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case l, ok := <-s.lines:
			if !ok {
				return fmt.Errorf("server exited before %q", line)
			}
			if l == line {
				return nil
			}
		case <-t.C:
			return fmt.Errorf("no %q from server in %v", line, timeout)
		}
	}
}

// gc asks the server for a full GC (SIGUSR1) and waits until it is done.
func (s *server) gc() error {
	if err := s.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		return err
	}
	if err := s.await("gc", 30*time.Second); err != nil {
		return err
	}
	time.Sleep(100 * time.Millisecond)
	return nil
}

func (s *server) stop() {
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
}

// cpuTicks is utime+stime of pid from /proc/PID/stat (fields 14 and 15).
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may contain spaces; fields after ")" are fixed.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
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

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func runCell(bin, lib string, cpu int, w workload, compress bool, warmup, window time.Duration, pprof bool) (m metrics) {
	addr, err := freeAddr()
	if err != nil {
		return metrics{err: err}
	}
	s, err := startServer(bin, cpu, addr, compress, pprof)
	if err != nil {
		return metrics{err: err}
	}
	var conns []*load.Conn
	// Stop the server before closing the client side, so the client's
	// sockets are reset rather than left in TIME_WAIT.
	defer func() { s.stop(); load.CloseAll(conns) }()
	pid := s.cmd.Process.Pid
	cfg := load.Config{
		Addr: addr, Conns: w.conns, InFlight: w.inFlight, Size: w.size, Compress: compress,
		Warmup: warmup, Duration: window, MaxMsgs: 500_000_000, MaxSamples: 2_000_000,
	}
	// latch-serve* are `latch serve`: its /ws clients speak the pub/sub
	// protocol; *-echo ones use /echo.
	if strings.HasPrefix(lib, "latch-serve") {
		cfg.Path, cfg.PubSub = "/ws", true
		if strings.Contains(lib, "echo") {
			cfg.Path, cfg.PubSub = "/echo", false
		}
	}
	if w.idle {
		if err := s.gc(); err != nil {
			return metrics{err: err}
		}
		base, err := rssKiB(pid)
		if err != nil {
			return metrics{err: err}
		}
		conns, err = load.Dial(cfg, 20*time.Second)
		if err != nil {
			return metrics{err: err}
		}
		if err := load.EchoOnce(conns, 30*time.Second); err != nil {
			return metrics{err: err}
		}
		if w.ping {
			if err := load.PingOnce(conns, 30*time.Second); err != nil {
				return metrics{err: err}
			}
		}
		if err := s.gc(); err != nil {
			return metrics{err: err}
		}
		rss, err := rssKiB(pid)
		if err != nil {
			return metrics{err: err}
		}
		if pprof {
			saveProfile("heap", w.name)
		}
		return metrics{rssMiB: float64(rss) / 1024, idleKiB: float64(rss-base) / float64(cfg.Conns)}
	}
	conns, err = load.Dial(cfg, 20*time.Second)
	if err != nil {
		return metrics{err: err}
	}
	var t0, t1 int64
	var e0, e1 error
	var prof chan struct{}
	res, err := load.Run(conns, cfg,
		func() {
			t0, e0 = cpuTicks(pid)
			if pprof {
				prof = make(chan struct{})
				go func() { defer close(prof); saveProfile("profile?seconds="+strconv.Itoa(int(window.Seconds())), w.name) }()
			}
		},
		func() { t1, e1 = cpuTicks(pid) })
	if prof != nil {
		<-prof
	}
	rss, e2 := rssKiB(pid)
	for _, e := range []error{err, e0, e1, e2} {
		if e != nil {
			return metrics{err: e}
		}
	}
	cpuSec := float64(t1-t0) / clkTck
	return metrics{
		msgsPerSec: float64(res.Msgs) / res.Elapsed.Seconds(),
		cpuPerMsg:  cpuSec * 1e6 / float64(res.Msgs),
		p50:        float64(res.P50) / 1e3,
		p99:        float64(res.P99) / 1e3,
		rssMiB:     float64(rss) / 1024,
	}
}

// saveProfile fetches a pprof profile from the server under test into
// bench/profiles/ (the working directory of run.sh).
func saveProfile(kind, workloadName string) {
	name := strings.NewReplacer(" ", "", "×", "x", ",", "", "/", "").Replace(workloadName)
	path := strings.SplitN(kind, "?", 2)[0]
	_ = os.MkdirAll("profiles", 0o755)
	out := filepath.Join("profiles", path+"-"+name+".pb.gz")
	cmd := exec.Command("curl", "-s", "-o", out, "http://127.0.0.1:6060/debug/pprof/"+kind)
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "pprof:", err)
	}
}
