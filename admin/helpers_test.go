package admin

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsgate/wsgate/balance"
	"github.com/wsgate/wsgate/engine"
	"github.com/wsgate/wsgate/internal/wsecho"
)

// fakeEngine records what the admin server asks of the engine.
type fakeEngine struct {
	mu       sync.Mutex
	stats    engine.Stats
	paused   bool
	pauses   int
	resumes  int
	drains   []drainAllCall
	closes   []closeCall
	pauseErr error
	// pausing, when set, is told when Pause starts; Pause then holds the
	// lock (as the engine holds its own) until pauseGate closes.
	pausing   chan struct{}
	pauseGate chan struct{}
}

type drainAllCall struct {
	at     time.Time
	spread time.Duration
}

func (f *fakeEngine) Stats() engine.Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

func (f *fakeEngine) Pause() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pausing != nil {
		f.pausing <- struct{}{}
		<-f.pauseGate
	}
	if f.pauseErr != nil {
		return f.pauseErr
	}
	f.paused = true
	f.pauses++
	return nil
}

func (f *fakeEngine) Resume() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.paused = false
	f.resumes++
	return nil
}

func (f *fakeEngine) Paused() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.paused
}

func (f *fakeEngine) DrainAll(spread time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.drains = append(f.drains, drainAllCall{time.Now(), spread})
}

func (f *fakeEngine) CloseBackendTunnels(b *balance.Backend, rate float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closes = append(f.closes, closeCall{b.Addr(), rate})
}

type closeCall struct {
	addr string
	rate float64
}

func (f *fakeEngine) drainCalls() []drainAllCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]drainAllCall(nil), f.drains...)
}

// newPool makes a pool over addresses nothing dials (no active checks).
func newPool(t testing.TB, addrs ...string) *balance.Pool {
	t.Helper()
	var bcs []balance.BackendConfig
	for _, a := range addrs {
		bcs = append(bcs, balance.BackendConfig{Addr: a})
	}
	p, err := balance.NewPool(balance.Config{Backends: bcs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func pools(nps ...NamedPool) func() []NamedPool {
	return func() []NamedPool { return nps }
}

// startServer serves cfg on 127.0.0.1:0 (a fake engine and one pool with
// two backends unless cfg says otherwise) and returns a client for it.
func startServer(t testing.TB, cfg Config) (*Server, *client) {
	t.Helper()
	if cfg.Engine == nil {
		cfg.Engine = &fakeEngine{}
	}
	if cfg.Pools == nil {
		cfg.Pools = pools(NamedPool{DefaultPool, newPool(t, "127.0.0.1:8010", "127.0.0.1:8011")})
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, newClient(t, "http://"+s.Addr().String(), cfg.Token)
}

// client is an HTTP client for one admin server.
type client struct {
	t     testing.TB
	base  string
	token string
	hc    *http.Client
}

func newClient(t testing.TB, base, token string) *client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &client{t: t, base: base, token: token, hc: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

type answer struct {
	code   int
	body   []byte
	header http.Header
}

// json decodes the answer into v, failing the test if it is not JSON.
func (a answer) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(a.body, v); err != nil {
		t.Fatalf("answer %d is not the JSON expected (%v):\n%s", a.code, err, a.body)
	}
}

// apiErr decodes an error answer.
func (a answer) apiErr(t testing.TB) apiError {
	t.Helper()
	var e apiError
	a.json(t, &e)
	if e.Error == "" {
		t.Fatalf("error answer %d without an error message: %s", a.code, a.body)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error answer Content-Type %q", ct)
	}
	return e
}

func (c *client) do(method, path string, body any, hdr ...string) answer {
	c.t.Helper()
	var rb io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rb = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		rb = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, c.base+path, rb)
	if err != nil {
		c.t.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return answer{resp.StatusCode, data, resp.Header}
}

func (c *client) get(path string) answer { return c.do("GET", path, nil) }

func (c *client) post(path string) answer { return c.do("POST", path, nil) }

// expect checks an answer's status.
func expect(t testing.TB, a answer, code int, what string) {
	t.Helper()
	if a.code != code {
		t.Fatalf("%s: status %d, want %d\n%s", what, a.code, code, a.body)
	}
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ---- a real proxy

var warmOnce sync.Once

// warmUp starts what lives as long as the process once started — Go's
// runtime poller (an epoll fd and an eventfd) — before a leak check counts
// fds and goroutines: an engine started and closed once does it.
func warmUp(t testing.TB) {
	warmOnce.Do(func() {
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

// proxy is a real engine in front of real echo backends, with an admin
// server in front of both.
type proxy struct {
	backends []*wsecho.Server
	pool     *balance.Pool
	srv      *engine.Server
	addr     string // where clients connect
	admin    *Server
	api      *client
}

// startProxy starts n echo backends (named a, b, …), an engine and an
// admin server. Call it after testutil.CheckLeaks.
func startProxy(t testing.TB, n int, cfg Config) *proxy {
	t.Helper()
	p := &proxy{}
	var bcs []balance.BackendConfig
	for i := range n {
		b, err := wsecho.Listen("127.0.0.1:0", string(rune('a'+i)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		p.backends = append(p.backends, b)
		bcs = append(bcs, balance.BackendConfig{Addr: b.Addr()})
	}
	pool, err := balance.NewPool(balance.Config{Backends: bcs})
	if err != nil {
		t.Fatal(err)
	}
	p.pool = pool
	srv, err := engine.New(engine.Config{Listen: []string{"127.0.0.1:0"}, Pool: pool})
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
	p.srv = srv
	p.addr = srv.Addrs()[0].String()
	cfg.Engine = srv
	cfg.Pools = pools(NamedPool{DefaultPool, pool})
	p.admin, p.api = startServer(t, cfg)
	return p
}

// tunnel is one client WebSocket through the proxy, with the name of the
// echo backend that answered. After watch, a goroutine of its own reads
// every frame as it comes, so that the moment the proxy closes it is seen
// at once, not when the test next reads.
type tunnel struct {
	conn    net.Conn
	r       *bufio.Reader
	backend string

	wmu      sync.Mutex // one frame per Write: the reader answers Close frames too
	echoes   atomic.Int64
	closedAt atomic.Int64 // Unix nanoseconds when the proxy's Close frame (or EOF) came
	code     atomic.Int32 // the Close frame's status code
	done     chan struct{}
}

func (p *proxy) dial(t testing.TB) *tunnel {
	t.Helper()
	tn, err := p.tryDial()
	if err != nil {
		t.Fatalf("dial through the proxy: %v", err)
	}
	t.Cleanup(tn.close)
	return tn
}

func (p *proxy) tryDial() (*tunnel, error) {
	tn := &tunnel{}
	d := ws.Dialer{
		Timeout: 5 * time.Second,
		OnHeader: func(key, value []byte) error {
			if strings.EqualFold(string(key), "X-Echo-Server") {
				tn.backend = string(value)
			}
			return nil
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, br, _, err := d.Dial(ctx, "ws://"+p.addr+"/")
	if err != nil {
		return nil, err
	}
	if br == nil {
		br = bufio.NewReader(conn)
	}
	tn.conn, tn.r = conn, br
	return tn, nil
}

// close closes the connection and waits for the reader, if any.
func (tn *tunnel) close() {
	tn.conn.Close()
	if tn.done != nil {
		<-tn.done
	}
}

func (tn *tunnel) Read(p []byte) (int, error) { return tn.r.Read(p) }

func (tn *tunnel) Write(p []byte) (int, error) {
	tn.wmu.Lock()
	defer tn.wmu.Unlock()
	tn.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return tn.conn.Write(p)
}

// watch starts the reader: it counts echoed text frames, answers pings,
// and on the proxy's Close frame notes the time and code, answers it and
// stops.
func (tn *tunnel) watch() {
	tn.done = make(chan struct{})
	go func() {
		defer close(tn.done)
		for {
			h, err := ws.ReadHeader(tn.r)
			if err != nil {
				tn.closedAt.CompareAndSwap(0, time.Now().UnixNano())
				return
			}
			payload := make([]byte, h.Length)
			if _, err := io.ReadFull(tn.r, payload); err != nil {
				tn.closedAt.CompareAndSwap(0, time.Now().UnixNano())
				return
			}
			switch h.OpCode {
			case ws.OpText:
				tn.echoes.Add(1)
			case ws.OpPing:
				tn.Write(ws.MustCompileFrame(ws.MaskFrame(ws.NewPongFrame(payload))))
			case ws.OpClose:
				tn.closedAt.CompareAndSwap(0, time.Now().UnixNano())
				if len(payload) >= 2 {
					tn.code.Store(int32(payload[0])<<8 | int32(payload[1]))
				}
				tn.Write(ws.MustCompileFrame(ws.MaskFrame(ws.NewCloseFrame(payload[:min(len(payload), 2)]))))
				io.Copy(io.Discard, tn.r) // until the proxy closes the socket
				return
			}
		}
	}()
}

// send writes one text frame; the reader counts its echo.
func (tn *tunnel) send(msg string) error {
	_, err := tn.Write(ws.MustCompileFrame(ws.MaskFrame(ws.NewTextFrame([]byte(msg)))))
	return err
}

// closed reports when the proxy closed the tunnel, or the zero time.
func (tn *tunnel) closed() time.Time {
	if ns := tn.closedAt.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// exchange sends a message on every tunnel and waits until every one has
// echoed it, failing the test on any that does not within timeout.
func exchange(t testing.TB, tunnels []*tunnel, timeout time.Duration) {
	t.Helper()
	want := make([]int64, len(tunnels))
	for i, tn := range tunnels {
		want[i] = tn.echoes.Load() + 1
		if err := tn.send(fmt.Sprintf("message %d", want[i])); err != nil {
			t.Fatalf("tunnel %d (backend %s): send: %v", i, tn.backend, err)
		}
	}
	deadline := time.Now().Add(timeout)
	for i, tn := range tunnels {
		for tn.echoes.Load() < want[i] {
			if !tn.closed().IsZero() || time.Now().After(deadline) {
				t.Fatalf("tunnel %d (backend %s): no echo (closed at %v)", i, tn.backend, tn.closed())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}
