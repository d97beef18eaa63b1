package balance

import "sync/atomic"

// round_robin is nginx's smooth weighted round robin
// (ngx_http_upstream_get_peer): on each pick every eligible peer's current
// weight grows by its effective weight, the peer with the largest current
// weight wins (the first in list order on a tie), and the winner's current
// weight drops by the sum of the effective weights. For weights 5,1,1 it
// yields a a b a c a a rather than a a a a a b c, and over any window the
// shares match the weights.
//
// nginx updates every peer on every pick under the upstream's lock. Here
// the per-peer increments are implicit, so that a pick takes no lock and
// writes one counter: the set numbers the picks (g) and keeps per backend
// the weight w it was built with and a debt d, and the current weight is
// w·g − d. A pick reads it for every eligible backend and adds the total to
// its winner's debt, one atomic add; while the weights stay put, the
// sequence is nginx's exactly. The arithmetic is modulo 2^64: w·g wraps
// (after 7·10^13 picks at the largest weight), but w·g − d, the only value
// used, is small.
// Concurrent picks may both choose the backend that led when they read
// it; its debt then grows by both totals and it waits correspondingly
// longer, so the shares still converge to the weights.
//
// An implicit increment is right only for a backend that is eligible with
// weight w. The others are corrected as nginx would treat them:
//   - an eligible backend whose effective weight is not w (slow start, or
//     a SetWeight racing the set's rebuild) has the difference added to
//     its debt on each pick, so it gains only its effective weight;
//   - a backend excluded by the caller (already tried for this request)
//     has w added, so its current weight stays put, as nginx's tried peers'
//     do;
//   - a backend that is down, draining, disabled or at max_conns gains w a
//     pick without a correction, since correcting them would cost every
//     pick an atomic add per such backend. When it is eligible again its
//     current weight is too high, and it wins at once; a winner whose
//     current weight exceeds twice the set's total weight, which nginx's
//     does not (see rrInflated), has its current weight set to 0 rather
//     than reduced by the pick's total. It returns with a pick or two, not
//     with the flood that paying off the accumulated credit would bring,
//     and then takes its share.
//
// The counters live in arrays in the set, not in each Backend, so a scan
// of 16 backends reads four cache lines of them, and a set change carries
// every remaining backend's current weight into the new set (carryRR).

// rrState is round_robin's part of a backendSet, by list index.
type rrState struct {
	weight []int64         // the implicit increment: weight (scaled) when the set was built
	debt   []atomic.Uint64 // w·g − debt is the current weight
	total  int64           // sum of weight
}

// rrInflated is the bound above which a winner's current weight is taken
// to be credit accumulated while it was ineligible, as a multiple of the
// set's total weight. With every peer eligible, nginx's winner's current
// weight is below the total plus its own weight, so below twice the
// total; simulating nginx with random weights, random exclusions and
// random effective weights, it never went past 1.6 times the total.
const rrInflated = 2

func (s *backendSet) pickRoundRobin(seq *atomic.Uint64, exclude []*Backend, c *clock) *Backend {
	list := s.list
	if len(list) == 0 {
		return nil
	}
	weight, debt := s.rr.weight[:len(list)], s.rr.debt[:len(list)]
	g := seq.Add(1)
	best := -1
	var total, bestCur int64
	for i, b := range list {
		w := b.weight.Load()
		if b.flags.Load() != 0 {
			var ok bool
			if _, w, ok = b.candidate(c); !ok {
				continue
			}
		}
		iw := weight[i]
		if len(exclude) > 0 && excluded(b, exclude) {
			debt[i].Add(uint64(iw))
			continue
		}
		if w != iw {
			debt[i].Add(uint64(iw - w))
		}
		// Loaded after the correction, so this pick sees its own.
		v := int64(uint64(iw)*g - debt[i].Load())
		total += w
		if best < 0 || v > bestCur {
			best, bestCur = i, v
		}
	}
	if best < 0 {
		return nil
	}
	limit := rrInflated * s.rr.total
	if bestCur <= limit {
		debt[best].Add(uint64(total))
		return list[best]
	}
	// Back from ineligibility: current weight to 0. A CAS, so that two
	// picks that both saw the credit do not both write it off.
	d, iw := &debt[best], uint64(weight[best])
	for {
		old := d.Load()
		v := int64(iw*g - old)
		if v <= limit {
			d.Add(uint64(total))
			break
		}
		if d.CompareAndSwap(old, old+uint64(v)) {
			break
		}
	}
	return list[best]
}

// carryRR builds the round_robin state for a new set over list at pick
// number g, keeping each remaining backend's current weight from old (a
// set change does not restart the sequence); a new backend starts at 0,
// as a peer nginx adds. Picks still running on old when the new set is
// published lose their debt updates, a pick's worth of error each.
func carryRR(old *backendSet, list []*Backend, g uint64) rrState {
	st := rrState{weight: make([]int64, len(list)), debt: make([]atomic.Uint64, len(list))}
	var at map[*Backend]int
	if old != nil {
		at = make(map[*Backend]int, len(old.list))
		for j, b := range old.list {
			at[b] = j
		}
	}
	for i, b := range list {
		w := b.weight.Load()
		st.weight[i] = w
		st.total += w
		var cur int64
		if j, ok := at[b]; ok {
			cur = int64(uint64(old.rr.weight[j])*g - old.rr.debt[j].Load())
		}
		st.debt[i].Store(uint64(w)*g - uint64(cur))
	}
	return st
}
