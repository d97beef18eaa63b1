// Package admin is wsgate's operator interface: an HTTP server on a
// listener of its own (loopback by default) with JSON stats, Prometheus
// metrics, backend and node drain, reload, health and readiness probes and
// a live dashboard page.
//
// It reads and drives the proxy only through the small interfaces below
// (Engine, Pool), defined here by their consumer, so that it is tested with
// fakes as well as with a real engine; cmd/wsgate wires the real ones.
//
// net/http is fine here: the admin API carries a few requests a second,
// not the data path.
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/wsgate/wsgate/balance"
	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/engine"
)

// Engine is what the admin server reads and drives of the proxy;
// *engine.Server has it.
type Engine interface {
	// Stats reads the engine's counters (no lock the data path waits on).
	Stats() engine.Stats
	// Pause stops accepting; the listening sockets stay bound and refuse
	// connections. Resume accepts again.
	Pause() error
	Resume() error
	Paused() bool
	// DrainAll closes every tunnel, spread evenly over spread from now.
	DrainAll(spread time.Duration)
	// CloseBackendTunnels ends b's tunnels gracefully at about rate
	// tunnels per second.
	CloseBackendTunnels(b *balance.Backend, rate float64)
}

// Pool is one backend pool as the admin API sees it; *balance.Pool has it.
type Pool interface {
	Snapshot() []balance.BackendStatus
	Add(balance.BackendConfig) error
	Remove(addr string, deadline, spread time.Duration) error
	Drain(addr string, deadline, spread time.Duration) error
	Undrain(addr string) error
}

// NamedPool is a pool and the name the API shows for it. Today there is one
// pool, DefaultPool; routes (several named pools) report one each.
type NamedPool struct {
	Name string
	Pool Pool
}

// DefaultPool is the name of the pool `wsgate serve --backend` builds.
const DefaultPool = "default"

// ErrNoConfigFile is what a Reload hook returns when there is nothing to
// re-read; the API answers it with 409.
var ErrNoConfigFile = errors.New("nothing to reload: this wsgate was started from command-line flags, not a configuration file; restart it to change them")

// Config configures a Server.
type Config struct {
	// Addr is the address to listen on; "" means config.DefaultAdminListen.
	Addr string
	// Token, when set, must come as "Authorization: Bearer <token>" with
	// every request that changes something. Without one, Listen refuses a
	// non-loopback address.
	Token string
	// Version is reported by /stats and /metrics.
	Version string

	Engine Engine
	// Pools returns the current pools, in the order the API lists them.
	// It is a function so that a reload that adds or removes routes is
	// seen without restarting the admin server.
	Pools func() []NamedPool
	// Reload re-reads the configuration; running tunnels are untouched.
	// nil, or ErrNoConfigFile from it, answers 409.
	Reload func(context.Context) error

	// DrainDeadline and DrainSpread are used when a drain request names
	// neither; zero takes config.DefaultDrainDeadline / DefaultDrainSpread.
	DrainDeadline, DrainSpread time.Duration

	Logger *slog.Logger // nil: discard
}

// Server is the admin HTTP server.
type Server struct {
	cfg      Config
	log      *slog.Logger
	hasToken bool
	tokenSum [sha256.Size]byte
	started  time.Time
	handler  http.Handler
	metrics  http.Handler
	node     nodeDrain
	hist     history

	mu       sync.Mutex
	ln       net.Listener
	hs       *http.Server
	served   chan struct{}
	quit     chan struct{} // stops the history sampler
	recorded chan struct{}
}

// New checks cfg and builds the server; Listen starts it.
func New(cfg Config) (*Server, error) {
	if cfg.Engine == nil {
		return nil, errors.New("admin: Config.Engine is nil")
	}
	if cfg.Pools == nil {
		cfg.Pools = func() []NamedPool { return nil }
	}
	if cfg.Addr == "" {
		cfg.Addr = config.DefaultAdminListen
	}
	if cfg.DrainDeadline == 0 {
		cfg.DrainDeadline = config.DefaultDrainDeadline
	}
	if cfg.DrainSpread == 0 {
		cfg.DrainSpread = config.DefaultDrainSpread
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Server{cfg: cfg, log: log, started: time.Now()}
	if cfg.Token != "" {
		s.hasToken = true
		s.tokenSum = sha256.Sum256([]byte(cfg.Token))
	}
	s.node.srv = s
	s.metrics = newMetricsHandler(s)
	s.handler = s.routes()
	return s, nil
}

// Handler is the API with its auth checks, for tests and for mounting it
// elsewhere.
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	read := func(pattern string, h http.HandlerFunc) { mux.Handle(pattern, s.reading(h)) }
	write := func(pattern string, h http.HandlerFunc) { mux.Handle(pattern, s.mutating(h)) }

	read("GET /{$}", s.serveDashboard)
	read("GET /static/", s.serveStatic)
	read("GET /stats", s.serveStats)
	read("GET /stats/history", s.serveHistory)
	read("GET /metrics", s.serveMetrics)
	read("GET /healthz", s.serveHealthz)
	read("GET /readyz", s.serveReadyz)
	read("GET /backends", s.listBackends)
	read("GET /backends/{addr}", s.getBackend)
	write("POST /backends", s.addBackend)
	write("DELETE /backends/{addr}", s.removeBackend)
	write("POST /backends/{addr}/drain", s.drainBackend)
	write("POST /backends/{addr}/undrain", s.undrainBackend)
	write("POST /backends/{addr}/close", s.closeBackendTunnels)
	write("POST /drain", s.drainNode)
	write("POST /undrain", s.undrainNode)
	write("POST /reload", s.reload)
	// Everything else: a JSON 404, or 405 naming the methods the path
	// has (the catch-all pattern hides ServeMux's own 405).
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		var allow []string
		for _, m := range []string{"GET", "POST", "DELETE"} {
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, pattern := mux.Handler(probe); pattern != "/" {
				allow = append(allow, m)
			}
		}
		if len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeError(w, http.StatusMethodNotAllowed, "", fmt.Sprintf("%s %s: method not allowed (use %s)", r.Method, r.URL.Path, strings.Join(allow, " or ")))
			return
		}
		writeError(w, http.StatusNotFound, "", fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	return mux
}

// Listen binds the address (see Bind) and serves in the background until
// Close.
func (s *Server) Listen() error {
	ln, err := s.Bind()
	if err != nil {
		return err
	}
	return s.Serve(ln)
}

// Bind checks and binds the address without serving yet, so that a caller
// can refuse to start before anything else does and serve once what the
// API reads is ready. It refuses a non-loopback address without a token:
// whoever can reach the port could drain the node.
func (s *Server) Bind() (net.Listener, error) {
	if err := s.checkExposure(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("admin: listen %s: %w", s.cfg.Addr, err)
	}
	// The name may have resolved to more than it said: look at what was
	// actually bound as well.
	if ap := ln.Addr().(*net.TCPAddr).AddrPort(); !s.hasToken && !ap.Addr().IsLoopback() {
		ln.Close()
		return nil, s.exposureError()
	}
	return ln, nil
}

// Serve serves on ln in the background until Close; it does not check the
// address (Bind does).
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hs != nil {
		return errors.New("admin: already serving")
	}
	s.ln = ln
	s.hs = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.served = make(chan struct{})
	s.quit, s.recorded = make(chan struct{}), make(chan struct{})
	go s.record(s.quit, s.recorded)
	hs, served := s.hs, s.served
	go func() {
		defer close(served)
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("admin server stopped", "err", err)
		}
	}()
	s.log.Info("admin API listening", "addr", ln.Addr().String(), "token", s.hasToken)
	return nil
}

// Addr is the address being served ("127.0.0.1:0" resolved), or nil.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Close stops the server, closes its connections and cancels a pending
// node-drain deadline. The engine's state (paused or not) is left as is.
func (s *Server) Close() error {
	s.node.stop()
	s.mu.Lock()
	hs, served, quit, recorded := s.hs, s.served, s.quit, s.recorded
	s.quit = nil
	s.mu.Unlock()
	if hs == nil || quit == nil {
		return nil
	}
	close(quit)
	<-recorded
	err := hs.Close()
	<-served
	return err
}

// checkExposure refuses, before binding, an address that is not loopback
// when no token is set. A host name counts as loopback only if every
// address it resolves to is.
func (s *Server) checkExposure() error {
	if s.hasToken {
		return nil
	}
	host, _, err := net.SplitHostPort(s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("admin: listen address %q: %w", s.cfg.Addr, err)
	}
	if host == "" {
		return s.exposureError()
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if !a.IsLoopback() {
			return s.exposureError()
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("admin: listen address %q: %w", s.cfg.Addr, err)
	}
	for _, a := range addrs {
		if !a.IsLoopback() {
			return s.exposureError()
		}
	}
	return nil
}

// ErrNoToken is what Listen returns for a non-loopback address without a
// token.
var ErrNoToken = errors.New("admin: refusing to listen on a non-loopback address without a token")

func (s *Server) exposureError() error {
	return fmt.Errorf("%w: %s would let anyone who can reach it drain this node; "+
		"set --admin-token (or WSGATE_ADMIN_TOKEN), listen on loopback (e.g. %s), or use --admin off",
		ErrNoToken, s.cfg.Addr, config.DefaultAdminListen)
}

// reading wraps a read-only handler. Without a token the API has no other
// protection than being on loopback, so it also refuses a Host that is not
// an address or localhost: a web page could otherwise point a name it
// controls at 127.0.0.1 and read the API from the victim's browser (DNS
// rebinding).
func (s *Server) reading(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.hostOK(r) {
			writeError(w, http.StatusForbidden, "", fmt.Sprintf("Host %q refused: without an admin token only an IP address or localhost may be used", r.Host))
			return
		}
		h(w, r)
	})
}

// mutating wraps a handler that changes something: it needs the token when
// one is set (401 without it, 403 when wrong) and refuses cross-origin
// browser requests, which a page on any site could otherwise send to a
// loopback admin port (CSRF).
func (s *Server) mutating(h http.HandlerFunc) http.Handler {
	return s.reading(func(w http.ResponseWriter, r *http.Request) {
		if o := r.Header.Get("Origin"); o != "" && !sameOrigin(o, r.Host) {
			writeError(w, http.StatusForbidden, "", fmt.Sprintf("cross-origin request from %q refused", o))
			return
		}
		if s.hasToken {
			tok, ok := bearer(r)
			if !ok {
				w.Header().Set("WWW-Authenticate", `Bearer realm="wsgate admin"`)
				writeError(w, http.StatusUnauthorized, "", "this admin API needs a token: send Authorization: Bearer <token>")
				return
			}
			if !s.tokenOK(tok) {
				writeError(w, http.StatusForbidden, "", "wrong admin token")
				return
			}
		}
		h(w, r)
	})
}

// tokenOK compares in constant time. Both sides are hashed first so that
// neither the length nor a common prefix of the configured token shows in
// the time taken (subtle.ConstantTimeCompare returns early on a length
// mismatch).
func (s *Server) tokenOK(tok string) bool {
	sum := sha256.Sum256([]byte(tok))
	return subtle.ConstantTimeCompare(sum[:], s.tokenSum[:]) == 1
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

func (s *Server) hostOK(r *http.Request) bool {
	if s.hasToken {
		return true
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	return host == "localhost" || strings.HasSuffix(host, ".localhost")
}

func sameOrigin(origin, host string) bool {
	_, rest, ok := strings.Cut(origin, "://")
	return ok && strings.EqualFold(rest, host)
}

// apiError is every error the API answers: the message, and the query or
// body parameter at fault when there is one.
type apiError struct {
	Error     string `json:"error"`
	Parameter string `json:"parameter,omitempty"`
}

func writeError(w http.ResponseWriter, code int, param, msg string) {
	writeJSON(w, code, apiError{Error: msg, Parameter: param})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
