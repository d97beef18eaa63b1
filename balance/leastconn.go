package balance

import "sync/atomic"

// pickLeastConn returns the eligible backend with the fewest active tunnels
// per unit of weight: it minimises (active+1)/weight, as HAProxy's leastconn
// and Envoy's least_request with weights do. The +1 counts the tunnel being
// placed, so that on an idle pool a heavier backend wins over a lighter one
// rather than all of them tying at 0.
//
// nginx's least_conn breaks ties with weighted round robin; here a tie goes
// to the backend picked least recently (each winner records the pick's
// sequence number from seq), which cycles through any set of tied backends
// in turn. Rotating the scan's start instead, as an earlier version did, is
// round robin only when every backend ties: with one of three drained, the
// backend after the drained one won the ties of two starts out of three and
// took two thirds of an idle pool's tunnels.
//
// Ratios are compared by cross-multiplying scaled integers:
// (a+1)/w < (A+1)/W ⇔ (a+1)·W < (A+1)·w. With weights ≤ 256×1000 and
// active counts < 2^31 the products stay below 2^50. The best starts as
// 1/0, worse than any backend.
func (s *backendSet) pickLeastConn(seq *atomic.Uint64, exclude []*Backend, c *clock) *Backend {
	list := s.list
	if len(list) == 0 {
		return nil
	}
	var best *Backend
	bestLoad, bestWeight := int64(1), int64(0)
	var bestLast uint64
	for _, b := range list {
		a, w := b.active.Load(), b.weight.Load()
		if b.flags.Load() != 0 {
			var ok bool
			if a, w, ok = b.candidate(c); !ok {
				continue
			}
		}
		l, r := (a+1)*bestWeight, bestLoad*w
		if l > r {
			continue
		}
		last := b.lastPick.Load()
		if l == r && last >= bestLast || len(exclude) > 0 && excluded(b, exclude) {
			continue
		}
		best, bestLoad, bestWeight, bestLast = b, a+1, w, last
	}
	if best != nil {
		best.lastPick.Store(seq.Add(1))
	}
	return best
}
