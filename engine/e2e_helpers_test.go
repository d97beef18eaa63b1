package engine

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/wsgate/wsgate/balance"
	"github.com/wsgate/wsgate/internal/wsecho"
)

// startEcho starts an echo backend closed at the end of the test.
func startEcho(t testing.TB, name string) *wsecho.Server {
	t.Helper()
	s, err := wsecho.Listen("127.0.0.1:0", name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// startProxy starts an engine in front of backends; mutate adjusts the
// config before New.
func startProxy(t testing.TB, backends []string, mutate func(*Config)) (*Server, string) {
	t.Helper()
	var bcs []balance.BackendConfig
	for _, b := range backends {
		bcs = append(bcs, balance.BackendConfig{Addr: b})
	}
	pool, err := balance.NewPool(balance.Config{Backends: bcs})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Listen: []string{"127.0.0.1:0"},
		Pool:   pool,
		Logger: testLogger(t),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Close()
		pool.Close()
	})
	return srv, srv.Addrs()[0].String()
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("WSGATE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

// dialWS opens a WebSocket through addr with gobwas/ws.
func dialWS(t testing.TB, addr, path string) (net.Conn, *bufio.Reader) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, br, _, err := ws.Dial(ctx, "ws://"+addr+path)
	if err != nil {
		t.Fatalf("dial ws://%s%s: %v", addr, path, err)
	}
	t.Cleanup(func() { conn.Close() })
	if br == nil {
		br = bufio.NewReader(conn)
	}
	return conn, br
}

// wsConn reads server messages through the bufio.Reader the dial left
// (it may hold bytes that came with the 101).
type wsConn struct {
	net.Conn
	r *bufio.Reader
}

func (c wsConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func echoOnce(t testing.TB, c net.Conn, br *bufio.Reader, msg []byte) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := wsutil.WriteClientBinary(c, msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	got, err := wsutil.ReadServerBinary(wsConn{c, br})
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if string(got) != string(msg) {
		t.Fatalf("echo: got %d bytes %q…, want %d bytes", len(got), got[:min(len(got), 32)], len(msg))
	}
	c.SetDeadline(time.Time{})
}
