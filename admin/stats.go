package admin

import (
	"net/http"
	"time"

	"github.com/wsgate/wsgate/balance"
	"github.com/wsgate/wsgate/engine"
)

// Stats is GET /stats: everything the node holds, in one reading. The
// field names are the JSON API; `wsgate ctl` and the dashboard read them.
type Stats struct {
	Version       string    `json:"version"`
	Time          time.Time `json:"time"` // when this reading was taken
	Started       time.Time `json:"started"`
	UptimeSeconds float64   `json:"uptime_seconds"`
	// TokenRequired tells clients (the dashboard) that mutations need a
	// bearer token.
	TokenRequired bool `json:"token_required"`

	Node              NodeStatus        `json:"node"`
	Tunnels           TunnelStats       `json:"tunnels"`
	Connections       ConnectionStats   `json:"connections"`
	Handshakes        HandshakeStats    `json:"handshakes"`
	DialFailures      map[string]uint64 `json:"dial_failures"`   // by kind: refused, timeout, error, response
	Closes            map[string]uint64 `json:"closes"`          // by cause, engine.CloseCauses()
	GracefulCloses    map[string]uint64 `json:"graceful_closes"` // WebSocket tunnels ended with Close frames, by cause
	PlainCloses       map[string]uint64 `json:"plain_closes"`    // ended by wsgate without them, by cause
	KeepalivePings    uint64            `json:"keepalive_pings"`
	TLS               TLSStats          `json:"tls"`
	Bytes             ByteStats         `json:"bytes"`
	PipesInUse        int64             `json:"pipes_in_use"`
	ParkedBytes       int64             `json:"parked_bytes"`
	IO                IOStats           `json:"io"`
	TunnelDuration    Histogram         `json:"tunnel_duration"`
	HandshakeDuration Histogram         `json:"handshake_duration"`
	Backends          []Backend         `json:"backends"`
}

// IOStats says how the loops make their socket calls.
type IOStats struct {
	IOUring      bool   `json:"io_uring"`      // batched with io_uring (else plain system calls)
	Batches      uint64 `json:"batches"`       // batches made
	BatchedCalls uint64 `json:"batched_calls"` // recvs, sends and closes in them
}

// TLSStats counts wss connections.
type TLSStats struct {
	Connections       int64  `json:"connections"`        // past their handshake
	HandshakeFailures uint64 `json:"handshake_failures"` // failed or timed out
}

// TunnelStats counts upgraded connections.
type TunnelStats struct {
	Active int64  `json:"active"`
	Total  uint64 `json:"total"`
}

// ConnectionStats counts client connections before they are tunnels.
type ConnectionStats struct {
	Accepted     uint64 `json:"accepted"`
	AcceptErrors uint64 `json:"accept_errors"`
	FDLimitHits  uint64 `json:"fd_limit_hits"` // EMFILE/ENFILE seen
	HeadsPending int64  `json:"heads_pending"` // still sending their request head
}

// HandshakeStats counts requests by outcome.
type HandshakeStats struct {
	OK            uint64            `json:"ok"`       // upgrades answered 101 and tunnelled
	PlainOK       uint64            `json:"plain_ok"` // plain requests answered by a backend
	RejectedTotal uint64            `json:"rejected_total"`
	Rejected      map[string]uint64 `json:"rejected"` // by reason, every reason listed
}

// ByteStats counts tunnel bytes each way.
type ByteStats struct {
	Up   uint64 `json:"up"`   // client → backend
	Down uint64 `json:"down"` // backend → client
}

// Histogram is a latency histogram with cumulative buckets, as Prometheus
// has them; the +Inf bucket is Count.
type Histogram struct {
	Count      uint64   `json:"count"`
	SumSeconds float64  `json:"sum_seconds"`
	Buckets    []Bucket `json:"buckets"`
}

// Bucket is how many observations took at most LE seconds.
type Bucket struct {
	LE    float64 `json:"le"`
	Count uint64  `json:"count"`
}

// Backend is one backend in /stats and /backends.
type Backend struct {
	Pool            string     `json:"pool"`
	Address         string     `json:"address"`
	State           string     `json:"state"` // up, draining, down, disabled
	Weight          int        `json:"weight"`
	EffectiveWeight float64    `json:"effective_weight"` // below weight during slow start
	MaxConns        int        `json:"max_conns"`        // 0: unlimited
	Active          int64      `json:"active"`
	Total           int64      `json:"total"`
	Failures        int64      `json:"failures"`
	Healthy         bool       `json:"healthy"` // active checks' verdict; true when off
	LastCheck       *time.Time `json:"last_check,omitempty"`
	LastError       string     `json:"last_error,omitempty"`
	RetryAt         *time.Time `json:"retry_at,omitempty"` // passively down: next trial
	Drain           *Drain     `json:"drain,omitempty"`
}

// Drain is a backend's drain in progress.
type Drain struct {
	Since         time.Time  `json:"since"`
	Deadline      *time.Time `json:"deadline,omitempty"` // none: tunnels end on their own
	SpreadSeconds float64    `json:"spread_seconds"`
	ActiveAtStart int64      `json:"active_at_start"`
	Active        int64      `json:"active"`
	// Progress is the share of the tunnels open when the drain started
	// that have ended, 0 to 1.
	Progress float64 `json:"progress"`
	Removing bool    `json:"removing"` // leaves the pool when active reaches 0
}

// NodeStatus is the node's own drain state.
type NodeStatus struct {
	Ready    bool       `json:"ready"`
	Reason   string     `json:"reason,omitempty"` // why not ready: draining, paused, stopping
	Paused   bool       `json:"paused"`           // not accepting connections
	Draining bool       `json:"draining"`
	Drain    *NodeDrain `json:"drain,omitempty"`
}

// NodeDrain is a node drain in progress.
type NodeDrain struct {
	Since         time.Time  `json:"since"`
	Deadline      *time.Time `json:"deadline,omitempty"`
	SpreadSeconds float64    `json:"spread_seconds"`
	ActiveAtStart int64      `json:"active_at_start"`
	Active        int64      `json:"active"`
	Progress      float64    `json:"progress"`
	// Closing: the deadline has passed and the remaining tunnels are
	// being closed over the spread.
	Closing bool `json:"closing"`
}

// stats takes one reading of the engine and every pool.
func (s *Server) stats() Stats {
	es := s.cfg.Engine.Stats()
	now := time.Now()
	st := Stats{
		Version:       s.cfg.Version,
		Time:          now.UTC(),
		Started:       s.started.UTC(),
		UptimeSeconds: now.Sub(s.started).Seconds(),
		TokenRequired: s.hasToken,
		Tunnels:       TunnelStats{Active: es.TunnelsActive, Total: es.TunnelsTotal},
		Connections: ConnectionStats{
			Accepted:     es.Accepted,
			AcceptErrors: es.AcceptErrors,
			FDLimitHits:  es.FDLimitHits,
			HeadsPending: es.HeadsPending,
		},
		Handshakes:        HandshakeStats{OK: es.HandshakesOK, PlainOK: es.PlainOK, Rejected: orEmpty(es.Rejects)},
		DialFailures:      orEmpty(es.DialFailures),
		Closes:            orEmpty(es.Closes),
		GracefulCloses:    orEmpty(es.GracefulCloses),
		PlainCloses:       orEmpty(es.PlainCloses),
		KeepalivePings:    es.KeepalivePings,
		TLS:               TLSStats{Connections: es.TLSConnections, HandshakeFailures: es.TLSFailures},
		Bytes:             ByteStats{Up: es.BytesUp, Down: es.BytesDown},
		PipesInUse:        es.PipesInUse,
		ParkedBytes:       es.ParkedBytes,
		IO:                IOStats{IOUring: es.IOUring, Batches: es.Batches, BatchedCalls: es.BatchedCalls},
		TunnelDuration:    histogram(es.TunnelDuration),
		HandshakeDuration: histogram(es.HandshakeDuration),
		Backends:          s.backends(""),
	}
	for _, n := range es.Rejects {
		st.Handshakes.RejectedTotal += n
	}
	st.Node = s.node.status(es.TunnelsActive)
	return st
}

func orEmpty(m map[string]uint64) map[string]uint64 {
	if m == nil {
		return map[string]uint64{}
	}
	return m
}

// histogram makes the engine's per-bucket counts cumulative.
func histogram(h engine.Histogram) Histogram {
	out := Histogram{Count: h.Count, SumSeconds: h.Sum, Buckets: make([]Bucket, 0, len(h.Bounds))}
	var cum uint64
	for k, le := range h.Bounds {
		if k < len(h.Counts) {
			cum += h.Counts[k]
		}
		out.Buckets = append(out.Buckets, Bucket{LE: le, Count: cum})
	}
	return out
}

// backends lists the backends of every pool, or of the one named.
func (s *Server) backends(pool string) []Backend {
	out := []Backend{}
	for _, np := range s.cfg.Pools() {
		if pool != "" && np.Name != pool {
			continue
		}
		for _, bs := range np.Pool.Snapshot() {
			out = append(out, backendJSON(np.Name, bs))
		}
	}
	return out
}

func backendJSON(pool string, bs balance.BackendStatus) Backend {
	b := Backend{
		Pool:            pool,
		Address:         bs.Addr,
		State:           bs.State,
		Weight:          bs.Weight,
		EffectiveWeight: bs.EffectiveWeight,
		MaxConns:        bs.MaxConns,
		Active:          bs.Active,
		Total:           bs.Total,
		Failures:        bs.Failures,
		Healthy:         bs.Healthy,
		LastCheck:       timeOrNil(bs.LastCheck),
		LastError:       bs.LastError,
		RetryAt:         timeOrNil(bs.RetryAt),
	}
	if d := bs.Drain; d != nil {
		b.Drain = &Drain{
			Since:         d.Since.UTC(),
			Deadline:      timeOrNil(d.Deadline),
			SpreadSeconds: d.Spread.Seconds(),
			ActiveAtStart: d.ActiveAtStart,
			Active:        d.Active,
			Progress:      progress(d.ActiveAtStart, d.Active),
			Removing:      d.Removing,
		}
	}
	return b
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// progress is the share of atStart that has ended.
func progress(atStart, now int64) float64 {
	if atStart <= 0 {
		return 1
	}
	return min(max(1-float64(now)/float64(atStart), 0), 1)
}

func (s *Server) serveStats(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.stats())
}

// serveHealthz answers while the process serves at all: a liveness probe
// that restarts a wedged process, never one that is merely draining.
func (s *Server) serveHealthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// serveReadyz answers 503 as soon as the node drains, pauses or stops, so
// that a load balancer (or Kubernetes) sends no more clients here.
func (s *Server) serveReadyz(w http.ResponseWriter, r *http.Request) {
	ready, reason := s.node.readiness()
	body := map[string]any{"ready": ready}
	code := http.StatusOK
	if !ready {
		body["reason"] = reason
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, body)
}
