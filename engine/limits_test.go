package engine

import (
	"bufio"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/handshake"
	"github.com/wsgate/wsgate/internal/testutil"
)

// TestMaxTunnels: with N tunnels open, the next handshake — and a plain
// request, which holds two sockets too — is answered 503 too_many_tunnels;
// once one tunnel closes, a new one is admitted.
func TestMaxTunnels(t *testing.T) {
	testutil.CheckLeaks(t)
	b := startEcho(t, "a")
	const n = 3
	srv, addr := startProxy(t, []string{b.Addr()}, func(c *Config) { c.MaxTunnels = n })
	var open []net.Conn
	for i := 0; i < n; i++ {
		c, br := dialWS(t, addr, "/")
		echoOnce(t, c, br, []byte("x"))
		open = append(open, c)
	}
	_, br, ans := rawUpgrade(t, addr, upgradeHead("x", "/"), nil)
	if statusOf(ans) != 503 {
		t.Fatalf("handshake %d: %q, want 503", n+1, ans)
	}
	if body, _ := io.ReadAll(br); string(body) != handshake.ErrTooManyTunnels.Text+"\n" {
		t.Errorf("503 body %q", body)
	}
	if a := roundTrip(t, addr, getHead("x", "/")); a.StatusCode != 503 {
		t.Errorf("plain request at the limit: %d, want 503", a.StatusCode)
	}
	st := srv.Stats()
	if st.Rejects["too_many_tunnels"] != 2 || st.Held != n {
		t.Errorf("too_many_tunnels %d, held %d; want 2, %d", st.Rejects["too_many_tunnels"], st.Held, n)
	}
	for _, c := range open {
		echoOnce(t, c, bufio.NewReader(c), []byte("the admitted ones still work"))
	}

	open[0].Close()
	waitFor(t, func() bool { return srv.Stats().Held == n-1 })
	c, br2 := dialWS(t, addr, "/")
	echoOnce(t, c, br2, []byte("admitted again"))
	if _, _, ans := rawUpgrade(t, addr, upgradeHead("x", "/"), nil); statusOf(ans) != 503 {
		t.Errorf("full again: %q, want 503", ans)
	}
}

// TestMaxTunnelsPerIP: one client address cannot hold more than the
// per-IP limit (429 too_many_per_ip), while another address still gets in;
// closing one frees its slot.
func TestMaxTunnelsPerIP(t *testing.T) {
	testutil.CheckLeaks(t)
	b := startEcho(t, "a")
	srv, addr := startProxy(t, []string{b.Addr()}, func(c *Config) { c.MaxTunnelsPerIP = 2 })
	open := func(src string) net.Conn {
		t.Helper()
		c, br, err := dialWSFrom(addr, src, "/")
		if err != nil {
			t.Fatalf("from %s: %v", src, err)
		}
		t.Cleanup(func() { c.Close() })
		echoOnce(t, c, br, []byte("x"))
		return c
	}
	refused := func(src string) {
		t.Helper()
		_, _, err := dialWSFrom(addr, src, "/")
		if err == nil || err.Error() != "unexpected HTTP response status: 429" {
			t.Fatalf("from %s over the limit: %v, want 429", src, err)
		}
	}
	first := open("127.0.0.1")
	open("127.0.0.1")
	refused("127.0.0.1")
	open("127.0.0.2")
	open("127.0.0.2")
	refused("127.0.0.2")
	open("127.0.0.3")
	refused("127.0.0.1")
	if n := srv.Stats().Rejects["too_many_per_ip"]; n != 3 {
		t.Errorf("too_many_per_ip counted %d, want 3", n)
	}
	first.Close()
	waitFor(t, func() bool { return srv.Stats().Held == 4 })
	open("127.0.0.1")
	refused("127.0.0.1")
}

// TestSetLimitsLive: SetLimits changes the limits of a running server.
// Tunnels admitted before a tighter limit are not cut; they count against
// max_tunnels, while per-address counts start with the limit (they are
// only kept while one is set).
func TestSetLimitsLive(t *testing.T) {
	testutil.CheckLeaks(t)
	b := startEcho(t, "a")
	srv, addr := startProxy(t, []string{b.Addr()}, nil)
	c1, br1 := dialWS(t, addr, "/")
	c2, br2 := dialWS(t, addr, "/")

	srv.SetLimits(2, 0, 0)
	if _, _, ans := rawUpgrade(t, addr, upgradeHead("x", "/"), nil); statusOf(ans) != 503 {
		t.Fatalf("max 2 with 2 open: %q, want 503", ans)
	}
	srv.SetLimits(3, 0, 0)
	c3, br3 := dialWS(t, addr, "/")
	echoOnce(t, c3, br3, []byte("a third one"))
	c3.Close()
	waitFor(t, func() bool { return srv.Stats().Held == 2 })

	srv.SetLimits(0, 1, 0)
	c4, br4 := dialWS(t, addr, "/")
	echoOnce(t, c4, br4, []byte("the first one counted"))
	if _, _, ans := rawUpgrade(t, addr, upgradeHead("x", "/"), nil); statusOf(ans) != 429 {
		t.Fatalf("1 per IP with 1 counted: %q, want 429", ans)
	}
	if c, _, err := dialWSFrom(addr, "127.0.0.2", "/"); err != nil {
		t.Fatalf("another address at 1 per IP: %v", err)
	} else {
		c.Close()
	}
	srv.SetLimits(1, 1, 0) // tighter than what runs: nothing is cut
	for _, c := range []struct {
		c  net.Conn
		br *bufio.Reader
	}{{c1, br1}, {c2, br2}, {c4, br4}} {
		echoOnce(t, c.c, c.br, []byte("still here"))
	}
	srv.SetLimits(0, 0, 0)
	c5, br5 := dialWS(t, addr, "/")
	echoOnce(t, c5, br5, []byte("unlimited again"))
}

// openConcurrently opens n WebSocket tunnels at once and returns how long
// it took until all of them were answered 101.
func openConcurrently(t *testing.T, addr string, n int) time.Duration {
	t.Helper()
	start := time.Now()
	errs := make(chan error, n)
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, _, err := dialWSFrom(addr, "127.0.0.1", "/")
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}()
	}
	wg.Wait()
	d := time.Since(start)
	close(errs)
	for _, c := range conns {
		c.Close()
	}
	for err := range errs {
		t.Fatalf("dial: %v", err)
	}
	return d
}

// TestAcceptRate: a burst of connections is accepted at the configured
// rate (the rest wait in the kernel's queue, none is refused), and
// SetLimits turns the rate on and off on a running server.
func TestAcceptRate(t *testing.T) {
	testutil.CheckLeaks(t)
	b := startEcho(t, "a")
	const (
		loops = 2
		rate  = 20 // per second: each loop takes 1 per 100 ms tick
		m     = 16
		burst = loops // each loop's bucket holds one tick's worth, at least 1
	)
	srv, addr := startProxy(t, []string{b.Addr()}, func(c *Config) {
		c.Loops = loops
		c.AcceptRate = rate
	})
	time.Sleep(300 * time.Millisecond) // the buckets fill up
	// (m-burst)/rate is 0.7 s; the first refill may come at once, so a
	// loop can be up to a tick ahead.
	lower := time.Duration(float64(m-burst)/rate*float64(time.Second)) - 2*tick
	d := openConcurrently(t, addr, m)
	if d < lower || d > 4*time.Second {
		t.Errorf("%d connections at %d/s took %v, want %v..4s", m, rate, d, lower)
	}
	if st := srv.Stats(); st.HandshakesOK != m || st.AcceptErrors != 0 {
		t.Errorf("%d handshakes, %d accept errors; want %d, 0", st.HandshakesOK, st.AcceptErrors, m)
	}

	// Unlimited: a larger burst goes through much faster than the rate
	// would let it (5 s).
	srv.SetLimits(0, 0, 0)
	const many = 100
	if d := openConcurrently(t, addr, many); d >= 2500*time.Millisecond {
		t.Errorf("unlimited: %d connections took %v, no faster than at %d/s", many, d, rate)
	}
	// Limited again: the rate holds, and the connections taken while
	// there was no limit do not count against it (were they to, this
	// burst would wait 5 s more).
	srv.SetLimits(0, 0, rate)
	time.Sleep(300 * time.Millisecond)
	d = openConcurrently(t, addr, m)
	if d < lower || d > 4*time.Second {
		t.Errorf("rate set again: %d connections took %v, want %v..4s", m, d, lower)
	}
}
