package admin

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/testutil"
)

// TestCloseBackendTunnelsContract: the rate reaches the engine; a bad rate
// is a 400 naming the parameter, an unknown backend a 404.
func TestCloseBackendTunnelsContract(t *testing.T) {
	testutil.CheckLeaks(t)
	fe := &fakeEngine{}
	_, c := startServer(t, Config{Engine: fe, Pools: pools(NamedPool{DefaultPool, newPool(t, "127.0.0.1:8010")})})
	expect(t, c.post("/backends/127.0.0.1:8010/close?rate=25"), http.StatusAccepted, "close at 25/s")
	expect(t, c.post("/backends/127.0.0.1:8010/close"), http.StatusAccepted, "close at the default rate")
	fe.mu.Lock()
	calls := slices.Clone(fe.closes)
	fe.mu.Unlock()
	if len(calls) != 2 || calls[0] != (closeCall{"127.0.0.1:8010", 25}) || calls[1].rate != 10 {
		t.Fatalf("engine calls %+v", calls)
	}
	for _, bad := range []string{"0", "-1", "fast", "NaN"} {
		a := c.post("/backends/127.0.0.1:8010/close?rate=" + bad)
		expect(t, a, http.StatusBadRequest, "rate="+bad)
		if e := a.apiErr(t); e.Parameter != "rate" {
			t.Errorf("rate=%s: error does not name the parameter: %+v", bad, e)
		}
	}
	expect(t, c.post("/backends/127.0.0.1:1/close?rate=5"), http.StatusNotFound, "unknown backend")
}

// TestCloseBackendTunnelsEndToEnd: 20 tunnels on backend a closed at 10/s
// end with Close 1001 over about two seconds, not at once; b's tunnels
// stay, and a keeps taking new tunnels (it is not drained).
func TestCloseBackendTunnelsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("2 s of closes")
	}
	warmUp(t)
	testutil.CheckLeaks(t)
	p := startProxy(t, 2, Config{})
	var all []*tunnel
	for range 40 {
		tn := p.dial(t)
		tn.watch()
		all = append(all, tn)
	}
	groups := byBackend(all)
	a, b := groups["a"], groups["b"]
	if len(a) != 20 || len(b) != 20 {
		t.Fatalf("least_conn spread 40 tunnels as a %d, b %d", len(a), len(b))
	}
	start := time.Now()
	expect(t, p.api.post("/backends/"+p.backends[0].Addr()+"/close?rate=10"), http.StatusAccepted, "close a's tunnels")
	deadline := time.Now().Add(10 * time.Second)
	for _, tn := range a {
		for tn.closedAt.Load() == 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	var at []time.Duration
	for i, tn := range a {
		ns := tn.closedAt.Load()
		if ns == 0 {
			t.Fatalf("a's tunnel %d still open 10 s after the call", i)
		}
		if code := tn.code.Load(); code != 1001 {
			t.Errorf("a's tunnel %d closed with %d, want 1001", i, code)
		}
		at = append(at, time.Unix(0, ns).Sub(start))
	}
	slices.Sort(at)
	// 20 tunnels at 10/s: spread over about 2 s, the first near the start.
	if spanned := at[len(at)-1] - at[0]; spanned < time.Second {
		t.Errorf("closes spanned %v (%v .. %v): at 10/s 20 closes take about 2 s", spanned, at[0], at[len(at)-1])
	}
	if at[len(at)-1] > 6*time.Second {
		t.Errorf("last close %v after the call; want about 2 s", at[len(at)-1])
	}
	for i, tn := range b {
		if tn.closedAt.Load() != 0 {
			t.Errorf("b's tunnel %d was closed", i)
		}
	}
	// a was not drained: it still takes new tunnels.
	seen := map[string]bool{}
	for range 4 {
		tn := p.dial(t)
		seen[tn.backend] = true
	}
	if !seen["a"] {
		t.Errorf("no new tunnel went to a after closing its tunnels: %v", seen)
	}
}
