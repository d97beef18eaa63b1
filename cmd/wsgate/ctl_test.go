package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/urfave/cli/v2"

	"github.com/wsgate/wsgate/balance"
	"github.com/wsgate/wsgate/engine"
	"github.com/wsgate/wsgate/internal/testutil"
	"github.com/wsgate/wsgate/internal/wsecho"
)

var warmOnce sync.Once

// warmUp starts what lives as long as the process once started — Go's
// runtime poller, os/signal's loop (serve's signal.NotifyContext) —
// before a leak check counts goroutines.
func warmUp(t *testing.T) {
	warmOnce.Do(func() {
		_, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		stop()
		p, err := balance.NewPool(balance.Config{Backends: []balance.BackendConfig{{Addr: "127.0.0.1:1"}}})
		if err != nil {
			t.Fatal(err)
		}
		srv, err := engine.New(engine.Config{Listen: []string{"127.0.0.1:0"}, Pool: p})
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		srv.Close()
		p.Close()
	})
}

// served is `wsgate serve` run in-process in front of two echo backends,
// with its admin API on.
type served struct {
	listen, admin string
	backends      []string
	stderr        *bytes.Buffer
}

// startServe runs `wsgate serve` with the admin API (and token, if any)
// until the test ends. Call it after testutil.CheckLeaks.
func startServe(t *testing.T, token string, extra ...string) *served {
	t.Helper()
	n := &served{stderr: new(bytes.Buffer)}
	for _, name := range []string{"a", "b"} {
		b, err := wsecho.Listen("127.0.0.1:0", name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		n.backends = append(n.backends, b.Addr())
	}
	ports := freePorts(t, 2)
	n.listen, n.admin = ports[0], ports[1]
	args := []string{"wsgate", "serve", "--listen", n.listen, "--admin", n.admin,
		"--backend", n.backends[0], "--backend", n.backends[1], "--access-log", "off", "--log-level", "warn"}
	if token != "" {
		args = append(args, "--admin-token", token)
	}
	args = append(args, extra...)
	app := newApp()
	app.Writer, app.ErrWriter = new(bytes.Buffer), n.stderr
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.RunContext(ctx, args) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	tr := &http.Transport{DisableKeepAlives: true}
	hc := &http.Client{Transport: tr, Timeout: time.Second}
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := hc.Get("http://" + n.admin + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		select {
		case err := <-done:
			t.Fatalf("serve exited: %v\n%s", err, n.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the admin API did not come up: %v\n%s", err, n.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return n
}

// ctl runs `wsgate ctl args...` in-process against the node's admin API
// (unless args name another) and returns its exit status, its output and
// its error message.
func (n *served) ctl(t *testing.T, args ...string) (code int, out, msg string) {
	t.Helper()
	return runCtl(t, append(args, "--admin", n.admin)...)
}

func runCtl(t *testing.T, args ...string) (code int, out, msg string) {
	t.Helper()
	app := newApp()
	var stdout, stderr bytes.Buffer
	app.Writer, app.ErrWriter = &stdout, &stderr
	err := app.Run(append([]string{"wsgate", "ctl"}, args...))
	if err == nil {
		return 0, stdout.String(), stderr.String()
	}
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		return ec.ExitCode(), stdout.String(), stderr.String() + err.Error()
	}
	return 1, stdout.String(), stderr.String() + err.Error()
}

// mustCtl runs ctl and fails the test unless it succeeds.
func (n *served) mustCtl(t *testing.T, args ...string) string {
	t.Helper()
	code, out, msg := n.ctl(t, args...)
	if code != 0 {
		t.Fatalf("wsgate ctl %s: exit %d: %s", strings.Join(args, " "), code, msg)
	}
	return out
}

func wantLines(t *testing.T, what, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("%s: no %q in:\n%s", what, w, out)
		}
	}
}

// TestCtl drives every ctl subcommand against `wsgate serve`: the admin
// flags of serve and ctl's client together.
func TestCtl(t *testing.T) {
	warmUp(t)
	testutil.CheckLeaks(t)
	n := startServe(t, "")
	a, b := n.backends[0], n.backends[1]

	// Two tunnels, so that the figures are not all zero.
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, _, _, err := ws.Dial(ctx, "ws://"+n.listen+"/")
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}

	out := n.mustCtl(t, "stats")
	t.Logf("wsgate ctl stats:\n%s", out)
	wantLines(t, "stats", out, "wsgate dev, up ", "node ready", "tunnels", "active 2", "total 2", "handshakes", "ok 2",
		"bytes", "connections", "accept errors 0", "pipes", "socket calls", "POOL", "BACKEND", "STATE", "default", a, b, "up")
	// A table: every backend row has its columns in the header's places.
	lines := strings.Split(out, "\n")
	var header string
	for _, l := range lines {
		if strings.HasPrefix(l, "POOL") {
			header = l
		}
		if strings.Contains(l, a) && header != "" && strings.Index(l, a) != strings.Index(header, "BACKEND") {
			t.Errorf("backend column not aligned:\n%s\n%s", header, l)
		}
	}

	out = n.mustCtl(t, "backends")
	wantLines(t, "backends", out, "POOL", a, b)
	if code, out, _ := n.ctl(t, "backends", "--json"); code != 0 || !strings.HasPrefix(out, "{") || !strings.Contains(out, `"backends"`) {
		t.Errorf("backends --json: %d %q", code, out)
	}

	// Flags after the address, as an operator types them.
	out = n.mustCtl(t, "drain", a, "--deadline", "1h", "--spread", "45s")
	wantLines(t, "drain", out, a+": draining", "1 active", "over 45s")
	out = n.mustCtl(t, "backends")
	wantLines(t, "backends while a drains", out, "draining", "0% done, 1 left")
	out = n.mustCtl(t, "undrain", a)
	wantLines(t, "undrain", out, a+": up")

	out = n.mustCtl(t, "close", a, "--rate", "50")
	wantLines(t, "close", out, a+" (pool default): closing its 1 tunnels at 50/s")

	out = n.mustCtl(t, "add", "127.0.0.1:9", "--weight", "3", "--max-conns", "10")
	wantLines(t, "add", out, "added 127.0.0.1:9: up, 0 active")
	out = n.mustCtl(t, "backends")
	wantLines(t, "backends after add", out, "127.0.0.1:9")
	out = n.mustCtl(t, "remove", "127.0.0.1:9")
	wantLines(t, "remove", out, "127.0.0.1:9: removed")

	out = n.mustCtl(t, "node-drain", "--deadline", "0")
	wantLines(t, "node-drain", out, "draining (not accepting; ") // a tunnel or both: close above is ending one
	out = n.mustCtl(t, "stats")
	wantLines(t, "stats while the node drains", out, "node draining")
	out = n.mustCtl(t, "node-undrain")
	wantLines(t, "node-undrain", out, "ready")

	// The server's errors, as it sent them, and exit status 1.
	errs := []struct {
		args []string
		want string
	}{
		{[]string{"reload"}, "POST /reload: 409 Conflict: nothing to reload: this wsgate was started from command-line flags"},
		{[]string{"drain", "127.0.0.1:1"}, `POST /backends/127.0.0.1:1/drain: 404 Not Found: backend "127.0.0.1:1": unknown backend`},
		{[]string{"undrain", "127.0.0.1:1"}, `404 Not Found: backend "127.0.0.1:1": unknown backend`},
		{[]string{"remove", "127.0.0.1:1"}, `DELETE /backends/127.0.0.1:1: 404 Not Found`},
		{[]string{"drain", a, "--deadline", "soon"}, `400 Bad Request: deadline "soon": want a duration`},
		{[]string{"node-drain", "--spread", "-1s"}, `400 Bad Request: spread "-1s"`},
		{[]string{"add", a}, "409 Conflict"},
		{[]string{"add", "127.0.0.1:9", "--weight", "999"}, "400 Bad Request: weight 999"},
		{[]string{"backends", "--pool", "nope"}, `404 Not Found: pool "nope": no such pool`},
		{[]string{"close", a, "--rate", "0"}, `400 Bad Request: rate "0": want tunnels per second`},
	}
	for _, e := range errs {
		code, _, msg := n.ctl(t, e.args...)
		if code != exitCtl || !strings.Contains(msg, e.want) {
			t.Errorf("wsgate ctl %s: exit %d, %q; want exit %d and %q", strings.Join(e.args, " "), code, msg, exitCtl, e.want)
		}
	}
}

// TestCtlToken: the token comes from --token or WSGATE_ADMIN_TOKEN, the
// address from --admin or WSGATE_ADMIN; without the token a change is
// refused with the server's 401 and a hint.
func TestCtlToken(t *testing.T) {
	warmUp(t)
	testutil.CheckLeaks(t)
	const token = "ctl-test-token"
	n := startServe(t, token)
	a := n.backends[0]

	code, _, msg := n.ctl(t, "drain", a)
	if code != exitCtl || !strings.Contains(msg, "401 Unauthorized: this admin API needs a token") || !strings.Contains(msg, "WSGATE_ADMIN_TOKEN") {
		t.Errorf("drain without a token: exit %d, %q", code, msg)
	}
	code, _, msg = n.ctl(t, "drain", a, "--token", "wrong")
	if code != exitCtl || !strings.Contains(msg, "403 Forbidden: wrong admin token") {
		t.Errorf("drain with a wrong token: exit %d, %q", code, msg)
	}
	// Reads need no token.
	n.mustCtl(t, "stats")

	wantLines(t, "drain --token", n.mustCtl(t, "drain", a, "--token", token), a+": draining")
	t.Setenv("WSGATE_ADMIN_TOKEN", token)
	t.Setenv("WSGATE_ADMIN", "http://"+n.admin+"/")
	code, out, msg := runCtl(t, "undrain", a)
	if code != 0 || !strings.Contains(out, a+": up") {
		t.Errorf("undrain with the token and address from the environment: exit %d, %q %q", code, out, msg)
	}
	// A flag wins over the environment.
	code, _, msg = runCtl(t, "undrain", a, "--token", "wrong")
	if code != exitCtl || !strings.Contains(msg, "403") {
		t.Errorf("--token over WSGATE_ADMIN_TOKEN: exit %d, %q", code, msg)
	}
}

// TestCtlUsage: usage errors exit 2 before any request; an unreachable API
// exits 1 saying where it looked.
func TestCtlUsage(t *testing.T) {
	testutil.CheckLeaks(t)
	dead := freePorts(t, 1)[0] // closed again: nothing listens there
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"drain"}, exitUsage, "ctl drain: missing ADDR"},
		{[]string{"stats", "extra"}, exitUsage, `ctl stats: unexpected argument "extra"`},
		{[]string{"drain", "127.0.0.1:1", "--dedline", "1s"}, exitUsage, "dedline"},
		{[]string{"drain", "127.0.0.1:1", "127.0.0.1:2"}, exitUsage, `unexpected argument "127.0.0.1:2"`},
		{[]string{"stats", "--admin", "ftp://x"}, exitUsage, `--admin "ftp://x"`},
		{[]string{"stats", "--admin", dead}, exitCtl, "admin API at http://" + dead},
	}
	for _, tc := range cases {
		code, _, msg := runCtl(t, tc.args...)
		if code != tc.code || !strings.Contains(msg, tc.want) {
			t.Errorf("wsgate ctl %s: exit %d, %q; want exit %d and %q", strings.Join(tc.args, " "), code, msg, tc.code, tc.want)
		}
	}
}

// TestServeAdminExposed: serve refuses a non-loopback admin address
// without a token, saying what to do, and exits 2.
func TestServeAdminExposed(t *testing.T) {
	warmUp(t)
	testutil.CheckLeaks(t)
	t.Setenv("WSGATE_ADMIN_TOKEN", "")
	code, msg := run(t, "serve", "--listen", "127.0.0.1:0", "--backend", "127.0.0.1:1", "--access-log", "off", "--admin", "0.0.0.0:0")
	if code != exitUsage || !strings.Contains(msg, "refusing to listen on a non-loopback address without a token") || !strings.Contains(msg, "--admin-token") {
		t.Errorf("serve --admin 0.0.0.0:0 without a token: exit %d, %q", code, msg)
	}
}
