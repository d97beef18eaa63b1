package engine

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsgate/wsgate/balance"
	"github.com/wsgate/wsgate/bench"
)

// TestHelperProxy is not a test: TestFDLimit runs the test binary again
// with it, as a proxy process with a small RLIMIT_NOFILE.
func TestHelperProxy(t *testing.T) {
	backend := os.Getenv("WSGATE_HELPER_BACKEND")
	if backend == "" {
		t.Skip("helper process for TestFDLimit")
	}
	nofile, _ := strconv.Atoi(os.Getenv("WSGATE_HELPER_NOFILE"))
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: uint64(nofile), Max: uint64(nofile)}); err != nil {
		t.Fatal(err)
	}
	pool, err := balance.NewPool(balance.Config{Backends: []balance.BackendConfig{{Addr: backend}}})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{Listen: []string{"127.0.0.1:0"}, Pool: pool, Logger: slogStderr()})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	fmt.Println(srv.Addrs()[0].String())
	io.Copy(io.Discard, os.Stdin) // until the parent closes it
	st := srv.Stats()
	fmt.Fprintf(os.Stderr, "fdlimit hits: %d\n", st.FDLimitHits)
	srv.Close()
	os.Exit(0)
}

// TestFDLimit runs a proxy with only 64 fds, opens more tunnels than fit,
// and checks that the proxy counts and logs EMFILE, does not spin while at
// the limit, keeps its existing tunnels, and accepts again once fds free.
func TestFDLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a helper process")
	}
	b := startEcho(t, "a")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProxy$")
	cmd.Env = append(os.Environ(), "WSGATE_HELPER_BACKEND="+b.Addr(), "WSGATE_HELPER_NOFILE=64")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		cmd.Wait()
	}()
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, stderr.String())
	}
	addr = strings.TrimSpace(addr)

	dial := func(timeout time.Duration) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		c, _, _, err := ws.Dial(ctx, "ws://"+addr+"/")
		return c, err
	}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	failed := 0
	for i := 0; i < 60 && failed < 3; i++ {
		c, err := dial(700 * time.Millisecond)
		if err != nil {
			failed++
			continue
		}
		conns = append(conns, c)
	}
	if failed == 0 {
		t.Fatalf("opened %d tunnels through a proxy with 64 fds", len(conns))
	}
	t.Logf("%d tunnels fit, then dials failed", len(conns))

	// At the limit, with clients waiting in the accept queue, the proxy
	// must back off, not spin.
	cpu0, _ := bench.CPUSeconds(cmd.Process.Pid)
	time.Sleep(time.Second)
	cpu1, _ := bench.CPUSeconds(cmd.Process.Pid)
	if used := cpu1 - cpu0; used > 0.3 {
		t.Errorf("proxy used %.2f CPU-seconds in 1 s at the fd limit: spinning", used)
	}
	// Existing tunnels still carry bytes.
	br := bufio.NewReader(conns[0])
	echoOnce(t, conns[0], br, []byte("still alive at the limit"))

	for _, c := range conns {
		c.Close()
	}
	conns = nil
	var c net.Conn
	deadline := time.Now().Add(5 * time.Second)
	for {
		if c, err = dial(time.Second); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no tunnel after fds were freed: %v", err)
		}
	}
	echoOnce(t, c, bufio.NewReader(c), []byte("recovered"))
	c.Close()
	stdin.Close()
	cmd.Wait()
	if !strings.Contains(stderr.String(), "out of file descriptors") {
		t.Errorf("no EMFILE log line; stderr:\n%s", stderr.String())
	}
}
