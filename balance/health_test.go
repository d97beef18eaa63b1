package balance

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/testutil"
)

// dial plays the engine: pick, dial, report, close.
func dial(t *testing.T, p *Pool) (*Backend, error) {
	t.Helper()
	l, err := p.Pick(nil, nil)
	if err != nil {
		return nil, err
	}
	conn, err := net.DialTimeout("tcp", l.Backend().Addr(), time.Second)
	if err != nil {
		l.Failed(FailRefused)
		return l.Backend(), err
	}
	l.Connected()
	conn.Close()
	l.Done()
	return l.Backend(), nil
}

// nginx semantics against real listeners: max_fails failures within
// fail_timeout take a backend down for fail_timeout; then one trial; a
// failed trial keeps it down, a good one brings it up with slow start.
func TestPassiveHealthRealListeners(t *testing.T) {
	sa, sb := startServer(t, false), startServer(t, false)
	p, clk := testPool(t, Config{MaxFails: 2, FailTimeout: 10 * time.Second, SlowStart: 30 * time.Second,
		Backends: []BackendConfig{{Addr: sa.addr}, {Addr: sb.addr}}})
	a := p.Lookup(sa.addr)
	changes := p.Changes()
	sa.stop()

	for a.Failures() < 2 {
		if a.State() != StateUp {
			t.Fatalf("down after %d failures", a.Failures())
		}
		dial(t, p)
	}
	if a.State() != StateDown {
		t.Fatalf("after 2 failures: %v", a.State())
	}
	select {
	case <-changes:
	default:
		t.Fatal("going down did not signal a change")
	}
	for range 10 {
		if b, err := dial(t, p); b == a || err != nil {
			t.Fatalf("picked %s while down (%v)", b.Addr(), err)
		}
	}

	// fail_timeout later: exactly one trial goes to a; it fails.
	clk.Advance(10*time.Second + 1)
	trials := 0
	for range 6 {
		if b, _ := dial(t, p); b == a {
			trials++
		}
	}
	if trials != 1 || a.State() != StateDown || a.Failures() != 3 {
		t.Fatalf("trials %d, state %v, failures %d", trials, a.State(), a.Failures())
	}
	if st := a.Status(); !st.RetryAt.Equal(clk.Now().Add(10 * time.Second)) {
		t.Fatalf("retry at %v, now %v", st.RetryAt, clk.Now())
	}

	// Back up: the next trial succeeds, and slow start begins.
	sa.start()
	clk.Advance(10*time.Second + 1)
	waitFor(t, "a trial", func() bool { dial(t, p); return a.Total() == 4 })
	if a.State() != StateUp || a.EffectiveWeight() != slowStartFloor {
		t.Fatalf("after a good trial: %v, effective weight %v", a.State(), a.EffectiveWeight())
	}
}

func TestPassiveFailWindow(t *testing.T) {
	p, clk := testPool(t, Config{MaxFails: 3, FailTimeout: 10 * time.Second, Backends: equal(1)})
	b := p.Backends()[0]
	fail := func() { mustPick(t, p, nil).Failed(FailTimeout) }
	fail()
	clk.Advance(6 * time.Second)
	fail()
	clk.Advance(6 * time.Second)
	fail() // the first failure is 12 s old: the window restarts here
	if b.State() != StateUp {
		t.Fatal("3 failures over 12 s took the backend down with fail_timeout 10 s")
	}
	fail()
	l := mustPick(t, p, nil)
	l.Connected() // a success clears the count
	l.Done()
	fail()
	fail()
	if b.State() != StateUp {
		t.Fatal("failures before a success still counted")
	}
	fail()
	if b.State() != StateDown {
		t.Fatal("3 failures within 10 s did not take the backend down")
	}
}

func TestPassiveDisabled(t *testing.T) {
	p, _ := testPool(t, Config{MaxFails: 0, Backends: equal(1)})
	for range 100 {
		mustPick(t, p, nil).Failed(FailRefused)
	}
	if b := p.Backends()[0]; b.State() != StateUp || b.Failures() != 100 {
		t.Fatalf("max_fails 0: %v, %d failures", b.State(), b.Failures())
	}
}

// Many Picks racing for a backend past its fail_timeout: one trial only.
func TestPassiveSingleTrial(t *testing.T) {
	p, clk := testPool(t, Config{MaxFails: 1, FailTimeout: time.Second, Backends: equal(1)})
	mustPick(t, p, nil).Failed(FailRefused)
	clk.Advance(2 * time.Second)
	var mu sync.Mutex
	var got []Lease
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			l, err := p.Pick(nil, nil)
			if err != nil {
				if !errors.Is(err, ErrNoBackend) || err.Error() != "no eligible backend: 1 down" {
					t.Error(err)
				}
				return
			}
			mu.Lock()
			got = append(got, l)
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(got) != 1 {
		t.Fatalf("%d trials", len(got))
	}
	got[0].Done() // neither success nor failure: still down until the next trial
	if _, err := p.Pick(nil, nil); err == nil {
		t.Fatal("picked again before the next fail_timeout")
	}
}

func TestActiveTCP(t *testing.T) {
	sa, sb := startServer(t, false), startServer(t, false)
	p, _ := testPool(t, Config{SlowStart: time.Minute,
		Health:   HealthCheck{Kind: "tcp", Interval: 10 * time.Millisecond, Timeout: 500 * time.Millisecond, Rise: 2, Fall: 2},
		Backends: []BackendConfig{{Addr: sa.addr, Weight: 4}, {Addr: sb.addr}}})
	a := p.Lookup(sa.addr)
	waitFor(t, "first check", func() bool { return !a.Status().LastCheck.IsZero() })
	if st := a.Status(); !st.Healthy || st.LastError != "" || st.State != "up" {
		t.Fatalf("status %+v", st)
	}

	changes := p.Changes()
	sa.stop()
	waitFor(t, "a down", func() bool { return a.State() == StateDown })
	<-changes
	if st := a.Status(); st.Healthy || !strings.Contains(st.LastError, "refused") {
		t.Fatalf("status %+v", st)
	}
	for range 5 {
		l := mustPick(t, p, nil)
		if l.Backend() == a {
			t.Fatal("picked a backend failing its checks")
		}
		l.Done()
	}

	sa.start()
	waitFor(t, "a up", func() bool { return a.State() == StateUp })
	if st := a.Status(); !st.Healthy || st.LastError != "" || st.EffectiveWeight != 4*slowStartFloor {
		t.Fatalf("status %+v", st)
	}
}

func TestActiveHTTP(t *testing.T) {
	s := startServer(t, true)
	p, _ := testPool(t, Config{
		Health:   HealthCheck{Kind: "http", Path: "/healthz?full=1", Interval: 10 * time.Millisecond, Timeout: 500 * time.Millisecond, Rise: 1, Fall: 1},
		Backends: []BackendConfig{{Addr: s.addr}}})
	b := p.Backends()[0]
	waitFor(t, "first check", func() bool { return !b.Status().LastCheck.IsZero() })
	if got := s.reqs.Load(); got != "GET /healthz?full=1 HTTP/1.1" {
		t.Fatalf("request line %q", got)
	}
	for _, step := range []struct {
		status int32
		stop   bool
		state  State
		err    string
	}{
		{301, false, StateUp, ""},
		{503, false, StateDown, "status 503"},
		{204, false, StateUp, ""},
		{200, true, StateDown, "refused"},
		{200, false, StateUp, ""},
	} {
		s.Status.Store(step.status)
		if step.stop {
			s.stop()
		} else {
			s.start()
		}
		waitFor(t, "state "+step.state.String(), func() bool {
			st := b.Status()
			return b.State() == step.state && strings.Contains(st.LastError, step.err) && (step.err != "") == (st.LastError != "")
		})
	}
	if _, err := p.Pick(nil, nil); err != nil {
		t.Fatal(err)
	}
}

// silentServer accepts connections and never answers; accepted counts
// them.
func silentServer(t *testing.T) (addr string, accepted *atomic.Int32) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	accepted = new(atomic.Int32)
	var conns sync.WaitGroup
	var mu sync.Mutex
	var held []net.Conn
	conns.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
			accepted.Add(1)
		}
	})
	t.Cleanup(func() {
		ln.Close()
		conns.Wait()
		for _, c := range held {
			c.Close()
		}
	})
	return ln.Addr().String(), accepted
}

// A check that gets no answer fails after Timeout.
func TestActiveHTTPTimeout(t *testing.T) {
	testutil.CheckLeaks(t) // before the server's cleanup, so after it
	addr, _ := silentServer(t)
	start := time.Now() // the first check starts in NewPool
	p, err := NewPool(Config{
		Health:   HealthCheck{Kind: "http", Interval: 10 * time.Millisecond, Timeout: 50 * time.Millisecond, Rise: 1, Fall: 1},
		Backends: []BackendConfig{{Addr: addr}}})
	must(t, err)
	t.Cleanup(p.Close)
	b := p.Backends()[0]
	waitFor(t, "down", func() bool { return b.State() == StateDown })
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("down after %v, before the 50ms timeout", d)
	}
	if e := b.Status().LastError; !strings.Contains(e, "timeout") {
		t.Fatalf("last error %q", e)
	}
}

// Close interrupts a check in flight rather than waiting out its timeout.
func TestActiveCheckClose(t *testing.T) {
	testutil.CheckLeaks(t) // before the server's cleanup, so after it
	addr, accepted := silentServer(t)
	p, err := NewPool(Config{
		Health:   HealthCheck{Kind: "http", Interval: time.Minute, Timeout: time.Minute},
		Backends: []BackendConfig{{Addr: addr}}})
	must(t, err)
	t.Cleanup(p.Close)
	// Connected and waiting for a status line that never comes.
	waitFor(t, "the check to connect", func() bool { return accepted.Load() == 1 })
	start := time.Now()
	p.Close()
	// A minute's timeout: anything near a second means Close interrupted
	// it, however loaded the machine.
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Close took %v with a check in flight", d)
	}
	if r := p.Backends()[0].check.Load(); r != nil {
		t.Fatalf("an interrupted check was recorded: %+v", r)
	}
}

// The status line decides: 2xx and 3xx pass; anything else, or a line
// that is not an HTTP/1.x status line, fails.
func TestProbeStatusLine(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer ln.Close()
	resp := make(chan string, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			bufio.NewReader(c).ReadString('\n')
			c.Write([]byte(<-resp))
			c.Close()
		}
	}()
	req := []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	for _, tc := range []struct {
		line, err string // err "" passes
	}{
		{"HTTP/1.1 200 OK\r\n", ""},
		{"HTTP/1.0 204 No Content\r\n", ""},
		{"HTTP/1.1 302 Found\r\n", ""},
		{"HTTP/1.1 200\r\n", ""}, // no reason phrase
		{"HTTP/1.1 404 Not Found\r\n", "status 404"},
		{"HTTP/1.1 503 Unavailable\r\n", "status 503"},
		{"HTTP/1.1 101 Switching Protocols\r\n", "status 101"},
		{"HTTP/1.1 2xx OK\r\n", "malformed status line"},
		{"HTTP/1.1 2000 OK\r\n", "malformed status line"},
		{"HTTP/2 200 OK\r\n", "malformed status line"},
		{"SSH-2.0-OpenSSH_9.6\r\n", "malformed status line"},
		{"HTTP/1.1 200 OK", "reading status line: EOF"},
		{"HTTP/1.1 200 " + strings.Repeat("x", 300) + "\r\n", "status line too long"},
	} {
		resp <- tc.line
		err := probe(context.Background(), ln.Addr().String(), 5*time.Second, req)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%q: err = %v, want %q", tc.line, err, tc.err)
		}
	}
}

func TestActiveChecksFollowAddRemove(t *testing.T) {
	s := startServer(t, false)
	p, _ := testPool(t, Config{Health: HealthCheck{Kind: "tcp", Interval: 10 * time.Millisecond}})
	must(t, p.Add(BackendConfig{Addr: s.addr}))
	b := p.Lookup(s.addr)
	waitFor(t, "first check", func() bool { return !b.Status().LastCheck.IsZero() })
	must(t, p.Remove(s.addr, 0, 0))
	// The removed backend's checker stops: its last check stays put while
	// ten intervals pass.
	time.Sleep(100 * time.Millisecond)
	last := b.Status().LastCheck
	time.Sleep(100 * time.Millisecond)
	if b.Status().LastCheck != last {
		t.Fatal("checks go on after removal")
	}
}

// Slow start: the effective weight ramps linearly from a tenth to full, and
// both weighted policies follow it (least_conn in active counts of
// long-lived tunnels, round_robin in picks).
func TestSlowStartRamp(t *testing.T) {
	for _, pol := range []Policy{LeastConn, RoundRobin} {
		t.Run(string(pol), func(t *testing.T) {
			p, clk := testPool(t, Config{Policy: pol, SlowStart: 10 * time.Second, Backends: backends(2)})
			old := p.Backends()[0]
			if old.EffectiveWeight() != 2 {
				t.Fatal("a configured backend does not slow start")
			}
			must(t, p.Add(BackendConfig{Addr: "10.9.9.9:80", Weight: 2}))
			b := p.Lookup("10.9.9.9:80")
			for _, step := range []struct {
				advance time.Duration
				want    float64 // b's effective weight
			}{{0, 0.2}, {5 * time.Second, 1.1}, {5 * time.Second, 2}, {time.Hour, 2}} {
				clk.Advance(step.advance)
				if ew := b.EffectiveWeight(); ew < step.want-0.001 || ew > step.want+0.001 {
					t.Fatalf("effective weight %v, want %v", ew, step.want)
				}
				var got float64
				const picks = 10_000
				if pol == RoundRobin {
					n := 0
					for range picks {
						l := mustPick(t, p, nil)
						if l.Backend() == b {
							n++
						}
						l.Done()
					}
					got = float64(n) / float64(picks-n)
				} else {
					for range picks {
						mustPick(t, p, nil)
					}
					got = float64(b.Active()) / float64(old.Active())
				}
				want := step.want / 2
				t.Logf("at %v: new:old = %.4f, want %.4f", clk.Now().Sub(newFakeClock().Now()), got, want)
				if got < want*0.98 || got > want*1.02 {
					t.Errorf("new:old = %.4f, want %.4f ± 2%%", got, want)
				}
			}
			if b.flags.Load()&flagSlow != 0 {
				t.Error("the slow start flag outlived the ramp")
			}
		})
	}
}

func TestSlowStartOnEnable(t *testing.T) {
	p, clk := testPool(t, Config{SlowStart: time.Minute, Backends: backends(10)})
	a := addrs(1)[0]
	must(t, p.Disable(a))
	clk.Advance(time.Hour)
	must(t, p.Enable(a))
	if ew := p.Lookup(a).EffectiveWeight(); ew != 1 {
		t.Fatalf("effective weight after Enable %v, want 1", ew)
	}
	clk.Advance(30 * time.Second)
	if ew := p.Lookup(a).EffectiveWeight(); ew != 5.5 {
		t.Fatalf("effective weight half way %v, want 5.5", ew)
	}
}
