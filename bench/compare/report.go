package main

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
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
// print it, and whether more is better.
type metric struct {
	Title  string
	Short  string // for the chart
	Unit   string
	Get    func(result) (float64, bool)
	Format string
	Higher bool
}

var metrics = []metric{
	{"idle: user-space memory per tunnel", "idle memory / tunnel", "B", func(r result) (float64, bool) {
		if r.Idle == nil || r.Idle.Conns == 0 {
			return 0, false
		}
		return r.Idle.RSSPerConn, true
	}, "%.0f", false},
	{"echo: messages/s", "echo messages/s", "", func(r result) (float64, bool) {
		if r.Echo == nil {
			return 0, false
		}
		return r.Echo.MessagesPerSec, true
	}, "%.0f", true},
	{"echo: RTT p99", "echo RTT p99", "ms", func(r result) (float64, bool) {
		if r.Echo == nil {
			return 0, false
		}
		return r.Echo.RTT.P99, true
	}, "%.1f", false},
	{"echo: proxy CPU-s per 100k msgs", "echo CPU-s / 100k msgs", "s", func(r result) (float64, bool) {
		if r.Echo == nil || r.Echo.CPUPer100k == 0 {
			return 0, false
		}
		return r.Echo.CPUPer100k, true
	}, "%.2f", false},
	{"bulk: Gbit/s", "bulk Gbit/s", "", func(r result) (float64, bool) {
		if r.Bulk == nil {
			return 0, false
		}
		return r.Bulk.Gbps, true
	}, "%.2f", true},
	{"bulk: proxy CPU-s per GB", "bulk CPU-s / GB", "s", func(r result) (float64, bool) {
		if r.Bulk == nil || r.Bulk.CPUPerGB == 0 {
			return 0, false
		}
		return r.Bulk.CPUPerGB, true
	}, "%.3f", false},
	{"handshakes/s", "handshakes/s", "", func(r result) (float64, bool) {
		if r.Handshake == nil {
			return 0, false
		}
		return r.Handshake.PerSec, true
	}, "%.0f", true},
	{"proxy CPU µs per handshake", "CPU µs / handshake", "µs", func(r result) (float64, bool) {
		if r.Handshake == nil || r.Handshake.CPUPerHandshake == 0 {
			return 0, false
		}
		return r.Handshake.CPUPerHandshake, true
	}, "%.0f", false},
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
	fmt.Fprintf(&b, "Workloads: idle %d tunnels opened at 2,000/s and held 5 s; echo %d tunnels × 64 B for %v; "+
		"bulk %d tunnels × %s each way at once; handshakes for %v with %d in flight. "+
		"In parentheses: the ratio to nginx in this run. CPU is the proxy's (all its processes), from /proc.\n\n",
		w.IdleConns, w.EchoConns, w.EchoDuration, w.BulkConns, w.BulkBytes, w.HSDuration, w.HSConcurrency)

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
		b.WriteString("\nIssue 9's goals for wsgate, as measured in this run (✓ met, ✗ not met):\n\n| goal | limit |")
		for _, r := range ws {
			fmt.Fprintf(&b, " %s |", r.Target)
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
