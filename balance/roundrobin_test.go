package balance

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

// nginx's smooth weighted round robin: weights 5,1,1 give a a b a c a a.
func TestRoundRobinSmoothSequence(t *testing.T) {
	p, _ := testPool(t, Config{Policy: RoundRobin, Backends: backends(5, 1, 1)})
	names := map[string]byte{}
	for i, a := range addrs(3) {
		names[a] = "abc"[i]
	}
	var got []byte
	for range 14 {
		l := mustPick(t, p, nil)
		got = append(got, names[l.Backend().Addr()])
		l.Done()
	}
	if string(got) != "aabacaaaabacaa" {
		t.Fatalf("sequence %s", got)
	}
}

func TestRoundRobinWeightedRatio(t *testing.T) {
	ws := []int{1, 2, 3, 4, 10}
	p, _ := testPool(t, Config{Policy: RoundRobin, Backends: backends(ws...)})
	const picks = 100_000
	for range picks {
		mustPick(t, p, nil).Done()
	}
	checkRatio(t, p, ws, func(b *Backend) int64 { return b.Total() }, picks, 0.02)
}

func TestRoundRobinSkipsIneligible(t *testing.T) {
	p, _ := testPool(t, Config{Policy: RoundRobin, Backends: backends(1, 1, 1)})
	a := addrs(3)
	must(t, p.Drain(a[1], 0, 0))
	for range 10 {
		l := mustPick(t, p, nil)
		if l.Backend().Addr() == a[1] {
			t.Fatal("picked a draining backend")
		}
		l.Done()
	}
	must(t, p.Undrain(a[1]))
	seen := map[string]bool{}
	for range 3 {
		l := mustPick(t, p, nil)
		seen[l.Backend().Addr()] = true
		l.Done()
	}
	if len(seen) != 3 {
		t.Fatalf("after Undrain, 3 picks reached %v", seen)
	}
}

// nginxRR is ngx_http_upstream_get_peer's smooth weighted round robin,
// written as nginx writes it: every eligible peer's current weight grows
// by its effective weight on each pick. The pool must choose as it does.
type nginxRR struct {
	addrs []string
	cur   []int64
}

func (r *nginxRR) pick(weight func(addr string) int64, skip func(addr string) bool) string {
	best := -1
	var total int64
	for i, a := range r.addrs {
		if skip(a) {
			continue
		}
		w := weight(a)
		r.cur[i] += w
		total += w
		if best < 0 || r.cur[i] > r.cur[best] {
			best = i
		}
	}
	if best < 0 {
		return ""
	}
	r.cur[best] -= total
	return r.addrs[best]
}

// Through retries (exclude), weight changes, slow start, additions and
// removals, every pick is the one nginx's algorithm makes.
func TestRoundRobinMatchesNginx(t *testing.T) {
	p, clk := testPool(t, Config{Policy: RoundRobin, SlowStart: 10 * time.Second, Backends: backends(5, 1, 3, 1, 2)})
	ref := &nginxRR{addrs: addrs(5), cur: make([]int64, 5)}
	rnd := rand.New(rand.NewPCG(1, 2))
	weight := func(a string) int64 {
		c := clock{p: p}
		return p.Lookup(a).effectiveWeight(&c)
	}
	next := 0
	for step := range 20_000 {
		switch r := rnd.IntN(100); {
		case r < 2:
			a := ref.addrs[rnd.IntN(len(ref.addrs))]
			must(t, p.SetWeight(a, 1+rnd.IntN(10)))
		case r < 3:
			a := fmt.Sprintf("10.8.%d.%d:80", next/250, next%250)
			next++
			must(t, p.Add(BackendConfig{Addr: a, Weight: 1 + rnd.IntN(10)}))
			ref.addrs, ref.cur = append(ref.addrs, a), append(ref.cur, 0)
		case r < 4 && len(ref.addrs) > 2:
			i := rnd.IntN(len(ref.addrs))
			must(t, p.Remove(ref.addrs[i], 0, 0))
			ref.addrs, ref.cur = slices.Delete(ref.addrs, i, i+1), slices.Delete(ref.cur, i, i+1)
		case r < 6:
			clk.Advance(time.Duration(rnd.IntN(3000)) * time.Millisecond)
		default:
			var tried []*Backend
			if rnd.IntN(5) == 0 {
				for _, a := range ref.addrs {
					if rnd.IntN(3) == 0 {
						tried = append(tried, p.Lookup(a))
					}
				}
			}
			want := ref.pick(weight, func(a string) bool { return excluded(p.Lookup(a), tried) })
			l, err := p.Pick(nil, tried)
			got := ""
			if err == nil {
				got = l.Backend().Addr()
				l.Done()
			}
			if got != want {
				t.Fatalf("step %d: picked %q, nginx picks %q (err %v)", step, got, want, err)
			}
		}
	}
}

// Picks from many goroutines at once keep the configured shares.
func TestRoundRobinConcurrentRatio(t *testing.T) {
	ws := []int{1, 2, 3, 4, 10}
	p, _ := testPool(t, Config{Policy: RoundRobin, Backends: backends(ws...)})
	const workers, each = 4, 25_000
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				l, err := p.Pick(nil, nil)
				if err != nil {
					t.Error(err)
					return
				}
				l.Done()
			}
		})
	}
	wg.Wait()
	checkRatio(t, p, ws, func(b *Backend) int64 { return b.Total() }, workers*each, 0.02)
}

// A backend that comes back after a long drain takes its share at once but
// is not flooded with the picks it missed: its current weight grew while
// it was out (the increments are implicit) and is written off.
func TestRoundRobinReturnNotFlooded(t *testing.T) {
	for _, out := range []struct {
		name      string
		take, put func(p *Pool, addr string) error
	}{
		{"drain", func(p *Pool, a string) error { return p.Drain(a, 0, 0) }, (*Pool).Undrain},
		{"disable", (*Pool).Disable, (*Pool).Enable},
	} {
		t.Run(out.name, func(t *testing.T) {
			p, _ := testPool(t, Config{Policy: RoundRobin, Backends: equal(4)})
			a := addrs(4)[1]
			must(t, out.take(p, a))
			for range 1000 {
				mustPick(t, p, nil).Done()
			}
			must(t, out.put(p, a))
			count := map[string]int{}
			for range 40 {
				l := mustPick(t, p, nil)
				count[l.Backend().Addr()]++
				l.Done()
			}
			for _, b := range addrs(4) {
				if n := count[b]; n < 9 || n > 11 {
					t.Errorf("%s: %d of 40 picks after %s came back, want 10 ± 1 (%v)", b, n, a, count)
				}
			}
		})
	}
}
