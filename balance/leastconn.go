package balance

import "sync/atomic"

// pickLeastConn returns the eligible backend with the fewest active tunnels
// per unit of weight: it minimises (active+1)/weight, as HAProxy's leastconn
// and Envoy's least_request with weights do. The +1 counts the tunnel being
// placed, so that on an idle pool a heavier backend wins over a lighter one
// rather than all of them tying at 0. nginx's least_conn compares
// active/weight and breaks ties with weighted round robin; here ties are
// broken by rotating the scan start with an atomic counter, so a cold start
// (all at 0) still spreads evenly and the scan stays lock-free.
//
// Ratios are compared by cross-multiplying scaled integers:
// (a+1)/w < (A+1)/W ⇔ (a+1)·W < (A+1)·w. With weights ≤ 256×1024 and
// active counts < 2^31 the products stay below 2^50.
func (s *backendSet) pickLeastConn(next *atomic.Uint64, exclude []*Backend, c *clock) *Backend {
	list := s.list
	n := len(list)
	if n == 0 {
		return nil
	}
	start := int(next.Add(1) % uint64(n))
	var best *Backend
	var bestLoad, bestWeight int64
	for i := range n {
		j := start + i
		if j >= n {
			j -= n
		}
		b := list[j]
		a, w, ok := b.candidate(c)
		if !ok || (len(exclude) > 0 && excluded(b, exclude)) {
			continue
		}
		if best == nil || (a+1)*bestWeight < bestLoad*w {
			best, bestLoad, bestWeight = b, a+1, w
		}
	}
	return best
}
