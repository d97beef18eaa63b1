package engine

import (
	"bufio"
	"encoding/json"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsgate/wsgate/internal/testutil"
)

// startLifetime starts a proxy whose one route ends tunnels after
// lifetime ± jitter.
func startLifetime(t *testing.T, lifetime time.Duration, jitter float64) (*Server, string) {
	b := startEcho(t, "a")
	pool := newTestPool(t, b.Addr())
	rt, err := NewRoutes([]RouteConfig{{Name: "/", Pool: pool, MaxLifetime: lifetime, LifetimeJitter: jitter}}, nil, RewriteConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return startProxy(t, []string{b.Addr()}, func(c *Config) { c.Routes = rt })
}

type lifetimeEnd struct {
	after time.Duration // from the 101
	code  ws.StatusCode
	text  string
	err   error
}

// openUntilClosed opens n tunnels and, for each, waits in the background
// for wsgate's Close, answers it as a client should, and reports how
// long after its 101 it came.
func openUntilClosed(t *testing.T, addr string, n int) <-chan lifetimeEnd {
	ends := make(chan lifetimeEnd, n)
	for i := 0; i < n; i++ {
		c, br := dialWS(t, addr, "/")
		opened := time.Now()
		go func(c net.Conn, br *bufio.Reader) {
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			f, err := readFrame(br)
			e := lifetimeEnd{after: time.Since(opened), err: err}
			if err == nil && f.Header.OpCode == ws.OpClose {
				e.code, e.text = ws.ParseCloseFrameData(f.Payload)
				ws.WriteFrame(c, ws.MaskFrame(ws.NewCloseFrame(f.Payload)))
			}
			ends <- e
		}(c, br)
	}
	return ends
}

// TestMaxLifetime: a route's tunnels are ended gracefully, with Close
// 1001, about MaxLifetime (1 s ± 10%, on 100 ms ticks) after they opened,
// and counted under "lifetime".
func TestMaxLifetime(t *testing.T) {
	testutil.CheckLeaks(t)
	const n = 10
	srv, addr := startLifetime(t, time.Second, 0.1)
	ends := openUntilClosed(t, addr, n)
	for i := 0; i < n; i++ {
		e := <-ends
		if e.err != nil || e.code != 1001 || !strings.Contains(e.text, "lifetime") {
			t.Fatalf("tunnel ended with %v %d %q, want Close 1001 naming the lifetime", e.err, e.code, e.text)
		}
		// 0.9..1.1 s rounded up to a tick, minus up to a tick for where
		// in its tick the tunnel started; generous above for a loaded
		// machine.
		if e.after < 750*time.Millisecond || e.after > 2*time.Second {
			t.Errorf("tunnel closed %v after it opened, want 0.8..1.2 s", e.after)
		}
	}
	waitFor(t, func() bool { return srv.Stats().Closes["lifetime"] == n })
	if st := srv.Stats(); st.GracefulCloses["lifetime"] != n || st.TunnelsActive != 0 {
		t.Errorf("graceful lifetime closes %d, active %d; want %d, 0", st.GracefulCloses["lifetime"], st.TunnelsActive, n)
	}
}

// TestMaxLifetimeJitter: tunnels opened together do not all expire
// together. With 10% of 1 s the jitter spans only two 100 ms ticks, less
// than a loop's own lateness can blur, so this uses 50%: 0.5..1.5 s over
// ten ticks; 20 tunnels all within half of that is a 1-in-10^5 draw.
func TestMaxLifetimeJitter(t *testing.T) {
	testutil.CheckLeaks(t)
	const n = 20
	srv, addr := startLifetime(t, time.Second, 0.5)
	ends := openUntilClosed(t, addr, n)
	var after []time.Duration
	for i := 0; i < n; i++ {
		e := <-ends
		if e.err != nil || e.code != 1001 {
			t.Fatalf("tunnel ended with %v %d %q", e.err, e.code, e.text)
		}
		if e.after < 350*time.Millisecond || e.after > 2500*time.Millisecond {
			t.Errorf("tunnel closed %v after it opened, want 0.4..1.6 s", e.after)
		}
		after = append(after, e.after)
	}
	// Without jitter every lifetime would lie within two ticks (the
	// tick a tunnel starts in, and a loop waking late).
	if spread := slices.Max(after) - slices.Min(after); spread < 300*time.Millisecond {
		t.Errorf("lifetimes spread over %v (%v), want them spread by the jitter", spread, after)
	}
	waitFor(t, func() bool { return srv.Stats().Closes["lifetime"] == n })
}

// TestAccessLogInterval: a live tunnel is logged every interval with its
// bytes so far and its age, before the line at its close.
func TestAccessLogInterval(t *testing.T) {
	testutil.CheckLeaks(t)
	var buf syncBuffer
	b := startEcho(t, "a")
	_, addr := startProxy(t, []string{b.Addr()}, func(c *Config) {
		c.AccessLog = slog.New(slog.NewJSONHandler(&buf, nil))
		c.AccessLogInterval = 300 * time.Millisecond
	})
	c, br := dialWS(t, addr, "/")
	opened := time.Now()
	echoOnce(t, c, br, []byte("0123456789"))
	waitFor(t, func() bool { return strings.Count(buf.String(), `"msg":"tunnel"`) >= 2 })
	echoOnce(t, c, br, []byte("0123456789"))
	n := strings.Count(buf.String(), `"msg":"tunnel"`)
	waitFor(t, func() bool { return strings.Count(buf.String(), `"msg":"tunnel"`) > n })
	live := time.Since(opened)
	c.Close()
	waitFor(t, func() bool { return strings.Contains(buf.String(), `"msg":"session"`) })

	type line struct {
		Msg       string
		Client    string
		Backend   string
		BytesUp   uint64  `json:"bytes_up"`
		BytesDown uint64  `json:"bytes_down"`
		Age       float64 `json:"age_s"`
	}
	var lines []line
	for _, s := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var l line
		if err := json.Unmarshal([]byte(s), &l); err != nil {
			t.Fatalf("%v: %s", err, s)
		}
		lines = append(lines, l)
	}
	last := lines[len(lines)-1]
	if last.Msg != "session" {
		t.Fatalf("last line is %q, want the session line:\n%s", last.Msg, buf.String())
	}
	progress := lines[:len(lines)-1]
	// One line per 300 ms of the tunnel's life (and perhaps one more
	// while it closes), none early.
	if max := int(live/(300*time.Millisecond)) + 2; len(progress) < 3 || len(progress) > max {
		t.Errorf("%d tunnel lines over %v, want 3..%d:\n%s", len(progress), live, max, buf.String())
	}
	for k, l := range progress {
		if l.Msg != "tunnel" || l.Backend != b.Addr() || !strings.HasPrefix(l.Client, "127.0.0.1:") {
			t.Errorf("line %d: %+v", k, l)
		}
		if want := 0.3 * float64(k+1); l.Age < want-0.05 || l.Age > want+1.5 {
			t.Errorf("line %d: age %.3f s, want about %.1f", k, l.Age, want)
		}
		if l.BytesUp < 10 || l.BytesDown < 10 {
			t.Errorf("line %d: bytes %d up, %d down, want the first echo's", k, l.BytesUp, l.BytesDown)
		}
		if k > 0 && (l.BytesUp < progress[k-1].BytesUp || l.Age <= progress[k-1].Age) {
			t.Errorf("line %d goes back: %+v after %+v", k, l, progress[k-1])
		}
	}
	if p := progress[len(progress)-1]; p.BytesUp < 20 || p.BytesDown < 20 {
		t.Errorf("the line after the second echo counts %d up, %d down", p.BytesUp, p.BytesDown)
	}
	if last.BytesUp < progress[len(progress)-1].BytesUp {
		t.Errorf("session line %+v counts less than the tunnel lines", last)
	}
}
