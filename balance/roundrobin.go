package balance

import "sync"

// roundRobin is nginx's smooth weighted round robin
// (ngx_http_upstream_get_peer): on each pick every eligible peer's current
// weight grows by its effective weight, the peer with the largest current
// weight wins, and the winner's current weight drops by the sum of the
// effective weights. For weights 5,1,1 it yields a a b a c a a rather than
// a a a a a b c, and over any window the shares match the weights.
//
// It holds a mutex for the scan. The state is a vector (one current weight
// per backend) whose update must be atomic as a whole, since the winner's
// decrement depends on every increment of the same pick; a lock-free version
// would need a CAS on a copied vector (an allocation per pick) or would
// break the invariant that the current weights sum to zero, which is what
// keeps the sequence smooth. nginx itself does this under the upstream's
// peers lock. The critical section is the scan alone (a few ns per backend,
// no allocation), and it is the only lock on any Pick path.
type roundRobin struct {
	mu sync.Mutex
}

func (r *roundRobin) pick(s *backendSet, exclude []*Backend, c *clock) *Backend {
	r.mu.Lock()
	var best *Backend
	var total int64
	for _, b := range s.list {
		_, w, ok := b.candidate(c)
		if !ok || (len(exclude) > 0 && excluded(b, exclude)) {
			continue
		}
		b.rrCurrent += w
		total += w
		if best == nil || b.rrCurrent > best.rrCurrent {
			best = b
		}
	}
	if best != nil {
		best.rrCurrent -= total
	}
	r.mu.Unlock()
	return best
}
