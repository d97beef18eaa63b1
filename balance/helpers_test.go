package balance

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/testutil"
)

// fakeClock is the pool clock in tests that step through fail_timeout and
// slow start.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// addrs makes n distinct backend addresses (not listening).
func addrs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("10.0.%d.%d:8080", i/250, i%250+1)
	}
	return out
}

func backends(ws ...int) []BackendConfig {
	as := addrs(len(ws))
	out := make([]BackendConfig, len(ws))
	for i, w := range ws {
		out[i] = BackendConfig{Addr: as[i], Weight: w}
	}
	return out
}

func equal(n int) []BackendConfig {
	ws := make([]int, n)
	for i := range ws {
		ws[i] = 1
	}
	return backends(ws...)
}

// testPool makes a pool on a fake clock, checks for leaks and closes it.
func testPool(t testing.TB, cfg Config) (*Pool, *fakeClock) {
	t.Helper()
	testutil.CheckLeaks(t)
	clk := newFakeClock()
	p, err := newPool(cfg, clk.Now)
	if err != nil {
		t.Fatalf("newPool: %v", err)
	}
	t.Cleanup(p.Close)
	return p, clk
}

func mustPick(t testing.TB, p *Pool, key []byte, exclude ...*Backend) Lease {
	l, err := p.Pick(key, exclude)
	if err != nil {
		t.Helper() // only here: it costs more than the Pick
		t.Fatalf("Pick: %v", err)
	}
	return l
}

// activeOf returns every backend's active count by address.
func activeOf(p *Pool) map[string]int64 {
	m := map[string]int64{}
	for _, b := range p.Backends() {
		m[b.Addr()] = b.Active()
	}
	return m
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// pickOnly picks with every backend but addr excluded.
func pickOnly(t testing.TB, p *Pool, addr string) Lease {
	t.Helper()
	var others []*Backend
	for _, b := range p.Backends() {
		if b.Addr() != addr {
			others = append(others, b)
		}
	}
	l := mustPick(t, p, nil, others...)
	if l.Backend().Addr() != addr {
		t.Fatalf("pickOnly(%s) picked %s", addr, l.Backend().Addr())
	}
	return l
}
