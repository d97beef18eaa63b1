// Command compare measures wsgate side by side with direct connections,
// nginx and HAProxy, in one run on this machine, and writes the figures
// into bench/RESULTS.md and a chart into bench/compare/results.svg.
//
//	go run ./bench/compare            # about 9 minutes on 2 cores
//	go run ./bench/compare -quick     # a 2-minute check of the harness
//
// It starts two `wsgate echo` backends and every proxy (wsgate in its
// three byte-moving modes, nginx with nginx.conf, HAProxy with
// haproxy.cfg, all beside this file), each on its own port, and runs
// `wsgate bench idle|echo|bulk|handshake --json --pid PROXY` against
// them as a separate process, so that the client, the proxies and the
// backends each have their own fd limit (20,000 here) and their own CPU
// accounting. Idle memory is measured once per proxy; echo, bulk and
// handshakes in rounds, every target in turn in each round, and the
// report takes medians (see workloads.Rounds for why). The proxy's CPU is
// read from /proc over the process and its children (nginx's workers),
// the whole machine's from /proc/stat.
//
// It is a Go program rather than a shell script because it parses the
// bench's JSON, computes the ratios and draws the SVG itself, with no tool
// beyond Go and the two proxies; every process it starts is in a process
// group it kills on exit, on error and on SIGINT/SIGTERM, and dies with it
// (PR_SET_PDEATHSIG) if it is killed outright.
//
// Everything stays on 127.0.0.0/8: ports 24010-24011 (backends), 24080
// (wsgate), 24081 (nginx), 24082 (HAProxy), 24083-24084 (wsgate --splice,
// --copy), 24090-24092 (wsgate's pprof with -profile); clients that open
// many connections dial from 127.0.0.2-127.0.0.40.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/wsgate/wsgate/bench"
)

const (
	backendA         = "127.0.0.1:24010"
	backendB         = "127.0.0.1:24011"
	wsgateAddr       = "127.0.0.1:24080"
	nginxAddr        = "127.0.0.1:24081"
	haproxyAddr      = "127.0.0.1:24082"
	wsgateSpliceAddr = "127.0.0.1:24083"
	wsgateCopyAddr   = "127.0.0.1:24084"
	pprofBase        = 24090 // + the wsgate target's index
	sourceAddrs      = "127.0.0.2-127.0.0.40"

	// idleHold is how long the idle tunnels are held before the target's
	// memory is read: wsgate returns a burst's transient memory (pooled
	// buffers, garbage) 2-3 s after the burst, and what is measured is
	// what holding tunnels costs, not what opening them did.
	idleHold = 5 * time.Second
)

// target is one thing measured: a proxy, or the backend directly.
type target struct {
	Name string
	Addr string
	// start starts the proxy; nil for direct.
	start func(r *runner) (*proc, error)
}

// workloads are the runs made against each target; quick shrinks them to
// check the harness itself.
type workloads struct {
	IdleConns     int
	EchoConns     int
	EchoDuration  time.Duration
	BulkConns     int
	BulkBytes     string
	HSDuration    time.Duration
	HSConcurrency int
	// Rounds of echo, bulk and handshake runs: every target is measured
	// once per round, in an order that turns each round, and the report
	// takes each figure's median. The machine's speed drifts by tens of
	// percent over minutes (others share it), so figures taken minutes
	// apart compare the machine as much as the targets.
	Rounds int
}

var (
	full  = workloads{9000, 1000, 5 * time.Second, 4, "1GiB", 5 * time.Second, 32, 3}
	quick = workloads{900, 100, time.Second, 2, "64MiB", time.Second, 16, 2}
)

// result is what every workload measured for one target: idle once, the
// others once per round.
type result struct {
	Target string            `json:"target"`
	Idle   *bench.IdleResult `json:"idle,omitempty"`
	Rounds []round           `json:"rounds,omitempty"`
	Errors map[string]string `json:"errors,omitempty"`
}

// round is one round's runs against one target.
type round struct {
	Echo      *bench.EchoResult      `json:"echo,omitempty"`
	Bulk      *bench.BulkResult      `json:"bulk,omitempty"`
	Handshake *bench.HandshakeResult `json:"handshake,omitempty"`
}

type runner struct {
	root    string // the repository
	work    string // temporary directory: logs, nginx prefix, the binary
	wsgate  string // the binary under test
	w       workloads
	profile string // directory for wsgate CPU profiles; "" = none
	ps      procs
	log     io.Writer
}

func main() {
	var (
		quickFlag = flag.Bool("quick", false, "small workloads: check the harness in about a minute")
		bin       = flag.String("wsgate", "", "wsgate binary to measure (default: build ./cmd/wsgate)")
		only      = flag.String("targets", "", "comma list of targets to run (default: all): direct,wsgate,wsgate-splice,wsgate-copy,nginx,haproxy")
		write     = flag.Bool("write", true, "write bench/RESULTS.md and bench/compare/results.svg")
		profile   = flag.String("profile", "", "directory to save wsgate CPU profiles of each workload in (figures then include the profiler's cost)")
		keep      = flag.Bool("keep", false, "keep the temporary directory (logs, configs)")
		render    = flag.String("render", "", "measure nothing: redraw the report and chart from a results.json of an earlier run")
	)
	flag.Parse()
	if *render != "" {
		if err := rerender(*render, *write); err != nil {
			fmt.Fprintln(os.Stderr, "compare:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*quickFlag, *bin, *only, *write, *profile, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
}

func run(quickRun bool, bin, only string, write bool, profile string, keep bool) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "wsgate-compare-")
	if err != nil {
		return err
	}
	if !keep {
		defer os.RemoveAll(work)
	} else {
		fmt.Fprintln(os.Stderr, "keeping", work)
	}
	r := &runner{root: root, work: work, w: full, profile: profile, log: os.Stderr}
	if quickRun {
		r.w = quick
	}
	defer r.ps.stopAll()
	// A signal ends the run the same way an error does: every process
	// stopped, then exit.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "compare: %v: stopping everything\n", s)
		r.ps.stopAll()
		os.RemoveAll(work)
		os.Exit(1)
	}()

	if err := ensureProxies(); err != nil {
		return err
	}
	if r.wsgate = bin; bin == "" {
		r.wsgate = filepath.Join(work, "wsgate")
		r.logf("building wsgate")
		cmd := exec.Command("go", "build", "-o", r.wsgate, "./cmd/wsgate")
		cmd.Dir, cmd.Stdout, cmd.Stderr = root, os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build ./cmd/wsgate: %w", err)
		}
	}
	if profile != "" {
		if err := os.MkdirAll(profile, 0o755); err != nil {
			return err
		}
	}
	for _, a := range []string{backendA, backendB, wsgateAddr, wsgateSpliceAddr, wsgateCopyAddr, nginxAddr, haproxyAddr} {
		if err := checkFree(a); err != nil {
			return err
		}
	}

	targets := []target{
		{Name: "direct", Addr: backendA},
		{Name: "wsgate", Addr: wsgateAddr, start: wsgateStarter(wsgateAddr, 0)},
		{Name: "wsgate-splice", Addr: wsgateSpliceAddr, start: wsgateStarter(wsgateSpliceAddr, 1, "--splice")},
		{Name: "wsgate-copy", Addr: wsgateCopyAddr, start: wsgateStarter(wsgateCopyAddr, 2, "--copy")},
		{Name: "nginx", Addr: nginxAddr, start: startNginx},
		{Name: "haproxy", Addr: haproxyAddr, start: startHAProxy},
	}
	if only != "" {
		var sel []target
		for _, t := range targets {
			if strings.Contains(","+only+",", ","+t.Name+",") {
				sel = append(sel, t)
			}
		}
		if len(sel) == 0 {
			return fmt.Errorf("-targets %q: no such target", only)
		}
		targets = sel
	}

	env := captureEnv(r)
	began := time.Now()
	for _, b := range []string{backendA, backendB} {
		p, err := r.ps.start("echo "+b, r.logFile("echo-"+b), nil, r.wsgate, "echo", "--listen", b)
		if err != nil {
			return err
		}
		if err := waitListening(p, b); err != nil {
			return err
		}
	}
	loadPeak := sampleLoad()
	results, err := r.measureAll(targets)
	if err != nil {
		return err
	}
	env.LoadMax1m = loadPeak()
	env.Seconds = time.Since(began).Seconds()
	env.LoadEnd = readLoad()

	run := savedRun{Env: env, Workloads: r.w, Results: results}
	raw, err := json.MarshalIndent(run, "", "  ")
	if err != nil {
		return err
	}
	os.WriteFile(filepath.Join(work, "results.json"), raw, 0o644)
	fmt.Fprintln(os.Stderr, "results in", filepath.Join(work, "results.json"))
	if err := output(root, run, write); err != nil {
		return err
	}
	r.logf("done in %.0fs", env.Seconds)
	return nil
}

// savedRun is results.json: everything the report and chart are drawn from.
type savedRun struct {
	Env       runEnv    `json:"env"`
	Workloads workloads `json:"workloads"`
	Results   []result  `json:"results"`
}

// output prints the report and, with write, puts it into bench/RESULTS.md,
// the chart into bench/compare/results.svg and the raw figures beside it.
func output(root string, run savedRun, write bool) error {
	report := renderReport(run.Env, run.Results, run.Workloads)
	fmt.Println(report)
	if !write {
		return nil
	}
	raw, err := json.MarshalIndent(run, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Join(root, "bench", "compare")
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(raw, '\n'), 0o644); err != nil {
		return err
	}
	if err := writeResults(filepath.Join(root, "bench", "RESULTS.md"), report); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.svg"), []byte(renderSVG(run.Env, run.Results)), 0o644); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "wrote bench/RESULTS.md, bench/compare/results.svg and bench/compare/results.json")
	return nil
}

func rerender(path string, write bool) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var run savedRun
	if err := json.Unmarshal(b, &run); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return output(root, run, write)
}

// measureAll starts every proxy, then measures idle memory on each, one
// at a time, and then the other workloads in rounds: in each round, each
// workload against every target in turn, so that the figures compared
// are minutes apart at most, not the length of the whole run. Each round
// starts its turn at the next target, so no target is always measured
// right after the same other one.
func (r *runner) measureAll(targets []target) ([]result, error) {
	results := make([]result, len(targets))
	pids := make([]int, len(targets))
	for k, t := range targets {
		results[k] = result{Target: t.Name, Errors: map[string]string{}}
		if t.start == nil {
			continue
		}
		p, err := t.start(r)
		if err != nil {
			return nil, err
		}
		defer r.ps.stop(p)
		if err := waitListening(p, t.Addr); err != nil {
			return nil, err
		}
		pids[k] = p.pid()
	}
	pause := func() { time.Sleep(time.Second) } // let the last run's connections close
	for k, t := range targets {
		if t.start == nil {
			continue // idle memory is a proxy's; direct has none
		}
		var out bench.IdleResult
		if r.bench(t.Name, "idle", &out, results[k].Errors, r.pidArgs(pids[k], "--target", "ws://"+t.Addr+"/",
			"--conns", fmt.Sprint(r.w.IdleConns), "--rate", "2000", "--hold", idleHold.String(), "--source-addrs", sourceAddrs)...) {
			results[k].Idle = &out
		}
		pause()
		pause()
	}
	for n := 0; n < r.w.Rounds; n++ {
		rd := make([]round, len(targets))
		for _, workload := range []string{"echo", "bulk", "handshake"} {
			for j := range targets {
				k := (j + n) % len(targets)
				r.run(targets[k], k, pids[k], workload, n, &rd[k], results[k].Errors)
				pause()
			}
		}
		for k := range targets {
			results[k].Rounds = append(results[k].Rounds, rd[k])
		}
	}
	return results, nil
}

// run makes one run of workload against target t (the k-th; pid is its
// proxy, 0 for direct) into rd.
func (r *runner) run(t target, k, pid int, workload string, n int, rd *round, errs map[string]string) {
	url := "ws://" + t.Addr + "/"
	name := fmt.Sprintf("%s round %d", t.Name, n+1)
	switch workload {
	case "echo":
		var out bench.EchoResult
		stop := r.profileDuring(t, k, n, "echo", r.w.EchoDuration-time.Second)
		ok := r.bench(name, "echo", &out, errs, r.pidArgs(pid, "--target", url,
			"--conns", fmt.Sprint(r.w.EchoConns), "--size", "64", "--messages", "10000000",
			"--duration", r.w.EchoDuration.String())...)
		stop()
		if ok {
			rd.Echo = &out
		}
	case "bulk":
		var out bench.BulkResult
		stop := r.profileDuring(t, k, n, "bulk", 4*time.Second)
		ok := r.bench(name, "bulk", &out, errs, r.pidArgs(pid, "--target", url,
			"--conns", fmt.Sprint(r.w.BulkConns), "--bytes", r.w.BulkBytes, "--timeout", "3m")...)
		stop()
		if ok {
			rd.Bulk = &out
		}
	case "handshake":
		var out bench.HandshakeResult
		stop := r.profileDuring(t, k, n, "handshake", r.w.HSDuration-time.Second)
		ok := r.bench(name, "handshake", &out, errs, r.pidArgs(pid, "--target", url,
			"--duration", r.w.HSDuration.String(), "--concurrency", fmt.Sprint(r.w.HSConcurrency),
			"--source-addrs", sourceAddrs)...)
		stop()
		if ok {
			rd.Handshake = &out
		}
	}
}

// pidArgs adds --pid for a proxy (none for direct).
func (r *runner) pidArgs(pid int, args ...string) []string {
	if pid > 0 {
		return append([]string{"--pid", fmt.Sprint(pid)}, args...)
	}
	return args
}

// bench runs one `wsgate bench MODE --json` and decodes its result; a
// failed run is recorded in errs (the others still run).
func (r *runner) bench(name, mode string, out any, errs map[string]string, args ...string) bool {
	r.logf("%-14s %s", name, mode)
	argv := append([]string{"bench", mode, "--json"}, args...)
	cmd := exec.Command(r.wsgate, argv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// The bench bounds itself; this bounds the bench, should it not.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		errs[mode] = err.Error()
		return false
	}
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		cmd.Process.Kill()
		err = errors.Join(ctx.Err(), <-done)
	}
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		errs[mode] = msg
		r.logf("%-14s %s failed: %s", name, mode, msg)
		return false
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		errs[mode] = fmt.Sprintf("bad JSON from wsgate bench %s: %v", mode, err)
		return false
	}
	return true
}

// profileDuring fetches a CPU profile of wsgate for d while a workload
// runs, when -profile is set; the returned func waits for it.
func (r *runner) profileDuring(t target, k, n int, workload string, d time.Duration) func() {
	if r.profile == "" || !strings.HasPrefix(t.Name, "wsgate") || d < time.Second {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(700 * time.Millisecond) // past the connecting
		url := fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=%d", pprofBase+k, int(d.Seconds()))
		resp, err := http.Get(url)
		if err != nil {
			r.logf("profile %s %s: %v", t.Name, workload, err)
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		os.WriteFile(filepath.Join(r.profile, fmt.Sprintf("%s-%s-%d.pprof", t.Name, workload, n+1)), b, 0o644)
	}()
	return func() { <-done }
}

func wsgateStarter(addr string, k int, mode ...string) func(r *runner) (*proc, error) {
	return func(r *runner) (*proc, error) {
		args := append([]string{r.wsgate, "serve", "--listen", addr,
			"--backend", backendA, "--backend", backendB, "--access-log", "off", "--log-level", "warn", "--admin", "off"}, mode...)
		var env []string
		if r.profile != "" {
			env = append(env, fmt.Sprintf("WSGATE_PPROF=127.0.0.1:%d", pprofBase+k))
		}
		return r.ps.start("wsgate "+strings.Join(mode, " "), r.logFile("wsgate"+strings.Join(mode, "")), env, args...)
	}
}

func startNginx(r *runner) (*proc, error) {
	prefix := filepath.Join(r.work, "nginx") + "/"
	if err := os.MkdirAll(filepath.Join(prefix, "tmp"), 0o755); err != nil {
		return nil, err
	}
	conf := filepath.Join(r.root, "bench", "compare", "nginx.conf")
	if out, err := exec.Command("nginx", "-t", "-q", "-p", prefix, "-c", conf).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("nginx -t: %v\n%s", err, out)
	}
	return r.ps.start("nginx", r.logFile("nginx"), nil, "nginx", "-p", prefix, "-c", conf)
}

func startHAProxy(r *runner) (*proc, error) {
	conf := filepath.Join(r.root, "bench", "compare", "haproxy.cfg")
	if out, err := exec.Command("haproxy", "-c", "-q", "-f", conf).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("haproxy -c: %v\n%s", err, out)
	}
	return r.ps.start("haproxy", r.logFile("haproxy"), nil, "haproxy", "-db", "-f", conf)
}

// ensureProxies installs nginx and HAProxy from Debian when missing.
func ensureProxies() error {
	var missing []string
	for _, p := range []string{"nginx", "haproxy"} {
		if _, err := exec.LookPath(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if _, err := exec.LookPath("apt-get"); err != nil || os.Geteuid() != 0 {
		return fmt.Errorf("%s not installed, and apt-get as root is not available to install it", strings.Join(missing, " and "))
	}
	fmt.Fprintf(os.Stderr, "installing %s from Debian\n", strings.Join(missing, ", "))
	for _, argv := range [][]string{
		{"apt-get", "update", "-qq"},
		append([]string{"apt-get", "install", "-y", "-qq", "--no-install-recommends"}, missing...),
	} {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
		}
	}
	// Debian's package starts the service; the comparison runs its own.
	exec.Command("systemctl", "stop", "nginx", "haproxy").Run()
	return nil
}

func (r *runner) logFile(name string) io.Writer {
	name = strings.NewReplacer(":", "_", " ", "_", "/", "_").Replace(name)
	f, err := os.Create(filepath.Join(r.work, name+".log"))
	if err != nil {
		return io.Discard
	}
	return f
}

func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(r.log, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/wsgate/wsgate\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run from inside the wsgate repository (go run ./bench/compare)")
		}
		dir = parent
	}
}
