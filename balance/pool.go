// Package balance chooses the backend for each new tunnel: a pool of
// backends with selection policies (least_conn, round_robin, hash), passive
// and active health, max_conns, slow start and drain.
//
// The backend set is an immutable value swapped atomically on every change
// (copy-on-write), so Pick takes no lock and allocates nothing. Writers
// serialise on Pool.mu. (One rare path of Pick does take it: backing out of
// a backend that a racing drain has just emptied finishes that drain, which
// is a writer's job; see Backend.acquire.)
package balance

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// maxPickAttempts bounds Pick's retries when a chosen backend fills up or
// changes state between the scan and the reservation.
const maxPickAttempts = 8

// Pool is a set of backends and the policy that chooses among them.
type Pool struct {
	policy      Policy
	kind        policyKind
	maxFails    int32
	failTimeout int64 // ns
	slowStart   int64 // ns
	hashKey     string
	health      HealthCheck

	// now is the clock; nil means time.Now. Tests set it (via newPool) to
	// step through fail_timeout and slow start without sleeping.
	now   func() time.Time
	epoch time.Time

	set atomic.Pointer[backendSet]
	// What every Pick writes sits on cache lines of its own, so that one
	// core's picks do not evict the read-only fields above from another's.
	_    cacheLinePad
	next atomic.Uint64 // least_conn: pick sequence, for round robin among ties
	_    cacheLinePad
	rrG  atomic.Uint64 // round_robin: pick sequence, g in roundrobin.go
	_    cacheLinePad

	changed atomic.Pointer[chan struct{}]

	mu      sync.Mutex // serialises writers
	closed  bool
	onDrain DrainFunc
	ctx     context.Context // active checks
	cancel  context.CancelFunc
	wg      sync.WaitGroup // checkers and drain callbacks
}

// backendSet is immutable once published, but for the debts in rr.
type backendSet struct {
	list   []*Backend
	byAddr map[string]*Backend
	ring   *ring   // hash policy only; see hash.go
	rr     rrState // round_robin only; see roundrobin.go
}

// NewPool validates cfg, applies defaults and starts active checks if
// configured. Errors name the field and value.
func NewPool(cfg Config) (*Pool, error) { return newPool(cfg, nil) }

func newPool(cfg Config, now func() time.Time) (*Pool, error) {
	if err := normalize(&cfg); err != nil {
		return nil, err
	}
	p := &Pool{
		policy:      cfg.Policy,
		maxFails:    int32(cfg.MaxFails),
		failTimeout: int64(cfg.FailTimeout),
		slowStart:   int64(cfg.SlowStart),
		hashKey:     cfg.HashKey,
		health:      cfg.Health,
		now:         now,
	}
	for _, row := range policies {
		if row.name == cfg.Policy {
			p.kind = row.kind
		}
	}
	if now != nil {
		p.epoch = now()
	} else {
		p.epoch = time.Now()
	}
	ch := make(chan struct{})
	p.changed.Store(&ch)
	p.ctx, p.cancel = context.WithCancel(context.Background())

	list := make([]*Backend, 0, len(cfg.Backends))
	for _, bc := range cfg.Backends {
		list = append(list, newBackend(p, bc))
	}
	s, err := p.newSet(list)
	if err != nil {
		p.cancel()
		return nil, err
	}
	p.set.Store(s)
	p.mu.Lock()
	for _, b := range list {
		p.startCheckLocked(b)
	}
	p.mu.Unlock()
	return p, nil
}

// newSet builds an immutable set over list (which it keeps).
func (p *Pool) newSet(list []*Backend) (*backendSet, error) {
	s := &backendSet{list: list, byAddr: make(map[string]*Backend, len(list))}
	for _, b := range list {
		s.byAddr[b.addr] = b
	}
	switch p.kind {
	case kindHash:
		ring, err := buildRing(list)
		if err != nil {
			return nil, err
		}
		s.ring = ring
	case kindRoundRobin:
		s.rr = carryRR(p.set.Load(), list, p.rrG.Load())
	}
	return s, nil
}

// mono is the pool clock: nanoseconds since the pool was made, monotonic.
// time.Since on a monotonic epoch reads only the monotonic clock.
func (p *Pool) mono() int64 {
	if p.now != nil {
		return int64(p.now().Sub(p.epoch))
	}
	return int64(time.Since(p.epoch))
}

// wall turns a pool clock reading into a time for reports.
func (p *Pool) wall(ns int64) time.Time { return p.epoch.Add(time.Duration(ns)) }

// Pick chooses a backend for a new tunnel and reserves an active slot on it.
// key is the hash policy's key (ignored by the others; every empty key maps
// to the same backend, so the engine falls back to the client IP when a
// header, cookie or query key is absent); exclude lists backends already
// tried for this request. Neither is retained. Lock-free, no allocation on
// success. On failure the error is a *NoBackendError, which matches
// ErrNoBackend.
func (p *Pool) Pick(key []byte, exclude []*Backend) (Lease, error) {
	s := p.set.Load()
	c := clock{p: p}
	for range maxPickAttempts {
		var b *Backend
		switch p.kind {
		case kindLeastConn:
			b = s.pickLeastConn(&p.next, exclude, &c)
		case kindRoundRobin:
			b = s.pickRoundRobin(&p.rrG, exclude, &c)
		case kindHash:
			b = s.pickHash(key, exclude, &c)
		}
		if b == nil {
			break
		}
		if b.acquire(&c) {
			return Lease{b: b}, nil
		}
	}
	return Lease{}, s.noBackend(exclude, &c)
}

func excluded(b *Backend, exclude []*Backend) bool {
	for _, e := range exclude {
		if e == b {
			return true
		}
	}
	return false
}

func (s *backendSet) noBackend(exclude []*Backend, c *clock) error {
	e := &NoBackendError{Backends: len(s.list)}
	for _, b := range s.list {
		f := b.flags.Load()
		switch {
		case excluded(b, exclude):
			e.Excluded++
		case f&flagDisabled != 0:
			e.Disabled++
		case f&(flagDraining|flagRemoved) != 0:
			e.Draining++
		case f&flagCheckDown != 0, f&flagPassive != 0 && c.now() < b.downUntil.Load():
			e.Down++
		case b.maxConns.Load() > 0 && b.active.Load() >= b.maxConns.Load():
			e.Full++
		}
	}
	return e
}

// Lookup returns the backend at addr, or nil if the pool has none.
func (p *Pool) Lookup(addr string) *Backend { return p.set.Load().byAddr[addr] }

// Backends returns the current backends, in configuration order (added
// ones last), draining ones included until removal completes.
func (p *Pool) Backends() []*Backend { return slices.Clone(p.set.Load().list) }

// Policy is the pool's selection policy.
func (p *Pool) Policy() Policy { return p.policy }

// Config returns the pool's configuration with defaults applied and the
// current backends and weights.
func (p *Pool) Config() Config {
	cfg := Config{
		Policy:      p.policy,
		MaxFails:    int(p.maxFails),
		FailTimeout: time.Duration(p.failTimeout),
		SlowStart:   time.Duration(p.slowStart),
		HashKey:     p.hashKey,
		Health:      p.health,
	}
	for _, b := range p.set.Load().list {
		cfg.Backends = append(cfg.Backends, BackendConfig{Addr: b.addr, Weight: b.Weight(), MaxConns: b.MaxConns()})
	}
	return cfg
}

// Snapshot is a read-only copy of every backend's state and counters.
func (p *Pool) Snapshot() []BackendStatus {
	list := p.set.Load().list
	out := make([]BackendStatus, len(list))
	for i, b := range list {
		out[i] = b.Status()
	}
	return out
}

// Changes returns a channel closed at the next change of the backend set or
// of a backend's state (not of counters): wait on it, then call Changes
// again and read Snapshot. Any number of goroutines may wait.
func (p *Pool) Changes() <-chan struct{} { return *p.changed.Load() }

func (p *Pool) notify() {
	ch := make(chan struct{})
	close(*p.changed.Swap(&ch))
}

// lookupLocked finds addr for a writer.
func (p *Pool) lookupLocked(addr string) (*Backend, error) {
	if p.closed {
		return nil, ErrClosed
	}
	b := p.set.Load().byAddr[addr]
	if b == nil {
		return nil, fmt.Errorf("backend %q: %w", addr, ErrUnknownBackend)
	}
	return b, nil
}

// Add puts a new backend in the pool; it starts its slow start and active
// checks. Adding an address whose removal is pending (still draining)
// cancels the removal and applies the new weight and max_conns.
func (p *Pool) Add(bc BackendConfig) error {
	if err := normalizeBackend(&bc); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	s := p.set.Load()
	if b := s.byAddr[bc.Addr]; b != nil {
		d := b.drain.Load()
		if d == nil || !d.removing {
			return fmt.Errorf("backend %q: %w", bc.Addr, ErrDuplicateBackend)
		}
		b.setMaxConns(bc.MaxConns)
		if err := p.setWeightLocked(b, bc.Weight); err != nil {
			return err
		}
		p.undrainLocked(b)
		p.notify()
		return nil
	}
	b := newBackend(p, bc)
	ns, err := p.newSet(append(slices.Clip(s.list), b))
	if err != nil {
		return fmt.Errorf("backend %q: %w", bc.Addr, err)
	}
	b.startSlow(p.mono())
	p.set.Store(ns)
	p.startCheckLocked(b)
	p.notify()
	return nil
}

// SetWeight changes a backend's weight. With the hash policy it rebuilds the
// ring; only keys of this backend move (to it, or away from it).
func (p *Pool) SetWeight(addr string, w int) error {
	if err := checkWeight(w); err != nil {
		return fmt.Errorf("backend %q: %w", addr, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	b, err := p.lookupLocked(addr)
	if err != nil {
		return err
	}
	if err := p.setWeightLocked(b, w); err != nil {
		return err
	}
	p.notify()
	return nil
}

// setWeightLocked changes b's weight. The hash ring places points by
// weight and round_robin's implicit increments use the weight the set was
// built with, so both rebuild the set.
func (p *Pool) setWeightLocked(b *Backend, w int) error {
	old := b.weight.Swap(int64(w) * weightScale)
	if p.kind == kindLeastConn || old == int64(w)*weightScale {
		return nil
	}
	s := p.set.Load()
	ns, err := p.newSet(slices.Clone(s.list))
	if err != nil {
		b.weight.Store(old)
		return fmt.Errorf("backend %q: %w", b.addr, err)
	}
	p.set.Store(ns)
	return nil
}

// SetMaxConns changes a backend's max_conns (0 = unlimited). Tunnels above
// a lowered limit go on; the backend takes no more until below it.
func (p *Pool) SetMaxConns(addr string, n int) error {
	if n < 0 {
		return fmt.Errorf("backend %q: max_conns %d: must be >= 0", addr, n)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	b, err := p.lookupLocked(addr)
	if err != nil {
		return err
	}
	b.setMaxConns(n)
	p.notify()
	return nil
}

// Disable takes a backend out of selection (nginx "down"); its tunnels go
// on.
func (p *Pool) Disable(addr string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, err := p.lookupLocked(addr)
	if err != nil {
		return err
	}
	if b.flags.Load()&flagDisabled == 0 {
		b.flags.Or(flagDisabled)
		p.notify()
	}
	return nil
}

// Enable undoes Disable; the backend restarts its slow start, since a
// backend the operator took out has often just been restarted.
func (p *Pool) Enable(addr string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, err := p.lookupLocked(addr)
	if err != nil {
		return err
	}
	if b.flags.Load()&flagDisabled != 0 {
		b.startSlow(p.mono())
		b.flags.And(^flagDisabled)
		p.notify()
	}
	return nil
}

// Close stops active checks and drain timers and waits for them; no
// goroutine is left. Pick and the leases keep working; changes return
// ErrClosed. The DrainFunc must not call Close.
func (p *Pool) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	for _, b := range p.set.Load().list {
		if d := b.drain.Load(); d != nil {
			d.stop()
		}
	}
	p.cancel()
	p.mu.Unlock()
	p.wg.Wait()
}
