package engine

import (
	"bufio"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/wsgate/wsgate/balance"
	"github.com/wsgate/wsgate/internal/testutil"
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

// rawBackend is a TCP server that answers any upgrade head with a valid
// 101 and then runs fn on the connection: for tests that need a backend
// to misbehave or to half-close at a given moment.
type rawBackend struct {
	ln    net.Listener
	heads chan string
}

func startRawBackend(t testing.TB, answer bool, fn func(c net.Conn, br *bufio.Reader)) *rawBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rb := &rawBackend{ln: ln, heads: make(chan string, 100)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				head, err := readHead(br)
				if err != nil {
					return
				}
				select {
				case rb.heads <- head:
				default:
				}
				if answer {
					if _, err := c.Write([]byte(switchHead(head))); err != nil {
						return
					}
				}
				if fn != nil {
					fn(c, br)
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return rb
}

func (rb *rawBackend) Addr() string { return rb.ln.Addr().String() }

// readHead reads an HTTP head up to its blank line.
func readHead(br *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return b.String(), err
		}
		b.WriteString(line)
		if line == "\r\n" {
			return b.String(), nil
		}
	}
}

// switchHead is the 101 a server sends for a WebSocket request head.
func switchHead(reqHead string) string {
	key := ""
	for _, line := range strings.Split(reqHead, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "Sec-WebSocket-Key") {
			key = strings.TrimSpace(v)
		}
	}
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + base64.StdEncoding.EncodeToString(sum[:]) + "\r\n\r\n"
}

// upgradeHead is a minimal valid WebSocket upgrade request.
func upgradeHead(host, path string, extra ...string) string {
	h := "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	for _, e := range extra {
		h += e + "\r\n"
	}
	return h + "\r\n"
}

// rawUpgrade opens a TCP connection to addr, sends head (plus extra bytes
// in the same write) and returns the connection and the answer head.
func rawUpgrade(t testing.TB, addr, head string, extra []byte) (*net.TCPConn, *bufio.Reader, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(append([]byte(head), extra...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	ans, err := readHead(br)
	if err != nil {
		t.Fatalf("reading answer: %v (got %q)", err, ans)
	}
	return c.(*net.TCPConn), br, ans
}

// statusOf returns the status code of an answer head.
func statusOf(head string) int {
	var code int
	fmt.Sscanf(head, "HTTP/1.1 %d", &code)
	return code
}

// refusedAddr returns a loopback address nothing listens on.
func refusedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// readPayloads reads frames until their payloads add up to total bytes
// and returns the payloads' SHA-256.
func readPayloads(t testing.TB, br *bufio.Reader, total int) []byte {
	t.Helper()
	sum := sha256.New()
	for n := 0; n < total; {
		h, err := ws.ReadHeader(br)
		if err != nil {
			t.Fatalf("after %d bytes: %v", n, err)
		}
		if _, err := io.CopyN(sum, br, h.Length); err != nil {
			t.Fatalf("after %d bytes: %v", n, err)
		}
		n += int(h.Length)
	}
	return sum.Sum(nil)
}

// readFrame reads one frame with its payload (at most 1 MiB), unmasked.
func readFrame(r io.Reader) (ws.Frame, error) { return testutil.ReadFrame(r) }
