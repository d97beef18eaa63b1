package bench

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// latencies is a histogram of durations that many goroutines record into:
// a few shards, each behind its own lock, merged at the end, so that
// recording costs an uncontended lock rather than a histogram per
// connection (1,000 of those would be tens of MB).
type latencies struct {
	shards [latencyShards]struct {
		mu sync.Mutex
		h  *hdrhistogram.Histogram
		_  [48]byte // keep each shard's lock on its own cache line
	}
}

const (
	latencyShards = 16
	latencyMax    = int64(time.Minute / time.Microsecond)
)

func newLatencies() *latencies {
	l := &latencies{}
	for i := range l.shards {
		// Microseconds, 3 significant digits: 1 µs resolution below 1 ms.
		l.shards[i].h = hdrhistogram.New(1, latencyMax, 3)
	}
	return l
}

// record adds d to shard k (any int: a connection's index).
func (l *latencies) record(k int, d time.Duration) {
	s := &l.shards[k%latencyShards]
	us := max(1, min(d.Microseconds(), latencyMax))
	s.mu.Lock()
	s.h.RecordValue(us)
	s.mu.Unlock()
}

// Percentiles are round-trip or handshake times in milliseconds.
type Percentiles struct {
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p999_ms"`
	Max  float64 `json:"max_ms"`
}

func (l *latencies) percentiles() Percentiles {
	all := hdrhistogram.New(1, latencyMax, 3)
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		all.Merge(s.h)
		s.mu.Unlock()
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Percentiles{
		P50:  ms(all.ValueAtQuantile(50)),
		P90:  ms(all.ValueAtQuantile(90)),
		P99:  ms(all.ValueAtQuantile(99)),
		P999: ms(all.ValueAtQuantile(99.9)),
		Max:  ms(all.Max()),
	}
}
