package main

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// render writes the markdown report: the machine, one table per scenario
// with every server measured and the ratio first÷second, then the issue's
// targets judged from the same numbers.
func render(work []scenario, servers []string, results map[string][][]result, o *options, repeats int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Date: %s. Machine: %s. Servers pinned to CPU %d, the load client to the other CPU; "+
		"%d repeat(s), %v warm-up, %v measured window per cell; medians over repeats, [min–max] where it helps; "+
		"ratios are medians of the per-repeat ratio.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), machine(), o.serverCPU, repeats, o.warmup, o.window)
	two := len(servers) >= 2
	ratioHead := ""
	if two {
		ratioHead = fmt.Sprintf(" %s ÷ %s |", servers[0], servers[1])
	}
	for _, sc := range work {
		rows := results[sc.name]
		fmt.Fprintf(&b, "### %s\n\n", sc.name)
		if !sc.idle {
			fmt.Fprintf(&b, "%d subscriber connections, each on one channel `bench:c<i mod %d>`; %d publisher connection(s) "+
				"sending %d publishes/s in total; %s deliveries/s expected.\n\n",
				sc.subs, sc.channels, sc.pubs, sc.rate, thousands(int64(sc.rate)*int64(sc.subs)/int64(sc.channels)))
		} else {
			fmt.Fprintf(&b, "%d subscriber connections, authenticated and subscribed to `bench:c0`, then idle; "+
				"RSS after a GC settles (the heap profile's gc=1 on both servers), minus the RSS before connecting.\n\n", sc.subs)
		}
		fmt.Fprintf(&b, "| |%s%s\n|---|%s%s\n", joinCols(servers), ratioHead,
			strings.Repeat("---|", len(servers)), map[bool]string{true: "---|"}[two])
		var errs []string
		for rep, row := range rows {
			for i, r := range row {
				if r.err != nil {
					errs = append(errs, fmt.Sprintf("repeat %d, %s: %v", rep+1, servers[i], r.err))
				}
			}
		}
		line := func(label string, f func(result) (float64, bool), format string, showRange bool) {
			fmt.Fprintf(&b, "| %s |", label)
			for i := range servers {
				vals := column(rows, i, f)
				if len(vals) == 0 {
					b.WriteString(" — |")
					continue
				}
				fmt.Fprintf(&b, " "+format, median(vals))
				if showRange && len(vals) > 1 {
					fmt.Fprintf(&b, " ["+format+"–"+format+"]", slices.Min(vals), slices.Max(vals))
				}
				b.WriteString(" |")
			}
			if two {
				var ratios []float64
				for _, row := range rows {
					a, okA := f(row[0])
					c, okC := f(row[1])
					if okA && okC && row[0].err == nil && row[1].err == nil && c != 0 {
						ratios = append(ratios, a/c)
					}
				}
				if len(ratios) == 0 {
					b.WriteString(" — |")
				} else {
					fmt.Fprintf(&b, " %.2f |", median(ratios))
				}
			}
			b.WriteString("\n")
		}
		total := func(label string, f func(result) int64) {
			fmt.Fprintf(&b, "| %s |", label)
			for i := range servers {
				var sum int64
				n := 0
				for _, row := range rows {
					if row[i].err == nil {
						sum += f(row[i])
						n++
					}
				}
				if n == 0 {
					b.WriteString(" — |")
				} else {
					fmt.Fprintf(&b, " %s |", thousands(sum))
				}
			}
			if two {
				b.WriteString(" |")
			}
			b.WriteString("\n")
		}
		ok := func(f func(result) float64) func(result) (float64, bool) {
			return func(r result) (float64, bool) { return f(r), r.err == nil }
		}
		// Latency exists only where in-window publications arrived.
		lat := func(f func(result) float64) func(result) (float64, bool) {
			return func(r result) (float64, bool) { return f(r), r.err == nil && r.delivered > 0 }
		}
		if sc.idle {
			line("RSS before connecting (MiB)", ok(func(r result) float64 { return float64(r.baseKiB) / 1024 }), "%.1f", false)
			line(fmt.Sprintf("RSS with %s subscribers (MiB)", thousands(sc.subs)), ok(func(r result) float64 { return float64(r.idleKiB) / 1024 }), "%.1f", false)
			line("**RSS per idle subscriber (KiB)**", ok(func(r result) float64 { return perSub(r, sc) }), "%.2f", true)
		} else {
			total("deliveries expected (all repeats)", func(r result) int64 { return r.expected })
			total("deliveries received", func(r result) int64 { return r.delivered })
			total("**lost** (missing, a later one arrived)", func(r result) int64 { return r.gaps })
			total("not delivered by the end of the drain", func(r result) int64 { return r.expected - r.delivered - r.gaps })
			total("duplicates", func(r result) int64 { return r.dups })
			total("out of order", func(r result) int64 { return r.outOfOrder })
			total("subscribers dropped", func(r result) int64 { return r.disconnected })
			line("latency p50 (ms)", lat(func(r result) float64 { return ms(r.p50) }), "%.2f", true)
			line("**latency p99 (ms)**", lat(func(r result) float64 { return ms(r.p99) }), "%.2f", true)
			line("latency max (ms)", lat(func(r result) float64 { return ms(r.max) }), "%.1f", true)
			line("**server CPU per delivered message (µs)**", ok(result.cpuPerMsg), "%.2f", true)
			line("server CPU busy (% of its core)", ok(func(r result) float64 { return 100 * r.serverCPU / r.span.Seconds() }), "%.0f", false)
			line("publishes sent in the window /s", ok(func(r result) float64 { return float64(r.published) / r.window.Seconds() }), "%.0f", false)
			line("publishes acknowledged (%)", ok(func(r result) float64 { return 100 * float64(r.acked) / float64(max(r.published, 1)) }), "%.1f", false)
			line("publish acks /s", ok(func(r result) float64 { return float64(r.acked) / r.window.Seconds() }), "%.0f", false)
			line("server RSS at the end (MiB)", ok(func(r result) float64 { return float64(r.rssKiB) / 1024 }), "%.1f", false)
			line("load client CPU (% of its core)", ok(func(r result) float64 { return 100 * r.clientCPU / r.span.Seconds() }), "%.0f", false)
		}
		b.WriteString("\n")
		for _, e := range errs {
			fmt.Fprintf(&b, "- Error: %s\n", e)
		}
		if len(errs) > 0 {
			b.WriteString("\n")
		}
	}
	if two {
		renderTargets(&b, work, servers, results)
	}
	return b.String()
}

func perSub(r result, sc scenario) float64 {
	return float64(r.idleKiB-r.baseKiB) / float64(sc.subs)
}

// renderTargets judges issue 13's targets for servers[0] (latch) against
// servers[1] (Centrifugo), on the medians of the per-repeat ratios above.
func renderTargets(b *strings.Builder, work []scenario, servers []string, results map[string][][]result) {
	fmt.Fprintf(b, "### Targets (%s against %s, auth and history on)\n\n| target | measured | met |\n|---|---|---|\n", servers[0], servers[1])
	verdict := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "**no**"
	}
	ratio := func(rows [][]result, f func(result) float64) (float64, bool) {
		var rs []float64
		for _, row := range rows {
			if row[0].err == nil && row[1].err == nil && f(row[1]) != 0 {
				rs = append(rs, f(row[0])/f(row[1]))
			}
		}
		if len(rs) == 0 {
			return 0, false
		}
		return median(rs), true
	}
	for _, sc := range work {
		rows := results[sc.name]
		if sc.idle {
			if r, ok := ratio(rows, func(x result) float64 { return perSub(x, sc) }); ok {
				fmt.Fprintf(b, "| memory per idle subscriber ≤ 0.2× (%s) | %.2f× | %s |\n", sc.name, r, verdict(r <= 0.2))
			}
			continue
		}
		var lost, dups, ooo, drop int64
		n := 0
		for _, row := range rows {
			if row[0].err == nil {
				lost += row[0].expected - row[0].delivered
				dups += row[0].dups
				ooo += row[0].outOfOrder
				drop += row[0].disconnected
				n++
			}
		}
		if n > 0 {
			fmt.Fprintf(b, "| no loss: every in-window publication delivered by the end of the drain (%s) | not delivered %d, dup %d, out of order %d, dropped %d | %s |\n",
				sc.name, lost, dups, ooo, drop, verdict(lost+dups+ooo+drop == 0))
		}
		if sc.subs == 1000 && sc.channels == 1 && sc.rate == 100 {
			if r, ok := ratio(rows, func(x result) float64 { return ms(x.p99) }); ok {
				fmt.Fprintf(b, "| p99 latency ≤ %s's (%s) | %.2f× | %s |\n", servers[1], sc.name, r, verdict(r <= 1))
			}
		}
		if r, ok := ratio(rows, result.cpuPerMsg); ok {
			fmt.Fprintf(b, "| CPU per delivered message ≤ 0.8× (%s) | %.2f× | %s |\n", sc.name, r, verdict(r <= 0.8))
		}
	}
	b.WriteString("\n")
}

func joinCols(servers []string) string {
	var s string
	for _, n := range servers {
		s += " " + n + " |"
	}
	return s
}

func column(rows [][]result, i int, f func(result) (float64, bool)) []float64 {
	var v []float64
	for _, row := range rows {
		if x, ok := f(row[i]); ok {
			v = append(v, x)
		}
	}
	return v
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// machine describes the host: CPU model, cores, kernel, Go version.
func machine() string {
	model, cpus := "unknown CPU", 0
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok && model == "unknown CPU" {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
			}
			if strings.HasPrefix(l, "processor") {
				cpus++
			}
		}
	}
	var u syscall.Utsname
	kernel := ""
	if syscall.Uname(&u) == nil {
		var sb strings.Builder
		for _, c := range u.Release {
			if c == 0 {
				break
			}
			sb.WriteByte(byte(c))
		}
		kernel = ", Linux " + sb.String()
	}
	return fmt.Sprintf("%s, %d CPUs%s, %s", model, cpus, kernel, runtime.Version())
}
