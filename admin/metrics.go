package admin

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wsgate/wsgate/engine"
)

// GET /metrics: the Prometheus text format. Nothing here is updated as
// traffic flows: a Collector reads the engine's per-loop counters
// (engine.Stats) and the pools' snapshots when Prometheus scrapes, so the
// data path keeps its single-writer atomics and no lock.

// metricsCollector turns one reading of the engine and pools into
// Prometheus metrics.
type metricsCollector struct {
	s *Server

	buildInfo, startTime, ready, nodeDraining *prometheus.Desc

	accepted, acceptErrors, fdLimitHits, headsPending *prometheus.Desc
	handshakes, rejects, dialFailures                 *prometheus.Desc
	tunnelsActive, closes, bytes                      *prometheus.Desc
	wsCloses, pings, tlsFailures, tlsConns, held      *prometheus.Desc
	pipesInUse, parkedBytes                           *prometheus.Desc
	ioUring, ioBatches, ioBatchedCalls                *prometheus.Desc
	tunnelDuration, handshakeDuration                 *prometheus.Desc

	tunnels, backendActive, backendUp, backendState *prometheus.Desc
	backendWeight, backendMaxConns, backendDrain    *prometheus.Desc
}

// backendStates are the states wsgate_backend_state reports, one series
// each, as Prometheus does for enums (1 for the current one).
var backendStates = []string{"up", "draining", "down", "disabled"}

func newMetricsCollector(s *Server) *metricsCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("wsgate_"+name, help, labels, nil)
	}
	be := []string{"pool", "backend"}
	return &metricsCollector{
		s:            s,
		buildInfo:    d("build_info", "Always 1; the version is a label.", "version"),
		startTime:    d("start_time_seconds", "When the admin server (and the proxy with it) started, in Unix seconds."),
		ready:        d("ready", "1 when /readyz answers 200: accepting and not draining."),
		nodeDraining: d("node_draining", "1 while the whole node drains."),

		accepted:     d("connections_accepted_total", "Client connections accepted."),
		acceptErrors: d("accept_errors_total", "accept(2) calls that failed."),
		fdLimitHits:  d("fd_limit_hits_total", "Times a socket or pipe could not be opened for lack of file descriptors (EMFILE/ENFILE)."),
		headsPending: d("heads_pending", "Connections still sending their request head."),
		handshakes:   d("handshakes_total", "Requests answered by a backend: upgraded (tunnelled) or plain.", "result"),
		rejects:      d("handshake_rejects_total", "Requests wsgate refused itself, by reason.", "reason"),
		dialFailures: d("backend_dial_failures_total", "Failed backend dials or upgrades, by kind, every backend together.", "kind"),

		tunnelsActive: d("tunnels_active", "Tunnels open now."),
		closes:        d("tunnel_closes_total", "Connections closed by the engine, by cause.", "cause"),
		wsCloses: d("websocket_closes_total", "WebSocket tunnels wsgate ended itself, by cause and how: graceful (Close frames both ways) or plain (no frame boundary, or not a WebSocket tunnel, in time).",
			"cause", "how"),
		pings:       d("keepalive_pings_total", "Keepalive Pings sent to clients of idle WebSocket tunnels."),
		tlsFailures: d("tls_handshake_failures_total", "TLS handshakes (wss listeners) that failed or timed out."),
		tlsConns:    d("tls_connections", "TLS connections past their handshake."),
		held:        d("connections_admitted", "Connections counted by max_tunnels and max_tunnels_per_ip now."),
		bytes:       d("bytes_total", "Tunnel bytes moved: up is client to backend, down backend to client.", "direction"),
		pipesInUse:  d("pipes_in_use", "Pipes lent from the pool to directions with bytes in flight."),
		parkedBytes: d("parked_bytes", "Bytes parked in chunks after partial writes."),
		ioUring:     d("io_uring", "1 when the loops batch their socket calls with io_uring, 0 when they make plain system calls."),
		ioBatches:   d("io_batches_total", "Batches of socket calls the loops made (one per loop iteration with calls)."),
		ioBatchedCalls: d("io_batched_calls_total",
			"Socket calls (recv, send, close) made in those batches; calls per batch is how much each io_uring_enter saved."),
		tunnelDuration: d("tunnel_duration_seconds",
			"How long tunnels lasted, from the 101 to the close."),
		handshakeDuration: d("handshake_duration_seconds",
			"From accept to the backend's answer (or wsgate's own)."),

		tunnels:         d("tunnels_total", "Requests sent to a backend (tunnels and plain requests), by result: ok, or failed (dial or upgrade failed).", "pool", "backend", "result"),
		backendActive:   d("backend_active", "Tunnels open (or being dialled) to the backend.", be...),
		backendUp:       d("backend_up", "1 when the backend takes new tunnels (state up), else 0.", be...),
		backendState:    d("backend_state", "1 for the backend's current state.", "pool", "backend", "state"),
		backendWeight:   d("backend_weight", "The backend's configured weight.", be...),
		backendMaxConns: d("backend_max_conns", "The backend's max_conns; 0 is unlimited.", be...),
		backendDrain:    d("backend_drain_progress_ratio", "Share of the tunnels open when the drain started that have ended; only while draining.", be...),
	}
}

func (c *metricsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.buildInfo, c.startTime, c.ready, c.nodeDraining,
		c.accepted, c.acceptErrors, c.fdLimitHits, c.headsPending,
		c.handshakes, c.rejects, c.dialFailures,
		c.tunnelsActive, c.closes, c.bytes, c.pipesInUse, c.parkedBytes,
		c.ioUring, c.ioBatches, c.ioBatchedCalls,
		c.wsCloses, c.pings, c.tlsFailures, c.tlsConns, c.held,
		c.tunnelDuration, c.handshakeDuration,
		c.tunnels, c.backendActive, c.backendUp, c.backendState,
		c.backendWeight, c.backendMaxConns, c.backendDrain,
	} {
		ch <- d
	}
}

func (c *metricsCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	es := s.cfg.Engine.Stats()
	node := s.node.status(es.TunnelsActive)
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}

	gauge(c.buildInfo, 1, s.cfg.Version)
	gauge(c.startTime, float64(s.started.UnixNano())/1e9)
	gauge(c.ready, b2f(node.Ready))
	gauge(c.nodeDraining, b2f(node.Draining))

	counter(c.accepted, float64(es.Accepted))
	counter(c.acceptErrors, float64(es.AcceptErrors))
	counter(c.fdLimitHits, float64(es.FDLimitHits))
	gauge(c.headsPending, float64(es.HeadsPending))
	counter(c.handshakes, float64(es.HandshakesOK), "upgraded")
	counter(c.handshakes, float64(es.PlainOK), "plain")
	for reason, n := range es.Rejects {
		counter(c.rejects, float64(n), reason)
	}
	for kind, n := range es.DialFailures {
		counter(c.dialFailures, float64(n), kind)
	}

	gauge(c.tunnelsActive, float64(es.TunnelsActive))
	for cause, n := range es.Closes {
		counter(c.closes, float64(n), cause)
	}
	for cause, n := range es.GracefulCloses {
		counter(c.wsCloses, float64(n), cause, "graceful")
	}
	for cause, n := range es.PlainCloses {
		counter(c.wsCloses, float64(n), cause, "plain")
	}
	counter(c.pings, float64(es.KeepalivePings))
	counter(c.tlsFailures, float64(es.TLSFailures))
	gauge(c.tlsConns, float64(es.TLSConnections))
	gauge(c.held, float64(es.Held))
	counter(c.bytes, float64(es.BytesUp), "up")
	counter(c.bytes, float64(es.BytesDown), "down")
	gauge(c.pipesInUse, float64(es.PipesInUse))
	gauge(c.parkedBytes, float64(es.ParkedBytes))
	uring := 0.0
	if es.IOUring {
		uring = 1
	}
	gauge(c.ioUring, uring)
	counter(c.ioBatches, float64(es.Batches))
	counter(c.ioBatchedCalls, float64(es.BatchedCalls))
	if h, ok := constHistogram(c.tunnelDuration, es.TunnelDuration); ok {
		ch <- h
	}
	if h, ok := constHistogram(c.handshakeDuration, es.HandshakeDuration); ok {
		ch <- h
	}

	for _, np := range s.cfg.Pools() {
		for _, b := range np.Pool.Snapshot() {
			p, a := np.Name, b.Addr
			counter(c.tunnels, float64(max(b.Total-b.Failures, 0)), p, a, "ok")
			counter(c.tunnels, float64(b.Failures), p, a, "failed")
			gauge(c.backendActive, float64(b.Active), p, a)
			gauge(c.backendUp, b2f(b.State == "up"), p, a)
			for _, st := range backendStates {
				gauge(c.backendState, b2f(b.State == st), p, a, st)
			}
			gauge(c.backendWeight, float64(b.Weight), p, a)
			gauge(c.backendMaxConns, float64(b.MaxConns), p, a)
			if d := b.Drain; d != nil {
				gauge(c.backendDrain, progress(d.ActiveAtStart, d.Active), p, a)
			}
		}
	}
}

// constHistogram makes the engine's fixed buckets (counts per bucket, the
// last one above every bound) a Prometheus histogram (cumulative).
func constHistogram(d *prometheus.Desc, h engine.Histogram) (prometheus.Metric, bool) {
	if len(h.Bounds) == 0 {
		return nil, false
	}
	buckets := make(map[float64]uint64, len(h.Bounds))
	var cum uint64
	for k, le := range h.Bounds {
		if k < len(h.Counts) {
			cum += h.Counts[k]
		}
		buckets[le] = cum
	}
	m, err := prometheus.NewConstHistogram(d, h.Count, h.Sum, buckets)
	return m, err == nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// newMetricsHandler registers wsgate's collector with the Go runtime and
// process collectors on a registry of the server's own (no global state:
// tests run several servers side by side).
func newMetricsHandler(s *Server) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		newMetricsCollector(s),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorHandling:       promhttp.ContinueOnError,
		ErrorLog:            slogPrinter{s},
		MaxRequestsInFlight: 4,
	})
}

type slogPrinter struct{ s *Server }

func (p slogPrinter) Println(v ...any) { p.s.log.Warn("metrics", "err", v) }

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	s.metrics.ServeHTTP(w, r)
}
