package balance

import (
	"encoding/binary"
	"fmt"
	"testing"
	"time"
)

const hashKeys = 100_000

// keyOf is the i-th test key: a 4-byte IPv4 address, as the engine sends.
func keyOf(i int) []byte {
	var k [4]byte
	binary.BigEndian.PutUint32(k[:], 0x0a000000+uint32(i)*7919)
	return k[:]
}

// mapping is every key's backend. It asks the hash policy directly rather
// than through Pick and Done, whose atomics make 100k keys slow under -race;
// TestHashStable checks that Pick agrees.
func mapping(t *testing.T, p *Pool) []string {
	t.Helper()
	m := make([]string, hashKeys)
	s := p.set.Load()
	c := clock{p: p}
	for i := range m {
		b := s.pickHash(keyOf(i), nil, &c)
		if b == nil {
			t.Fatalf("key %d: no backend", i)
		}
		m[i] = b.Addr()
	}
	return m
}

// pickAll picks (and releases) every key once.
func pickAll(t *testing.T, p *Pool) []string {
	t.Helper()
	m := make([]string, hashKeys)
	for i := range m {
		l, err := p.Pick(keyOf(i), nil)
		if err != nil {
			t.Fatal(err)
		}
		m[i] = l.Backend().Addr()
		l.Done()
	}
	return m
}

func TestHashStable(t *testing.T) {
	cfg := Config{Policy: Hash, Backends: equal(7)}
	p1, _ := testPool(t, cfg)
	p2, _ := testPool(t, cfg)
	m1, m2 := pickAll(t, p1), pickAll(t, p1)
	m3 := mapping(t, p2)
	for i := range m1 {
		if m1[i] != m2[i] || m1[i] != m3[i] {
			t.Fatalf("key %d: %s, %s, other pool %s", i, m1[i], m2[i], m3[i])
		}
	}
	// A key's backend does not depend on load.
	var held []Lease
	for i := range 1000 {
		l := mustPick(t, p1, keyOf(i))
		if l.Backend().Addr() != m1[i] {
			t.Fatalf("key %d under load: %s, was %s", i, l.Backend().Addr(), m1[i])
		}
		held = append(held, l)
	}
	for _, l := range held {
		l.Done()
	}
}

// moved compares two mappings: keys that changed, and whether every one of
// them was on gone before.
func moved(t *testing.T, before, after []string, gone string) int {
	t.Helper()
	n := 0
	for i := range before {
		if before[i] == after[i] {
			continue
		}
		n++
		if before[i] != gone {
			t.Fatalf("key %d moved from %s (not %s) to %s", i, before[i], gone, after[i])
		}
		if after[i] == gone {
			t.Fatalf("key %d still on %s", i, gone)
		}
	}
	return n
}

// Removing or draining one backend of N moves only its keys, about 1/N of
// them; draining then removing moves nothing more; undraining or re-adding
// puts every key back.
func TestHashLeaveMovesOnlyItsKeys(t *testing.T) {
	for _, n := range []int{5, 10} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			p, _ := testPool(t, Config{Policy: Hash, Backends: equal(n)})
			base := mapping(t, p)
			worst := 0.0
			for _, a := range addrs(n) {
				must(t, p.Drain(a, 0, 0))
				drained := mapping(t, p)
				m := moved(t, base, drained, a)
				must(t, p.Remove(a, 0, 0))
				removed := mapping(t, p)
				if extra := moved(t, drained, removed, ""); extra != 0 {
					t.Fatalf("removing drained %s moved %d more keys", a, extra)
				}
				must(t, p.Add(BackendConfig{Addr: a}))
				if back := moved(t, base, mapping(t, p), ""); back != 0 {
					t.Fatalf("re-adding %s left %d keys elsewhere", a, back)
				}
				share := float64(m) / hashKeys
				worst = max(worst, share)
				// 160 points a backend: its share is within ~±25% of 1/N.
				if share > 1.25/float64(n) {
					t.Errorf("%s: moved %d keys (%.2f%%), want about %.2f%%", a, m, share*100, 100/float64(n))
				}
			}
			t.Logf("N=%d: worst backend leaving moved %.2f%% of %d keys (1/N = %.2f%%)", n, worst*100, hashKeys, 100/float64(n))
		})
	}
}

// Adding a backend moves keys only to it; down, disabled and full backends'
// keys fall through like drained ones.
func TestHashAddAndIneligible(t *testing.T) {
	p, clk := testPool(t, Config{Policy: Hash, MaxFails: 1, Backends: equal(6)})
	base := mapping(t, p)
	must(t, p.Add(BackendConfig{Addr: "10.9.9.9:80"}))
	added := mapping(t, p)
	got := 0
	for i := range base {
		if base[i] != added[i] {
			got++
			if added[i] != "10.9.9.9:80" {
				t.Fatalf("key %d moved from %s to %s, not to the new backend", i, base[i], added[i])
			}
		}
	}
	t.Logf("adding a 7th backend moved %.2f%% of keys to it", float64(got)*100/hashKeys)
	must(t, p.Remove("10.9.9.9:80", 0, 0))

	a := addrs(6)
	must(t, p.Disable(a[0]))
	moved(t, base, mapping(t, p), a[0])
	must(t, p.Enable(a[0]))
	pickOnly(t, p, a[1]).Failed(FailRefused)
	moved(t, base, mapping(t, p), a[1])
	clk.Advance(10 * time.Second)
	trial := pickOnly(t, p, a[1])
	trial.Connected()
	trial.Done()
	// A full backend's keys fall through too.
	must(t, p.SetMaxConns(a[2], 1))
	held := pickOnly(t, p, a[2])
	moved(t, base, mapping(t, p), a[2])
	held.Done()
}

func TestHashWeights(t *testing.T) {
	ws := []int{1, 2, 4}
	p, _ := testPool(t, Config{Policy: Hash, Backends: backends(ws...)})
	pickAll(t, p)
	// A ring's shares follow the weights only roughly (±10% at 160 points a
	// weight unit).
	checkRatio(t, p, ws, func(b *Backend) int64 { return b.Total() }, hashKeys, 0.10)
	before := mapping(t, p)
	must(t, p.SetWeight(addrs(3)[0], 3))
	after := mapping(t, p)
	for i := range before {
		if before[i] != after[i] && after[i] != addrs(3)[0] {
			t.Fatalf("key %d moved from %s to %s on a weight raise of another backend", i, before[i], after[i])
		}
	}
}

func TestHashAllIneligible(t *testing.T) {
	p, _ := testPool(t, Config{Policy: Hash, Backends: equal(300)})
	for _, b := range p.Backends() {
		must(t, p.Disable(b.Addr()))
	}
	if _, err := p.Pick([]byte("k"), nil); err == nil || err.Error() != "no eligible backend: 300 disabled" {
		t.Fatalf("err = %v", err)
	}
	must(t, p.Enable(addrs(300)[299]))
	if l := mustPick(t, p, []byte("k")); l.Backend().Addr() != addrs(300)[299] {
		t.Fatal(l.Backend().Addr())
	} else {
		l.Done()
	}
}

func TestHashRingLimits(t *testing.T) {
	bs := make([]BackendConfig, 0, 110)
	for _, a := range addrs(110) {
		bs = append(bs, BackendConfig{Addr: a, Weight: MaxWeight})
	}
	_, err := NewPool(Config{Policy: Hash, Backends: bs})
	if err == nil || err.Error() != "hash policy: ring of 4505600 points (160 per weight unit): at most 4194304; lower the weights" {
		t.Fatalf("err = %v", err)
	}
}
