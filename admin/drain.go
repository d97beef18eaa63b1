package admin

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/wsgate/wsgate/balance"
)

// Draining, of one backend or of the whole node: no new tunnels, the
// running ones go on; at the deadline the rest are closed spread evenly
// over the spread window, so the clients' reconnects arrive over the
// window instead of as one storm. A deadline of 0 sets none: tunnels end
// on their own.
//
// A backend drain is the pool's (balance.Pool.Drain), which calls the
// engine at the deadline. A node drain is kept here: Pause at once (the
// listening sockets stay bound and refuse connections, /readyz answers
// 503), DrainAll(spread) at the deadline.

// drainParams reads ?deadline= and ?spread= (Go durations such as 60s or
// 1m30s, or bare seconds); absent ones take the server's defaults.
func (s *Server) drainParams(r *http.Request) (deadline, spread time.Duration, err error) {
	deadline, err = durationParam(r, "deadline", s.cfg.DrainDeadline)
	if err != nil {
		return 0, 0, err
	}
	spread, err = durationParam(r, "spread", s.cfg.DrainSpread)
	return deadline, spread, err
}

// paramError is a bad request parameter; the answer names it.
type paramError struct {
	param string
	msg   string
}

func (e *paramError) Error() string { return e.msg }

func durationParam(r *http.Request, name string, def time.Duration) (time.Duration, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	d, err := parseDuration(v)
	if err != nil || d < 0 {
		return 0, &paramError{name, fmt.Sprintf("%s %q: want a duration >= 0 such as 60s, 1m30s or 0 (none)", name, v)}
	}
	return d, nil
}

// parseDuration reads a Go duration, or a bare number of seconds.
func parseDuration(v string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		if f > float64(1<<62)/float64(time.Second) {
			return 0, errors.New("too long")
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	return time.ParseDuration(v)
}

// writeParamError answers 400 naming the parameter.
func writeParamError(w http.ResponseWriter, err error) {
	var pe *paramError
	if errors.As(err, &pe) {
		writeError(w, http.StatusBadRequest, pe.param, pe.msg)
		return
	}
	writeError(w, http.StatusBadRequest, "", err.Error())
}

// POST /backends/{addr}/drain?deadline=60s&spread=30s
func (s *Server) drainBackend(w http.ResponseWriter, r *http.Request) {
	np, addr, ok := s.findBackend(w, r)
	if !ok {
		return
	}
	deadline, spread, err := s.drainParams(r)
	if err != nil {
		writeParamError(w, err)
		return
	}
	if err := np.Pool.Drain(addr, deadline, spread); err != nil {
		writePoolError(w, err)
		return
	}
	s.log.Info("backend drain", "pool", np.Name, "backend", addr, "deadline", deadline.String(), "spread", spread.String())
	s.writeBackend(w, http.StatusOK, np, addr)
}

// POST /backends/{addr}/undrain
func (s *Server) undrainBackend(w http.ResponseWriter, r *http.Request) {
	np, addr, ok := s.findBackend(w, r)
	if !ok {
		return
	}
	if err := np.Pool.Undrain(addr); err != nil {
		writePoolError(w, err)
		return
	}
	s.log.Info("backend undrain", "pool", np.Name, "backend", addr)
	s.writeBackend(w, http.StatusOK, np, addr)
}

// POST /backends/{addr}/close?rate=50 ends the backend's tunnels
// gracefully (Close 1001) at about rate tunnels per second, without
// draining it: new tunnels may still go there. An operator moving
// clients off a backend slowly, or rebalancing after adding backends,
// without a reconnect storm.
func (s *Server) closeBackendTunnels(w http.ResponseWriter, r *http.Request) {
	np, addr, ok := s.findBackend(w, r)
	if !ok {
		return
	}
	rate := 10.0
	if v := r.URL.Query().Get("rate"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 || f > 1e6 || f != f {
			writeError(w, http.StatusBadRequest, "rate", fmt.Sprintf("rate %q: want tunnels per second, a number above 0", v))
			return
		}
		rate = f
	}
	lk, ok := np.Pool.(interface{ Lookup(string) *balance.Backend })
	if !ok {
		writeError(w, http.StatusNotImplemented, "", "this pool cannot name its backends to the engine")
		return
	}
	b := lk.Lookup(addr)
	if b == nil {
		writeError(w, http.StatusNotFound, "", fmt.Sprintf("backend %q: unknown backend", addr))
		return
	}
	s.cfg.Engine.CloseBackendTunnels(b, rate)
	s.log.Info("closing backend tunnels", "pool", np.Name, "backend", addr, "rate", rate, "tunnels", b.Active())
	writeJSON(w, http.StatusAccepted, map[string]any{"pool": np.Name, "backend": addr, "rate": rate, "tunnels": b.Active()})
}

// nodeDrain is the node's drain state.
type nodeDrain struct {
	srv *Server

	// op serialises drains and undrains, which call the engine; mu guards
	// the state below and is not held across those calls, so that /readyz
	// is never kept waiting by a Pause in progress.
	op            sync.Mutex
	mu            sync.Mutex
	draining      bool
	stopping      bool
	since         time.Time
	deadline      time.Time // zero: none
	spread        time.Duration
	activeAtStart int64
	closing       bool        // DrainAll has been called
	timer         *time.Timer // fires DrainAll at the deadline
	gen           uint64      // bumped by every change, so a stale timer does nothing
}

// readiness is /readyz's answer. It asks the engine whether it is paused
// only when the node's own state does not already say "not ready": the
// engine holds its lock while a Pause is in progress, and a drain makes the
// node unready before that Pause, not after it.
func (n *nodeDrain) readiness() (ready bool, reason string) {
	n.mu.Lock()
	stopping, draining := n.stopping, n.draining
	n.mu.Unlock()
	switch {
	case stopping:
		return false, "stopping"
	case draining:
		return false, "draining"
	case n.srv.cfg.Engine.Paused():
		return false, "paused"
	}
	return true, ""
}

func (n *nodeDrain) status(active int64) NodeStatus {
	e := n.srv.cfg.Engine
	paused := e.Paused()
	n.mu.Lock()
	defer n.mu.Unlock()
	st := NodeStatus{Paused: paused, Draining: n.draining}
	switch {
	case n.stopping:
		st.Reason = "stopping"
	case n.draining:
		st.Reason = "draining"
	case paused:
		st.Reason = "paused"
	}
	st.Ready = st.Reason == ""
	if n.draining {
		st.Drain = &NodeDrain{
			Since:         n.since.UTC(),
			Deadline:      timeOrNil(n.deadline),
			SpreadSeconds: n.spread.Seconds(),
			ActiveAtStart: n.activeAtStart,
			Active:        active,
			Progress:      progress(n.activeAtStart, active),
			Closing:       n.closing,
		}
	}
	return st
}

// start drains the node. Draining again keeps the start and replaces the
// deadline and spread (a deadline already passed is not undone: the
// closes are scheduled).
func (n *nodeDrain) start(deadline, spread time.Duration) error {
	e := n.srv.cfg.Engine
	n.op.Lock()
	defer n.op.Unlock()
	active := e.Stats().TunnelsActive
	n.mu.Lock()
	if n.stopping {
		n.mu.Unlock()
		return errStopping
	}
	// Not ready first, then stop accepting: a load balancer polling
	// /readyz stops sending before connections are refused.
	if !n.draining {
		n.draining = true
		n.since = time.Now()
		n.activeAtStart = active
		n.closing = false
	}
	n.mu.Unlock()
	if err := e.Pause(); err != nil {
		return fmt.Errorf("pause accepting: %w", err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.gen++
	if n.timer != nil {
		n.timer.Stop()
		n.timer = nil
	}
	n.spread = spread
	n.deadline = time.Time{}
	if deadline > 0 && !n.closing {
		n.deadline = time.Now().Add(deadline)
		gen := n.gen
		n.timer = time.AfterFunc(deadline, func() { n.fire(gen) })
	}
	return nil
}

// fire runs on the timer's goroutine at the deadline.
func (n *nodeDrain) fire(gen uint64) {
	n.mu.Lock()
	if n.gen != gen || !n.draining || n.stopping {
		n.mu.Unlock()
		return
	}
	n.closing = true
	spread := n.spread
	n.mu.Unlock()
	n.srv.log.Info("node drain deadline: closing the remaining tunnels", "spread", spread.String())
	n.srv.cfg.Engine.DrainAll(spread)
}

var errStopping = errors.New("the node is stopping: it neither drains nor accepts again")

// undrain accepts again. Tunnels whose closes the deadline has already
// scheduled still close; it reports whether that was the case.
func (n *nodeDrain) undrain() (wasClosing bool, err error) {
	e := n.srv.cfg.Engine
	n.op.Lock()
	defer n.op.Unlock()
	n.mu.Lock()
	stopping := n.stopping
	n.mu.Unlock()
	if stopping {
		return false, errStopping
	}
	// Accepting first, then ready: the other way round a load balancer
	// could send clients to a node still refusing them.
	if err := e.Resume(); err != nil {
		return false, fmt.Errorf("accept again: %w", err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	wasClosing = n.closing
	n.gen++
	if n.timer != nil {
		n.timer.Stop()
		n.timer = nil
	}
	n.draining, n.closing = false, false
	n.deadline = time.Time{}
	return wasClosing, nil
}

// stop cancels a pending deadline (the admin server is closing).
func (n *nodeDrain) stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.gen++
	if n.timer != nil {
		n.timer.Stop()
		n.timer = nil
	}
}

// Stopping tells the admin server that the process is stopping (SIGTERM):
// /readyz answers 503 from now on and /drain and /undrain answer 409, so
// that nobody resumes accepting on a node on its way out.
func (s *Server) Stopping() {
	s.node.mu.Lock()
	s.node.stopping = true
	s.node.mu.Unlock()
}

// POST /drain?deadline=60s&spread=30s
func (s *Server) drainNode(w http.ResponseWriter, r *http.Request) {
	deadline, spread, err := s.drainParams(r)
	if err != nil {
		writeParamError(w, err)
		return
	}
	if err := s.node.start(deadline, spread); err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, errStopping) {
			code = http.StatusConflict
		}
		writeError(w, code, "", err.Error())
		return
	}
	s.log.Info("node drain: not accepting", "deadline", deadline.String(), "spread", spread.String())
	writeJSON(w, http.StatusOK, s.node.status(s.cfg.Engine.Stats().TunnelsActive))
}

// POST /undrain
func (s *Server) undrainNode(w http.ResponseWriter, r *http.Request) {
	wasClosing, err := s.node.undrain()
	if err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, errStopping) {
			code = http.StatusConflict
		}
		writeError(w, code, "", err.Error())
		return
	}
	s.log.Info("node undrain: accepting again", "closes_already_scheduled", wasClosing)
	st := s.node.status(s.cfg.Engine.Stats().TunnelsActive)
	writeJSON(w, http.StatusOK, struct {
		NodeStatus
		// ClosesScheduled: the deadline had passed; the tunnels it
		// scheduled to close still close.
		ClosesScheduled bool `json:"closes_scheduled"`
	}{st, wasClosing})
}
