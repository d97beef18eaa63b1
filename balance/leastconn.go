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
// (a+1)/w < (A+1)/W ⇔ (a+1)·W < (A+1)·w. With weights ≤ 256×1000 and
// active counts < 2^31 the products stay below 2^50. The best starts as
// 1/0, worse than any backend.
func (s *backendSet) pickLeastConn(next *atomic.Uint64, exclude []*Backend, c *clock) *Backend {
	list := s.list
	if len(list) == 0 {
		return nil
	}
	start := int(uint32(next.Add(1)) % uint32(len(list)))
	var best *Backend
	bestLoad, bestWeight := int64(1), int64(0)
	// Scan list[start:] then list[:start], without a wrap test per element.
	for _, part := range [2][]*Backend{list[start:], list[:start]} {
		for _, b := range part {
			a, w := b.active.Load(), b.weight.Load()
			if b.flags.Load() != 0 {
				var ok bool
				if a, w, ok = b.candidate(c); !ok {
					continue
				}
			}
			if (a+1)*bestWeight < bestLoad*w && (len(exclude) == 0 || !excluded(b, exclude)) {
				best, bestLoad, bestWeight = b, a+1, w
			}
		}
	}
	return best
}
