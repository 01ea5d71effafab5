package main

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

func median(xs []float64) float64 {
	xs = slices.DeleteFunc(slices.Clone(xs), math.IsNaN)
	if len(xs) == 0 {
		return math.NaN()
	}
	slices.Sort(xs)
	if len(xs)%2 == 1 {
		return xs[len(xs)/2]
	}
	return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
}

type metricDef struct {
	title          string
	get            func(metrics) float64
	f              string
	higherIsBetter bool
}

var loadMetrics = []metricDef{
	{"msg/s", func(m metrics) float64 { return m.msgsPerSec }, "%.0f", true},
	{"server CPU µs/msg", func(m metrics) float64 { return m.cpuPerMsg }, "%.2f", false},
	{"p50 µs", func(m metrics) float64 { return m.p50 }, "%.0f", false},
	{"p99 µs", func(m metrics) float64 { return m.p99 }, "%.0f", false},
	{"server RSS MiB", func(m metrics) float64 { return m.rssMiB }, "%.1f", false},
}

var idleMetrics = []metricDef{
	{"server RSS MiB", func(m metrics) float64 { return m.rssMiB }, "%.1f", false},
	{"KiB per idle conn", func(m metrics) float64 { return m.idleKiB }, "%.2f", false},
}

func metricsFor(w workload) []metricDef {
	if w.idle {
		return idleMetrics
	}
	return loadMetrics
}

// value is the median of a metric over repeats; ratio the median of the
// per-repeat ratios lib/base.
func value(rows [][]metrics, lib int, md metricDef) float64 {
	var xs []float64
	for _, row := range rows {
		xs = append(xs, get(row[lib], md))
	}
	return median(xs)
}

func ratio(rows [][]metrics, lib, base int, md metricDef) float64 {
	var xs []float64
	for _, row := range rows {
		xs = append(xs, get(row[lib], md)/get(row[base], md))
	}
	return median(xs)
}

// ratioToBest is the median over repeats of lib's figure divided by the
// best figure among peers in the same repeat: the highest msg/s, the
// lowest of everything else.
func ratioToBest(rows [][]metrics, lib int, peers []int, md metricDef) float64 {
	var xs []float64
	for _, row := range rows {
		best := math.NaN()
		for _, i := range peers {
			v := get(row[i], md)
			if math.IsNaN(best) || md.higherIsBetter && v > best || !md.higherIsBetter && v < best {
				best = v
			}
		}
		xs = append(xs, get(row[lib], md)/best)
	}
	return median(xs)
}

func get(m metrics, md metricDef) float64 {
	if m.err != nil {
		return math.NaN()
	}
	return md.get(m)
}

func num(f string, v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "err"
	}
	return fmt.Sprintf(f, v)
}

func render(work []workload, libs []string, res map[string][][]metrics, repeats int, window time.Duration, compress bool) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	mode := "off"
	if compress {
		mode = "on (permessage-deflate, no context takeover)"
	}
	p("Machine: %s. Date: %s.\n\n", machine(), time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	p("Repeats: %d (servers alternate within each repeat); measured window %v per cell after a warm-up; compression %s. ", repeats, window, mode)
	p("Each figure is the median over repeats; `×` columns are the median of the per-repeat ratio to %s.\n\n", libs[0])
	for _, w := range work {
		rows := res[w.name]
		mds := metricsFor(w)
		p("### %s\n\n| server |", w.name)
		for _, md := range mds {
			p(" %s | ×%s |", md.title, libs[0])
		}
		p("\n|---|")
		for range mds {
			p("---:|---:|")
		}
		p("\n")
		for i, lib := range libs {
			p("| %s |", lib)
			for _, md := range mds {
				p(" %s | %s |", num(md.f, value(rows, i, md)), num("%.2f", ratio(rows, i, 0, md)))
			}
			p("\n")
		}
		for i, lib := range libs {
			for r, row := range rows {
				if row[i].err != nil {
					p("\n%s, repeat %d: error: %v\n", lib, r+1, row[i].err)
				}
			}
		}
		p("\n")
	}
	latch := slices.Index(libs, "latch")
	if latch < 0 {
		return b.String()
	}
	// Peers are the other libraries, not Latch's own variants nor the
	// floors (servers that validate nothing).
	var peers []int
	for i, lib := range libs {
		if !strings.HasPrefix(lib, "latch") && !strings.HasPrefix(lib, "floor-") {
			peers = append(peers, i)
		}
	}
	p("### Latch ÷ each peer\n\nMedian of the per-repeat ratio latch/peer; *best peer* divides by the best of the peers in each repeat (the floors are not peers: their columns show how far Latch is from the kernel's cost). For msg/s higher is better for Latch; for every other metric lower is better.\n\n")
	p("| workload | metric |")
	for i, lib := range libs {
		if i != latch {
			p(" %s |", lib)
		}
	}
	p(" best peer |\n|---|---|")
	for i := range libs {
		if i != latch {
			p("---:|")
		}
	}
	p("---:|\n")
	for _, w := range work {
		for _, md := range metricsFor(w) {
			p("| %s | %s |", w.name, md.title)
			for i := range libs {
				if i != latch {
					p(" %s |", num("%.2f", ratio(res[w.name], latch, i, md)))
				}
			}
			p(" %s |\n", num("%.2f", ratioToBest(res[w.name], latch, peers, md)))
		}
	}
	return b.String()
}

func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	nproc := "?"
	if out, err := exec.Command("nproc", "--all").Output(); err == nil {
		nproc = strings.TrimSpace(string(out))
	}
	return fmt.Sprintf("%s CPUs (nproc), %s, %s %s/%s", nproc, model, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
