package balance

import (
	"testing"
	"time"
)

// A pinned backend is leased only while the policy could choose it too.
func TestPickBackend(t *testing.T) {
	cfg := Config{MaxFails: 1, FailTimeout: time.Minute, Backends: equal(6)}
	cfg.Backends[4].MaxConns = 1
	p, clk := testPool(t, cfg)
	other, _ := testPool(t, Config{Backends: equal(1)})
	as := addrs(6)
	b := func(i int) *Backend { return p.Lookup(as[i]) }

	must(t, p.Drain(as[1], 0, 0))
	must(t, p.Disable(as[2]))
	pickOnly(t, p, as[3]).Failed(FailRefused)
	full := pickOnly(t, p, as[4])
	defer full.Done()
	gone := b(5)
	must(t, p.Remove(as[5], 0, 0))

	for _, tc := range []struct {
		name    string
		b       *Backend
		exclude []*Backend
		ok      bool
	}{
		{"up", b(0), nil, true},
		{"nil", nil, nil, false},
		{"excluded", b(0), []*Backend{b(0)}, false},
		{"draining", b(1), nil, false},
		{"disabled", b(2), nil, false},
		{"down", b(3), nil, false},
		{"at max_conns", b(4), nil, false},
		{"removed", gone, nil, false},
		{"another pool's", other.Backends()[0], nil, false},
	} {
		before := int64(0)
		if tc.b != nil {
			before = tc.b.Active()
		}
		l, ok := p.PickBackend(tc.b, tc.exclude)
		if ok != tc.ok {
			t.Errorf("%s: ok = %v, want %v", tc.name, ok, tc.ok)
		}
		if !ok {
			if l.Backend() != nil || tc.b != nil && tc.b.Active() != before {
				t.Errorf("%s: refused, but lease %v and active %d → %d", tc.name, l.Backend(), before, tc.b.Active())
			}
			continue
		}
		if l.Backend() != tc.b || tc.b.Active() != before+1 {
			t.Errorf("%s: lease on %v, active %d → %d", tc.name, l.Backend(), before, tc.b.Active())
		}
		l.Done()
	}

	// Past fail_timeout the pin may carry the one trial, as a Pick would.
	clk.Advance(time.Minute + 1)
	l, ok := p.PickBackend(b(3), nil)
	if !ok {
		t.Fatal("no trial through the pin after fail_timeout")
	}
	if _, ok := p.PickBackend(b(3), nil); ok {
		t.Fatal("a second trial while the first is out")
	}
	l.Connected()
	l.Done()
	if b(3).State() != StateUp {
		t.Fatalf("after a good trial: %v", b(3).State())
	}
}
