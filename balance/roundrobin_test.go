package balance

import (
	"testing"
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
