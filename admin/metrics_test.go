package admin

import (
	"bytes"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/wsgate/wsgate/balance"
	leak "github.com/wsgate/wsgate/internal/testutil"
)

// scrape fetches /metrics and parses it as Prometheus does.
func scrape(t *testing.T, c *client) map[string]*dto.MetricFamily {
	t.Helper()
	a := c.get("/metrics")
	expect(t, a, http.StatusOK, "GET /metrics")
	if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(a.body))
	if err != nil {
		t.Fatalf("the exposition does not parse: %v\n%s", err, a.body)
	}
	return fams
}

// value finds the sample of family name whose labels include want.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want ...string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("no metric %s", name)
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(want); i += 2 {
			found := false
			for _, l := range m.Label {
				if l.GetName() == want[i] && l.GetValue() == want[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			return m.Counter.GetValue()
		case dto.MetricType_GAUGE:
			return m.Gauge.GetValue()
		}
		t.Fatalf("%s is a %v", name, f.GetType())
	}
	t.Fatalf("no %s%v", name, want)
	return 0
}

// TestMetricsContract: the exposition parses; names, types and values come
// from the engine's and pools' readings at scrape time.
func TestMetricsContract(t *testing.T) {
	leak.CheckLeaks(t)
	fe := &fakeEngine{stats: sampleStats()}
	pool := newPool(t, "127.0.0.1:8010", "127.0.0.1:8011")
	// Two leases on the first backend: one connected and open, one failed.
	l1, err := pool.Pick(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l1.Done()
	l1.Connected()
	first := l1.Backend().Addr()
	second := "127.0.0.1:8011"
	if first == second {
		second = "127.0.0.1:8010"
	}
	l2, err := pool.Pick(nil, []*balance.Backend{pool.Lookup(first)})
	if err != nil {
		t.Fatal(err)
	}
	l2.Failed(balance.FailRefused)
	if err := pool.Drain(second, time.Hour, time.Minute); err != nil {
		t.Fatal(err)
	}
	_, c := startServer(t, Config{Engine: fe, Version: "v9", Pools: pools(NamedPool{DefaultPool, pool})})
	fams := scrape(t, c)

	types := map[string]dto.MetricType{
		"wsgate_build_info":                   dto.MetricType_GAUGE,
		"wsgate_start_time_seconds":           dto.MetricType_GAUGE,
		"wsgate_ready":                        dto.MetricType_GAUGE,
		"wsgate_node_draining":                dto.MetricType_GAUGE,
		"wsgate_connections_accepted_total":   dto.MetricType_COUNTER,
		"wsgate_accept_errors_total":          dto.MetricType_COUNTER,
		"wsgate_fd_limit_hits_total":          dto.MetricType_COUNTER,
		"wsgate_heads_pending":                dto.MetricType_GAUGE,
		"wsgate_handshakes_total":             dto.MetricType_COUNTER,
		"wsgate_handshake_rejects_total":      dto.MetricType_COUNTER,
		"wsgate_backend_dial_failures_total":  dto.MetricType_COUNTER,
		"wsgate_tunnels_active":               dto.MetricType_GAUGE,
		"wsgate_tunnel_closes_total":          dto.MetricType_COUNTER,
		"wsgate_websocket_closes_total":       dto.MetricType_COUNTER,
		"wsgate_keepalive_pings_total":        dto.MetricType_COUNTER,
		"wsgate_tls_handshake_failures_total": dto.MetricType_COUNTER,
		"wsgate_tls_connections":              dto.MetricType_GAUGE,
		"wsgate_connections_admitted":         dto.MetricType_GAUGE,
		"wsgate_bytes_total":                  dto.MetricType_COUNTER,
		"wsgate_pipes_in_use":                 dto.MetricType_GAUGE,
		"wsgate_parked_bytes":                 dto.MetricType_GAUGE,
		"wsgate_io_uring":                     dto.MetricType_GAUGE,
		"wsgate_io_batches_total":             dto.MetricType_COUNTER,
		"wsgate_io_batched_calls_total":       dto.MetricType_COUNTER,
		"wsgate_tunnel_duration_seconds":      dto.MetricType_HISTOGRAM,
		"wsgate_handshake_duration_seconds":   dto.MetricType_HISTOGRAM,
		"wsgate_tunnels_total":                dto.MetricType_COUNTER,
		"wsgate_backend_active":               dto.MetricType_GAUGE,
		"wsgate_backend_up":                   dto.MetricType_GAUGE,
		"wsgate_backend_state":                dto.MetricType_GAUGE,
		"wsgate_backend_weight":               dto.MetricType_GAUGE,
		"wsgate_backend_max_conns":            dto.MetricType_GAUGE,
		"wsgate_backend_drain_progress_ratio": dto.MetricType_GAUGE,
		"go_goroutines":                       dto.MetricType_GAUGE,
		"process_open_fds":                    dto.MetricType_GAUGE,
	}
	for name, typ := range types {
		f := fams[name]
		if f == nil {
			t.Errorf("no metric %s", name)
			continue
		}
		if f.GetType() != typ {
			t.Errorf("%s is a %v, want %v", name, f.GetType(), typ)
		}
		if f.GetHelp() == "" {
			t.Errorf("%s has no help", name)
		}
	}

	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"wsgate_build_info", []string{"version", "v9"}, 1},
		{"wsgate_ready", nil, 1},
		{"wsgate_tunnels_active", nil, 7},
		{"wsgate_connections_accepted_total", nil, 100},
		{"wsgate_accept_errors_total", nil, 3},
		{"wsgate_fd_limit_hits_total", nil, 1},
		{"wsgate_heads_pending", nil, 2},
		{"wsgate_handshakes_total", []string{"result", "upgraded"}, 70},
		{"wsgate_handshakes_total", []string{"result", "plain"}, 5},
		{"wsgate_handshake_rejects_total", []string{"reason", "bad_host"}, 4},
		{"wsgate_handshake_rejects_total", []string{"reason", "obs_fold"}, 0},
		{"wsgate_backend_dial_failures_total", []string{"kind", "refused"}, 2},
		{"wsgate_tunnel_closes_total", []string{"cause", "drain"}, 3},
		{"wsgate_websocket_closes_total", []string{"cause", "drain", "how", "graceful"}, 2},
		{"wsgate_websocket_closes_total", []string{"cause", "drain", "how", "plain"}, 1},
		{"wsgate_keepalive_pings_total", nil, 9},
		{"wsgate_tls_handshake_failures_total", nil, 6},
		{"wsgate_tls_connections", nil, 4},
		{"wsgate_connections_admitted", nil, 8},
		{"wsgate_bytes_total", []string{"direction", "up"}, 1000},
		{"wsgate_bytes_total", []string{"direction", "down"}, 2000},
		{"wsgate_pipes_in_use", nil, 1},
		{"wsgate_parked_bytes", nil, 10},
		{"wsgate_io_uring", nil, 1},
		{"wsgate_io_batches_total", nil, 11},
		{"wsgate_io_batched_calls_total", nil, 300},
		{"wsgate_tunnels_total", []string{"backend", first, "result", "ok"}, 1},
		{"wsgate_tunnels_total", []string{"backend", second, "result", "failed"}, 1},
		{"wsgate_tunnels_total", []string{"backend", second, "result", "ok"}, 0},
		{"wsgate_backend_active", []string{"pool", "default", "backend", first}, 1},
		{"wsgate_backend_up", []string{"backend", first}, 1},
		{"wsgate_backend_up", []string{"backend", second}, 0},
		{"wsgate_backend_state", []string{"backend", second, "state", "draining"}, 1},
		{"wsgate_backend_state", []string{"backend", second, "state", "up"}, 0},
		{"wsgate_backend_weight", []string{"backend", first}, 1},
		{"wsgate_backend_drain_progress_ratio", []string{"backend", second}, 1},
	}
	for _, ck := range checks {
		if got := value(t, fams, ck.name, ck.labels...); got != ck.want {
			t.Errorf("%s%v = %v, want %v", ck.name, ck.labels, got, ck.want)
		}
	}
	if n := len(fams["wsgate_backend_drain_progress_ratio"].Metric); n != 1 {
		t.Errorf("drain progress for %d backends, want only the draining one", n)
	}

	// Histograms: the engine's per-bucket counts become cumulative ones
	// (the parser adds the +Inf bucket from the count).
	h := fams["wsgate_tunnel_duration_seconds"].Metric[0].Histogram
	if h.GetSampleCount() != 12 || h.GetSampleSum() != 99.5 || len(h.Bucket) != 3 ||
		h.Bucket[0].GetUpperBound() != 1 || h.Bucket[0].GetCumulativeCount() != 3 ||
		h.Bucket[1].GetUpperBound() != 10 || h.Bucket[1].GetCumulativeCount() != 7 ||
		!math.IsInf(h.Bucket[2].GetUpperBound(), 1) || h.Bucket[2].GetCumulativeCount() != 12 {
		t.Errorf("tunnel duration histogram %v", h)
	}

	// The node drain shows at once.
	expect(t, c.post("/drain?deadline=0"), http.StatusOK, "drain")
	fams = scrape(t, c)
	if value(t, fams, "wsgate_ready") != 0 || value(t, fams, "wsgate_node_draining") != 1 {
		t.Error("ready/node_draining did not follow the node drain")
	}
}

// TestMetricsLint runs Prometheus's own linter (promlint) over wsgate's
// metrics: naming (units, _total on counters), help texts, label use.
func TestMetricsLint(t *testing.T) {
	leak.CheckLeaks(t)
	fe := &fakeEngine{stats: sampleStats()}
	s, err := New(Config{Engine: fe, Pools: pools(NamedPool{DefaultPool, newPool(t, "127.0.0.1:8010")})})
	if err != nil {
		t.Fatal(err)
	}
	problems, err := testutil.CollectAndLint(newMetricsCollector(s))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

// TestMetricsWithoutHistograms: an engine that has not filled its
// histograms (no bounds yet) still scrapes cleanly.
func TestMetricsWithoutHistograms(t *testing.T) {
	leak.CheckLeaks(t)
	_, c := startServer(t, Config{})
	fams := scrape(t, c)
	if fams["wsgate_tunnel_duration_seconds"] != nil {
		t.Error("a histogram without buckets was exposed")
	}
	if value(t, fams, "wsgate_tunnels_active") != 0 {
		t.Error("tunnels_active")
	}
}
