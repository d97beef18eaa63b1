package admin

import (
	"net/http"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/wsgate/wsgate/engine"
	"github.com/wsgate/wsgate/internal/testutil"
)

func sampleStats() engine.Stats {
	return engine.Stats{
		TunnelsActive: 7, TunnelsTotal: 70, HeadsPending: 2,
		Accepted: 100, AcceptErrors: 3, FDLimitHits: 1,
		HandshakesOK: 70, PlainOK: 5,
		Rejects:      map[string]uint64{"bad_host": 4, "obs_fold": 0, "head_too_large": 1},
		DialFailures: map[string]uint64{"refused": 2, "timeout": 0},
		Closes:       map[string]uint64{"done": 60, "drain": 3},
		BytesUp:      1000, BytesDown: 2000, PipesInUse: 1, ParkedBytes: 10,
		IOUring: true, Batches: 11, BatchedCalls: 300,
		GracefulCloses: map[string]uint64{"drain": 2}, PlainCloses: map[string]uint64{"drain": 1},
		KeepalivePings: 9, TLSFailures: 6, TLSConnections: 4, Held: 8,
		TunnelDuration:    engine.Histogram{Bounds: []float64{1, 10}, Counts: []uint64{3, 4, 5}, Count: 12, Sum: 99.5},
		HandshakeDuration: engine.Histogram{Bounds: []float64{0.001, 0.01}, Counts: []uint64{50, 20, 5}, Count: 75, Sum: 0.4},
	}
}

// TestStatsContract: GET /stats carries what the issue lists, under the
// names the dashboard and ctl read.
func TestStatsContract(t *testing.T) {
	testutil.CheckLeaks(t)
	fe := &fakeEngine{stats: sampleStats()}
	pool := newPool(t, "127.0.0.1:8010", "127.0.0.1:8011")
	if err := pool.Drain("127.0.0.1:8011", time.Hour, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	_, c := startServer(t, Config{Engine: fe, Version: "v1.2.3", Token: "t", Pools: pools(NamedPool{DefaultPool, pool})})
	a := c.get("/stats")
	expect(t, a, http.StatusOK, "GET /stats")
	if ct := a.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}

	// The key names are the contract: check them on the raw JSON.
	var raw map[string]any
	a.json(t, &raw)
	want := []string{"version", "time", "started", "uptime_seconds", "token_required", "node", "tunnels", "connections",
		"handshakes", "dial_failures", "closes", "graceful_closes", "plain_closes", "keepalive_pings", "tls",
		"bytes", "pipes_in_use", "parked_bytes", "io", "tunnel_duration", "handshake_duration", "backends"}
	if got := keys(raw); !slices.Equal(got, sorted(want)) {
		t.Errorf("top-level keys %v, want %v", got, sorted(want))
	}
	b0 := raw["backends"].([]any)[0].(map[string]any)
	if got, want := keys(b0), sorted([]string{"pool", "address", "state", "weight", "effective_weight", "max_conns", "active", "total", "failures", "healthy"}); !slices.Equal(got, want) {
		t.Errorf("backend keys %v, want %v", got, want)
	}
	d1 := raw["backends"].([]any)[1].(map[string]any)["drain"].(map[string]any)
	if got, want := keys(d1), sorted([]string{"since", "deadline", "spread_seconds", "active_at_start", "active", "progress", "removing"}); !slices.Equal(got, want) {
		t.Errorf("drain keys %v, want %v", got, want)
	}

	var st Stats
	a.json(t, &st)
	if st.Version != "v1.2.3" || !st.TokenRequired || st.UptimeSeconds <= 0 || st.Time.IsZero() || st.Started.After(st.Time) {
		t.Errorf("header fields: %+v", st)
	}
	if st.Tunnels != (TunnelStats{Active: 7, Total: 70}) ||
		st.Connections != (ConnectionStats{Accepted: 100, AcceptErrors: 3, FDLimitHits: 1, HeadsPending: 2}) ||
		st.Bytes != (ByteStats{Up: 1000, Down: 2000}) || st.PipesInUse != 1 || st.ParkedBytes != 10 ||
		st.IO != (IOStats{IOUring: true, Batches: 11, BatchedCalls: 300}) {
		t.Errorf("counters: %+v", st)
	}
	if h := st.Handshakes; h.OK != 70 || h.PlainOK != 5 || h.RejectedTotal != 5 || h.Rejected["bad_host"] != 4 || len(h.Rejected) != 3 {
		t.Errorf("handshakes: %+v", h)
	}
	if st.DialFailures["refused"] != 2 || st.Closes["drain"] != 3 {
		t.Errorf("dial failures %v, closes %v", st.DialFailures, st.Closes)
	}
	// Buckets are cumulative, as in Prometheus; the +Inf one is Count.
	wantH := Histogram{Count: 12, SumSeconds: 99.5, Buckets: []Bucket{{1, 3}, {10, 7}}}
	if !slices.Equal(st.TunnelDuration.Buckets, wantH.Buckets) || st.TunnelDuration.Count != 12 || st.TunnelDuration.SumSeconds != 99.5 {
		t.Errorf("tunnel duration %+v, want %+v", st.TunnelDuration, wantH)
	}
	if len(st.Backends) != 2 {
		t.Fatalf("backends: %+v", st.Backends)
	}
	up, dr := st.Backends[0], st.Backends[1]
	if up.Pool != DefaultPool || up.Address != "127.0.0.1:8010" || up.State != "up" || up.Weight != 1 || up.Drain != nil || !up.Healthy {
		t.Errorf("backend 0: %+v", up)
	}
	if dr.State != "draining" || dr.Drain == nil || dr.Drain.Deadline == nil || dr.Drain.SpreadSeconds != 30 || dr.Drain.Progress != 1 {
		t.Errorf("draining backend: %+v / %+v", dr, dr.Drain)
	}
	if st.Node != (NodeStatus{Ready: true}) {
		t.Errorf("node: %+v", st.Node)
	}
}

// TestStatsEmpty: an engine with no counters yet (nil maps) still gives
// objects, not nulls, so clients need no special case.
func TestStatsEmpty(t *testing.T) {
	testutil.CheckLeaks(t)
	_, c := startServer(t, Config{Pools: pools()})
	var raw map[string]any
	c.get("/stats").json(t, &raw)
	for _, k := range []string{"dial_failures", "closes", "backends"} {
		if raw[k] == nil {
			t.Errorf("%s is null", k)
		}
	}
	if raw["handshakes"].(map[string]any)["rejected"] == nil {
		t.Error("handshakes.rejected is null")
	}
}

func TestHealthzReadyz(t *testing.T) {
	testutil.CheckLeaks(t)
	fe := &fakeEngine{}
	s, c := startServer(t, Config{Engine: fe})
	expect(t, c.get("/healthz"), http.StatusOK, "healthz")
	var r struct {
		Ready  bool
		Reason string
	}
	a := c.get("/readyz")
	expect(t, a, http.StatusOK, "readyz")
	a.json(t, &r)
	if !r.Ready {
		t.Fatalf("readyz: %s", a.body)
	}
	// Paused by someone else (a graceful stop): not ready.
	fe.Pause()
	a = c.get("/readyz")
	expect(t, a, http.StatusServiceUnavailable, "readyz while paused")
	if a.json(t, &r); r.Ready || r.Reason != "paused" {
		t.Fatalf("readyz while paused: %s", a.body)
	}
	fe.Resume()
	s.Stopping()
	a = c.get("/readyz")
	expect(t, a, http.StatusServiceUnavailable, "readyz while stopping")
	if a.json(t, &r); r.Reason != "stopping" {
		t.Fatalf("readyz while stopping: %s", a.body)
	}
	expect(t, c.get("/healthz"), http.StatusOK, "healthz while stopping")
	expect(t, c.post("/undrain"), http.StatusConflict, "undrain while stopping")
	expect(t, c.post("/drain"), http.StatusConflict, "drain while stopping")
}

// TestHistory: the sampler records a reading at start and every second;
// /stats/history returns them oldest first.
func TestHistory(t *testing.T) {
	testutil.CheckLeaks(t)
	fe := &fakeEngine{stats: sampleStats()}
	_, c := startServer(t, Config{Engine: fe})
	var h History
	waitFor(t, "a first sample", func() bool {
		c.get("/stats/history").json(t, &h)
		return len(h.Samples) > 0
	})
	s0 := h.Samples[0]
	if h.IntervalSeconds != 1 || s0.Active != 7 || s0.Handshakes != 75 || s0.Rejects != 5 || s0.BytesUp != 1000 || s0.BytesDown != 2000 || s0.T <= 0 {
		t.Fatalf("history %+v", h)
	}
}

func TestHistoryRing(t *testing.T) {
	var h history
	for i := range historyLen + 5 {
		h.add(Sample{T: int64(i)})
	}
	got := h.samples()
	if len(got) != historyLen || got[0].T != 5 || got[len(got)-1].T != historyLen+4 {
		t.Fatalf("ring: %d samples from %d to %d", len(got), got[0].T, got[len(got)-1].T)
	}
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}
