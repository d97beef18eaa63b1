package balance

import (
	"math/rand/v2"
	"slices"
	"time"
)

// Drain: a draining backend gets no new tunnels and its tunnels go on. With
// a deadline, when it passes the pool calls the engine's DrainFunc once for
// the backend; the engine closes that backend's remaining tunnels, the i-th
// of n at Spread(i, n, spread, ...) after the deadline, so the clients'
// reconnects arrive over the window instead of as one storm. The pool keeps
// one timer per draining backend, never one per tunnel, and the engine finds
// one backend's tunnels in its own per-backend list, so nobody scans every
// tunnel.

// DrainFunc is called from a timer goroutine when a draining backend's
// deadline passes and it still has tunnels: close b's tunnels spread evenly
// over spread, the i-th of n at Spread(i, n, spread, ...). It should
// schedule the closes and return (Close waits for it) and must not call
// Pool.Close. Each close ends with the tunnel's Lease.Done as usual; the
// last one completes a pending removal.
type DrainFunc func(b *Backend, spread time.Duration)

// DrainStatus is a drain's progress, for the admin API.
type DrainStatus struct {
	Since         time.Time
	Deadline      time.Time     // zero: none (tunnels end on their own)
	Spread        time.Duration // window over which tunnels are closed after Deadline
	ActiveAtStart int64
	Active        int64
	Removing      bool // the backend leaves the pool when Active reaches 0
}

// drainInfo is replaced, never changed, once published.
type drainInfo struct {
	since, deadline int64 // pool clock; deadline 0 = none
	spread          time.Duration
	activeAtStart   int64
	removing        bool
	timer           *time.Timer
}

func (d *drainInfo) stop() {
	if d.timer != nil {
		d.timer.Stop()
	}
}

// OnDrainDeadline sets the function called when a drain deadline passes.
// Set it before draining with a deadline.
func (p *Pool) OnDrainDeadline(f DrainFunc) {
	p.mu.Lock()
	p.onDrain = f
	p.mu.Unlock()
}

// Spread is when, after the deadline, to close the i-th (0-based) of n
// tunnels over a window: evenly spaced at i·spread/n, plus up to jitter
// (0..1) of one slot drawn from rnd (math/rand/v2's Float64 if nil), so
// that several proxies draining the same backend do not close in lockstep.
// The result is in [0, spread).
func Spread(i, n int, spread time.Duration, jitter float64, rnd func() float64) time.Duration {
	if n <= 0 || spread <= 0 || i <= 0 && jitter <= 0 {
		return 0
	}
	i = min(max(i, 0), n-1)
	slot := spread / time.Duration(n)
	// i·spread/n without overflowing for long windows and large n.
	off := slot*time.Duration(i) + spread%time.Duration(n)*time.Duration(i)/time.Duration(n)
	if jitter > 0 {
		if rnd == nil {
			rnd = rand.Float64
		}
		off += time.Duration(min(jitter, 1) * rnd() * float64(slot))
	}
	return min(off, spread-1)
}

// DrainStatus is b's drain progress, or nil if it is not draining.
func (b *Backend) DrainStatus() *DrainStatus {
	d := b.drain.Load()
	if d == nil || b.flags.Load()&flagDraining == 0 {
		return nil
	}
	p := b.pool
	st := &DrainStatus{
		Since:         p.wall(d.since),
		Spread:        d.spread,
		ActiveAtStart: d.activeAtStart,
		Active:        b.Active(),
		Removing:      d.removing,
	}
	if d.deadline != 0 {
		st.Deadline = p.wall(d.deadline)
	}
	return st
}

// Drain stops new tunnels to addr. deadline 0 lets its tunnels run until
// they end; otherwise, deadline from now, the DrainFunc closes them over
// spread. Draining a draining backend keeps its start and replaces the
// deadline and spread.
func (p *Pool) Drain(addr string, deadline, spread time.Duration) error {
	return p.drainOrRemove(addr, deadline, spread, false)
}

// Remove takes addr out of the pool: at once if it has no tunnels, else it
// drains (as Drain) and leaves when its last tunnel ends. Undrain, or Add of
// the same address, before then cancels the removal.
func (p *Pool) Remove(addr string, deadline, spread time.Duration) error {
	return p.drainOrRemove(addr, deadline, spread, true)
}

func (p *Pool) drainOrRemove(addr string, deadline, spread time.Duration, remove bool) error {
	if deadline < 0 || spread < 0 {
		return errorf(addr, "drain deadline %v, spread %v: must be >= 0", deadline, spread)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	b, err := p.lookupLocked(addr)
	if err != nil {
		return err
	}
	now := p.mono()
	// The flag goes up before the active count is read, and acquire bumps
	// the count before reading the flag: either a racing Pick sees the
	// drain and backs out, or this sees its lease.
	b.flags.Or(flagDraining)
	d := &drainInfo{since: now, spread: spread, activeAtStart: b.active.Load(), removing: remove}
	if old := b.drain.Load(); old != nil {
		old.stop()
		d.since, d.activeAtStart = old.since, old.activeAtStart
		d.removing = d.removing || old.removing
	}
	if deadline > 0 {
		d.deadline = now + int64(deadline)
		d.timer = time.AfterFunc(deadline, func() { p.drainDeadline(b, d) })
	}
	b.drain.Store(d)
	if d.removing && b.active.Load() == 0 {
		p.removeLocked(b)
	}
	p.notify()
	return nil
}

// Undrain returns a draining backend to service and cancels a pending
// removal and deadline. Undraining a backend that is not draining does
// nothing.
func (p *Pool) Undrain(addr string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, err := p.lookupLocked(addr)
	if err != nil {
		return err
	}
	if p.undrainLocked(b) {
		p.notify()
	}
	return nil
}

func (p *Pool) undrainLocked(b *Backend) bool {
	d := b.drain.Load()
	if d == nil && b.flags.Load()&flagDraining == 0 {
		return false
	}
	if d != nil {
		d.stop()
	}
	b.drain.Store(nil)
	b.flags.And(^flagDraining)
	return true
}

// drainDeadline runs on the drain's timer goroutine.
func (p *Pool) drainDeadline(b *Backend, d *drainInfo) {
	p.mu.Lock()
	if p.closed || b.drain.Load() != d || p.onDrain == nil || b.active.Load() == 0 {
		p.mu.Unlock()
		return
	}
	f := p.onDrain
	// Added under mu while not closed: Close sets closed under mu before it
	// waits, so this Add always comes before the Wait.
	p.wg.Add(1)
	p.mu.Unlock()
	defer p.wg.Done()
	f(b, d.spread)
}

// drained is called by release when a draining backend's active count
// reaches 0.
func (p *Pool) drained(b *Backend) {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := b.drain.Load()
	if b.active.Load() != 0 || b.flags.Load()&(flagDraining|flagRemoved) != flagDraining || d == nil {
		return
	}
	if d.removing {
		p.removeLocked(b)
	}
	p.notify()
}

// removeLocked takes b out of the set. Called with p.mu.
func (p *Pool) removeLocked(b *Backend) {
	s := p.set.Load()
	i := slices.Index(s.list, b)
	if i < 0 {
		return
	}
	if d := b.drain.Load(); d != nil {
		d.stop()
	}
	b.flags.Or(flagRemoved)
	p.stopCheckLocked(b)
	// Removing only shrinks the ring, which cannot fail.
	ns, _ := p.newSet(slices.Delete(slices.Clone(s.list), i, i+1))
	p.set.Store(ns)
}
