package admin

import (
	"errors"
	"net/http"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/testutil"
)

// byBackend groups tunnels by the echo backend that answered them.
func byBackend(tunnels []*tunnel) map[string][]*tunnel {
	m := make(map[string][]*tunnel)
	for _, tn := range tunnels {
		m[tn.backend] = append(m[tn.backend], tn)
	}
	return m
}

// TestBackendDrainEndToEnd is the drain the issue describes, through a
// real engine: 100 tunnels on each of backends a and b; drain a with
// deadline 2s and spread 1s. New tunnels all go to b; a's tunnels go on
// exchanging messages until the deadline and then close, with Close
// frames, between 2s and about 3.5s after the call and spread over the
// window, not at one instant; none of b's closes.
func TestBackendDrainEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("200 tunnels and 4 s of drain")
	}
	warmUp(t)
	testutil.CheckLeaks(t)
	p := startProxy(t, 2, Config{})
	const perBackend = 100
	var all []*tunnel
	for range 2 * perBackend {
		tn := p.dial(t)
		tn.watch()
		all = append(all, tn)
	}
	groups := byBackend(all)
	a, b := groups["a"], groups["b"]
	if len(a) != perBackend || len(b) != perBackend {
		t.Fatalf("least_conn spread 200 tunnels as a %d, b %d", len(a), len(b))
	}
	exchange(t, all, 10*time.Second)
	addrA := p.backends[0].Addr()

	stalls := watchStalls(t)
	sent := time.Now()
	ans := p.api.post("/backends/" + addrA + "/drain?deadline=2s&spread=1s")
	answered := time.Now()
	expect(t, ans, http.StatusOK, "drain a")
	var be Backend
	ans.json(t, &be)
	if be.State != "draining" || be.Drain == nil || be.Drain.ActiveAtStart != perBackend || be.Drain.Active != perBackend || be.Drain.SpreadSeconds != 1 ||
		be.Drain.Deadline == nil || be.Drain.Deadline.Sub(be.Drain.Since) != 2*time.Second {
		t.Fatalf("drain answer: %s", ans.body)
	}
	// The call is when the server took it (its clock is this one): on a
	// loaded machine the request alone can take a while to be served.
	start := be.Drain.Since
	if start.Before(sent) || start.After(answered) {
		t.Fatalf("drain started at %v, outside the request's [%v, %v]", start, sent, answered)
	}

	// New tunnels all go to b.
	var fresh []*tunnel
	for range 20 {
		tn := p.dial(t)
		tn.watch()
		if tn.backend != "b" {
			t.Fatalf("a new tunnel went to %q while a drains", tn.backend)
		}
		fresh = append(fresh, tn)
	}
	b = append(b, fresh...)

	// a's tunnels keep working until the deadline. Rounds of messages
	// until 1.5 s in: later, on a loaded machine a round could straddle
	// the deadline.
	rounds := 0
	for time.Since(start) < 1500*time.Millisecond {
		exchange(t, a, 5*time.Second)
		rounds++
		time.Sleep(100 * time.Millisecond)
	}
	if rounds == 0 {
		t.Fatal("no message exchanged on a's tunnels before the deadline: the machine is too slow to tell")
	}
	for _, tn := range a {
		if at := tn.closed(); !at.IsZero() {
			t.Fatalf("an a tunnel closed %v after the drain call, before the deadline", at.Sub(start))
		}
	}

	waitFor(t, "a's tunnels to close", func() bool {
		for _, tn := range a {
			if tn.closed().IsZero() {
				return false
			}
		}
		return true
	})
	var offsets []time.Duration
	for _, tn := range a {
		offsets = append(offsets, tn.closed().Sub(start))
		if c := tn.code.Load(); c != 1001 {
			t.Errorf("an a tunnel closed with code %d, want 1001 (going away)", c)
		}
	}
	slices.Sort(offsets)
	first, last := offsets[0], offsets[len(offsets)-1]
	p10, p90 := offsets[len(offsets)/10], offsets[len(offsets)*9/10]
	// A machine too loaded to run this process on time delays the closes
	// and bunches them by as much: the bounds allow for what was measured.
	stall := stalls()
	t.Logf("a's closes after the drain call (answered in %v): first %v, 10%% %v, 90%% %v, last %v; longest stall %v",
		answered.Sub(sent), first, p10, p90, last, stall)
	if first < 2*time.Second || last > 3500*time.Millisecond+stall {
		t.Errorf("a's tunnels closed from %v to %v after the call, want within [2s, 3.5s]", first, last)
	}
	// Evenly over 1 s, the middle 80% span about 0.8 s; all at one
	// instant (or in a few bursts of the 100 ms timer wheel) far less.
	if p90-p10 < 500*time.Millisecond-stall {
		t.Errorf("a's closes are bunched: the middle 80%% took %v, want them spread over about 1s", p90-p10)
	}

	// None of b's closed, and they all still work.
	exchange(t, b, 10*time.Second)
	for _, tn := range b {
		if !tn.closed().IsZero() {
			t.Fatalf("a b tunnel closed %v after the drain call", tn.closed().Sub(start))
		}
	}
	var st Stats
	p.api.get("/stats").json(t, &st)
	if st.Closes["drain"] != perBackend || st.Tunnels.Active != int64(len(b)) {
		t.Errorf("after the drain: closes %v, %d active, want %d drain closes and %d active", st.Closes, st.Tunnels.Active, perBackend, len(b))
	}
	for _, bk := range st.Backends {
		switch bk.Address {
		case addrA:
			if bk.State != "draining" || bk.Active != 0 || bk.Drain == nil || bk.Drain.Progress != 1 {
				t.Errorf("a after its drain: %+v %+v", bk, bk.Drain)
			}
		default:
			if bk.State != "up" || bk.Active != int64(len(b)) {
				t.Errorf("b after a's drain: %+v", bk)
			}
		}
	}
}

// TestNodeDrainEndToEnd: POST /drain makes /readyz 503 at once and new
// connections are refused, while the tunnels already open go on and end
// on their own; POST /undrain accepts again; with a deadline the rest end
// with Close frames at the deadline.
func TestNodeDrainEndToEnd(t *testing.T) {
	warmUp(t)
	testutil.CheckLeaks(t)
	p := startProxy(t, 2, Config{})
	var open []*tunnel
	for range 10 {
		tn := p.dial(t)
		tn.watch()
		open = append(open, tn)
	}
	exchange(t, open, 10*time.Second)

	ans := p.api.post("/drain?deadline=0")
	expect(t, ans, http.StatusOK, "POST /drain")
	var st NodeStatus
	ans.json(t, &st)
	if st.Ready || !st.Draining || !st.Paused || st.Drain == nil || st.Drain.ActiveAtStart != 10 {
		t.Fatalf("drain answer: %s", ans.body)
	}
	// At once: the very next probe fails, the very next connection too.
	expect(t, p.api.get("/readyz"), http.StatusServiceUnavailable, "readyz right after POST /drain")
	if tn, err := p.tryDial(); !errors.Is(err, syscall.ECONNREFUSED) {
		if err == nil {
			tn.close()
		}
		t.Fatalf("a new connection while the node drains: %v, want it refused", err)
	}

	// The open tunnels go on, and end when their clients end them.
	for range 3 {
		exchange(t, open, 5*time.Second)
		time.Sleep(100 * time.Millisecond)
	}
	for _, tn := range open[:5] {
		tn.close()
	}
	waitFor(t, "the closed tunnels to leave", func() bool { return p.srv.Stats().TunnelsActive == 5 })
	exchange(t, open[5:], 5*time.Second)

	// Undrain: accepting and ready again.
	expect(t, p.api.post("/undrain"), http.StatusOK, "POST /undrain")
	expect(t, p.api.get("/readyz"), http.StatusOK, "readyz after undrain")
	tn := p.dial(t)
	tn.watch()
	open = append(open[5:], tn)
	exchange(t, open, 5*time.Second)

	// With a deadline: the rest end with Close frames after it.
	stalls := watchStalls(t)
	start := time.Now()
	expect(t, p.api.post("/drain?deadline=500ms&spread=200ms"), http.StatusOK, "POST /drain with a deadline")
	expect(t, p.api.get("/readyz"), http.StatusServiceUnavailable, "readyz while draining")
	waitFor(t, "the tunnels to close at the deadline", func() bool {
		for _, tn := range open {
			if tn.closed().IsZero() {
				return false
			}
		}
		return true
	})
	for _, tn := range open {
		at := tn.closed().Sub(start)
		if at < 500*time.Millisecond || at > 2*time.Second+stalls() {
			t.Errorf("a tunnel closed %v after POST /drain?deadline=500ms&spread=200ms", at)
		}
		if c := tn.code.Load(); c != 1001 {
			t.Errorf("closed with code %d, want 1001", c)
		}
	}
	waitFor(t, "no tunnels", func() bool { return p.srv.Stats().TunnelsActive == 0 })
	var stats Stats
	p.api.get("/stats").json(t, &stats)
	if d := stats.Node.Drain; d == nil || !d.Closing || d.Progress != 1 {
		t.Errorf("node drain after the deadline: %+v", d)
	}
}

// watchStalls measures how late this process's goroutines get to run: the
// longest a 10 ms sleep overslept, until the test ends.
func watchStalls(t *testing.T) func() time.Duration {
	var worst atomic.Int64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			before := time.Now()
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			late := time.Since(before) - 10*time.Millisecond
			if int64(late) > worst.Load() {
				worst.Store(int64(late))
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-done
	})
	return func() time.Duration { return time.Duration(worst.Load()) }
}
