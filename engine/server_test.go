package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsgate/wsgate/internal/testutil"
)

// TestReusePort: several listening sockets on one address all serve.
func TestReusePort(t *testing.T) {
	testutil.CheckLeaks(t)
	b := startEcho(t, "a")
	port := freePort(t)
	srv, _ := startProxy(t, []string{b.Addr()}, func(c *Config) {
		c.Listen = []string{"127.0.0.1:" + port}
		c.ReusePort = 3
	})
	if n := len(srv.Addrs()); n != 3 {
		t.Fatalf("%d listeners, want 3", n)
	}
	for i := 0; i < 30; i++ {
		c, br := dialWS(t, "127.0.0.1:"+port, "/")
		echoOnce(t, c, br, []byte("x"))
		c.Close()
	}
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// syncBuffer is a bytes.Buffer safe for the loops to write while a test
// reads it.
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

// TestAccessLog: one JSON line per session, with what the issue lists.
func TestAccessLog(t *testing.T) {
	testutil.CheckLeaks(t)
	var buf syncBuffer
	b := startEcho(t, "a")
	srv, addr := startProxy(t, []string{b.Addr()}, func(c *Config) {
		c.AccessLog = slog.New(slog.NewJSONHandler(&buf, nil))
	})
	c, br := dialWS(t, addr, "/")
	echoOnce(t, c, br, []byte("0123456789"))
	c.Close()
	waitFor(t, func() bool { return strings.Contains(buf.String(), `"msg":"session"`) })
	var line struct {
		Client, Backend, Close string
		Status                 int
		BytesUp                uint64  `json:"bytes_up"`
		BytesDown              uint64  `json:"bytes_down"`
		Duration               float64 `json:"duration_s"`
	}
	if err := json.Unmarshal([]byte(strings.SplitN(buf.String(), "\n", 2)[0]), &line); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(line.Client, "127.0.0.1:") || line.Backend != b.Addr() || line.Status != 101 ||
		line.BytesUp < 10 || line.BytesDown < 10 || line.Duration <= 0 || line.Close != "client_reset" && line.Close != "done" {
		t.Fatalf("access-log line %+v\n%s", line, buf.String())
	}

	// A connection that sends nothing (a TCP health check) is counted as
	// gone but is not a session: no line. A half-sent head is one (499).
	gone := srv.Stats().Closes["client_gone"]
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	waitFor(t, func() bool { return srv.Stats().Closes["client_gone"] == gone+1 })
	if n := strings.Count(buf.String(), `"msg":"session"`); n != 1 {
		t.Errorf("%d access-log lines after an empty connection, want 1:\n%s", n, buf.String())
	}
	nc, err = net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	nc.Write([]byte("GET / HTTP/1.1\r\nHo"))
	nc.Close()
	waitFor(t, func() bool { return strings.Count(buf.String(), `"msg":"session"`) == 2 })
	if !strings.Contains(buf.String(), `"status":499`) {
		t.Errorf("no 499 line for the half-sent head:\n%s", buf.String())
	}
}

// TestShutdownWaitsForTunnels: Shutdown stops accepting at once, lets a
// tunnel finish, and returns when it has.
func TestShutdownWaitsForTunnels(t *testing.T) {
	testutil.CheckLeaks(t)
	b := startEcho(t, "a")
	srv, addr := startProxy(t, []string{b.Addr()}, nil)
	c, br := dialWS(t, addr, "/")
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- srv.Shutdown(ctx, time.Second)
	}()
	waitFor(t, srv.Paused)
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("a new connection was accepted during shutdown")
	}
	echoOnce(t, c, br, []byte("still served while stopping"))
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with a tunnel open", err)
	case <-time.After(200 * time.Millisecond):
	}
	c.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return after the last tunnel closed")
	}
}

// TestPauseResume: a paused server refuses connections and keeps its
// tunnels; resumed, it accepts on the same address.
func TestPauseResume(t *testing.T) {
	testutil.CheckLeaks(t)
	b := startEcho(t, "a")
	srv, addr := startProxy(t, []string{b.Addr()}, nil)
	c, br := dialWS(t, addr, "/")
	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	if nc, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		nc.Close()
		t.Fatal("connected to a paused server")
	}
	echoOnce(t, c, br, []byte("kept"))
	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	c2, br2 := dialWS(t, addr, "/")
	echoOnce(t, c2, br2, []byte("back"))
}

// TestShutdownEndsTunnelsGracefully: when the drain time is over, the
// tunnels left get a Close frame, 1012 when restarting.
func TestShutdownEndsTunnelsGracefully(t *testing.T) {
	testutil.CheckLeaks(t)
	b := startEcho(t, "a")
	srv, addr := startProxy(t, []string{b.Addr()}, nil)
	c, br := dialWS(t, addr, "/")
	srv.SetRestarting(true)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(ctx, 100*time.Millisecond) }()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	f, err := readFrame(br)
	if err != nil {
		t.Fatal(err)
	}
	code, reason := ws.ParseCloseFrameData(f.Payload)
	if f.Header.OpCode != ws.OpClose || code != 1012 {
		t.Fatalf("got %v %d %q, want Close 1012", f.Header.OpCode, code, reason)
	}
	ws.WriteFrame(c, ws.MaskFrame(ws.NewCloseFrame(f.Payload)))
	if err := <-done; err != context.DeadlineExceeded {
		t.Fatalf("Shutdown returned %v, want the deadline", err)
	}
	if n := srv.Stats().GracefulCloses["shutdown"]; n != 1 {
		t.Errorf("%d graceful shutdown closes counted", n)
	}
}

// TestReusePortPerLoop: with a SO_REUSEPORT socket per loop, each socket
// is polled by its own loop only (an idle loop is not woken for another
// loop's connections), and the kernel spreads connections over both.
func TestReusePortPerLoop(t *testing.T) {
	testutil.CheckLeaks(t)
	b := startEcho(t, "a")
	addr := refusedAddr(t) // a free port: with :0 each socket would get its own
	srv, _ := startProxy(t, []string{b.Addr()}, func(c *Config) { c.Listen, c.Loops, c.ReusePort = []string{addr}, 2, 2 })
	if len(srv.listeners) != 2 || srv.listeners[0].owner != 0 || srv.listeners[1].owner != 1 {
		t.Fatalf("listeners' loops: %d sockets, owners %d and %d; want 0 and 1", len(srv.listeners), srv.listeners[0].owner, srv.listeners[1].owner)
	}
	// Each loop's epoll set (its fdinfo lists one "tfd:" line per fd it
	// watches) holds its own listening socket and not the other's.
	for k, l := range srv.loops {
		info, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", l.epfd))
		if err != nil {
			t.Fatal(err)
		}
		for j, ln := range srv.listeners {
			watched := regexp.MustCompile(fmt.Sprintf(`(?m)^tfd:\s+%d\s`, ln.fd)).Match(info)
			if watched != (j == k) {
				t.Errorf("loop %d watches listening socket %d: %v", k, j, watched)
			}
		}
	}
	for k := 0; k < 40; k++ {
		c, br := dialWS(t, addr, "/")
		echoOnce(t, c, br, []byte("x"))
		c.Close()
	}
	for k, l := range srv.loops {
		if l.c.accepted.Load() == 0 {
			t.Errorf("loop %d accepted none of 40 connections", k)
		}
	}
	one, _ := startProxy(t, []string{b.Addr()}, func(c *Config) { c.Loops, c.ReusePort = 2, 1 })
	if one.listeners[0].owner != -1 {
		t.Errorf("a lone socket is polled by loop %d only, want every loop", one.listeners[0].owner)
	}
}
