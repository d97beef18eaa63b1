package engine

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsgate/wsgate/internal/testutil"
)

// dialServerName opens a WebSocket and returns the backend's name from the
// 101's X-Echo-Server header.
func dialServerName(t testing.TB, addr string) (string, net.Conn) {
	t.Helper()
	var name string
	d := ws.Dialer{
		Timeout: 5 * time.Second,
		OnHeader: func(key, value []byte) error {
			if strings.EqualFold(string(key), "X-Echo-Server") {
				name = string(value)
			}
			return nil
		},
	}
	c, _, _, err := d.Dial(context.Background(), "ws://"+addr+"/")
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	return name, c
}

func TestLeastConnSpreads(t *testing.T) {
	testutil.CheckLeaks(t)
	a, b := startEcho(t, "a"), startEcho(t, "b")
	_, addr := startProxy(t, []string{a.Addr(), b.Addr()}, nil)
	count := map[string]int{}
	for i := 0; i < 40; i++ {
		name, c := dialServerName(t, addr)
		defer c.Close()
		count[name]++
	}
	if count["a"] != 20 || count["b"] != 20 {
		t.Fatalf("40 long-lived tunnels spread %v, want 20/20", count)
	}
}

func TestOneBackendRefusing(t *testing.T) {
	testutil.CheckLeaks(t)
	b := startEcho(t, "b")
	_, addr := startProxy(t, []string{refusedAddr(t), b.Addr()}, nil)
	for i := 0; i < 20; i++ {
		name, c := dialServerName(t, addr)
		c.Close()
		if name != "b" {
			t.Fatalf("tunnel %d landed on %q", i, name)
		}
	}
}

func TestBothRefusing502(t *testing.T) {
	testutil.CheckLeaks(t)
	srv, addr := startProxy(t, []string{refusedAddr(t), refusedAddr(t)}, nil)
	_, br, ans := rawUpgrade(t, addr, upgradeHead("x", "/"), nil)
	if statusOf(ans) != 502 {
		t.Fatalf("answer %q, want 502", ans)
	}
	body, _ := io.ReadAll(br)
	if !strings.Contains(string(body), "refused") {
		t.Errorf("body %q does not say why", body)
	}
	if n := srv.Stats().Rejects["backend_refused"]; n != 1 {
		t.Errorf("backend_refused counted %d times", n)
	}
}

func TestBackendNeverAnswers504(t *testing.T) {
	testutil.CheckLeaks(t)
	hold := make(chan struct{})
	defer close(hold)
	rb := startRawBackend(t, false, func(c net.Conn, br *bufio.Reader) { <-hold })
	_, addr := startProxy(t, []string{rb.Addr()}, func(c *Config) {
		c.AnswerTimeout = 500 * time.Millisecond
		c.Tries = 1
	})
	start := time.Now()
	_, _, ans := rawUpgrade(t, addr, upgradeHead("x", "/"), nil)
	if statusOf(ans) != 504 {
		t.Fatalf("answer %q, want 504", ans)
	}
	if d := time.Since(start); d < 500*time.Millisecond || d > 3*time.Second {
		t.Errorf("504 after %v, want about the 500ms answer timeout", d)
	}
}

// TestSlowHeaderClient: a client that sends its head too slowly is closed
// after the header timeout with 408, and other tunnels carry on.
func TestSlowHeaderClient(t *testing.T) {
	testutil.CheckLeaks(t)
	b := startEcho(t, "a")
	_, addr := startProxy(t, []string{b.Addr()}, func(c *Config) { c.HeaderTimeout = 700 * time.Millisecond })
	good, gbr := dialWS(t, addr, "/")
	var slow []net.Conn
	for i := 0; i < 50; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n")) // never finished
		slow = append(slow, c)
	}
	start := time.Now()
	for time.Since(start) < 400*time.Millisecond {
		echoOnce(t, good, gbr, []byte("still here"))
		time.Sleep(50 * time.Millisecond)
	}
	for i, c := range slow {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		ans, err := io.ReadAll(c)
		if err != nil && !strings.Contains(err.Error(), "reset") {
			t.Fatalf("slow client %d: %v", i, err)
		}
		if !strings.HasPrefix(string(ans), "HTTP/1.1 408 ") {
			t.Fatalf("slow client %d got %q, want 408", i, ans)
		}
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("slow clients closed after %v", d)
	}
	echoOnce(t, good, gbr, []byte("still here after"))
}

func TestBadHeads(t *testing.T) {
	testutil.CheckLeaks(t)
	b := startEcho(t, "a")
	srv, addr := startProxy(t, []string{b.Addr()}, nil)
	cases := []struct {
		name, head string
		status     int
	}{
		{"garbage", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 hello\r\n\r\n", 400},
		{"no host", "GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", 400},
		{"oversized", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 20<<10) + "\r\n\r\n", 431},
		{"bare lf", "GET / HTTP/1.1\nHost: x\n\n", 400},
		{"bad ws version", "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n", 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			c.Write([]byte(tc.head))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("reading answer: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, tc.status)
			}
			if !resp.Close {
				t.Error("answer does not close the connection")
			}
			if tc.name == "bad ws version" && resp.Header.Get("Sec-WebSocket-Version") != "13" {
				t.Error("no Sec-WebSocket-Version: 13 in the answer")
			}
		})
	}
	st := srv.Stats()
	if st.Rejects["head_too_large"] != 1 {
		t.Errorf("rejects %v", st.Rejects)
	}
	// The proxy still works.
	c, br := dialWS(t, addr, "/")
	echoOnce(t, c, br, []byte("ok"))
}

func TestPlainRequests(t *testing.T) {
	testutil.CheckLeaks(t)
	b := startEcho(t, "a")
	_, addr := startProxy(t, []string{b.Addr()}, nil)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}

	resp, err := client.Get("http://" + addr + "/poll?x=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !resp.Close {
		t.Fatalf("GET: %d close=%v", resp.StatusCode, resp.Close)
	}
	for _, want := range []string{"GET /poll?x=1 HTTP/1.1", "X-Real-Ip: 127.0.0.1", "Connection: close"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("backend saw no %q:\n%s", want, body)
		}
	}

	payload := strings.Repeat("post body ", 10000)
	resp, err = client.Post("http://"+addr+"/submit", "text/plain", strings.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != payload {
		t.Fatalf("POST: %d, %d bytes back, want %d", resp.StatusCode, len(body), len(payload))
	}

	// chunked upload, then a pipelined request that must not be forwarded
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err = http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	if string(body) != "hello world" {
		t.Fatalf("chunked POST echoed %q", body)
	}
	rest, _ := io.ReadAll(c)
	if len(rest) != 0 {
		t.Fatalf("after the answer the connection carried %q", rest)
	}
}

// TestIdleTimeout: an idle WebSocket tunnel is ended with a Close 1001
// frame, and closes as soon as the client answers it.
func TestIdleTimeout(t *testing.T) {
	testutil.CheckLeaks(t)
	b := startEcho(t, "a")
	srv, addr := startProxy(t, []string{b.Addr()}, func(c *Config) { c.IdleTimeout = 600 * time.Millisecond })
	c, br := dialWS(t, addr, "/")
	echoOnce(t, c, br, []byte("x"))
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	f, err := readFrame(br)
	if err != nil {
		t.Fatalf("reading the close: %v", err)
	}
	if d := time.Since(start); d < 500*time.Millisecond || d > 2*time.Second {
		t.Errorf("idle tunnel closed after %v, want about 600ms", d)
	}
	code, reason := ws.ParseCloseFrameData(f.Payload)
	if f.Header.OpCode != ws.OpClose || code != 1001 || !strings.Contains(reason, "idle") {
		t.Fatalf("got %v %d %q, want Close 1001 saying idle", f.Header.OpCode, code, reason)
	}
	ws.WriteFrame(c, ws.MaskFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))))
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("bytes after the Close")
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("closed %v after the Close: wsgate waited for its timeout although both peers answered", d)
	}
	waitFor(t, func() bool { return srv.Stats().GracefulCloses["idle_timeout"] == 1 })
}

// waitFor polls cond for up to 5 s.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestExpectContinue: wsgate answers Expect: 100-continue itself (the
// header is not forwarded), then the body goes through.
func TestExpectContinue(t *testing.T) {
	testutil.CheckLeaks(t)
	b := startEcho(t, "a")
	_, addr := startProxy(t, []string{b.Addr()}, nil)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	br := bufio.NewReader(c)
	interim, err := readHead(br)
	if err != nil || !strings.HasPrefix(interim, "HTTP/1.1 100 Continue\r\n") {
		t.Fatalf("want 100 Continue before the body, got %q, %v", interim, err)
	}
	io.WriteString(c, "hello")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "hello" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
}
