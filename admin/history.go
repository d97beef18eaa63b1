package admin

import (
	"net/http"
	"sync"
	"time"
)

// The dashboard charts the last minutes. Keeping them here rather than in
// the page means an operator who opens the dashboard in the middle of an
// incident sees what led up to it at once. One Stats reading a second, of a
// few counters, into a fixed ring: nothing on the data path.
const (
	historyInterval = time.Second
	historyLen      = 600 // ten minutes
)

// Sample is one reading of the counters the dashboard charts. Counters are
// cumulative; the page turns them into rates.
type Sample struct {
	T          int64  `json:"t"` // Unix milliseconds
	Active     int64  `json:"active"`
	Handshakes uint64 `json:"handshakes"` // upgraded + plain
	Rejects    uint64 `json:"rejects"`
	BytesUp    uint64 `json:"bytes_up"`
	BytesDown  uint64 `json:"bytes_down"`
}

// History is GET /stats/history: the samples of the last minutes, oldest
// first.
type History struct {
	IntervalSeconds float64  `json:"interval_seconds"`
	Samples         []Sample `json:"samples"`
}

type history struct {
	mu   sync.Mutex
	ring [historyLen]Sample
	next int
	n    int
}

func (h *history) add(smp Sample) {
	h.mu.Lock()
	h.ring[h.next] = smp
	h.next = (h.next + 1) % historyLen
	h.n = min(h.n+1, historyLen)
	h.mu.Unlock()
}

func (h *history) samples() []Sample {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Sample, 0, h.n)
	for i := range h.n {
		out = append(out, h.ring[(h.next-h.n+i+historyLen)%historyLen])
	}
	return out
}

func (s *Server) sample() Sample {
	es := s.cfg.Engine.Stats()
	smp := Sample{
		T:          time.Now().UnixMilli(),
		Active:     es.TunnelsActive,
		Handshakes: es.HandshakesOK + es.PlainOK,
		BytesUp:    es.BytesUp,
		BytesDown:  es.BytesDown,
	}
	for _, n := range es.Rejects {
		smp.Rejects += n
	}
	return smp
}

// record samples every historyInterval until quit is closed.
func (s *Server) record(quit <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(historyInterval)
	defer t.Stop()
	s.hist.add(s.sample())
	for {
		select {
		case <-quit:
			return
		case <-t.C:
			s.hist.add(s.sample())
		}
	}
}

func (s *Server) serveHistory(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, History{IntervalSeconds: historyInterval.Seconds(), Samples: s.hist.samples()})
}
