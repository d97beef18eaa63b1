package balance

import (
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/testutil"
)

// Many goroutines pick, complete, fail and hold tunnels while others add,
// remove, drain, undrain, re-weight, limit, disable and enable backends and
// read snapshots. Run with -race. At the end every active count is exactly
// 0, every lease is accounted for in some backend's total, and no backend
// whose removal was pending is left behind.
func TestConcurrentPickAndMutate(t *testing.T) {
	for _, pol := range []Policy{LeastConn, RoundRobin, Hash} {
		t.Run(string(pol), func(t *testing.T) {
			testutil.CheckLeaks(t)
			p, err := NewPool(Config{Policy: pol, MaxFails: 3, FailTimeout: 2 * time.Millisecond,
				SlowStart: 5 * time.Millisecond, Backends: equal(6)})
			must(t, err)
			defer p.Close()
			var drainCalls atomic.Int64
			p.OnDrainDeadline(func(*Backend, time.Duration) { drainCalls.Add(1) })
			pool := addrs(12) // the mutators draw from twice the initial set

			var (
				picks, noBackend atomic.Int64
				seen             sync.Map // every *Backend ever leased
				stop             = make(chan struct{})
				wg               sync.WaitGroup
			)
			for w := range 8 {
				wg.Go(func() {
					rnd := rand.New(rand.NewPCG(uint64(w), 1))
					var held []Lease
					var tried []*Backend
					key := make([]byte, 4)
					for {
						select {
						case <-stop:
							for _, l := range held {
								l.Done()
							}
							return
						default:
						}
						key[0], key[1] = byte(rnd.IntN(256)), byte(rnd.IntN(256))
						tried = tried[:0]
						if rnd.IntN(4) == 0 {
							tried = append(tried, p.Lookup(pool[rnd.IntN(len(pool))]))
						}
						l, err := p.Pick(key, tried)
						if err != nil {
							if !errors.Is(err, ErrNoBackend) {
								t.Error(err)
							}
							noBackend.Add(1)
							continue
						}
						picks.Add(1)
						seen.Store(l.Backend(), true)
						switch r := rnd.IntN(10); {
						case r == 0:
							l.Failed(FailKind(rnd.IntN(4)))
						case r < 5:
							l.Connected()
							held = append(held, l)
						default:
							l.Connected()
							l.Done()
						}
						if len(held) > 20 {
							i := rnd.IntN(len(held))
							held[i].Done()
							held = append(held[:i], held[i+1:]...)
						}
					}
				})
			}
			for m := range 2 {
				wg.Go(func() {
					rnd := rand.New(rand.NewPCG(uint64(m), 2))
					for {
						select {
						case <-stop:
							return
						default:
						}
						a := pool[rnd.IntN(len(pool))]
						var err error
						switch rnd.IntN(9) {
						case 0:
							err = p.Add(BackendConfig{Addr: a, Weight: 1 + rnd.IntN(5), MaxConns: rnd.IntN(3) * 10})
						case 1:
							err = p.Remove(a, time.Duration(rnd.IntN(3))*time.Millisecond, time.Millisecond)
						case 2:
							err = p.Drain(a, time.Duration(rnd.IntN(3))*time.Millisecond, 0)
						case 3:
							err = p.Undrain(a)
						case 4:
							err = p.SetWeight(a, 1+rnd.IntN(8))
						case 5:
							err = p.SetMaxConns(a, rnd.IntN(3)*5)
						case 6:
							err = p.Disable(a)
						case 7:
							err = p.Enable(a)
						case 8:
							p.Snapshot()
							select {
							case <-p.Changes():
							default:
							}
						}
						if err != nil && !errors.Is(err, ErrUnknownBackend) && !errors.Is(err, ErrDuplicateBackend) {
							t.Error(err)
						}
						time.Sleep(time.Duration(rnd.IntN(200)) * time.Microsecond)
					}
				})
			}
			time.Sleep(300 * time.Millisecond)
			close(stop)
			wg.Wait()

			var total int64
			n := 0
			seen.Range(func(k, _ any) bool {
				b := k.(*Backend)
				n++
				total += b.Total()
				if a := b.Active(); a != 0 {
					t.Errorf("%s (%v): %d active", b.Addr(), b.State(), a)
				}
				return true
			})
			if total != picks.Load() {
				t.Errorf("totals %d, picks %d", total, picks.Load())
			}
			for _, b := range p.Backends() {
				if b.Active() != 0 {
					t.Errorf("%s: %d active", b.Addr(), b.Active())
				}
				if ds := b.DrainStatus(); ds != nil && ds.Removing {
					t.Errorf("%s: removal pending with no tunnels", b.Addr())
				}
			}
			t.Logf("%d picks (%d backend objects), %d with no backend, %d drain deadline calls, %d in the pool at the end",
				picks.Load(), n, noBackend.Load(), drainCalls.Load(), len(p.Backends()))
		})
	}
}

// max_conns holds under concurrent picks: the reservation is a CAS against
// the limit, so no backend ever goes over it, and every slot gets used.
func TestMaxConnsConcurrent(t *testing.T) {
	for _, pol := range []Policy{LeastConn, RoundRobin, Hash} {
		t.Run(string(pol), func(t *testing.T) {
			cfg := Config{Policy: pol, Backends: equal(4)}
			for i := range cfg.Backends {
				cfg.Backends[i].MaxConns = 5
			}
			p, _ := testPool(t, cfg)
			var mu sync.Mutex
			var held []Lease
			var wg sync.WaitGroup
			for w := range 16 {
				wg.Go(func() {
					key := []byte{byte(w)}
					for range 200 {
						l, err := p.Pick(key, nil)
						if err != nil {
							continue
						}
						if a := l.Backend().Active(); a > 5 {
							t.Errorf("%s: %d active, max_conns 5", l.Backend().Addr(), a)
						}
						mu.Lock()
						held = append(held, l)
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			if len(held) != 20 {
				t.Errorf("%d leases, want 20 (4 backends × max_conns 5)", len(held))
			}
			for _, l := range held {
				l.Done()
			}
		})
	}
}
