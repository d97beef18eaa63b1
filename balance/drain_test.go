package balance

import (
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/testutil"
)

func TestSpread(t *testing.T) {
	const s = time.Second
	half := func() float64 { return 0.5 }
	for _, tc := range []struct {
		i, n   int
		spread time.Duration
		jitter float64
		want   time.Duration
	}{
		{0, 4, s, 0, 0},
		{1, 4, s, 0, 250 * time.Millisecond},
		{3, 4, s, 0, 750 * time.Millisecond},
		{1, 3, s, 0, 333333333},
		{2, 3, s, 0, 666666666},
		{0, 1, s, 0, 0},
		{5, 4, s, 0, 750 * time.Millisecond}, // i past n clamps to the last slot
		{-1, 4, s, 0, 0},
		{1, 4, 0, 0, 0},
		{1, 0, s, 0, 0},
		{0, 4, s, 1, 125 * time.Millisecond}, // half of one 250 ms slot
		{3, 4, s, 1, 875 * time.Millisecond},
		{3, 4, s, 0.2, 775 * time.Millisecond},
		{2, 1_000_000, 24 * time.Hour, 0, 172800 * time.Microsecond}, // no overflow on long windows
		{999_999, 1_000_000, 24 * time.Hour, 0, 24*time.Hour - 86400000},
	} {
		if got := Spread(tc.i, tc.n, tc.spread, tc.jitter, half); got != tc.want {
			t.Errorf("Spread(%d, %d, %v, %v) = %v, want %v", tc.i, tc.n, tc.spread, tc.jitter, got, tc.want)
		}
	}
	// Jitter stays inside the window, with the default source too.
	for i := range 100 {
		if got := Spread(i, 100, s, 1, nil); got < time.Duration(i)*10*time.Millisecond || got >= s {
			t.Fatalf("Spread(%d, 100, 1s, 1, rand) = %v", i, got)
		}
	}
}

// fakeEngine closes a backend's tunnels as the engine would on a drain
// deadline: the i-th of n at Spread(i, n, spread) after the call.
type fakeEngine struct {
	mu      sync.Mutex
	tunnels map[*Backend][]Lease
	calls   []time.Time
	closed  []time.Time
	wg      sync.WaitGroup
}

func (e *fakeEngine) open(t *testing.T, p *Pool) {
	l := mustPick(t, p, nil)
	e.mu.Lock()
	e.tunnels[l.Backend()] = append(e.tunnels[l.Backend()], l)
	e.mu.Unlock()
}

func (e *fakeEngine) onDrain(b *Backend, spread time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls = append(e.calls, time.Now())
	ls := e.tunnels[b]
	delete(e.tunnels, b)
	for i, l := range ls {
		e.wg.Add(1)
		time.AfterFunc(Spread(i, len(ls), spread, 0, nil), func() {
			defer e.wg.Done()
			e.mu.Lock()
			e.closed = append(e.closed, time.Now())
			e.mu.Unlock()
			l.Done()
		})
	}
}

// Remove with a deadline and a spread: the pool calls the engine once, at
// the deadline; the engine closes the tunnels evenly over the spread; the
// last close takes the backend out of the pool.
func TestDrainDeadlineAndSpread(t *testing.T) {
	testutil.CheckLeaks(t)
	p, err := NewPool(Config{Backends: equal(2)})
	must(t, err)
	t.Cleanup(p.Close)
	e := &fakeEngine{tunnels: map[*Backend][]Lease{}}
	p.OnDrainDeadline(e.onDrain)
	for range 8 {
		e.open(t, p)
	}
	a := addrs(2)[0]
	b := p.Lookup(a)
	const deadline, spread = 200 * time.Millisecond, 800 * time.Millisecond
	start := time.Now()
	must(t, p.Remove(a, deadline, spread))
	ds := b.DrainStatus()
	if ds == nil || !ds.Removing || ds.ActiveAtStart != 4 || ds.Spread != spread || ds.Deadline.Sub(ds.Since) != deadline {
		t.Fatalf("drain status %+v", ds)
	}
	waitFor(t, "removal", func() bool { return p.Lookup(a) == nil })
	e.wg.Wait()
	time.Sleep(deadline) // a second call would come now
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.calls) != 1 {
		t.Fatalf("%d drain calls", len(e.calls))
	}
	// Timers never fire early, so the lower bounds are exact; a loaded
	// machine only makes things late, hence the generous upper bounds.
	// Closing all four at the deadline, or calling before it, fails.
	const late = time.Second
	if d := e.calls[0].Sub(start); d < deadline || d > deadline+late {
		t.Errorf("drain call %v after Remove, want %v", d, deadline)
	}
	if len(e.closed) != 4 {
		t.Fatalf("%d tunnels closed", len(e.closed))
	}
	for i, at := range e.closed {
		want := time.Duration(i) * spread / 4
		got := at.Sub(e.calls[0])
		t.Logf("close %d: %v after the call, slot at %v", i, got.Round(time.Millisecond), want)
		if got < want || got > want+late {
			t.Errorf("close %d came %v after the call, want %v", i, got, want)
		}
	}
	if b.State() != StateRemoved || b.Active() != 0 {
		t.Errorf("%v, %d active", b.State(), b.Active())
	}
	// The other backend's tunnels are untouched.
	if other := p.Lookup(addrs(2)[1]); other.Active() != 4 {
		t.Errorf("other backend: %d active", other.Active())
	}
	for _, ls := range e.tunnels {
		for _, l := range ls {
			l.Done()
		}
	}
}

// No call when the drain is undone, when the tunnels end first, when a new
// deadline replaces the old, or after Close.
func TestDrainDeadlineCancelled(t *testing.T) {
	testutil.CheckLeaks(t)
	p, err := NewPool(Config{Backends: equal(4)})
	must(t, err)
	var mu sync.Mutex
	called := map[string]int{}
	p.OnDrainDeadline(func(b *Backend, _ time.Duration) {
		mu.Lock()
		called[b.Addr()]++
		mu.Unlock()
	})
	var held []Lease
	for range 8 {
		held = append(held, mustPick(t, p, nil))
	}
	as := addrs(4)
	// Long enough that the calls below are done well before any deadline,
	// even on a loaded machine.
	const d = 300 * time.Millisecond
	must(t, p.Drain(as[0], d, 0))
	must(t, p.Undrain(as[0]))
	must(t, p.Drain(as[1], d, 0))
	for _, l := range held {
		if l.Backend().Addr() == as[1] {
			l.Done()
		}
	}
	if s := p.Lookup(as[1]); s.State() != StateDraining || s.Active() != 0 {
		t.Fatalf("drained backend: %v, %d active", s.State(), s.Active())
	}
	must(t, p.Drain(as[2], d, 0))
	must(t, p.Drain(as[2], time.Hour, 0)) // replaces the deadline
	must(t, p.Drain(as[3], d, 0))
	p.Close()
	time.Sleep(2 * d) // the deadlines pass: their calls would come now
	mu.Lock()
	defer mu.Unlock()
	if len(called) != 0 {
		t.Fatalf("drain calls: %v", called)
	}
	if err := p.Drain(as[0], 0, 0); err != ErrClosed {
		t.Fatalf("Drain after Close: %v", err)
	}
	for _, l := range held {
		if l.Backend().Addr() != as[1] {
			l.Done()
		}
	}
}

func TestDrainWithoutDeadline(t *testing.T) {
	p, _ := testPool(t, Config{Backends: equal(2)})
	p.OnDrainDeadline(func(*Backend, time.Duration) { t.Error("called without a deadline") })
	a := addrs(2)[0]
	l := pickOnly(t, p, a)
	must(t, p.Drain(a, 0, 0))
	ds := p.Lookup(a).DrainStatus()
	if ds == nil || !ds.Deadline.IsZero() || ds.ActiveAtStart != 1 || ds.Removing {
		t.Fatalf("drain status %+v", ds)
	}
	// Redrain keeps the start.
	must(t, p.Drain(a, 0, 0))
	if ds2 := p.Lookup(a).DrainStatus(); ds2.Since != ds.Since || ds2.ActiveAtStart != 1 {
		t.Fatalf("redrain: %+v", ds2)
	}
	changes := p.Changes()
	l.Done()
	select {
	case <-changes: // drain finished
	default:
		t.Fatal("the end of a drain did not signal a change")
	}
	if b := p.Lookup(a); b == nil || b.State() != StateDraining {
		t.Fatal("a drained backend left the pool without Remove")
	}
}
