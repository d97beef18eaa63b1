package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wsgate/wsgate/balance"
	"github.com/wsgate/wsgate/engine"
)

// Bounds on the node processes. A client script stops itself after its
// own --timeout-ms (it exits non-zero naming the step it was at);
// clientTimeout is the outer bound in case node itself hangs.
const (
	clientTimeout = 30 * time.Second
	readyTimeout  = 10 * time.Second // a backend script printing "listening"
	eventTimeout  = 5 * time.Second  // a backend reporting what it saw
	stopTimeout   = 3 * time.Second  // a backend exiting after SIGTERM
)

// gateLoops is the engine's splice loops here: 0, one per CPU, so that a
// session's concurrent requests (socket.io's poll, POST and websocket
// probe) are dialed from several loops at once, which is how the race
// detector once caught loops sharing a cached backend address.
const gateLoops = 0

// pinned are the npm packages the scripts use; needNode checks that
// node_modules holds the versions package.json pins.
var pinned = []string{"ws", "socket.io", "socket.io-client", "wscat"}

// TestMain starts what lives as long as the process once started — Go's
// runtime poller — with a throwaway engine before any test, so that the
// leak checks do not count it.
func TestMain(m *testing.M) {
	pool, err := balance.NewPool(balance.Config{Backends: []balance.BackendConfig{{Addr: "127.0.0.1:9"}}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv, err := engine.New(engine.Config{Listen: []string{"127.0.0.1:0"}, Pool: pool})
	if err == nil {
		err = srv.Start()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv.Close()
	pool.Close()
	os.Exit(m.Run())
}

// needNode skips the test when node or the pinned packages are missing,
// or fails it when WSGATE_CI is set: CI installs them, so missing there
// means the install step broke.
func needNode(t *testing.T) {
	t.Helper()
	missing := func(format string, args ...any) {
		t.Helper()
		why := fmt.Sprintf(format, args...)
		if os.Getenv("WSGATE_CI") != "" {
			t.Fatalf("%s (WSGATE_CI is set, so this fails instead of skipping)", why)
		}
		t.Skipf("%s: install with npm ci --prefix test/interop", why)
	}
	if _, err := exec.LookPath("node"); err != nil {
		missing("node is not on PATH")
	}
	var pkg struct{ Dependencies map[string]string }
	if err := readJSON("package.json", &pkg); err != nil {
		t.Fatal(err)
	}
	for _, name := range pinned {
		var mod struct{ Version string }
		if err := readJSON(filepath.Join("node_modules", name, "package.json"), &mod); err != nil {
			missing("node_modules has no %s", name)
		}
		if want := pkg.Dependencies[name]; mod.Version != want {
			missing("node_modules has %s %s, package.json pins %s", name, mod.Version, want)
		}
	}
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// event is one JSON line a script printed.
type event map[string]any

func (e event) str(k string) string {
	s, _ := e[k].(string)
	return s
}

func (e event) num(k string) int {
	f, _ := e[k].(float64)
	return int(f)
}

// header returns a request header a server script reported.
func (e event) header(name string) string {
	h, _ := e["headers"].(map[string]any)
	s, _ := h[name].(string)
	return s
}

// backend is a node server script running on a socket this test
// reserved; its stdout is a stream of events.
type backend struct {
	name string
	addr string
	cmd  *exec.Cmd

	mu     sync.Mutex
	events []event
	raw    bytes.Buffer // everything it printed, for failure reports
	more   chan struct{}
	stderr syncBuffer
}

// startBackend runs script with a listening socket on 127.0.0.1 as fd 3
// and waits for it to say it listens. It is stopped at the end of the
// test, and what it printed is logged if the test failed.
func startBackend(t *testing.T, script, name string) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{name: name, addr: ln.Addr().String(), more: make(chan struct{}, 1)}
	b.cmd = exec.Command("node", script, "--fd", "3", "--name", name)
	b.cmd.ExtraFiles = []*os.File{f}
	b.cmd.Stderr = &b.stderr
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := b.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	err = b.cmd.Start()
	f.Close()
	ln.Close()
	if err != nil {
		t.Fatalf("start %s: %v", script, err)
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var e event
			err := json.Unmarshal(sc.Bytes(), &e)
			b.mu.Lock()
			b.raw.Write(sc.Bytes())
			b.raw.WriteByte('\n')
			if err == nil {
				b.events = append(b.events, e)
			}
			b.mu.Unlock()
			select {
			case b.more <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		syscall.Kill(-b.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-read:
		case <-time.After(stopTimeout):
			syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
			<-read
		}
		b.cmd.Wait()
		if t.Failed() {
			t.Logf("%s (%s) printed:\n%s%s", name, script, b.output(), b.stderr.String())
		}
	})
	b.waitEvent(t, readyTimeout, "listening", func(event) bool { return true })
	return b
}

func (b *backend) output() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.raw.String()
}

// find returns the events named name that match.
func (b *backend) find(name string, match func(event) bool) []event {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []event
	for _, e := range b.events {
		if e.str("event") == name && match(e) {
			out = append(out, e)
		}
	}
	return out
}

// waitEvent waits for an event named name that matches: a server reports
// a close or a disconnect when it has handled it, which may be a moment
// after the client has exited.
func (b *backend) waitEvent(t *testing.T, d time.Duration, name string, match func(event) bool) event {
	t.Helper()
	timeout := time.After(d)
	for {
		if es := b.find(name, match); len(es) > 0 {
			return es[0]
		}
		select {
		case <-b.more:
		case <-timeout:
			t.Fatalf("%s: no matching %q event within %v; it printed:\n%s", b.name, name, d, b.output())
		}
	}
}

// result is how a client process ended.
type result struct {
	stdout, stderr string
	err            error
	took           time.Duration
}

// events parses the JSON lines of a client's stdout.
func (r result) events() []event {
	var out []event
	for _, line := range strings.Split(r.stdout, "\n") {
		var e event
		if json.Unmarshal([]byte(line), &e) == nil {
			out = append(out, e)
		}
	}
	return out
}

// runNode runs a node script (or a package's bin) to its end, at most
// clientTimeout. stdin stays open until it exits: wscat quits as soon as
// its stdin ends, even with --execute.
func runNode(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	start := time.Now()
	err = cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String(), err: err, took: time.Since(start)}
	if ctx.Err() != nil {
		r.err = fmt.Errorf("killed after %v: %w", clientTimeout, errors.Join(err, ctx.Err()))
	}
	return r
}

// requireOK fails the test unless the client exited 0.
func requireOK(t *testing.T, what string, r result) {
	t.Helper()
	if r.err != nil {
		t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", what, r.err, r.stdout, r.stderr)
	}
}

// gate is an in-process wsgate engine and what it logged.
type gate struct {
	srv       *engine.Server
	addr      string
	accessLog syncBuffer
}

// startGate starts wsgate on 127.0.0.1 in front of backends, as
// `wsgate serve` would with cfg's policy; it is closed at the end of the
// test, and its access log is logged if the test failed.
func startGate(t *testing.T, cfg balance.Config, backends ...*backend) *gate {
	t.Helper()
	return startStickyGate(t, cfg, nil, backends...)
}

// startStickyGate is startGate with one route over the pool that keeps
// clients on a backend with the sticky cookie st (nil: no route, as
// startGate).
func startStickyGate(t *testing.T, cfg balance.Config, st *engine.Sticky, backends ...*backend) *gate {
	t.Helper()
	for _, b := range backends {
		cfg.Backends = append(cfg.Backends, balance.BackendConfig{Addr: b.addr})
	}
	pool, err := balance.NewPool(cfg)
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{}
	ecfg := engine.Config{
		Listen:    []string{"127.0.0.1:0"},
		Pool:      pool,
		Loops:     gateLoops,
		AccessLog: slog.New(slog.NewJSONHandler(&g.accessLog, nil)),
	}
	if st != nil {
		rt, err := engine.NewRoutes([]engine.RouteConfig{{Name: "sticky", Pool: pool, Sticky: st}}, nil, engine.RewriteConfig{})
		if err != nil {
			pool.Close()
			t.Fatal(err)
		}
		ecfg.Routes, ecfg.Pool = rt, nil
	}
	srv, err := engine.New(ecfg)
	if err != nil {
		pool.Close()
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		pool.Close()
		t.Fatal(err)
	}
	g.srv, g.addr = srv, srv.Addrs()[0].String()
	t.Cleanup(func() {
		srv.Close()
		pool.Close()
		if t.Failed() {
			t.Logf("wsgate access log:\n%s", g.accessLog.String())
		}
	})
	return g
}

// syncBuffer is a bytes.Buffer for writers on other goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// route is one way to a backend: straight (the control) or through wsgate.
type route struct {
	name string
	addr string
	gate *gate // nil for the control
}

func routes(direct string, g *gate) []route {
	return []route{{"direct", direct, nil}, {"wsgate", g.addr, g}}
}

// checkForwarded checks the headers a backend saw: through wsgate the
// ones nginx's recipe sets, directly none of them.
func checkForwarded(t *testing.T, r route, e event) {
	t.Helper()
	want := map[string]string{"x-real-ip": "", "x-forwarded-for": "", "x-forwarded-proto": ""}
	if r.gate != nil {
		want = map[string]string{"x-real-ip": "127.0.0.1", "x-forwarded-for": "127.0.0.1", "x-forwarded-proto": "http"}
	}
	for k, v := range want {
		if got := e.header(k); got != v {
			t.Errorf("%s: backend saw %s %q, want %q", r.name, k, got, v)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
