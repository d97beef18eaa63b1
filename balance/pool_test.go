package balance

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestNewPoolErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"policy", Config{Policy: "random"}, `policy "random": must be one of least_conn, round_robin, hash`},
		{"weight negative", Config{Backends: []BackendConfig{{Addr: "x:1", Weight: -1}}}, `backend "x:1": weight -1: must be between 1 and 256`},
		{"weight too big", Config{Backends: []BackendConfig{{Addr: "x:1", Weight: 257}}}, `backend "x:1": weight 257: must be between 1 and 256`},
		{"no port", Config{Backends: []BackendConfig{{Addr: "x"}}}, `backend "x": address must be host:port`},
		{"empty port", Config{Backends: []BackendConfig{{Addr: "x:"}}}, `backend "x:": address must be host:port`},
		{"duplicate", Config{Backends: []BackendConfig{{Addr: "x:1"}, {Addr: "x:1"}}}, `backend "x:1": backend already in pool`},
		{"max_conns", Config{Backends: []BackendConfig{{Addr: "x:1", MaxConns: -2}}}, `backend "x:1": max_conns -2: must be >= 0`},
		{"max_fails", Config{MaxFails: -1}, `max_fails -1: must be >= 0`},
		{"fail_timeout", Config{FailTimeout: -time.Second}, `fail_timeout -1s: must be >= 0`},
		{"slow_start", Config{SlowStart: -time.Second}, `slow_start -1s: must be >= 0`},
		{"hash_key", Config{HashKey: "cookie"}, `hash_key "cookie": must be ip, header:NAME, cookie:NAME or query:NAME`},
		{"hash_key ip", Config{HashKey: "ip:x"}, `hash_key "ip:x": must be`},
		{"health kind", Config{Health: HealthCheck{Kind: "udp"}}, `health kind "udp": must be tcp or http`},
		{"health path", Config{Health: HealthCheck{Kind: "http", Path: "health"}}, `health path "health": must start with /`},
		{"health rise", Config{Health: HealthCheck{Kind: "tcp", Rise: -1}}, `health rise -1: must be >= 0`},
		{"health interval", Config{Health: HealthCheck{Kind: "tcp", Interval: -1}}, `health interval -1ns: must be >= 0`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewPool(tc.cfg)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("err = %v, want prefix %q", err, tc.want)
			}
		})
	}
}

func TestNewPoolDefaults(t *testing.T) {
	p, _ := testPool(t, Config{Backends: []BackendConfig{{Addr: "a:1"}}, Health: HealthCheck{Kind: "http"}})
	cfg := p.Config()
	if cfg.Policy != LeastConn || cfg.FailTimeout != DefaultFailTimeout || cfg.MaxFails != 0 || cfg.HashKey != "ip" {
		t.Errorf("config = %+v", cfg)
	}
	h := cfg.Health
	if h.Path != "/" || h.Interval != DefaultCheckInterval || h.Timeout != DefaultCheckTimeout || h.Rise != 2 || h.Fall != 3 {
		t.Errorf("health = %+v", h)
	}
	if b := cfg.Backends[0]; b.Weight != 1 || b.MaxConns != 0 {
		t.Errorf("backend = %+v", b)
	}
}

func TestPickEmptyPool(t *testing.T) {
	p, _ := testPool(t, Config{})
	_, err := p.Pick(nil, nil)
	if !errors.Is(err, ErrNoBackend) || err.Error() != "no eligible backend: pool is empty" {
		t.Fatalf("err = %v", err)
	}
}

func TestNoBackendErrorSaysWhy(t *testing.T) {
	for _, pol := range []Policy{LeastConn, RoundRobin, Hash} {
		t.Run(string(pol), func(t *testing.T) {
			cfg := Config{Policy: pol, MaxFails: 1, Backends: equal(6)}
			cfg.Backends[5].MaxConns = 1
			p, _ := testPool(t, cfg)
			as := addrs(6)
			must(t, p.Drain(as[0], 0, 0))
			must(t, p.Disable(as[1]))
			for _, a := range as[2:4] {
				pickOnly(t, p, a).Failed(FailRefused)
			}
			held := pickOnly(t, p, as[5])
			defer held.Done()
			var tried []*Backend
			for {
				l, err := p.Pick([]byte("k"), tried)
				if err != nil {
					want := "no eligible backend: 2 down, 1 draining, 1 disabled, 1 at max_conns, 1 already tried"
					if !errors.Is(err, ErrNoBackend) || err.Error() != want {
						t.Fatalf("err = %v, want %q", err, want)
					}
					var nb *NoBackendError
					if !errors.As(err, &nb) || nb.Backends != 6 {
						t.Fatalf("err = %#v", err)
					}
					break
				}
				tried = append(tried, l.Backend())
				defer l.Done()
			}
		})
	}
}

func TestExclude(t *testing.T) {
	for _, pol := range []Policy{LeastConn, RoundRobin, Hash} {
		t.Run(string(pol), func(t *testing.T) {
			p, _ := testPool(t, Config{Policy: pol, Backends: equal(4)})
			var tried []*Backend
			for range 4 {
				l := mustPick(t, p, []byte("client"), tried...)
				if excluded(l.Backend(), tried) {
					t.Fatalf("picked excluded %s", l.Backend().Addr())
				}
				tried = append(tried, l.Backend())
				l.Failed(FailTimeout)
			}
			if _, err := p.Pick([]byte("client"), tried); !errors.Is(err, ErrNoBackend) {
				t.Fatalf("all tried: err = %v", err)
			}
		})
	}
}

func TestMaxConns(t *testing.T) {
	for _, pol := range []Policy{LeastConn, RoundRobin, Hash} {
		t.Run(string(pol), func(t *testing.T) {
			cfg := Config{Policy: pol, Backends: backends(1, 3)}
			cfg.Backends[0].MaxConns = 2
			cfg.Backends[1].MaxConns = 3
			p, _ := testPool(t, cfg)
			var ls []Lease
			for i := range 5 {
				ls = append(ls, mustPick(t, p, []byte{byte(i)}))
			}
			_, err := p.Pick(nil, nil)
			if err == nil || err.Error() != "no eligible backend: 2 at max_conns" {
				t.Fatalf("err = %v", err)
			}
			if a := activeOf(p); a[addrs(2)[0]] != 2 || a[addrs(2)[1]] != 3 {
				t.Fatalf("active = %v", a)
			}
			ls[0].Done()
			l := mustPick(t, p, nil)
			if l.Backend() != ls[0].Backend() {
				t.Fatalf("freed slot on %s, picked %s", ls[0].Backend().Addr(), l.Backend().Addr())
			}
			ls[0] = l
			must(t, p.SetMaxConns(addrs(2)[0], 0))
			ls = append(ls, mustPick(t, p, nil))
			for _, l := range ls {
				l.Done()
			}
		})
	}
}

func TestUnknownBackend(t *testing.T) {
	p, _ := testPool(t, Config{Backends: equal(1)})
	for name, err := range map[string]error{
		"Remove":      p.Remove("nope:1", 0, 0),
		"Drain":       p.Drain("nope:1", 0, 0),
		"Undrain":     p.Undrain("nope:1"),
		"SetWeight":   p.SetWeight("nope:1", 2),
		"SetMaxConns": p.SetMaxConns("nope:1", 2),
		"Disable":     p.Disable("nope:1"),
		"Enable":      p.Enable("nope:1"),
	} {
		if !errors.Is(err, ErrUnknownBackend) || err.Error() != `backend "nope:1": unknown backend` {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	if p.Lookup("nope:1") != nil {
		t.Error("Lookup of unknown address is not nil")
	}
	if err := p.Add(BackendConfig{Addr: addrs(1)[0]}); !errors.Is(err, ErrDuplicateBackend) {
		t.Errorf("Add duplicate: err = %v", err)
	}
	if err := p.SetWeight(addrs(1)[0], 0); err == nil || err.Error() != `backend "10.0.0.1:8080": weight 0: must be between 1 and 256` {
		t.Errorf("SetWeight 0: err = %v", err)
	}
}

func TestAddRemove(t *testing.T) {
	p, _ := testPool(t, Config{Backends: equal(2)})
	changes := p.Changes()
	must(t, p.Add(BackendConfig{Addr: "10.9.9.9:80", Weight: 2}))
	select {
	case <-changes:
	default:
		t.Fatal("Add did not signal a change")
	}
	b := p.Lookup("10.9.9.9:80")
	if b == nil || b.Weight() != 2 || b.State() != StateUp || len(p.Backends()) != 3 {
		t.Fatalf("after Add: %v %d", b, len(p.Backends()))
	}
	// Idle: removed at once.
	must(t, p.Remove("10.9.9.9:80", 0, 0))
	if p.Lookup("10.9.9.9:80") != nil || b.State() != StateRemoved || len(p.Snapshot()) != 2 {
		t.Fatalf("after Remove: state %v, %d backends", b.State(), len(p.Snapshot()))
	}
	if err := p.Drain("10.9.9.9:80", 0, 0); !errors.Is(err, ErrUnknownBackend) {
		t.Fatalf("Drain after Remove: %v", err)
	}
}

func TestRemoveWithTunnelsDrainsFirst(t *testing.T) {
	p, _ := testPool(t, Config{Backends: equal(2)})
	a := addrs(2)[0]
	var held []Lease
	for range 6 {
		held = append(held, mustPick(t, p, nil))
	}
	must(t, p.Remove(a, 0, 0))
	b := p.Lookup(a)
	if b == nil || b.State() != StateDraining {
		t.Fatalf("Remove with tunnels: %v", b)
	}
	if ds := b.DrainStatus(); ds == nil || !ds.Removing || ds.ActiveAtStart != 3 || ds.Active != 3 || !ds.Deadline.IsZero() {
		t.Fatalf("drain status = %+v", ds)
	}
	for range 10 {
		l := mustPick(t, p, nil)
		if l.Backend() == b {
			t.Fatal("picked a backend being removed")
		}
		l.Done()
	}
	for _, l := range held {
		l.Done()
	}
	if p.Lookup(a) != nil || b.State() != StateRemoved || b.Active() != 0 {
		t.Fatalf("after last Done: lookup %v, state %v", p.Lookup(a), b.State())
	}
}

func TestUndrainCancelsRemoval(t *testing.T) {
	p, _ := testPool(t, Config{Backends: equal(1)})
	a := addrs(1)[0]
	l := mustPick(t, p, nil)
	must(t, p.Remove(a, 0, 0))
	must(t, p.Undrain(a))
	l.Done()
	b := p.Lookup(a)
	if b == nil || b.State() != StateUp || b.DrainStatus() != nil {
		t.Fatalf("after Undrain and Done: %v", b)
	}
	mustPick(t, p, nil).Done()
}

func TestAddRevivesPendingRemoval(t *testing.T) {
	p, _ := testPool(t, Config{Backends: equal(1)})
	a := addrs(1)[0]
	l := mustPick(t, p, nil)
	must(t, p.Remove(a, time.Hour, 0))
	must(t, p.Add(BackendConfig{Addr: a, Weight: 3, MaxConns: 9}))
	l.Done()
	b := p.Lookup(a)
	if b == nil || b.State() != StateUp || b.Weight() != 3 || b.MaxConns() != 9 {
		t.Fatalf("revived: %+v", b.Status())
	}
}

func TestDisableEnable(t *testing.T) {
	p, _ := testPool(t, Config{Backends: equal(2)})
	a := addrs(2)
	held := mustPick(t, p, nil)
	must(t, p.Disable(a[0]))
	if s := p.Lookup(a[0]).State(); s != StateDisabled {
		t.Fatalf("state = %v", s)
	}
	for range 5 {
		l := mustPick(t, p, nil)
		if l.Backend().Addr() != a[1] {
			t.Fatal("picked a disabled backend")
		}
		l.Done()
	}
	must(t, p.Enable(a[0]))
	if s := p.Lookup(a[0]).State(); s != StateUp {
		t.Fatalf("state = %v", s)
	}
	held.Done()
}

func TestLeaseReleasedTwicePanics(t *testing.T) {
	p, _ := testPool(t, Config{Backends: equal(1)})
	l := mustPick(t, p, nil)
	l.Done()
	defer func() {
		if recover() == nil {
			t.Fatal("second Done did not panic")
		}
	}()
	l.Done()
}

func TestZeroLease(t *testing.T) {
	var l Lease
	l.Connected()
	l.Failed(FailError)
	l.Done()
	if l.Backend() != nil {
		t.Fatal("zero lease has a backend")
	}
}

func TestSnapshot(t *testing.T) {
	cfg := Config{MaxFails: 1, FailTimeout: time.Minute, Backends: backends(2, 1)}
	cfg.Backends[1].MaxConns = 5
	p, clk := testPool(t, cfg)
	a := addrs(2)
	l1 := pickOnly(t, p, a[0])
	l1.Connected()
	l2 := pickOnly(t, p, a[1])
	l2.Failed(FailRefused)
	must(t, p.Drain(a[0], time.Hour, time.Minute))
	snap := p.Snapshot()
	if len(snap) != 2 {
		t.Fatalf("snapshot = %+v", snap)
	}
	s0, s1 := snap[0], snap[1]
	if s0.Addr != a[0] || s0.State != "draining" || s0.Weight != 2 || s0.EffectiveWeight != 2 || s0.Active != 1 || s0.Total != 1 || !s0.Healthy {
		t.Errorf("backend 0 = %+v", s0)
	}
	if d := s0.Drain; d == nil || !d.Since.Equal(clk.Now()) || !d.Deadline.Equal(clk.Now().Add(time.Hour)) || d.Spread != time.Minute || d.ActiveAtStart != 1 || d.Removing {
		t.Errorf("drain = %+v", s0.Drain)
	}
	if s1.State != "down" || s1.Failures != 1 || s1.Active != 0 || s1.MaxConns != 5 || !s1.RetryAt.Equal(clk.Now().Add(time.Minute)) || s1.Drain != nil {
		t.Errorf("backend 1 = %+v", s1)
	}
	l1.Done()
}

func TestStateStrings(t *testing.T) {
	for s, want := range map[State]string{StateUp: "up", StateDraining: "draining", StateDown: "down", StateDisabled: "disabled", StateRemoved: "removed", 99: "unknown"} {
		if s.String() != want {
			t.Errorf("%d: %q", s, s.String())
		}
	}
	if b, _ := StateDown.MarshalText(); string(b) != "down" {
		t.Error(string(b))
	}
}

func TestSplitHashKey(t *testing.T) {
	for in, want := range map[string][2]string{
		"ip": {"ip", ""}, "header:X-User": {"header", "X-User"}, "cookie:sid": {"cookie", "sid"}, "query:sid": {"query", "sid"},
	} {
		src, name, err := SplitHashKey(in)
		if err != nil || src != want[0] || name != want[1] {
			t.Errorf("%q: %q %q %v", in, src, name, err)
		}
	}
	for _, in := range []string{"", "ip:", "header:", "host", "query"} {
		if _, _, err := SplitHashKey(in); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}
