package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/urfave/cli/v2"
)

// run runs the CLI in-process and returns its exit status and stderr.
func run(t *testing.T, args ...string) (int, string) {
	t.Helper()
	app := newApp()
	var out, errb bytes.Buffer
	app.Writer, app.ErrWriter = &out, &errb
	err := app.Run(append([]string{"wsgate"}, args...))
	if err == nil {
		return 0, errb.String()
	}
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		return ec.ExitCode(), errb.String() + err.Error()
	}
	return 1, errb.String() + err.Error()
}

func TestServeFlagErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"serve"}, "--backend: at least one backend is required"},
		{[]string{"serve", "--backend", "nohost"}, `--backend "nohost": address "nohost": want host:port`},
		{[]string{"serve", "--backend", "127.0.0.1:1,weight=0"}, `--backend "127.0.0.1:1,weight=0": weight "0"`},
		{[]string{"serve", "--backend", "127.0.0.1:1", "--policy", "random"}, `--policy "random"`},
		{[]string{"serve", "--backend", "127.0.0.1:1", "--idle-timeout", "abc"}, `idle-timeout`},
		{[]string{"serve", "--backend", "127.0.0.1:1", "--connect-timeout", "0s"}, `--connect-timeout "0s"`},
		{[]string{"serve", "--backend", "127.0.0.1:1", "--tries", "9"}, `--tries "9": want 1..8`},
		{[]string{"serve", "--backend", "127.0.0.1:1", "--copy", "--splice"}, "choose one"},
		{[]string{"serve", "--backend", "127.0.0.1:1", "--listen", "8080"}, `--listen "8080"`},
		{[]string{"serve", "--backend", "127.0.0.1:1", "--trusted-proxy", "ten"}, `--trusted-proxy "ten"`},
		{[]string{"serve", "--backend", "127.0.0.1:1", "--log-level", "loud"}, `--log-level "loud"`},
		{[]string{"serve", "--no-such-flag"}, "no-such-flag"},
	}
	for _, tc := range cases {
		code, msg := run(t, tc.args...)
		if code != exitUsage || !strings.Contains(msg, tc.want) {
			t.Errorf("wsgate %s: exit %d, %q; want exit 2 and %q", strings.Join(tc.args, " "), code, msg, tc.want)
		}
	}
}

func TestVersion(t *testing.T) {
	app := newApp()
	var out bytes.Buffer
	app.Writer = &out
	if err := app.Run([]string{"wsgate", "version"}); err != nil || !strings.Contains(out.String(), "wsgate dev") {
		t.Fatalf("version: %q, %v", out.String(), err)
	}
}

// TestDemoEndToEnd builds the binary, runs `wsgate demo` on free ports and
// echoes a message through it, then stops it with SIGTERM.
func TestDemoEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := filepath.Join(t.TempDir(), "wsgate")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ports := freePorts(t, 5)
	cmd := exec.Command(bin, "demo", "--listen", ports[0], "--backend-listen", ports[1], "--backend-listen", ports[2],
		"--admin", ports[3], "--tls", "--tls-listen", ports[4])
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var c net.Conn
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, _, _, err = ws.Dial(ctx, "ws://"+ports[0]+"/")
		cancel()
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("dial the demo: %v\n%s", err, stderr.String())
	}
	if err := wsutil.WriteClientText(c, []byte("hello demo")); err != nil {
		t.Fatal(err)
	}
	msg, err := wsutil.ReadServerText(c)
	if err != nil || string(msg) != "hello demo" {
		t.Fatalf("echo: %q, %v", msg, err)
	}
	c.Close()

	// wss, with the certificate the demo made.
	d := ws.Dialer{TLSConfig: &tls.Config{InsecureSkipVerify: true}, Timeout: 5 * time.Second}
	tc, _, _, err := d.Dial(context.Background(), "wss://"+ports[4]+"/")
	if err != nil {
		t.Fatalf("dial the demo's wss: %v\n%s", err, stderr.String())
	}
	if err := wsutil.WriteClientText(tc, []byte("hello wss")); err != nil {
		t.Fatal(err)
	}
	if msg, err := wsutil.ReadServerText(tc); err != nil || string(msg) != "hello wss" {
		t.Fatalf("wss echo: %q, %v", msg, err)
	}
	tc.Close()

	// The admin API and dashboard.
	resp, err := http.Get("http://" + ports[3] + "/readyz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /readyz: %v %v", resp, err)
	}
	resp.Body.Close()
	cmd.Process.Signal(os.Interrupt)
	log, _ := io.ReadAll(stdout) // the access log, until the process exits
	if err := cmd.Wait(); err != nil {
		t.Fatalf("demo exited with %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "websocat ws://localhost:") {
		t.Errorf("the demo did not print how to connect:\n%s", stderr.String())
	}
	if !strings.Contains(string(log), `"status":101`) {
		t.Errorf("no access-log line for the tunnel:\n%s", log)
	}
}

func freePorts(t *testing.T, n int) []string {
	var out []string
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ln.Addr().String())
		defer ln.Close()
	}
	return out
}
