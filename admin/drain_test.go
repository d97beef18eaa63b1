package admin

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/testutil"
)

// TestBackendDrainParams: deadline and spread default to the server's,
// take Go durations or seconds, and a bad one is a 400 naming it.
func TestBackendDrainParams(t *testing.T) {
	testutil.CheckLeaks(t)
	pool := newPool(t, "127.0.0.1:8010", "127.0.0.1:8011")
	_, c := startServer(t, Config{Pools: pools(NamedPool{DefaultPool, pool}), DrainDeadline: 45 * time.Second, DrainSpread: 15 * time.Second})

	cases := []struct {
		query    string
		deadline time.Duration // 0: none
		spread   float64
	}{
		{"", 45 * time.Second, 15},
		{"?deadline=60s&spread=30s", 60 * time.Second, 30},
		{"?deadline=1m30s", 90 * time.Second, 15},
		{"?deadline=90&spread=2.5", 90 * time.Second, 2.5},
		{"?deadline=0&spread=0", 0, 0},
	}
	for _, tc := range cases {
		before := time.Now()
		a := c.post("/backends/127.0.0.1:8010/drain" + tc.query)
		expect(t, a, http.StatusOK, "drain"+tc.query)
		var b Backend
		a.json(t, &b)
		if b.State != "draining" || b.Drain == nil || b.Drain.SpreadSeconds != tc.spread {
			t.Fatalf("drain%s: %+v %+v", tc.query, b, b.Drain)
		}
		switch {
		case tc.deadline == 0 && b.Drain.Deadline != nil:
			t.Errorf("drain%s: deadline %v, want none", tc.query, b.Drain.Deadline)
		case tc.deadline != 0 && (b.Drain.Deadline == nil || b.Drain.Deadline.Before(before.Add(tc.deadline-time.Second)) || b.Drain.Deadline.After(time.Now().Add(tc.deadline+time.Second))):
			t.Errorf("drain%s: deadline %v, want about now+%v", tc.query, b.Drain.Deadline, tc.deadline)
		}
	}

	for _, q := range []struct{ query, param string }{
		{"?deadline=abc", "deadline"},
		{"?deadline=-5s", "deadline"},
		{"?spread=soon", "spread"},
		{"?deadline=10s&spread=-1", "spread"},
		{"?deadline=1e300", "deadline"},
	} {
		a := c.post("/backends/127.0.0.1:8011/drain" + q.query)
		expect(t, a, http.StatusBadRequest, "drain"+q.query)
		if e := a.apiErr(t); e.Parameter != q.param {
			t.Errorf("drain%s: parameter %q, want %q", q.query, e.Parameter, q.param)
		}
	}
	if st := pool.Lookup("127.0.0.1:8011").State().String(); st != "up" {
		t.Fatalf("a refused drain drained: %s", st)
	}

	a := c.post("/backends/127.0.0.1:8010/undrain")
	expect(t, a, http.StatusOK, "undrain")
	var b Backend
	a.json(t, &b)
	if b.State != "up" || b.Drain != nil {
		t.Fatalf("undrained: %+v", b)
	}
	expect(t, c.post("/backends/127.0.0.1:8011/undrain"), http.StatusOK, "undrain a backend that is not draining")
	for _, p := range []string{"/backends/127.0.0.1:1/drain", "/backends/127.0.0.1:1/undrain"} {
		a := c.post(p)
		expect(t, a, http.StatusNotFound, p)
		a.apiErr(t)
	}
}

// TestNodeDrainFake: POST /drain pauses at once and makes /readyz 503; at
// the deadline the engine is told to close everything over the spread;
// POST /undrain resumes and says the closes were already scheduled.
func TestNodeDrainFake(t *testing.T) {
	testutil.CheckLeaks(t)
	fe := &fakeEngine{}
	fe.stats.TunnelsActive = 40
	_, c := startServer(t, Config{Engine: fe})
	start := time.Now()
	a := c.post("/drain?deadline=300ms&spread=1s")
	expect(t, a, http.StatusOK, "POST /drain")
	var st NodeStatus
	a.json(t, &st)
	if st.Ready || st.Reason != "draining" || !st.Paused || !st.Draining || st.Drain == nil ||
		st.Drain.Deadline == nil || st.Drain.SpreadSeconds != 1 || st.Drain.ActiveAtStart != 40 || st.Drain.Closing {
		t.Fatalf("after POST /drain: %+v %+v", st, st.Drain)
	}
	if fe.pauses != 1 {
		t.Fatalf("Pause called %d times", fe.pauses)
	}
	expect(t, c.get("/readyz"), http.StatusServiceUnavailable, "readyz right after drain")
	waitFor(t, "DrainAll at the deadline", func() bool { return len(fe.drainCalls()) > 0 })
	call := fe.drainCalls()[0]
	if at := call.at.Sub(start); at < 300*time.Millisecond || call.spread != time.Second {
		t.Fatalf("DrainAll(%v) at %v, want DrainAll(1s) after 300ms", call.spread, at)
	}
	var stats Stats
	c.get("/stats").json(t, &stats)
	if !stats.Node.Drain.Closing {
		t.Fatalf("node drain after the deadline: %+v", stats.Node.Drain)
	}

	a = c.post("/undrain")
	expect(t, a, http.StatusOK, "POST /undrain")
	var un struct {
		NodeStatus
		ClosesScheduled bool `json:"closes_scheduled"`
	}
	a.json(t, &un)
	if !un.Ready || un.Draining || un.Drain != nil || !un.ClosesScheduled || fe.resumes != 1 || fe.Paused() {
		t.Fatalf("after undrain: %s", a.body)
	}
	expect(t, c.get("/readyz"), http.StatusOK, "readyz after undrain")
	if n := len(fe.drainCalls()); n != 1 {
		t.Fatalf("DrainAll called %d times", n)
	}
}

// TestNodeDrainTimer: undrain cancels the deadline; draining again moves
// it (keeping the start); deadline 0 never closes anything.
func TestNodeDrainTimer(t *testing.T) {
	testutil.CheckLeaks(t)
	fe := &fakeEngine{}
	_, c := startServer(t, Config{Engine: fe})

	expect(t, c.post("/drain?deadline=200ms"), http.StatusOK, "drain")
	expect(t, c.post("/undrain"), http.StatusOK, "undrain")
	time.Sleep(400 * time.Millisecond)
	if n := len(fe.drainCalls()); n != 0 {
		t.Fatalf("DrainAll after undrain: %d calls", n)
	}

	var first, second NodeStatus
	c.post("/drain?deadline=1h").json(t, &first)
	c.post("/drain?deadline=200ms&spread=2s").json(t, &second)
	if !second.Drain.Since.Equal(first.Drain.Since) || !second.Drain.Deadline.Before(*first.Drain.Deadline) {
		t.Fatalf("re-drain: since %v → %v, deadline %v → %v", first.Drain.Since, second.Drain.Since, first.Drain.Deadline, second.Drain.Deadline)
	}
	waitFor(t, "the moved deadline", func() bool { return len(fe.drainCalls()) == 1 })
	if s := fe.drainCalls()[0].spread; s != 2*time.Second {
		t.Fatalf("spread %v", s)
	}
	expect(t, c.post("/undrain"), http.StatusOK, "undrain")

	var st NodeStatus
	c.post("/drain?deadline=0").json(t, &st)
	if st.Drain.Deadline != nil {
		t.Fatalf("deadline 0 set one: %v", st.Drain.Deadline)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(fe.drainCalls()); n != 1 {
		t.Fatalf("deadline 0 closed tunnels: %d calls", n)
	}
	if fe.pauses != 4 { // every POST /drain pauses (the engine ignores a second Pause)
		t.Fatalf("%d pauses", fe.pauses)
	}

	a := c.post("/drain?spread=x")
	expect(t, a, http.StatusBadRequest, "bad spread")
	if e := a.apiErr(t); e.Parameter != "spread" {
		t.Fatalf("%+v", e)
	}
}

func TestNodeDrainPauseFails(t *testing.T) {
	testutil.CheckLeaks(t)
	fe := &fakeEngine{pauseErr: errors.New("listener gone")}
	_, c := startServer(t, Config{Engine: fe})
	a := c.post("/drain")
	expect(t, a, http.StatusInternalServerError, "drain when Pause fails")
	if e := a.apiErr(t); e.Error != "pause accepting: listener gone" {
		t.Fatalf("%+v", e)
	}
}

// TestReadyzDuringPause: /readyz says 503 as soon as a drain starts, while
// the engine is still pausing its listeners (and holding its lock), not
// only once the pause is done.
func TestReadyzDuringPause(t *testing.T) {
	testutil.CheckLeaks(t)
	fe := &fakeEngine{pausing: make(chan struct{}), pauseGate: make(chan struct{})}
	_, c := startServer(t, Config{Engine: fe})
	drained := make(chan answer, 1)
	go func() { drained <- c.post("/drain?deadline=0") }()
	<-fe.pausing
	ready := make(chan answer, 1)
	go func() { ready <- c.get("/readyz") }()
	select {
	case a := <-ready:
		expect(t, a, http.StatusServiceUnavailable, "readyz while the engine pauses")
	case <-time.After(2 * time.Second):
		close(fe.pauseGate)
		<-ready
		<-drained
		t.Fatal("/readyz waited for the engine's Pause")
	}
	close(fe.pauseGate)
	expect(t, <-drained, http.StatusOK, "POST /drain")
}
