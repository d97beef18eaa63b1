package engine

import (
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/balance"
	"github.com/wsgate/wsgate/handshake"
)

// Why a connection closed; the access log and the metrics use the names.
const (
	causeDone         uint8 = iota // both ends finished (or the answer was delivered)
	causeClientReset               // a read or write on the client failed
	causeBackendReset              // a read or write on the backend failed, or it closed mid-answer
	causeIdle                      // no byte either way for the idle timeout
	causeDrain                     // closed by a drain (backend or node) at its deadline
	causeShutdown                  // wsgate stopped
	causeRejected                  // answered with one of wsgate's own errors
	causeClientGone                // the client left before the answer
	causeInternal                  // a syscall wsgate relies on failed
	causeLifetime                  // the tunnel reached its maximum lifetime
	numCauses
)

var causeNames = [numCauses]string{
	"done", "client_reset", "backend_reset", "idle_timeout", "drain",
	"shutdown", "rejected", "client_gone", "internal", "lifetime",
}

// CloseCauses lists the close-cause labels, in a fixed order.
func CloseCauses() []string { return causeNames[:] }

// loopCounters are written by one loop and read by anyone: single-writer
// atomics on the loop's own cache lines, so the hot path never contends.
type loopCounters struct {
	accepted      atomic.Uint64
	heads         atomic.Int64 // connections still sending their heads
	tunnelsActive atomic.Int64
	tunnelsTotal  atomic.Uint64
	bytes         [2]atomic.Uint64 // by direction: up, down
	pipes         atomic.Int64
	spliced       atomic.Uint64 // bytes moved by splice (the rest were copied)
	parked        atomic.Int64
	closes        [numCauses]atomic.Uint64
	// WebSocket tunnels that wsgate ended itself: with Close frames both
	// ways (graceful), or cut because no frame boundary came in time.
	gracefulCloses [numCauses]atomic.Uint64
	plainCloses    [numCauses]atomic.Uint64
	pings          atomic.Uint64 // keepalive Pings sent
	batches        atomic.Uint64 // batches of socket calls made (batch.go)
	batchedCalls   atomic.Uint64 // recvs, sends and closes made in them
	tunnelSeconds  histogram
	_              [64]byte // keep the next loop's counters off these lines
}

func (c *loopCounters) observeTunnel(started int64) {
	c.tunnelSeconds.observe(time.Duration(time.Now().UnixNano() - started))
}

// serverCounters are those every loop writes (rarely, or where a shared
// cache line costs nothing next to the syscalls around it).
type serverCounters struct {
	acceptErrors   atomic.Uint64
	fdLimit        atomic.Uint64
	tlsFailures    atomic.Uint64 // TLS handshakes that failed or timed out
	portsExhausted atomic.Uint64 // connects that found no free local port (EADDRNOTAVAIL)
	tlsTunnels     atomic.Int64  // TLS connections past their handshake
	trims          atomic.Uint64 // memory returned after a handshake burst
	handshakeOK    atomic.Uint64 // upgrades answered 101 and tunnelled
	plainOK        atomic.Uint64 // plain requests answered by a backend
	dialFailures   [balance.NumFailKinds]atomic.Uint64
	rejects        map[string]*atomic.Uint64 // by reason; built once, read-only map
	handshakeSec   histogram
}

func newServerCounters() *serverCounters {
	c := &serverCounters{rejects: make(map[string]*atomic.Uint64)}
	for _, r := range handshake.Reasons() {
		c.rejects[r] = new(atomic.Uint64)
	}
	for _, r := range handshake.ProxyRejects() {
		c.rejects[r.Reason] = new(atomic.Uint64)
	}
	return c
}

func (c *serverCounters) reject(r *handshake.Reject) {
	if n, ok := c.rejects[r.Reason]; ok {
		n.Add(1)
	}
}

func (c *serverCounters) observeHandshake(accepted int64) {
	c.handshakeSec.observe(time.Duration(time.Now().UnixNano() - accepted))
}

// histogram is a fixed-bucket latency histogram of atomics: observing costs
// two atomic adds and no lock; the admin API turns it into a Prometheus
// histogram at scrape time.
type histogram struct {
	counts [len(histogramBounds) + 1]atomic.Uint64
	sumNS  atomic.Int64
}

// histogramBounds are the upper bounds in seconds: handshakes take
// milliseconds, tunnels minutes to days, so one ladder covers both.
var histogramBounds = [...]float64{
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
	1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600,
}

func (h *histogram) observe(d time.Duration) {
	s := d.Seconds()
	k := 0
	for k < len(histogramBounds) && s > histogramBounds[k] {
		k++
	}
	h.counts[k].Add(1)
	h.sumNS.Add(int64(d))
}

// Histogram is a snapshot: Counts[k] observations at most Bounds[k]
// seconds (not cumulative), the last one above every bound.
type Histogram struct {
	Bounds []float64
	Counts []uint64
	Count  uint64
	Sum    float64 // seconds
}

func (h *histogram) add(dst *Histogram) {
	if dst.Counts == nil {
		dst.Bounds = histogramBounds[:]
		dst.Counts = make([]uint64, len(h.counts))
	}
	for k := range h.counts {
		n := h.counts[k].Load()
		dst.Counts[k] += n
		dst.Count += n
	}
	dst.Sum += float64(h.sumNS.Load()) / 1e9
}

// Stats is a point-in-time reading of the engine's counters.
type Stats struct {
	TunnelsActive     int64
	TunnelsTotal      uint64
	HeadsPending      int64 // connections still sending their head
	Accepted          uint64
	AcceptErrors      uint64
	FDLimitHits       uint64 // EMFILE/ENFILE seen (accept, socket, pipe)
	TLSFailures       uint64 // TLS handshakes that failed or timed out
	PortsExhausted    uint64 // backend connects refused for lack of a local port
	TLSConnections    int64  // TLS connections past their handshake
	Held              int64  // connections counted by the admission limits
	HandshakesOK      uint64 // upgrades tunnelled
	PlainOK           uint64 // plain requests answered by a backend
	Rejects           map[string]uint64
	DialFailures      map[string]uint64
	Closes            map[string]uint64
	GracefulCloses    map[string]uint64 // by cause: ended with Close frames
	PlainCloses       map[string]uint64 // by cause: ended without (no boundary in time, or not WebSocket)
	KeepalivePings    uint64
	BytesUp           uint64 // client → backend
	BytesDown         uint64 // backend → client
	BytesSpliced      uint64 // of both, moved by splice(2) without a copy
	PipesInUse        int64
	ParkedBytes       int64
	IOUring           bool   // the loops batch their socket calls with io_uring
	Batches           uint64 // batches of socket calls (batch.go)
	BatchedCalls      uint64 // recvs, sends and closes made in those batches
	TunnelDuration    Histogram
	HandshakeDuration Histogram
}

// Stats sums the loops' counters. It takes no lock any loop waits on.
func (s *Server) Stats() Stats {
	st := Stats{
		Rejects:        make(map[string]uint64, len(s.c.rejects)),
		DialFailures:   make(map[string]uint64),
		Closes:         make(map[string]uint64, numCauses),
		GracefulCloses: make(map[string]uint64, numCauses),
		PlainCloses:    make(map[string]uint64, numCauses),
	}
	st.AcceptErrors = s.c.acceptErrors.Load()
	st.FDLimitHits = s.c.fdLimit.Load()
	st.TLSFailures = s.c.tlsFailures.Load()
	st.PortsExhausted = s.c.portsExhausted.Load()
	st.TLSConnections = s.c.tlsTunnels.Load()
	st.Held = s.admit.held.Load()
	st.HandshakesOK = s.c.handshakeOK.Load()
	st.PlainOK = s.c.plainOK.Load()
	st.IOUring = s.IOUring()
	for r, n := range s.c.rejects {
		st.Rejects[r] = n.Load()
	}
	for k := range s.c.dialFailures {
		st.DialFailures[balance.FailKind(k).String()] = s.c.dialFailures[k].Load()
	}
	s.c.handshakeSec.add(&st.HandshakeDuration)
	for _, l := range s.loops {
		c := l.c
		st.Accepted += c.accepted.Load()
		st.HeadsPending += c.heads.Load()
		st.TunnelsActive += c.tunnelsActive.Load()
		st.TunnelsTotal += c.tunnelsTotal.Load()
		st.BytesUp += c.bytes[dirUp].Load()
		st.BytesDown += c.bytes[dirDown].Load()
		st.BytesSpliced += c.spliced.Load()
		st.PipesInUse += c.pipes.Load()
		st.ParkedBytes += c.parked.Load()
		for k := range c.closes {
			st.Closes[causeNames[k]] += c.closes[k].Load()
			st.GracefulCloses[causeNames[k]] += c.gracefulCloses[k].Load()
			st.PlainCloses[causeNames[k]] += c.plainCloses[k].Load()
		}
		st.KeepalivePings += c.pings.Load()
		st.Batches += c.batches.Load()
		st.BatchedCalls += c.batchedCalls.Load()
		c.tunnelSeconds.add(&st.TunnelDuration)
	}
	return st
}
