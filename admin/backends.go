package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/wsgate/wsgate/balance"
)

// Backends is GET /backends.
type Backends struct {
	Backends []Backend `json:"backends"`
}

// AddBackend is the body of POST /backends.
type AddBackend struct {
	// Pool may be omitted while there is one pool.
	Pool     string `json:"pool,omitempty"`
	Address  string `json:"address"`
	Weight   int    `json:"weight,omitempty"`    // 1..256; 0 or absent: 1
	MaxConns int    `json:"max_conns,omitempty"` // 0: unlimited
}

// Removed is the answer of DELETE /backends/{addr} when the backend had no
// tunnels and left at once.
type Removed struct {
	Pool    string `json:"pool"`
	Address string `json:"address"`
	Removed bool   `json:"removed"`
}

// GET /backends[?pool=NAME]
func (s *Server) listBackends(w http.ResponseWriter, r *http.Request) {
	pool := r.URL.Query().Get("pool")
	if pool != "" && s.pool(pool) == nil {
		writeError(w, http.StatusNotFound, "pool", fmt.Sprintf("pool %q: no such pool", pool))
		return
	}
	writeJSON(w, http.StatusOK, Backends{Backends: s.backends(pool)})
}

// GET /backends/{addr}[?pool=NAME]
func (s *Server) getBackend(w http.ResponseWriter, r *http.Request) {
	np, addr, ok := s.findBackend(w, r)
	if !ok {
		return
	}
	s.writeBackend(w, http.StatusOK, np, addr)
}

// POST /backends with an AddBackend body.
func (s *Server) addBackend(w http.ResponseWriter, r *http.Request) {
	var req AddBackend
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "body", "body: want JSON such as {\"address\": \"10.0.0.5:8010\", \"weight\": 1, \"max_conns\": 0}: "+err.Error())
		return
	}
	if _, port, err := net.SplitHostPort(req.Address); err != nil || port == "" {
		writeError(w, http.StatusBadRequest, "address", fmt.Sprintf("address %q: want host:port", req.Address))
		return
	}
	if req.Weight < 0 || req.Weight > balance.MaxWeight {
		writeError(w, http.StatusBadRequest, "weight", fmt.Sprintf("weight %d: want 1..%d", req.Weight, balance.MaxWeight))
		return
	}
	if req.MaxConns < 0 {
		writeError(w, http.StatusBadRequest, "max_conns", fmt.Sprintf("max_conns %d: want 0 (unlimited) or more", req.MaxConns))
		return
	}
	np, ok := s.choosePool(w, req.Pool)
	if !ok {
		return
	}
	err := np.Pool.Add(balance.BackendConfig{Addr: req.Address, Weight: req.Weight, MaxConns: req.MaxConns})
	if err != nil {
		writePoolError(w, err)
		return
	}
	s.log.Info("backend added", "pool", np.Name, "backend", req.Address, "weight", req.Weight, "max_conns", req.MaxConns)
	s.writeBackend(w, http.StatusCreated, np, req.Address)
}

// DELETE /backends/{addr}?deadline=60s&spread=30s drains the backend and
// removes it when its last tunnel ends: 200 when it left at once, 202
// while it drains.
func (s *Server) removeBackend(w http.ResponseWriter, r *http.Request) {
	np, addr, ok := s.findBackend(w, r)
	if !ok {
		return
	}
	deadline, spread, err := s.drainParams(r)
	if err != nil {
		writeParamError(w, err)
		return
	}
	if err := np.Pool.Remove(addr, deadline, spread); err != nil {
		writePoolError(w, err)
		return
	}
	s.log.Info("backend removal", "pool", np.Name, "backend", addr, "deadline", deadline.String(), "spread", spread.String())
	if b, ok := lookup(np, addr); ok {
		writeJSON(w, http.StatusAccepted, b)
		return
	}
	writeJSON(w, http.StatusOK, Removed{Pool: np.Name, Address: addr, Removed: true})
}

// pool returns the pool named, or nil.
func (s *Server) pool(name string) *NamedPool {
	for _, np := range s.cfg.Pools() {
		if np.Name == name {
			return &np
		}
	}
	return nil
}

// choosePool picks the pool a new backend goes to: the one named, or the
// only one.
func (s *Server) choosePool(w http.ResponseWriter, name string) (NamedPool, bool) {
	pools := s.cfg.Pools()
	if name == "" {
		if len(pools) == 1 {
			return pools[0], true
		}
		writeError(w, http.StatusBadRequest, "pool", fmt.Sprintf("pool: required when there are several pools (%s)", poolNames(pools)))
		return NamedPool{}, false
	}
	for _, np := range pools {
		if np.Name == name {
			return np, true
		}
	}
	writeError(w, http.StatusNotFound, "pool", fmt.Sprintf("pool %q: no such pool", name))
	return NamedPool{}, false
}

// findBackend finds {addr} in any pool, or in ?pool= when given. An
// address in several pools needs ?pool=.
func (s *Server) findBackend(w http.ResponseWriter, r *http.Request) (NamedPool, string, bool) {
	addr := r.PathValue("addr")
	want := r.URL.Query().Get("pool")
	var found []NamedPool
	known := want == ""
	for _, np := range s.cfg.Pools() {
		if want != "" && np.Name != want {
			continue
		}
		known = true
		if _, ok := lookup(np, addr); ok {
			found = append(found, np)
		}
	}
	switch {
	case !known:
		writeError(w, http.StatusNotFound, "pool", fmt.Sprintf("pool %q: no such pool", want))
	case len(found) == 0:
		writeError(w, http.StatusNotFound, "", fmt.Sprintf("backend %q: unknown backend", addr))
	case len(found) > 1:
		writeError(w, http.StatusBadRequest, "pool", fmt.Sprintf("backend %q is in several pools (%s): say which with ?pool=", addr, poolNames(found)))
	default:
		return found[0], addr, true
	}
	return NamedPool{}, "", false
}

func lookup(np NamedPool, addr string) (Backend, bool) {
	for _, bs := range np.Pool.Snapshot() {
		if bs.Addr == addr {
			return backendJSON(np.Name, bs), true
		}
	}
	return Backend{}, false
}

func poolNames(pools []NamedPool) string {
	names := make([]string, len(pools))
	for i, np := range pools {
		names[i] = np.Name
	}
	return strings.Join(names, ", ")
}

// writeBackend answers with the backend's status after a change.
func (s *Server) writeBackend(w http.ResponseWriter, code int, np NamedPool, addr string) {
	b, ok := lookup(np, addr)
	if !ok {
		writeError(w, http.StatusNotFound, "", fmt.Sprintf("backend %q: unknown backend", addr))
		return
	}
	writeJSON(w, code, b)
}

// writePoolError maps the pool's errors to statuses.
func writePoolError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, balance.ErrUnknownBackend):
		writeError(w, http.StatusNotFound, "", err.Error())
	case errors.Is(err, balance.ErrDuplicateBackend):
		writeError(w, http.StatusConflict, "address", err.Error())
	case errors.Is(err, balance.ErrClosed):
		writeError(w, http.StatusServiceUnavailable, "", err.Error())
	default:
		// The pool's other errors are about the values it was given.
		writeError(w, http.StatusBadRequest, "", err.Error())
	}
}
