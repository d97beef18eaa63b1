// Command compare measures wsgate side by side with direct connections,
// nginx and HAProxy, in one run on this machine, and writes the figures
// into bench/RESULTS.md and a chart into bench/compare/results.svg.
//
//	go run ./bench/compare            # about 7 minutes on 2 cores
//	go run ./bench/compare -quick     # a 1-minute check of the harness
//
// It starts two `wsgate echo` backends, then for each target in turn the
// proxy (wsgate in its three byte-moving modes, nginx with nginx.conf,
// HAProxy with haproxy.cfg, all beside this file; none for "direct"), and
// runs `wsgate bench idle|echo|bulk|handshake --json --pid PROXY` against
// it as a separate process, so that the client, the proxy and the
// backends each have their own fd limit (20,000 here) and their own CPU
// accounting. The proxy's CPU is read from /proc over the process and its
// children (nginx's workers).
//
// It is a Go program rather than a shell script because it parses the
// bench's JSON, computes the ratios and draws the SVG itself, with no tool
// beyond Go and the two proxies; every process it starts is in a process
// group it kills on exit, on error and on SIGINT/SIGTERM, and dies with it
// (PR_SET_PDEATHSIG) if it is killed outright.
//
// Everything stays on 127.0.0.0/8: ports 24010-24011 (backends), 24080-24082
// (wsgate, nginx, HAProxy), 24090 (wsgate's pprof with -profile); clients
// that open many connections dial from 127.0.0.2-127.0.0.40.
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
	backendA    = "127.0.0.1:24010"
	backendB    = "127.0.0.1:24011"
	wsgateAddr  = "127.0.0.1:24080"
	nginxAddr   = "127.0.0.1:24081"
	haproxyAddr = "127.0.0.1:24082"
	pprofAddr   = "127.0.0.1:24090"
	sourceAddrs = "127.0.0.2-127.0.0.40"

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
}

var (
	full  = workloads{9000, 1000, 10 * time.Second, 4, "1GiB", 8 * time.Second, 32}
	quick = workloads{900, 100, 2 * time.Second, 2, "64MiB", 2 * time.Second, 16}
)

// result is what every workload measured for one target.
type result struct {
	Target    string                 `json:"target"`
	Idle      *bench.IdleResult      `json:"idle,omitempty"`
	Echo      *bench.EchoResult      `json:"echo,omitempty"`
	Bulk      *bench.BulkResult      `json:"bulk,omitempty"`
	Handshake *bench.HandshakeResult `json:"handshake,omitempty"`
	Errors    map[string]string      `json:"errors,omitempty"`
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
	for _, a := range []string{backendA, backendB, wsgateAddr, nginxAddr, haproxyAddr} {
		if err := checkFree(a); err != nil {
			return err
		}
	}

	targets := []target{
		{Name: "direct", Addr: backendA},
		{Name: "wsgate", Addr: wsgateAddr, start: wsgateStarter()},
		{Name: "wsgate-splice", Addr: wsgateAddr, start: wsgateStarter("--splice")},
		{Name: "wsgate-copy", Addr: wsgateAddr, start: wsgateStarter("--copy")},
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
	var results []result
	loadPeak := sampleLoad()
	for _, t := range targets {
		res, err := r.measure(t)
		if err != nil {
			return err
		}
		results = append(results, res)
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

// measure starts t's proxy, runs every workload against it, stops it.
func (r *runner) measure(t target) (result, error) {
	res := result{Target: t.Name, Errors: map[string]string{}}
	pid := 0
	if t.start != nil {
		p, err := t.start(r)
		if err != nil {
			return res, err
		}
		defer r.ps.stop(p)
		if err := waitListening(p, t.Addr); err != nil {
			return res, err
		}
		pid = p.pid()
	}
	url := "ws://" + t.Addr + "/"
	pidArgs := []string{}
	if pid > 0 {
		pidArgs = []string{"--pid", fmt.Sprint(pid)}
	}
	pause := func() { time.Sleep(2 * time.Second) } // let the last run's tunnels close

	if t.start != nil { // idle memory is the proxy's; direct has none
		var out bench.IdleResult
		if r.bench(t.Name, "idle", &out, res.Errors, append(pidArgs, "--target", url,
			"--conns", fmt.Sprint(r.w.IdleConns), "--rate", "2000", "--hold", idleHold.String(), "--source-addrs", sourceAddrs)...) {
			res.Idle = &out
		}
		pause()
	}
	{
		var out bench.EchoResult
		stop := r.profileDuring(t, "echo", r.w.EchoDuration-time.Second)
		ok := r.bench(t.Name, "echo", &out, res.Errors, append(pidArgs, "--target", url,
			"--conns", fmt.Sprint(r.w.EchoConns), "--size", "64", "--messages", "10000000",
			"--duration", r.w.EchoDuration.String())...)
		stop()
		if ok {
			res.Echo = &out
		}
		pause()
	}
	{
		var out bench.BulkResult
		stop := r.profileDuring(t, "bulk", 4*time.Second)
		ok := r.bench(t.Name, "bulk", &out, res.Errors, append(pidArgs, "--target", url,
			"--conns", fmt.Sprint(r.w.BulkConns), "--bytes", r.w.BulkBytes, "--timeout", "3m")...)
		stop()
		if ok {
			res.Bulk = &out
		}
		pause()
	}
	{
		var out bench.HandshakeResult
		stop := r.profileDuring(t, "handshake", r.w.HSDuration-time.Second)
		ok := r.bench(t.Name, "handshake", &out, res.Errors, append(pidArgs, "--target", url,
			"--duration", r.w.HSDuration.String(), "--concurrency", fmt.Sprint(r.w.HSConcurrency),
			"--source-addrs", sourceAddrs)...)
		stop()
		if ok {
			res.Handshake = &out
		}
	}
	return res, nil
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
func (r *runner) profileDuring(t target, workload string, d time.Duration) func() {
	if r.profile == "" || !strings.HasPrefix(t.Name, "wsgate") || d < time.Second {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(700 * time.Millisecond) // past the connecting
		url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", pprofAddr, int(d.Seconds()))
		resp, err := http.Get(url)
		if err != nil {
			r.logf("profile %s %s: %v", t.Name, workload, err)
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		os.WriteFile(filepath.Join(r.profile, t.Name+"-"+workload+".pprof"), b, 0o644)
	}()
	return func() { <-done }
}

func wsgateStarter(mode ...string) func(r *runner) (*proc, error) {
	return func(r *runner) (*proc, error) {
		args := append([]string{r.wsgate, "serve", "--listen", wsgateAddr,
			"--backend", backendA, "--backend", backendB, "--access-log", "off", "--log-level", "warn"}, mode...)
		var env []string
		if r.profile != "" {
			env = append(env, "WSGATE_PPROF="+pprofAddr)
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
