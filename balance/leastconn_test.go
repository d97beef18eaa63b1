package balance

import (
	"math"
	"sync"
	"testing"
)

// With equal weights and tunnels that never end, every pick goes to a
// least-loaded backend: after each pick the counts differ by at most 1.
func TestLeastConnEqualWeightsWithinOne(t *testing.T) {
	for _, n := range []int{2, 3, 7, 16} {
		p, _ := testPool(t, Config{Backends: equal(n)})
		for i := range 10_000 {
			mustPick(t, p, nil)
			lo, hi := int64(math.MaxInt64), int64(0)
			for _, b := range p.Backends() {
				lo, hi = min(lo, b.Active()), max(hi, b.Active())
			}
			if hi-lo > 1 {
				t.Fatalf("n=%d after %d picks: active from %d to %d", n, i+1, lo, hi)
			}
		}
	}
}

// Concurrent picks may both see the same minimum, so the bound is looser,
// but the counts stay close and the total is exact.
func TestLeastConnConcurrentBalanced(t *testing.T) {
	const n, workers, each = 8, 8, 2000
	p, _ := testPool(t, Config{Backends: equal(n)})
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				if _, err := p.Pick(nil, nil); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	var sum, lo, hi int64 = 0, math.MaxInt64, 0
	for _, b := range p.Backends() {
		sum += b.Active()
		lo, hi = min(lo, b.Active()), max(hi, b.Active())
	}
	if sum != workers*each || hi-lo > workers {
		t.Fatalf("sum %d, active from %d to %d", sum, lo, hi)
	}
}

// On an idle pool (each tunnel ends before the next), ties rotate: picks
// cycle through every backend.
func TestLeastConnColdStartRotates(t *testing.T) {
	p, _ := testPool(t, Config{Backends: equal(5)})
	count := map[*Backend]int{}
	for range 500 {
		l := mustPick(t, p, nil)
		count[l.Backend()]++
		l.Done()
	}
	for b, c := range count {
		if c != 100 {
			t.Errorf("%s: %d picks, want 100", b.Addr(), c)
		}
	}
	if len(count) != 5 {
		t.Errorf("%d backends used", len(count))
	}
}

// Ties rotate among the backends that tie, not by list position: with the
// middle one of three drained, an idle pool alternates between the other
// two. (Rotating the scan start gave the third backend two picks in three.)
func TestLeastConnTiesRoundRobinAroundIneligible(t *testing.T) {
	p, _ := testPool(t, Config{Backends: equal(3)})
	as := addrs(3)
	must(t, p.Drain(as[1], 0, 0))
	var prev *Backend
	count := map[string]int{}
	for i := range 300 {
		l := mustPick(t, p, nil)
		if l.Backend() == prev {
			t.Fatalf("pick %d: %s twice in a row", i, prev.Addr())
		}
		prev = l.Backend()
		count[prev.Addr()]++
		l.Done()
	}
	if count[as[0]] != 150 || count[as[2]] != 150 {
		t.Fatalf("picks %v, want 150 each on %s and %s", count, as[0], as[2])
	}
}

// Weighted, tunnels never end: active counts follow the weights.
func TestLeastConnWeightedRatio(t *testing.T) {
	ws := []int{1, 2, 3, 4, 10}
	p, _ := testPool(t, Config{Backends: backends(ws...)})
	const picks = 100_000
	for range picks {
		mustPick(t, p, nil)
	}
	checkRatio(t, p, ws, func(b *Backend) int64 { return b.Active() }, picks, 0.02)
}

// checkRatio checks that each backend's share of total is within tol
// (relative) of its weight's share, and logs the figures.
func checkRatio(t *testing.T, p *Pool, ws []int, count func(*Backend) int64, total int, tol float64) {
	t.Helper()
	sumW := 0
	for _, w := range ws {
		sumW += w
	}
	for i, b := range p.Backends() {
		want := float64(total) * float64(ws[i]) / float64(sumW)
		got := float64(count(b))
		dev := (got - want) / want
		t.Logf("weight %2d: %6.0f, want %8.1f (%+.3f%%)", ws[i], got, want, dev*100)
		if math.Abs(dev) > tol {
			t.Errorf("weight %d: %v, want %v ± %.0f%%", ws[i], got, want, tol*100)
		}
	}
}
