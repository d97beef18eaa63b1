package engine

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws/wsutil"

	"github.com/wsgate/wsgate/internal/testutil"
)

var modes = []Mode{ModeAuto, ModeCopy, ModeSplice}

func TestEchoRoundTrips(t *testing.T) {
	for _, m := range modes {
		t.Run(m.String(), func(t *testing.T) {
			testutil.CheckLeaks(t)
			b := startEcho(t, "a")
			_, addr := startProxy(t, []string{b.Addr()}, func(c *Config) { c.Mode = m })
			c, br := dialWS(t, addr, "/")
			for i := 0; i < 200; i++ {
				echoOnce(t, c, br, []byte(strings.Repeat("x", i*37)))
			}
		})
	}
}

// TestBulkBothWays sends 50 MB up while 50 MB of echo come down, at once,
// and checks every byte.
func TestBulkBothWays(t *testing.T) {
	const total = 50 << 20
	for _, m := range modes {
		t.Run(m.String(), func(t *testing.T) {
			testutil.CheckLeaks(t)
			b := startEcho(t, "a")
			srv, addr := startProxy(t, []string{b.Addr()}, func(c *Config) { c.Mode = m })
			c, br := dialWS(t, addr, "/")
			c.SetDeadline(time.Now().Add(60 * time.Second))

			rng := rand.New(rand.NewPCG(1, 2))
			sent := sha256.New()
			var wg sync.WaitGroup
			var werr error
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, 256<<10)
				for n := 0; n < total; n += len(buf) {
					for i := range buf {
						buf[i] = byte(rng.Uint32())
					}
					sent.Write(buf)
					if err := wsutil.WriteClientBinary(c, buf); err != nil {
						werr = err
						return
					}
				}
			}()
			got := readPayloads(t, br, total)
			wg.Wait()
			if werr != nil {
				t.Fatal(werr)
			}
			if !bytes.Equal(sent.Sum(nil), got) {
				t.Fatal("echoed bytes differ from sent bytes")
			}
			// The loop counts a splice's bytes when the call returns, which
			// can be just after the client has read them.
			waitFor(t, func() bool { st := srv.Stats(); return st.BytesUp >= total && st.BytesDown >= total })
			st := srv.Stats()
			if st.BytesUp < total || st.BytesDown < total {
				t.Errorf("counters: up %d down %d, want ≥ %d each", st.BytesUp, st.BytesDown, total)
			}
			// Bulk is spliced unless copying is forced: 256 KiB frames
			// announce payloads far above spliceMin.
			if m == ModeCopy && st.BytesSpliced != 0 || m != ModeCopy && st.BytesSpliced < total {
				t.Errorf("%s: %d of %d bytes spliced", m, st.BytesSpliced, st.BytesUp+st.BytesDown)
			}
		})
	}
}

func TestOneMegabyteMessage(t *testing.T) {
	testutil.CheckLeaks(t)
	b := startEcho(t, "a")
	_, addr := startProxy(t, []string{b.Addr()}, nil)
	c, br := dialWS(t, addr, "/")
	msg := make([]byte, 1<<20)
	for i := range msg {
		msg[i] = byte(i * 7)
	}
	echoOnce(t, c, br, msg)
}

// TestHalfCloseClientFirst: the client shuts its write side; the backend
// sees EOF, answers and closes; the client gets the answer, then EOF.
func TestHalfCloseClientFirst(t *testing.T) {
	testutil.CheckLeaks(t)
	rb := startRawBackend(t, true, func(c net.Conn, br *bufio.Reader) {
		got, err := io.ReadAll(br)
		if err != nil {
			return
		}
		c.Write([]byte("backend got: " + string(got)))
	})
	_, addr := startProxy(t, []string{rb.Addr()}, nil)
	c, br, ans := rawUpgrade(t, addr, upgradeHead("x", "/"), nil)
	if statusOf(ans) != 101 {
		t.Fatalf("answer %q", ans)
	}
	c.Write([]byte("ping"))
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatal(err)
	}
	if string(rest) != "backend got: ping" {
		t.Fatalf("client got %q", rest)
	}
}

// TestHalfCloseBackendFirst: the backend shuts its write side after a
// greeting; the client reads EOF, then still sends, and the backend gets it.
func TestHalfCloseBackendFirst(t *testing.T) {
	testutil.CheckLeaks(t)
	got := make(chan string, 1)
	rb := startRawBackend(t, true, func(c net.Conn, br *bufio.Reader) {
		c.Write([]byte("bye"))
		c.(*net.TCPConn).CloseWrite()
		b, _ := io.ReadAll(br)
		got <- string(b)
	})
	_, addr := startProxy(t, []string{rb.Addr()}, nil)
	c, br, ans := rawUpgrade(t, addr, upgradeHead("x", "/"), nil)
	if statusOf(ans) != 101 {
		t.Fatalf("answer %q", ans)
	}
	greeting, err := io.ReadAll(br)
	if err != nil || string(greeting) != "bye" {
		t.Fatalf("client read %q, %v; want bye then EOF", greeting, err)
	}
	c.Write([]byte("after your EOF"))
	c.CloseWrite()
	select {
	case s := <-got:
		if s != "after your EOF" {
			t.Fatalf("backend got %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("backend never got the client's bytes after its half-close")
	}
}

// TestEarlyDataAfterHead: bytes the client sends with the upgrade head
// reach the backend only after its 101, and in order.
func TestEarlyDataAfterHead(t *testing.T) {
	testutil.CheckLeaks(t)
	type obs struct {
		before, after string
	}
	seen := make(chan obs, 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		head, _ := readHead(br)
		// Before answering, nothing past the head may have arrived.
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		var before []byte
		if br.Buffered() > 0 {
			before, _ = br.Peek(br.Buffered())
		} else if _, err := br.ReadByte(); err == nil {
			before = []byte("?")
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte(switchHead(head)))
		after := make([]byte, len("frame1frame2"))
		io.ReadFull(br, after)
		seen <- obs{string(before), string(after)}
	}()
	_, addr := startProxy(t, []string{ln.Addr().String()}, nil)
	_, _, ans := rawUpgrade(t, addr, upgradeHead("x", "/"), []byte("frame1frame2"))
	if statusOf(ans) != 101 {
		t.Fatalf("answer %q", ans)
	}
	o := <-seen
	if o.before != "" {
		t.Errorf("backend saw %q before it answered 101", o.before)
	}
	if o.after != "frame1frame2" {
		t.Errorf("backend got %q after 101, want frame1frame2", o.after)
	}
}

// TestForwardedHeaders: the backend sees what nginx with the recipe sends.
func TestForwardedHeaders(t *testing.T) {
	testutil.CheckLeaks(t)
	b := startEcho(t, "a")
	_, addr := startProxy(t, []string{b.Addr()}, nil)
	head := upgradeHead("edge.example.com", "/ws?headers=1",
		"X-Forwarded-For: 6.6.6.6", "X-Real-IP: 6.6.6.6", "X-Forwarded-Proto: https", "Forwarded: for=6.6.6.6")
	c, br, ans := rawUpgrade(t, addr, head, nil)
	if statusOf(ans) != 101 {
		t.Fatalf("answer %q", ans)
	}
	_ = c
	msg, err := wsutil.ReadServerText(struct {
		io.Reader
		io.Writer
	}{br, c})
	if err != nil {
		t.Fatal(err)
	}
	got := string(msg)
	for _, want := range []string{
		"Host: edge.example.com\n",
		"X-Real-Ip: 127.0.0.1\n",
		"X-Forwarded-For: 127.0.0.1\n",
		"X-Forwarded-Proto: http\n",
		"Upgrade: websocket\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("backend head lacks %q:\n%s", want, got)
		}
	}
	for _, bad := range []string{"6.6.6.6", "https"} {
		if strings.Contains(got, bad) {
			t.Errorf("spoofed %q reached the backend:\n%s", bad, got)
		}
	}
}

// TestBackendClosesMidStream: the client sees the close.
func TestBackendClosesMidStream(t *testing.T) {
	testutil.CheckLeaks(t)
	rb := startRawBackend(t, true, func(c net.Conn, br *bufio.Reader) {
		c.Write([]byte("partial"))
		// return: the deferred Close ends the connection mid-stream
	})
	_, addr := startProxy(t, []string{rb.Addr()}, nil)
	_, br, ans := rawUpgrade(t, addr, upgradeHead("x", "/"), nil)
	if statusOf(ans) != 101 {
		t.Fatalf("answer %q", ans)
	}
	rest, err := io.ReadAll(br)
	if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("read: %v", err)
	}
	if string(rest) != "partial" {
		t.Fatalf("client got %q before the close", rest)
	}
}

// TestConcurrentDialsFromLoops: several loops dial one backend at once.
// Under -race this caught loops sharing a cached unix.Sockaddr, which
// unix.Connect writes into.
func TestConcurrentDialsFromLoops(t *testing.T) {
	testutil.CheckLeaks(t)
	b := startEcho(t, "a")
	_, addr := startProxy(t, []string{b.Addr()}, func(c *Config) { c.Loops = 2 })
	var wg sync.WaitGroup
	for k := 0; k < 64; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, br := dialWS(t, addr, "/")
			echoOnce(t, c, br, []byte("together"))
		}()
	}
	wg.Wait()
}
