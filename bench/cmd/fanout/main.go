// Command fanout measures pub/sub fan-out of latch serve (bench/servers/
// latch-fanout: tokens and history on) against Centrifugo v6 in the same
// run: S subscriber connections on one channel or spread over many, paced
// publishers whose payloads carry a per-channel sequence number and the
// send time, and per server the deliveries expected and received (loss,
// duplicates, order), the delivery latency, the server's CPU time per
// delivered message, the publish acks and the RSS each idle subscriber
// costs. Each cell starts a fresh server pinned to one CPU (taskset); this
// process is the load client, pinned by bench/fanout.sh to the other.
//
//	fanout -quick                       one short repeat
//	fanout -servers latch -only "5,000" latch alone, one scenario
//	fanout -pprof latch                 also save CPU profiles of latch
package main

import (
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"time"
)

var (
	stderr  = os.Stderr
	selfPID = os.Getpid()
)

type options struct {
	latchBin, centrifugoBin string
	serverCPU               int
	warmup, window, drain   time.Duration
}

var matrix = []scenario{
	{name: "1,000 subscribers, 1 channel, 100 publishes/s", subs: 1000, channels: 1, rate: 100, pubs: 1},
	{name: "5,000 subscribers, 1 channel, 100 publishes/s", subs: 5000, channels: 1, rate: 100, pubs: 1},
	{name: "1,000 subscribers over 1,000 channels, 1,000 publishes/s", subs: 1000, channels: 1000, rate: 1000, pubs: 4},
	{name: "%s idle subscribers, 1 channel", channels: 1, idle: true},
}

func main() {
	var o options
	quick := flag.Bool("quick", false, "1 repeat, short windows (about 2 minutes)")
	repeats := flag.Int("repeats", 3, "repeats (servers alternate within each)")
	serversFlag := flag.String("servers", "latch,centrifugo", "servers to measure, comma-separated; the first is the ratio's numerator")
	flag.StringVar(&o.latchBin, "latch", "bin/latch-fanout", "latch-fanout binary")
	flag.StringVar(&o.centrifugoBin, "centrifugo", "bin/centrifugo", "Centrifugo v6 binary")
	flag.IntVar(&o.serverCPU, "server-cpu", 0, "CPU the servers are pinned to")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "publishing before the measured window")
	flag.DurationVar(&o.window, "window", 8*time.Second, "measured window")
	flag.DurationVar(&o.drain, "drain", 5*time.Second, "longest wait after the window for its last deliveries")
	idleSubs := flag.Int("idle-subs", 5000, "subscribers of the idle-memory cell")
	only := flag.String("only", "", "run only scenarios whose name contains this")
	out := flag.String("out", "", "markdown report (default stdout)")
	pprofFor := flag.String("pprof", "", "save CPU profiles of this server (latch or centrifugo) over each window into profiles/")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of this load client to the file")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, err)
			os.Exit(1)
		}
		_ = pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if *quick {
		*repeats = 1
		o.warmup, o.window, o.drain = time.Second, 3*time.Second, 3*time.Second
	}
	for _, p := range []*string{&o.latchBin, &o.centrifugoBin} {
		if abs, err := filepath.Abs(*p); err == nil {
			*p = abs // Centrifugo runs in a scratch directory
		}
	}
	servers := strings.Split(*serversFlag, ",")
	work := slices.Clone(matrix)
	for i := range work {
		if work[i].idle {
			work[i].subs = *idleSubs
			work[i].name = fmt.Sprintf(work[i].name, thousands(*idleSubs))
		}
	}
	if *only != "" {
		work = slices.DeleteFunc(work, func(sc scenario) bool { return !strings.Contains(sc.name, *only) })
	}
	for _, sc := range work {
		if lim := fdLimit(); lim < uint64(sc.subs+sc.pubs+100) {
			fmt.Fprintf(stderr, "fanout: open-file limit %d is too low for %q\n", lim, sc.name)
			os.Exit(1)
		}
	}
	var key [32]byte
	_, _ = rand.Read(key[:])
	secret := hex.EncodeToString(key[:]) // 64 bytes, both servers

	results := map[string][][]result{} // scenario -> repeat -> server
	began := time.Now()
	for rep := range *repeats {
		for _, sc := range work {
			row := make([]result, len(servers))
			for i, name := range servers {
				profile := ""
				if name == *pprofFor && !sc.idle {
					profile = filepath.Join("profiles", fmt.Sprintf("fanout-%s-%s-r%d.pb.gz", name, slug(sc.name), rep+1))
				}
				row[i] = runCell(name, sc, &o, secret, profile)
				fmt.Fprintf(stderr, "[%3.0fs] repeat %d  %-58s %-10s %s\n", time.Since(began).Seconds(), rep+1, sc.name, name, row[i])
			}
			results[sc.name] = append(results[sc.name], row)
		}
	}
	report := render(work, servers, results, &o, *repeats)
	if *out == "" {
		fmt.Print(report)
		return
	}
	if err := os.WriteFile(*out, []byte(report), 0o644); err != nil {
		fmt.Fprintln(stderr, err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func slug(s string) string {
	s = strings.NewReplacer(",", "", "/", "", " ", "-").Replace(s)
	return strings.ToLower(s)
}

// thousands formats n with commas: 15000 -> "15,000".
func thousands[T int64Like](n T) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		return "-" + s
	}
	return s
}

type int64Like interface{ ~int | ~int64 }
