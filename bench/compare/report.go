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

	"github.com/wsgate/wsgate/bench"
)

// runEnv is what the figures depend on besides the code: the machine, the
// versions, and how busy the machine was (others share it).
type runEnv struct {
	Date      string  `json:"date"`
	Kernel    string  `json:"kernel"`
	CPUs      int     `json:"cpus"`
	Commit    string  `json:"commit"`
	Nginx     string  `json:"nginx"`
	HAProxy   string  `json:"haproxy"`
	LoadStart string  `json:"load_start"`
	LoadEnd   string  `json:"load_end"`
	LoadMax1m float64 `json:"load_max_1m"`
	Seconds   float64 `json:"seconds"`
}

func captureEnv(r *runner) runEnv {
	out := func(name string, args ...string) string {
		cmd := exec.Command(name, args...)
		cmd.Dir = r.root
		b, _ := cmd.CombinedOutput()
		return strings.TrimSpace(string(b))
	}
	commit := out("git", "rev-parse", "--short", "HEAD")
	if out("git", "status", "--porcelain", "--", "engine", "handshake", "balance", "config", "cmd") != "" {
		commit += " + uncommitted changes"
	}
	ng := strings.TrimPrefix(out("nginx", "-v"), "nginx version: ")
	hp, _, _ := strings.Cut(out("haproxy", "-v"), "\n")
	hp, _, _ = strings.Cut(strings.TrimPrefix(hp, "HAProxy version "), " ")
	return runEnv{
		Date:      time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		Kernel:    out("uname", "-r"),
		CPUs:      runtime.NumCPU(),
		Commit:    commit,
		Nginx:     ng,
		HAProxy:   hp,
		LoadStart: readLoad(),
	}
}

// readLoad is /proc/loadavg's 1, 5 and 15 minute averages.
func readLoad() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// sampleLoad records the highest 1-minute load average until the returned
// func is called, which returns it.
func sampleLoad() func() float64 {
	stop := make(chan struct{})
	done := make(chan struct{})
	var peak float64
	go func() {
		defer close(done)
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			var l float64
			fmt.Sscan(readLoad(), &l)
			peak = math.Max(peak, l)
			select {
			case <-t.C:
			case <-stop:
				return
			}
		}
	}()
	return func() float64 { close(stop); <-done; return peak }
}

// metric is one column of the table: how to get it from a result, how to
// print it, and whether more is better. A figure measured in rounds is
// the median over the rounds.
type metric struct {
	Title  string
	Short  string // for the chart
	Unit   string
	idle   func(*bench.IdleResult) float64 // for idle memory, measured once
	round  func(round) (float64, bool)     // for the others
	Format string
	Higher bool
}

// Get returns m's figure for r.
func (m metric) Get(r result) (float64, bool) {
	if m.idle != nil {
		if r.Idle == nil || r.Idle.Conns == 0 {
			return 0, false
		}
		return m.idle(r.Idle), true
	}
	var vs []float64
	for _, rd := range r.Rounds {
		if v, ok := m.round(rd); ok {
			vs = append(vs, v)
		}
	}
	if len(vs) == 0 {
		return 0, false
	}
	return median(vs), true
}

func median(vs []float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

var metrics = []metric{
	{Title: "idle: user-space memory per tunnel", Short: "idle memory / tunnel", Unit: "B",
		idle: func(r *bench.IdleResult) float64 { return r.RSSPerConn }, Format: "%.0f"},
	{Title: "echo: messages/s", Short: "echo messages/s", round: func(r round) (float64, bool) {
		if r.Echo == nil {
			return 0, false
		}
		return r.Echo.MessagesPerSec, true
	}, Format: "%.0f", Higher: true},
	{Title: "echo: RTT p99", Short: "echo RTT p99", Unit: "ms", round: func(r round) (float64, bool) {
		if r.Echo == nil {
			return 0, false
		}
		return r.Echo.RTT.P99, true
	}, Format: "%.1f"},
	{Title: "echo: proxy CPU-s per 100k msgs", Short: "echo CPU-s / 100k msgs", Unit: "s", round: func(r round) (float64, bool) {
		if r.Echo == nil || r.Echo.CPUPer100k == 0 {
			return 0, false
		}
		return r.Echo.CPUPer100k, true
	}, Format: "%.2f"},
	{Title: "bulk: Gbit/s", Short: "bulk Gbit/s", round: func(r round) (float64, bool) {
		if r.Bulk == nil {
			return 0, false
		}
		return r.Bulk.Gbps, true
	}, Format: "%.2f", Higher: true},
	{Title: "bulk: proxy CPU-s per GB", Short: "bulk CPU-s / GB", Unit: "s", round: func(r round) (float64, bool) {
		if r.Bulk == nil || r.Bulk.CPUPerGB == 0 {
			return 0, false
		}
		return r.Bulk.CPUPerGB, true
	}, Format: "%.3f"},
	{Title: "handshakes/s", Short: "handshakes/s", round: func(r round) (float64, bool) {
		if r.Handshake == nil {
			return 0, false
		}
		return r.Handshake.PerSec, true
	}, Format: "%.0f", Higher: true},
	{Title: "proxy CPU µs per handshake", Short: "CPU µs / handshake", Unit: "µs", round: func(r round) (float64, bool) {
		if r.Handshake == nil || r.Handshake.CPUPerHandshake == 0 {
			return 0, false
		}
		return r.Handshake.CPUPerHandshake, true
	}, Format: "%.0f"},
}

func find(results []result, name string) (result, bool) {
	for _, r := range results {
		if r.Target == name {
			return r, true
		}
	}
	return result{}, false
}

// goal is one of issue 9's targets for wsgate, as a ratio in the same run.
type goal struct {
	What  string
	Check func(w, nginx, direct result) (ratio float64, limit string, ok, known bool)
}

func ratioOf(m metric, a, b result) (float64, bool) {
	x, ok1 := m.Get(a)
	y, ok2 := m.Get(b)
	if !ok1 || !ok2 || y == 0 {
		return 0, false
	}
	return x / y, true
}

func atLeast(mi int, ref string, min float64) func(w, n, d result) (float64, string, bool, bool) {
	return func(w, n, d result) (float64, string, bool, bool) {
		b := n
		if ref == "direct" {
			b = d
		}
		r, ok := ratioOf(metrics[mi], w, b)
		return r, fmt.Sprintf("≥ %.2f× %s", min, ref), r >= min, ok
	}
}

func atMost(mi int, ref string, max float64) func(w, n, d result) (float64, string, bool, bool) {
	return func(w, n, d result) (float64, string, bool, bool) {
		r, ok := ratioOf(metrics[mi], w, n)
		return r, fmt.Sprintf("≤ %.2f× %s", max, ref), r <= max, ok
	}
}

var goals = []goal{
	{"idle memory per tunnel ≤ 256 B", func(w, _, _ result) (float64, string, bool, bool) {
		v, ok := metrics[0].Get(w)
		return v, "≤ 256 B", v <= 256, ok
	}},
	{"echo messages/s", atLeast(1, "nginx", 1.2)},
	{"echo p99 no worse", atMost(2, "nginx", 1.0)},
	{"echo CPU per message", atMost(3, "nginx", 0.75)},
	{"bulk throughput", atLeast(4, "direct", 0.9)},
	{"bulk CPU per GB", atMost(5, "nginx", 0.3)},
	{"handshakes/s", atLeast(6, "nginx", 1.25)},
	{"CPU per handshake", atMost(7, "nginx", 0.9)},
}

// renderReport is the markdown that goes between RESULTS.md's markers and
// to stdout.
func renderReport(env runEnv, results []result, w workloads) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Run of %s on %d CPUs (Linux %s), wsgate %s, nginx %s, HAProxy %s; took %.0f s. "+
		"Load average (1/5/15 min) %s at the start, %s at the end, 1-minute peak %.2f.\n\n",
		env.Date, env.CPUs, env.Kernel, env.Commit, env.Nginx, env.HAProxy, env.Seconds, env.LoadStart, env.LoadEnd, env.LoadMax1m)
	fmt.Fprintf(&b, "Workloads: idle %d tunnels opened at 2,000/s and held 5 s (once per proxy); echo %d tunnels × 64 B for %v; "+
		"bulk %d tunnels × %s each way at once; handshakes for %v with %d in flight. "+
		"Echo, bulk and handshakes ran in %d rounds, every target in turn in each, and each figure is the median over the rounds. "+
		"In parentheses: the ratio to nginx in this run. CPU is the proxy's (all its processes), from /proc.\n\n",
		w.IdleConns, w.EchoConns, w.EchoDuration, w.BulkConns, w.BulkBytes, w.HSDuration, w.HSConcurrency, max(w.Rounds, 1))

	nginx, haveNginx := find(results, "nginx")
	b.WriteString("| target |")
	for _, m := range metrics {
		t := m.Title
		if !m.Higher {
			t += " (lower is better)"
		}
		fmt.Fprintf(&b, " %s |", t)
	}
	b.WriteString("\n|---|")
	for range metrics {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	for _, r := range results {
		fmt.Fprintf(&b, "| %s |", r.Target)
		for _, m := range metrics {
			v, ok := m.Get(r)
			if !ok {
				b.WriteString(" — |")
				continue
			}
			cell := fmt.Sprintf(m.Format, v)
			if m.Unit != "" && m.Unit != "s" {
				cell += " " + m.Unit
			}
			if haveNginx && r.Target != "nginx" {
				if x, ok := ratioOf(m, r, nginx); ok {
					cell += fmt.Sprintf(" (%.2f×)", x)
				}
			}
			fmt.Fprintf(&b, " %s |", cell)
		}
		b.WriteString("\n")
	}
	var errs []string
	for _, r := range results {
		for mode, e := range r.Errors {
			errs = append(errs, fmt.Sprintf("- %s, %s: %s", r.Target, mode, firstLine(e)))
		}
	}
	if len(errs) > 0 {
		b.WriteString("\nRuns that failed:\n\n" + strings.Join(errs, "\n") + "\n")
	}

	direct, _ := find(results, "direct")
	var ws []result
	for _, r := range results {
		if strings.HasPrefix(r.Target, "wsgate") {
			ws = append(ws, r)
		}
	}
	if haveNginx && len(ws) > 0 {
		b.WriteString("\nIssue 9's goals for wsgate, as measured in this run (✓ met, ✗ not met). " +
			"The goals are wsgate's as it runs by default; the modes forced with --splice and --copy are shown for reference.\n\n| goal | limit |")
		for _, r := range ws {
			if r.Target == "wsgate" {
				b.WriteString(" wsgate (default) |")
			} else {
				fmt.Fprintf(&b, " %s (forced) |", r.Target)
			}
		}
		b.WriteString("\n|---|---|")
		for range ws {
			b.WriteString("---|")
		}
		b.WriteString("\n")
		for _, g := range goals {
			_, limit, _, _ := g.Check(ws[0], nginx, direct)
			fmt.Fprintf(&b, "| %s | %s |", g.What, limit)
			for _, r := range ws {
				v, _, ok, known := g.Check(r, nginx, direct)
				switch {
				case !known:
					b.WriteString(" — |")
				case strings.HasSuffix(limit, "B"):
					fmt.Fprintf(&b, " %s %.0f B |", mark(ok), v)
				default:
					fmt.Fprintf(&b, " %s %.2f× |", mark(ok), v)
				}
			}
			b.WriteString("\n")
		}
	}
	b.WriteString(renderCPU(results, env.CPUs))
	return b.String()
}

// Units of work per workload, as the CPU tables count them.
var workUnits = []struct {
	name, unit string
	scale      float64 // CPU-seconds per unit → the figure printed
	format     string
	get        func(round) (units float64, proxyCPU float64, m *bench.Machine, rate float64, ok bool)
	rateFmt    string
}{
	{"echo", "s per 100k msgs", 1, "%.2f", func(r round) (float64, float64, *bench.Machine, float64, bool) {
		if r.Echo == nil || r.Echo.Messages == 0 {
			return 0, 0, nil, 0, false
		}
		return float64(r.Echo.Messages) / 1e5, r.Echo.CPUSeconds, r.Echo.Machine, r.Echo.MessagesPerSec, true
	}, "%.0f msgs/s"},
	{"bulk", "s per GB", 1, "%.3f", func(r round) (float64, float64, *bench.Machine, float64, bool) {
		if r.Bulk == nil || r.Bulk.Sent+r.Bulk.Received == 0 {
			return 0, 0, nil, 0, false
		}
		return float64(r.Bulk.Sent+r.Bulk.Received) / 1e9, r.Bulk.CPUSeconds, r.Bulk.Machine, r.Bulk.Gbps, true
	}, "%.2f Gbit/s"},
	{"handshakes", "µs per handshake", 1e6, "%.0f", func(r round) (float64, float64, *bench.Machine, float64, bool) {
		if r.Handshake == nil || r.Handshake.Handshakes == 0 {
			return 0, 0, nil, 0, false
		}
		return float64(r.Handshake.Handshakes), r.Handshake.CPUSeconds, r.Handshake.Machine, r.Handshake.PerSec, true
	}, "%.0f/s"},
}

// cpuUse is one workload's figures for one target, medians over rounds:
// its rate, how busy the machine was, and the CPU per unit of work of
// the proxy and of everything else (the load generator and the backends,
// with the kernel work charged to them).
type cpuUse struct {
	rate, busy, proxy, rest float64
	ok                      bool
}

func usage(r result, wi int) cpuUse {
	var rate, busy, proxy, rest []float64
	for _, rd := range r.Rounds {
		units, cpu, m, rt, ok := workUnits[wi].get(rd)
		if !ok || m == nil || units == 0 {
			continue
		}
		rate = append(rate, rt)
		busy = append(busy, m.Busy)
		proxy = append(proxy, cpu/units)
		rest = append(rest, (m.BusySeconds-cpu)/units)
	}
	if len(rate) == 0 {
		return cpuUse{}
	}
	return cpuUse{median(rate), median(busy), median(proxy), median(rest), true}
}

// renderCPU is where the machine's CPU went in each workload, and what
// that leaves a proxy for the goals that are rates: on a machine whose
// CPUs the load generator, the backends and the proxy share, a rate can
// not exceed CPUs / (the CPU all of them need per unit of work).
func renderCPU(results []result, cpus int) string {
	var b strings.Builder
	b.WriteString("\nWhere the CPU went (medians over the rounds; from /proc/stat and /proc/PID/stat). " +
		"\"Rest\" is everything but the proxy: the load generator and the two backends, with the kernel's TCP work charged to them.\n\n" +
		"| workload | target | rate | machine busy | machine CPU per unit | proxy | rest |\n|---|---|---:|---:|---:|---:|---:|\n")
	for wi, wu := range workUnits {
		for _, r := range results {
			u := usage(r, wi)
			if !u.ok {
				continue
			}
			f := func(v float64) string { return fmt.Sprintf(wu.format, v*wu.scale) }
			proxy := "—"
			if r.Target != "direct" {
				proxy = f(u.proxy)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %.0f%% | %s %s | %s | %s |\n", wu.name, r.Target,
				fmt.Sprintf(wu.rateFmt, u.rate), 100*u.busy, f(u.proxy+u.rest), wu.unit, proxy, f(u.rest))
		}
	}
	ws, ok1 := find(results, "wsgate")
	nginx, ok2 := find(results, "nginx")
	direct, ok3 := find(results, "direct")
	if !ok1 || !ok2 || !ok3 || cpus == 0 {
		return b.String()
	}
	b.WriteString("\nWhat the rate goals leave a proxy on this machine: the goal's rate gives every unit of work at most " +
		"CPUs ÷ rate of CPU for everything; the rest (load generator and backends, as measured in wsgate's runs) takes its share; " +
		"what remains is the most a proxy may use, whatever it does.\n\n" +
		"| goal | rate needed | CPU per unit at that rate | rest | left for the proxy | wsgate uses | nginx uses |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, g := range []struct {
		what   string
		wi     int
		ref    result
		factor float64
	}{
		{"echo ≥ 1.20× nginx", 0, nginx, 1.2},
		{"bulk ≥ 0.90× direct", 1, direct, 0.9},
		{"handshakes ≥ 1.25× nginx", 2, nginx, 1.25},
	} {
		wu := workUnits[g.wi]
		ref, w, n := usage(g.ref, g.wi), usage(ws, g.wi), usage(nginx, g.wi)
		if !ref.ok || !w.ok || !n.ok {
			continue
		}
		rate := g.factor * ref.rate
		// Per unit of work at that rate: CPUs × seconds per unit.
		perUnit := float64(cpus) / rate
		if g.wi == 1 {
			perUnit = float64(cpus) / (rate / 8) // Gbit/s → GB/s
		}
		if g.wi == 0 {
			perUnit *= 1e5 // per 100k messages
		}
		f := func(v float64) string { return fmt.Sprintf(wu.format, v*wu.scale) }
		left := perUnit - w.rest
		leftCell := f(left)
		if left <= 0 {
			leftCell = "none"
		}
		fmt.Fprintf(&b, "| %s | %s | %s %s | %s | %s | %s | %s |\n", g.what, fmt.Sprintf(wu.rateFmt, rate),
			f(perUnit), wu.unit, f(w.rest), leftCell, f(w.proxy), f(n.proxy))
	}
	return b.String()
}

func mark(ok bool) string {
	if ok {
		return "✓"
	}
	return "✗"
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

const (
	beginMark = "<!-- compare:begin (written by go run ./bench/compare; edits inside are lost) -->"
	endMark   = "<!-- compare:end -->"
)

// writeResults puts report between RESULTS.md's markers, keeping the rest
// of the file; without markers it appends a section.
func writeResults(path, report string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	s := string(old)
	block := beginMark + "\n\n" + report + "\n![the comparison as a chart](compare/results.svg)\n\n" + endMark
	i, j := strings.Index(s, beginMark), strings.Index(s, endMark)
	if i >= 0 && j > i {
		s = s[:i] + block + s[j+len(endMark):]
	} else {
		s = strings.TrimRight(s, "\n") + "\n\n## Side by side (bench/compare)\n\n" + block + "\n"
	}
	return os.WriteFile(path, []byte(s), 0o644)
}
