package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/wsgate/wsgate/internal/testutil"
	"github.com/wsgate/wsgate/internal/wsecho"
)

// The operations tests run the real binary against in-process echo
// backends: reload on SIGHUP and POST /reload, graceful stop on SIGTERM,
// and the zero-downtime binary upgrade on SIGUSR2.

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// wsgateBinary builds the binary once per test run.
func wsgateBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "wsgate-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "wsgate")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// node is a `wsgate serve --config` process under test.
type testNode struct {
	t      *testing.T
	cmd    *exec.Cmd
	config string
	listen string
	admin  string
	stderr *logFile
	exited chan error
}

// logFile is a process's stderr as a file: a pipe would make Wait wait
// for every process holding it, and after an upgrade the new process does.
type logFile struct{ f *os.File }

func (l *logFile) String() string {
	b, _ := os.ReadFile(l.f.Name())
	return string(b)
}

// configYAML is a one-pool configuration over backends.
func configYAML(listen, admin string, backends []string, drain, spread time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "listeners:\n  - address: %q\npools:\n  ws:\n    backends:\n", listen)
	for _, a := range backends {
		fmt.Fprintf(&b, "      - address: %q\n", a)
	}
	fmt.Fprintf(&b, "timeouts: {drain: %s, drain_spread: %s, close: 1s}\n", drain, spread)
	fmt.Fprintf(&b, "access_log: {output: stderr}\nadmin: {address: %q}\n", admin)
	return b.String()
}

func startNode(t *testing.T, yaml string) *testNode {
	t.Helper()
	bin := wsgateBinary(t)
	ports := freePorts(t, 2)
	yaml = strings.NewReplacer("LISTEN", ports[0], "ADMIN", ports[1]).Replace(yaml)
	path := filepath.Join(t.TempDir(), "wsgate.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	n := &testNode{t: t, config: path, listen: ports[0], admin: ports[1], stderr: &logFile{f}, exited: make(chan error, 1)}
	n.cmd = exec.Command(bin, "serve", "--config", path)
	n.cmd.Stderr = f
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { n.exited <- n.cmd.Wait() }()
	t.Cleanup(func() {
		n.cmd.Process.Kill()
		<-n.exited
	})
	n.waitReady()
	return n
}

// waitReady waits until the admin API says the node is ready.
func (n *testNode) waitReady() {
	n.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + n.admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("wsgate not ready: %v\n%s", err, n.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (n *testNode) writeConfig(yaml string) {
	n.t.Helper()
	yaml = strings.NewReplacer("LISTEN", n.listen, "ADMIN", n.admin).Replace(yaml)
	if err := os.WriteFile(n.config, []byte(yaml), 0o644); err != nil {
		n.t.Fatal(err)
	}
}

// tunnel is one client WebSocket with the backend that answered it. A
// goroutine reads its frames as they come: reads never time out halfway
// through a frame, and a Close that arrives unasked waits in frames.
type tunnel struct {
	c       net.Conn
	backend string
	frames  chan frameOrErr
}

type frameOrErr struct {
	f   ws.Frame
	err error
}

// dialTunnel opens a tunnel and learns its backend from X-Echo-Server.
func dialTunnel(addr string) (*tunnel, error) {
	var backend string
	d := ws.Dialer{
		Timeout: 5 * time.Second,
		OnHeader: func(key, value []byte) error {
			if strings.EqualFold(string(key), "X-Echo-Server") {
				backend = string(value)
			}
			return nil
		},
	}
	c, br, _, err := d.Dial(context.Background(), "ws://"+addr+"/")
	if err != nil {
		return nil, err
	}
	tn := &tunnel{c: c, backend: backend, frames: make(chan frameOrErr, 4)}
	var r io.Reader = c
	if br != nil {
		r = io.MultiReader(br, c)
	}
	go func() {
		for {
			f, err := testutil.ReadFrame(r)
			tn.frames <- frameOrErr{f, err}
			if err != nil || f.Header.OpCode == ws.OpClose {
				return
			}
		}
	}()
	return tn, nil
}

// echo sends msg and waits for it back. A Close frame that arrives
// instead (or has arrived already) is returned as a closeError with its
// code; gobwas/ws's own reader is not used for it, since it refuses 1012.
func (tn *tunnel) echo(msg string) error {
	select {
	case fe := <-tn.frames:
		return frameError(fe)
	default:
	}
	tn.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	werr := wsutil.WriteClientText(tn.c, []byte(msg))
	select {
	case fe := <-tn.frames:
		if err := frameError(fe); err != nil {
			if _, ok := err.(closeError); ok || werr == nil {
				return err
			}
			return werr
		}
		if werr != nil {
			return werr
		}
		if string(fe.f.Payload) != msg {
			return fmt.Errorf("echo %q, want %q", fe.f.Payload, msg)
		}
		return nil
	case <-time.After(5 * time.Second):
		if werr != nil {
			return werr
		}
		return fmt.Errorf("no echo of %q in 5s", msg)
	}
}

// frameError turns a received frame into the error echo reports: a Close
// as closeError, anything but a text frame as an error.
func frameError(fe frameOrErr) error {
	if fe.err != nil {
		return fe.err
	}
	if fe.f.Header.OpCode == ws.OpClose {
		return closeErrorOf(fe.f)
	}
	if fe.f.Header.OpCode != ws.OpText {
		return fmt.Errorf("unexpected %v frame", fe.f.Header.OpCode)
	}
	return nil
}

// closeError is a Close frame received, with its status code.
type closeError struct {
	code   ws.StatusCode
	reason string
}

func (e closeError) Error() string { return fmt.Sprintf("Close %d %q", e.code, e.reason) }

func closeErrorOf(f ws.Frame) error {
	e := closeError{} // testutil.ReadFrame has unmasked the payload
	if len(f.Payload) >= 2 {
		e.code = ws.StatusCode(binary.BigEndian.Uint16(f.Payload))
		e.reason = string(f.Payload[2:])
	}
	return e
}

func echoBackends(t *testing.T, names ...string) map[string]string {
	t.Helper()
	addrs := map[string]string{}
	for _, name := range names {
		s, err := wsecho.Listen("127.0.0.1:0", name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		addrs[name] = s.Addr()
	}
	return addrs
}

// TestReloadUnderTraffic: a reload that removes backend b and adds c sends
// new tunnels to a and c only, leaves a's tunnels alone, and drains b's —
// they keep working until the drain deadline and then end with Close
// 1001. An invalid file is refused with its error and changes nothing.
func TestReloadUnderTraffic(t *testing.T) {
	be := echoBackends(t, "a", "b", "c")
	n := startNode(t, configYAML("LISTEN", "ADMIN", []string{be["a"], be["b"]}, 2*time.Second, time.Second))

	var tunnels []*tunnel
	on := map[string]int{}
	for i := 0; i < 20; i++ {
		tn, err := dialTunnel(n.listen)
		if err != nil {
			t.Fatal(err)
		}
		defer tn.c.Close()
		tunnels = append(tunnels, tn)
		on[tn.backend]++
	}
	if on["a"] == 0 || on["b"] == 0 {
		t.Fatalf("least_conn did not use both backends: %v", on)
	}

	// A file with a mistake: refused, with the line and field named.
	n.writeConfig(configYAML("LISTEN", "ADMIN", []string{be["a"]}, 2*time.Second, time.Second) + "timeouts: {idle: soon}\n")
	resp, err := http.Post("http://"+n.admin+"/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(body), "wsgate.yaml:") {
		t.Fatalf("reload of a bad file: %d %s", resp.StatusCode, body)
	}

	n.writeConfig(configYAML("LISTEN", "ADMIN", []string{be["a"], be["c"]}, 2*time.Second, time.Second))
	reloaded := time.Now()
	if err := n.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// New tunnels: a and c only, once the reload has been applied.
	waitFor(t, 5*time.Second, func() bool {
		tn, err := dialTunnel(n.listen)
		if err != nil {
			return false
		}
		defer tn.c.Close()
		return tn.backend == "c"
	})
	for i := 0; i < 10; i++ {
		tn, err := dialTunnel(n.listen)
		if err != nil {
			t.Fatal(err)
		}
		if tn.backend == "b" {
			t.Errorf("tunnel %d went to the removed backend b", i)
		}
		tn.c.Close()
	}
	// Before the deadline every old tunnel still works.
	for i, tn := range tunnels {
		if err := tn.echo(fmt.Sprintf("before %d", i)); err != nil {
			t.Fatalf("tunnel %d on %s before the deadline: %v", i, tn.backend, err)
		}
	}
	// After deadline + spread, b's tunnels have ended with Close 1001 and
	// a's still work.
	time.Sleep(time.Until(reloaded.Add(2*time.Second + time.Second + 1500*time.Millisecond)))
	for i, tn := range tunnels {
		err := tn.echo(fmt.Sprintf("after %d", i))
		if tn.backend == "a" && err != nil {
			t.Errorf("tunnel %d on a, untouched by the reload, failed: %v", i, err)
		}
		if tn.backend == "b" {
			if ce, ok := err.(closeError); !ok || ce.code != ws.StatusGoingAway {
				t.Errorf("tunnel %d on the removed backend b: %v, want Close 1001", i, err)
			}
		}
	}
	if !strings.Contains(n.stderr.String(), "reload refused") && !strings.Contains(n.stderr.String(), "configuration applied") {
		t.Errorf("no reload in the log:\n%s", n.stderr.String())
	}
}

// TestGracefulStop: SIGTERM makes /readyz answer 503 at once and refuses
// new clients; a tunnel that ends on its own lets the process exit 0.
func TestGracefulStop(t *testing.T) {
	be := echoBackends(t, "a")
	n := startNode(t, configYAML("LISTEN", "ADMIN", []string{be["a"]}, 10*time.Second, time.Second))
	tn, err := dialTunnel(n.listen)
	if err != nil {
		t.Fatal(err)
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	waitFor(t, 3*time.Second, func() bool {
		resp, err := http.Get("http://" + n.admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 503
	})
	if c, err := net.DialTimeout("tcp", n.listen, time.Second); err == nil {
		c.Close()
		t.Error("a new connection was accepted while stopping")
	}
	if err := tn.echo("still served while draining"); err != nil {
		t.Fatal(err)
	}
	tn.c.Close()
	select {
	case err := <-n.exited:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, n.stderr.String())
		}
		n.exited <- nil
	case <-time.After(8 * time.Second):
		t.Fatalf("did not exit after its last tunnel closed\n%s", n.stderr.String())
	}
}

// TestBinaryUpgrade: while clients open tunnels continuously and 500
// tunnels exchange messages, SIGUSR2 starts a new process on the same
// sockets. No handshake fails, the old process's tunnels keep working
// until its drain deadline and then end with Close 1012 (service
// restart), and the new process serves what comes after.
func TestBinaryUpgrade(t *testing.T) {
	be := echoBackends(t, "a", "b")
	const drain = 3 * time.Second
	n := startNode(t, configYAML("LISTEN", "ADMIN", []string{be["a"], be["b"]}, drain, 500*time.Millisecond))

	const held = 500
	var tunnels []*tunnel
	for i := 0; i < held; i++ {
		tn, err := dialTunnel(n.listen)
		if err != nil {
			t.Fatal(err)
		}
		defer tn.c.Close()
		tunnels = append(tunnels, tn)
	}

	// Clients connecting all the time, from before the upgrade to after.
	ctx, stop := context.WithCancel(context.Background())
	var opened, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				tn, err := dialTunnel(n.listen)
				if err == nil {
					err = tn.echo("new")
					tn.c.Close()
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				opened.Add(1)
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	upgraded := time.Now()
	if err := n.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	// The new process outlives the old one: end it however the test ends.
	t.Cleanup(func() {
		if pid, ok := findNewPID(n.stderr.String()); ok {
			if p, err := os.FindProcess(pid); err == nil {
				p.Kill()
			}
		}
	})
	// The held tunnels keep exchanging messages until the old process's
	// deadline; each records when it was closed and how.
	type end struct {
		at   time.Duration
		code ws.StatusCode
		err  error
	}
	ends := make([]end, held)
	var twg sync.WaitGroup
	for i, tn := range tunnels {
		twg.Add(1)
		go func() {
			defer twg.Done()
			for k := 0; ; k++ {
				err := tn.echo(fmt.Sprintf("held %d/%d", i, k))
				if err != nil {
					e := end{at: time.Since(upgraded), err: err}
					if ce, ok := err.(closeError); ok {
						e.code = ce.code
					}
					ends[i] = e
					return
				}
				if time.Since(upgraded) > drain+4*time.Second {
					ends[i] = end{at: -1}
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
	}
	twg.Wait()
	time.Sleep(500 * time.Millisecond) // new tunnels against the new process only
	stop()
	wg.Wait()

	defer func() {
		if t.Failed() {
			os.WriteFile("/tmp/upgrade-stderr.log", []byte(n.stderr.String()), 0o644)
		}
	}()
	if f := failed.Load(); f > 0 {
		t.Errorf("%d of %d handshakes failed around the upgrade; first: %v", f, f+opened.Load(), firstErr.Load())
	}
	if opened.Load() < 20 {
		t.Errorf("only %d tunnels opened during the test", opened.Load())
	}
	early := 0
	for i, e := range ends {
		switch {
		case e.at < 0:
			t.Errorf("tunnel %d was still open %v after the upgrade (drain %v)", i, drain+4*time.Second, drain)
		case e.at < drain-200*time.Millisecond:
			early++
			if early <= 3 {
				t.Errorf("tunnel %d ended %v after the upgrade, before the drain deadline %v: %v", i, e.at, drain, e.err)
			}
		case e.code != statusServiceRestart:
			t.Errorf("tunnel %d ended %v after the upgrade with %v (code %d), want Close 1012", i, e.at, e.err, e.code)
		}
	}
	// The old process exits once drained; the new one serves.
	select {
	case err := <-n.exited:
		if err != nil {
			t.Fatalf("old process: %v\n%s", err, n.stderr.String())
		}
		n.exited <- nil
	case <-time.After(5 * time.Second):
		t.Fatalf("old process still running\n%s", n.stderr.String())
	}
	tn, err := dialTunnel(n.listen)
	if err != nil {
		t.Fatalf("after the old process left: %v", err)
	}
	if err := tn.echo("served by the new process"); err != nil {
		t.Fatal(err)
	}
	tn.c.Close()
	// Stop the new process through its own pid, from its admin API.
	pid := newPID(t, n.stderr.String())
	if p, err := os.FindProcess(pid); err == nil {
		p.Signal(syscall.SIGTERM)
		for i := 0; i < 100 && p.Signal(syscall.Signal(0)) == nil; i++ {
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// newPID finds the new process's pid in the old one's log.
func newPID(t *testing.T, log string) int {
	pid, ok := findNewPID(log)
	if !ok {
		t.Fatalf("no new process in the log:\n%s", log)
	}
	return pid
}

func findNewPID(log string) (int, bool) {
	sc := bufio.NewScanner(strings.NewReader(log))
	for sc.Scan() {
		var line struct {
			Msg string `json:"msg"`
			PID int    `json:"pid"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && strings.Contains(line.Msg, "the new process serves") {
			return line.PID, true
		}
	}
	return 0, false
}

func waitFor(t *testing.T, d time.Duration, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// statusServiceRestart is RFC 6455's 1012 (IANA registry), which gobwas/ws
// does not name.
const statusServiceRestart ws.StatusCode = 1012

// TestReloadCertificates: a reload re-reads a TLS listener's certificate,
// also when the configuration file itself is unchanged (a renewal rewrites
// only the certificate files), and new wss clients get the new one.
func TestReloadCertificates(t *testing.T) {
	be := echoBackends(t, "a")
	dir := t.TempDir()
	first, err := selfSigned(dir)
	if err != nil {
		t.Fatal(err)
	}
	tlsAddr := freePorts(t, 1)[0]
	yaml := configYAML("LISTEN", "ADMIN", []string{be["a"]}, time.Second, time.Second)
	yaml = strings.Replace(yaml, "listeners:\n", fmt.Sprintf("listeners:\n  - address: %q\n    tls: {cert: %q, key: %q}\n", tlsAddr, first.Cert, first.Key), 1)
	n := startNode(t, yaml)
	serial := func() string {
		t.Helper()
		c, err := tls.Dial("tcp", tlsAddr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatalf("wss listener: %v\n%s", err, n.stderr.String())
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	before := serial()
	if _, err := selfSigned(dir); err != nil { // same paths, new certificate
		t.Fatal(err)
	}
	if serial() != before {
		t.Fatal("the certificate changed before any reload")
	}
	resp, err := http.Post("http://"+n.admin+"/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("reload: %d", resp.StatusCode)
	}
	if after := serial(); after == before {
		t.Errorf("still certificate %s after the reload", after)
	}
}
