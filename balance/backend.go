package balance

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// State is a backend's state as selection sees it and as stats report it.
type State uint8

const (
	// StateUp: eligible for new tunnels (subject to max_conns).
	StateUp State = iota
	// StateDraining: no new tunnels; existing ones go on until they end or
	// the drain deadline closes them.
	StateDraining
	// StateDown: failed health (passive max_fails, or active checks). A
	// passively-down backend stays down until a trial tunnel succeeds.
	StateDown
	// StateDisabled: taken out by the operator (nginx "down"); existing
	// tunnels go on.
	StateDisabled
	// StateRemoved: no longer in the pool. Only seen through a *Backend kept
	// after removal (for example by a lease that ends late).
	StateRemoved
)

var stateNames = [...]string{
	StateUp:       "up",
	StateDraining: "draining",
	StateDown:     "down",
	StateDisabled: "disabled",
	StateRemoved:  "removed",
}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "unknown"
}

// MarshalText makes a State read as its name in JSON.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Bits of Backend.flags. Keeping every condition selection looks at in one
// word means the common case (an up backend with no limit and no timer
// running) costs one atomic load: flags == 0.
const (
	flagDraining  uint32 = 1 << iota // admin: drain (or removal) in progress
	flagDisabled                     // admin: disabled
	flagRemoved                      // no longer in the set
	flagCheckDown                    // active checks failed Fall times in a row
	flagPassive                      // passive: max_fails reached; downUntil says when a trial may go
	flagSlow                         // slow start ramp running; slowFrom/slowUntil bound it
	flagLimited                      // max_conns set: the scan must compare active with it
)

// flagsIneligible: any of these keeps a backend from new tunnels outright.
const flagsIneligible = flagDraining | flagDisabled | flagRemoved | flagCheckDown

// weightScale: weights are held multiplied by this so that slow start can
// give a weight-1 backend a fractional effective weight (0.1 at the start of
// the ramp) while selection still compares integers. Decimal, so reported
// effective weights read as 0.1 rather than 0.0996.
const weightScale = 1000

// cacheLinePad keeps what is around it on separate cache lines (64 bytes
// on amd64 and arm64).
type cacheLinePad [64]byte

// slowStartFloor is the share of its weight a backend gets at the start of
// the slow-start ramp. nginx Plus ramps from zero; with least_conn a zero
// weight would mean no tunnel at all until the first tick, so start at a tenth.
const slowStartFloor = 0.1

// Backend is one upstream address with its state and counters. All fields
// selection reads are atomics; a *Backend stays valid after removal.
type Backend struct {
	// Read by every Pick's scan, written only on state changes. Kept on
	// their own cache line, away from the counters every lease writes, so
	// that round_robin and hash scans on one core do not miss on lines
	// another core's leases just wrote.
	flags     atomic.Uint32
	weight    atomic.Int64 // configured weight × weightScale
	maxConns  atomic.Int64 // 0 = unlimited
	downUntil atomic.Int64 // passive: pool clock ns before which no trial goes
	slowFrom  atomic.Int64 // slow start: ramp start, pool clock ns
	slowUntil atomic.Int64 // slow start: ramp end; 0 when none
	_         cacheLinePad

	// Written by every lease.
	active atomic.Int64
	total  atomic.Int64
	// lastPick is the least_conn sequence number of the pick that last
	// chose this backend: ties go to the least recently picked, which is
	// round robin among whichever backends tie.
	lastPick atomic.Uint64
	_        cacheLinePad

	addr string
	pool *Pool

	// Passive health: failure window bookkeeping, guarded by hmu. fails is
	// atomic too so Connected can skip the lock when nothing failed.
	hmu       sync.Mutex
	fails     atomic.Int32
	failStart int64
	failures  atomic.Int64 // every failure ever, for stats

	// Active health.
	check     atomic.Pointer[checkResult]
	stopCheck context.CancelFunc // guarded by pool.mu

	drain atomic.Pointer[drainInfo] // written under pool.mu
}

func newBackend(p *Pool, bc BackendConfig) *Backend {
	b := &Backend{addr: bc.Addr, pool: p}
	b.weight.Store(int64(bc.Weight) * weightScale)
	b.setMaxConns(bc.MaxConns)
	return b
}

func (b *Backend) setMaxConns(n int) {
	b.maxConns.Store(int64(n))
	if n > 0 {
		b.flags.Or(flagLimited)
	} else {
		b.flags.And(^flagLimited)
	}
}

// Addr is the backend's host:port.
func (b *Backend) Addr() string { return b.addr }

// Active is the number of leases held: tunnels open or being dialled.
func (b *Backend) Active() int64 { return b.active.Load() }

// Total is the number of leases ever handed out.
func (b *Backend) Total() int64 { return b.total.Load() }

// Failures is the number of failed dials ever reported.
func (b *Backend) Failures() int64 { return b.failures.Load() }

// Weight is the configured weight.
func (b *Backend) Weight() int { return int(b.weight.Load() / weightScale) }

// MaxConns is the configured limit of active tunnels; 0 means none.
func (b *Backend) MaxConns() int { return int(b.maxConns.Load()) }

// EffectiveWeight is the weight selection uses now: below Weight while the
// slow-start ramp runs.
func (b *Backend) EffectiveWeight() float64 {
	c := clock{p: b.pool}
	return float64(b.effectiveWeight(&c)) / weightScale
}

// Healthy reports the active checks' verdict; true when checks are off.
func (b *Backend) Healthy() bool { return b.flags.Load()&flagCheckDown == 0 }

// State is the backend's state; when several apply the most administrative
// one wins (removed, disabled, draining, down, up).
func (b *Backend) State() State {
	f := b.flags.Load()
	switch {
	case f&flagRemoved != 0:
		return StateRemoved
	case f&flagDisabled != 0:
		return StateDisabled
	case f&flagDraining != 0:
		return StateDraining
	case f&(flagCheckDown|flagPassive) != 0:
		return StateDown
	}
	return StateUp
}

// clock reads the pool clock at most once per Pick, and only when a backend
// with a timer (passive down, slow start) is looked at.
type clock struct {
	p  *Pool
	ns int64
	ok bool
}

func (c *clock) now() int64 {
	if !c.ok {
		c.ns, c.ok = c.p.mono(), true
	}
	return c.ns
}

// candidate reports whether b may take a new tunnel now and, if so, its
// active count and effective (scaled) weight. It does not reserve. The
// policies' scans test flags == 0 (up, no limit, no timer) inline and call
// this only otherwise: the call on every backend was a third of Pick's time
// at 16 backends.
func (b *Backend) candidate(c *clock) (active, weight int64, ok bool) {
	f := b.flags.Load()
	active, weight = b.active.Load(), b.weight.Load()
	if f&flagsIneligible != 0 {
		return 0, 0, false
	}
	if mc := b.maxConns.Load(); mc > 0 && active >= mc {
		return 0, 0, false
	}
	// nginx: a peer with fails >= max_fails is skipped while
	// now - checked <= fail_timeout; past that, one trial may go.
	if f&flagPassive != 0 && c.now() < b.downUntil.Load() {
		return 0, 0, false
	}
	if f&flagSlow != 0 {
		weight = b.slowWeight(weight, c.now())
	}
	return active, weight, true
}

// effectiveWeight is the scaled weight with the slow-start ramp applied.
func (b *Backend) effectiveWeight(c *clock) int64 {
	w := b.weight.Load()
	if b.flags.Load()&flagSlow != 0 {
		w = b.slowWeight(w, c.now())
	}
	return w
}

// startSlow begins the slow-start ramp (nginx Plus slow_start: "the time
// during which the server will recover its weight from zero to a nominal
// value, when unhealthy server becomes healthy, or when the server becomes
// available after a period of time it was considered unavailable").
func (b *Backend) startSlow(now int64) {
	d := b.pool.slowStart
	if d <= 0 {
		return
	}
	b.slowFrom.Store(now)
	b.slowUntil.Store(now + d)
	b.flags.Or(flagSlow)
}

// slowWeight ramps w linearly from slowStartFloor×w to w over the window.
func (b *Backend) slowWeight(w, now int64) int64 {
	until := b.slowUntil.Load()
	if until == 0 || now >= until {
		b.endSlow(until)
		return w
	}
	from := b.slowFrom.Load()
	frac := 0.0
	if until > from {
		frac = float64(now-from) / float64(until-from)
	}
	frac = min(max(frac, 0), 1)
	ew := int64(math.Round(float64(w) * (slowStartFloor + (1-slowStartFloor)*frac)))
	return max(ew, 1)
}

// endSlow clears the ramp once it is over, so later picks skip the clock.
// A ramp restarted concurrently (startSlow stores slowUntil, then sets the
// flag) is not lost: after clearing the flag we look again.
func (b *Backend) endSlow(until int64) {
	if !b.slowUntil.CompareAndSwap(until, 0) {
		return
	}
	b.flags.And(^flagSlow)
	if b.slowUntil.Load() != 0 {
		b.flags.Or(flagSlow)
	}
}

// acquire reserves an active slot on b, which a policy chose. It fails when
// max_conns filled up since the scan, when b became ineligible (drain,
// removal: checking after the increment means a drain that has read the
// active count cannot miss this lease), or when another Pick took the
// half-open trial first. Backing out of a draining backend may be its last
// release, in which case release finishes the drain under the pool's lock:
// the drain saw this lease and left the removal to it.
func (b *Backend) acquire(c *clock) bool {
	if mc := b.maxConns.Load(); mc > 0 {
		for {
			a := b.active.Load()
			if a >= mc {
				return false
			}
			if b.active.CompareAndSwap(a, a+1) {
				break
			}
		}
	} else {
		b.active.Add(1)
	}
	f := b.flags.Load()
	if f&flagsIneligible != 0 || (f&flagPassive != 0 && !b.claimTrial(c)) {
		b.release()
		return false
	}
	b.total.Add(1)
	return true
}

// release gives back an active slot. The last release of a draining backend
// tells the pool, which finishes a pending removal.
func (b *Backend) release() {
	n := b.active.Add(-1)
	if n > 0 {
		return
	}
	if n < 0 {
		panic("balance: lease on " + b.addr + " released twice")
	}
	if b.flags.Load()&flagDraining != 0 {
		b.pool.drained(b)
	}
}

// Status is a read-only copy of b's state for stats and metrics.
func (b *Backend) Status() BackendStatus {
	p := b.pool
	c := clock{p: p}
	st := BackendStatus{
		Addr:            b.addr,
		State:           b.State().String(),
		Weight:          b.Weight(),
		EffectiveWeight: float64(b.effectiveWeight(&c)) / weightScale,
		MaxConns:        b.MaxConns(),
		Active:          b.Active(),
		Total:           b.Total(),
		Failures:        b.Failures(),
		Healthy:         b.Healthy(),
	}
	if b.flags.Load()&flagPassive != 0 {
		st.RetryAt = p.wall(b.downUntil.Load())
	}
	if r := b.check.Load(); r != nil {
		st.LastCheck, st.LastError = r.at, r.err
	}
	st.Drain = b.DrainStatus()
	return st
}

// BackendStatus is a snapshot of one backend, for the admin API and metrics.
type BackendStatus struct {
	Addr            string
	State           string
	Weight          int
	EffectiveWeight float64 // below Weight during slow start
	MaxConns        int
	Active          int64
	Total           int64
	Failures        int64
	Healthy         bool      // active checks' verdict; true when off
	LastCheck       time.Time // zero when active checks are off
	LastError       string    // last active check's error, "" if it passed
	RetryAt         time.Time // passively down: when a trial tunnel may go; else zero
	Drain           *DrainStatus
}
