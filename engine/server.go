// Package engine is wsgate's data path: in its own edge-triggered epoll
// loops it accepts clients, reads and checks their heads (package
// handshake), picks and dials a backend (package balance), and then moves
// the bytes of each upgraded tunnel with splice(2) and pooled pipes, so
// that an idle tunnel costs a small struct and nothing else: no goroutine,
// no buffer, no pipe.
//
// See DESIGN.md, "Data path" and "Tunnel phase", for the reasoning and the
// measurements behind each choice.
package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wsgate/wsgate/balance"
	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/handshake"
)

// Mode chooses how tunnel bytes move.
type Mode uint8

const (
	// ModeAuto copies through the loop's buffer (cheapest for small
	// messages: one read, one write) and splices the rest of a burst once a
	// read fills the buffer (cheapest for bulk). The prototype measured
	// both halves (DESIGN.md).
	ModeAuto Mode = iota
	// ModeCopy never splices (TLS will need it; benchmarks compare it).
	ModeCopy
	// ModeSplice always splices (benchmarks compare it).
	ModeSplice
)

var modeNames = [...]string{"auto", "copy", "splice"}

func (m Mode) String() string { return modeNames[m] }

// ParseMode reads "auto", "copy" or "splice".
func ParseMode(s string) (Mode, error) {
	if i := slices.Index(modeNames[:], s); i >= 0 {
		return Mode(i), nil
	}
	return 0, fmt.Errorf("mode %q: want auto, copy or splice", s)
}

// Config is what a Server needs. Zero durations and sizes take the
// defaults in package config.
type Config struct {
	// Listen is the addresses to accept clients on (host:port).
	Listen []string
	// ReusePort opens this many sockets per address with SO_REUSEPORT,
	// each with its own accept queue (0 or 1: one socket).
	ReusePort int

	// Listeners, when set, are the listening addresses with their own
	// settings; Listen is the short form (plain, settings from this
	// Config).
	Listeners []ListenerConfig

	// Routes sends requests to pools by host and path. Nil: every request
	// goes to Pool, its head rewritten as Host, HostLiteral, Forwarded say.
	Routes *Routes
	Pool   *balance.Pool

	Mode  Mode
	Loops int // splice loops; 0 = GOMAXPROCS
	// IOUring chooses how the loops make their batched socket calls
	// (batch.go): with io_uring where the kernel allows it (auto), always
	// (on: Start fails without it), or never (off).
	IOUring IOUringMode

	HeaderTimeout  time.Duration
	ConnectTimeout time.Duration
	AnswerTimeout  time.Duration
	// IdleTimeout closes a tunnel with no bytes either way for this long;
	// 0 takes the default, a negative value disables it.
	IdleTimeout   time.Duration
	LingerTimeout time.Duration
	// CloseTimeout bounds a graceful close: how long wsgate waits for a
	// frame boundary and for the peers' Close replies.
	CloseTimeout time.Duration
	// Keepalive pings the client of a WebSocket tunnel idle this long
	// (0: never), so NATs and L4 balancers keep the flow.
	Keepalive time.Duration
	Tries     int // backends tried per request, 1..8

	// MaxTunnels caps the connections being proxied (503 beyond);
	// MaxTunnelsPerIP caps them per client address (429 beyond);
	// AcceptRate caps new connections per second (the rest wait in the
	// kernel's accept queue, so a reconnect herd is spread, not refused).
	// 0 = unlimited. SetLimits changes them while running.
	MaxTunnels      int
	MaxTunnelsPerIP int
	AcceptRate      int

	MaxPipes  int // 0 = sized from RLIMIT_NOFILE
	ParkBytes int // per loop
	Limits    handshake.Limits

	Host           handshake.HostMode
	HostLiteral    string
	TrustedProxies []netip.Prefix // peers whose X-Forwarded-* are kept
	Forwarded      bool           // also send RFC 7239 Forwarded

	// SourceAddrs, when set, are the local addresses backend connections
	// bind to, in turn, so that one node can hold more than ~64k tunnels
	// to one backend address.
	SourceAddrs []netip.Addr

	Logger    *slog.Logger // nil: discard
	AccessLog *slog.Logger // nil: no access log
	// AccessLogInterval also logs a line per live tunnel this often (its
	// bytes so far and age); 0: only the line at close.
	AccessLogInterval time.Duration

	// frameless tunnels WebSocket upgrades as plain bytes, without frame
	// tracking: only for the benchmark that measures what tracking costs.
	frameless bool
}

// Server is one wsgate engine: its listeners, loops and counters. Several
// can run side by side in one process (tests do).
type Server struct {
	cfg       Config
	log       *slog.Logger
	accessLog *slog.Logger
	routes    atomic.Pointer[Routes]
	c         *serverCounters
	admit     admission

	loops     []*loop
	listeners []*listener

	limits       handshake.Limits
	mode         Mode
	tries        int
	parkLimit    int
	pipesPerLoop int
	headerTicks  uint32
	connectTicks uint32
	answerTicks  uint32
	idleTicks    uint32
	lingerTicks  uint32
	closeTicks   uint32
	restarting   atomic.Bool  // graceful closes say 1012 service restart
	rings        atomic.Int32 // loops that batch with io_uring
	noRing       atomic.Bool  // io_uring was refused (said once in the log)
	acceptRate   atomic.Int64 // new connections per second; 0 = unlimited
	sources      []netip.Addr
	sourceNext   atomic.Uint32

	addrs sync.Map // backend address → resolved

	// wss (tls.go)
	tlsMu     sync.Mutex
	tls       map[*tlsBridge]struct{}
	tlsClosed bool
	tlsWG     sync.WaitGroup
	bridges   sync.Map // loop-side socket fd → *tlsBridge

	mu      sync.Mutex
	started bool
	paused  bool
	closed  bool
	quit    chan struct{}
	wg      sync.WaitGroup
}

// New checks cfg and returns a Server ready to Start.
func New(cfg Config) (*Server, error) {
	if cfg.Pool == nil && cfg.Routes == nil {
		return nil, errors.New("engine: neither Config.Routes nor Config.Pool is set")
	}
	for _, a := range cfg.Listen {
		cfg.Listeners = append(cfg.Listeners, ListenerConfig{Address: a, ReusePort: cfg.ReusePort})
	}
	cfg.Listen = nil
	if len(cfg.Listeners) == 0 {
		return nil, errors.New("engine: no listen address")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&cfg.HeaderTimeout, config.DefaultHeaderTimeout)
	def(&cfg.ConnectTimeout, config.DefaultConnectTimeout)
	def(&cfg.AnswerTimeout, config.DefaultAnswerTimeout)
	def(&cfg.IdleTimeout, config.DefaultIdleTimeout)
	def(&cfg.LingerTimeout, config.DefaultLingerTimeout)
	def(&cfg.CloseTimeout, config.DefaultCloseTimeout)
	if cfg.Tries == 0 {
		cfg.Tries = config.DefaultTries
	}
	if cfg.Tries < 1 || cfg.Tries > maxTries {
		return nil, fmt.Errorf("engine: tries %d: must be 1..%d", cfg.Tries, maxTries)
	}
	if cfg.Loops <= 0 {
		cfg.Loops = runtime.GOMAXPROCS(0)
	}
	if cfg.ParkBytes == 0 {
		cfg.ParkBytes = config.DefaultParkBytes
	}
	if cfg.Limits.MaxHeadBytes == 0 {
		cfg.Limits.MaxHeadBytes = config.DefaultMaxHeadBytes
	}
	if cfg.MaxPipes == 0 {
		cfg.MaxPipes = pipeBudget()
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Server{
		cfg:          cfg,
		log:          log,
		accessLog:    cfg.AccessLog,
		c:            newServerCounters(),
		limits:       cfg.Limits,
		mode:         cfg.Mode,
		tries:        cfg.Tries,
		parkLimit:    cfg.ParkBytes,
		pipesPerLoop: max(1, cfg.MaxPipes/cfg.Loops),
		headerTicks:  ticks(cfg.HeaderTimeout),
		connectTicks: ticks(cfg.ConnectTimeout),
		answerTicks:  ticks(cfg.AnswerTimeout),
		lingerTicks:  ticks(cfg.LingerTimeout),
		closeTicks:   ticks(cfg.CloseTimeout),
		sources:      cfg.SourceAddrs,
		quit:         make(chan struct{}),
		tls:          make(map[*tlsBridge]struct{}),
	}
	if cfg.IdleTimeout > 0 {
		s.idleTicks = ticks(cfg.IdleTimeout)
	}
	rt := cfg.Routes
	if rt == nil {
		var err error
		rt, err = NewRoutes([]RouteConfig{{Name: "/", Pool: cfg.Pool}}, nil, RewriteConfig{
			Host: cfg.Host, HostLiteral: cfg.HostLiteral, Forwarded: cfg.Forwarded,
			TrustedProxies: cfg.TrustedProxies,
		})
		if err != nil {
			return nil, err
		}
	}
	s.routes.Store(rt)
	s.SetLimits(cfg.MaxTunnels, cfg.MaxTunnelsPerIP, cfg.AcceptRate)
	return s, nil
}

// pipeBudget sizes the pipe pool from the fd limit: each tunnel needs 2
// fds and each pipe 2, and pipes are only lent during bursts, so an eighth
// of the limit (at most 1,024 pipes) leaves the rest to tunnels.
func pipeBudget() int {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return 64
	}
	return int(min(max(rl.Cur/16, 8), 1024))
}

// Start opens the listeners and starts the loops. It fails without side
// effects when a listener cannot be opened.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("engine: already started")
	}
	for _, lc := range s.cfg.Listeners {
		if err := s.openListener(lc); err != nil {
			s.closeListeners()
			return err
		}
	}
	for id := 0; id < s.cfg.Loops; id++ {
		l, err := newLoop(id, s)
		if err != nil {
			for _, l := range s.loops {
				l.shutdown()
			}
			s.loops = nil
			s.rings.Store(0)
			s.closeListeners()
			return fmt.Errorf("engine: start loop: %w", err)
		}
		s.loops = append(s.loops, l)
	}
	for _, p := range s.routes.Load().pools {
		p.OnDrainDeadline(s.drainBackend)
	}
	for _, l := range s.loops {
		l.accepting = true
		l.pollListeners(true)
		go l.run()
	}
	s.wg.Add(1)
	go s.trimAfterBursts()
	s.started = true
	return nil
}

func (s *Server) closeListeners() {
	for _, ln := range s.listeners {
		ln.close()
	}
	s.listeners = nil
}

// Addrs returns the listeners' addresses (with the ports chosen for ":0").
func (s *Server) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]net.Addr, 0, len(s.listeners))
	for _, ln := range s.listeners {
		out = append(out, ln.addr)
	}
	return out
}

// Close stops accepting and closes every connection at once. Shutdown is
// the graceful way.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.setAccepting(false)
	close(s.quit)
	s.wg.Wait()
	for _, l := range s.loops {
		l.stop()
	}
	s.closeTLS()
	s.mu.Lock()
	s.closeListeners()
	s.mu.Unlock()
	return nil
}

// setAccepting makes every loop start or stop polling the listeners, and
// returns once they all have: after setAccepting(false) no loop accepts.
func (s *Server) setAccepting(on bool) {
	var wg sync.WaitGroup
	for _, l := range s.loops {
		wg.Add(1)
		if !l.post(func(l *loop) {
			l.accepting = on
			l.pollListeners(on)
			wg.Done()
		}) {
			wg.Done()
		}
	}
	wg.Wait()
}

// Pause stops accepting: new connections are refused, the sockets stay
// bound so that Resume can accept again. Tunnels, and clients still
// sending their heads, are untouched.
func (s *Server) Pause() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.paused || !s.started {
		return nil
	}
	s.paused = true
	s.setAccepting(false)
	var first error
	for _, ln := range s.listeners {
		if err := ln.pause(); err != nil && first == nil {
			first = fmt.Errorf("pause %s: %w", ln.name, err)
		}
	}
	return first
}

// Handoff stops accepting for good without touching the listening sockets
// themselves: another process (a binary upgrade) holds copies of them and
// goes on accepting from the same queues, so no connection is refused.
// Tunnels are untouched; Shutdown then drains them.
func (s *Server) Handoff() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || !s.started {
		return
	}
	s.paused = true
	s.setAccepting(false)
	for _, ln := range s.listeners {
		ln.close()
	}
}

// Resume accepts again after Pause.
func (s *Server) Resume() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || !s.paused {
		return nil
	}
	for _, ln := range s.listeners {
		if err := ln.resume(); err != nil {
			return err
		}
	}
	s.paused = false
	s.setAccepting(true)
	return nil
}

// Paused reports whether accepting is paused.
func (s *Server) Paused() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.paused
}

// DrainAll ends every tunnel gracefully, spread evenly over spread from
// now (node drain at its deadline).
func (s *Server) DrainAll(spread time.Duration) { s.closeAll(spread, causeDrain) }

func (s *Server) closeAll(spread time.Duration, cause uint8) {
	for _, l := range s.loops {
		l.post(func(l *loop) { l.scheduleCloses(l.allTunnels(), spread, cause) })
	}
}

// SetRestarting makes graceful closes from now on say 1012 (service
// restart) instead of 1001 (going away): clients may reconnect at once.
func (s *Server) SetRestarting(v bool) { s.restarting.Store(v) }

// drainBackend is the pool's DrainFunc: b's deadline passed; end its
// tunnels spread over the window. Each loop spreads its own share evenly,
// so the union is even too.
func (s *Server) drainBackend(b *balance.Backend, spread time.Duration) {
	for _, l := range s.loops {
		l.post(func(l *loop) { l.scheduleCloses(l.backendTunnels(b), spread, causeDrain) })
	}
}

// Shutdown stops accepting and waits for the tunnels to end on their own.
// If ctx is done first, it ends the rest gracefully — WebSocket tunnels
// with Close frames (1001, or 1012 after SetRestarting) spread over
// spread, others at once — waits for those closes, and then closes
// whatever is left. It returns ctx's error when the tunnels did not all
// end on their own.
func (s *Server) Shutdown(ctx context.Context, spread time.Duration) error {
	s.Pause()
	if s.waitIdle(ctx.Done()) {
		return s.Close()
	}
	s.closeAll(spread, causeShutdown)
	done := make(chan struct{})
	timer := time.AfterFunc(spread+s.cfg.CloseTimeout+time.Second, func() { close(done) })
	defer timer.Stop()
	s.waitIdle(done)
	s.Close()
	return ctx.Err()
}

// waitIdle waits until the server holds no connection, or stop closes;
// it reports whether the server went idle.
func (s *Server) waitIdle(stop <-chan struct{}) bool {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if s.held() == 0 {
			return true
		}
		select {
		case <-stop:
			return false
		case <-t.C:
		}
	}
}

// held counts the connections the loops hold in any state.
func (s *Server) held() int {
	var n atomic.Int64
	var wg sync.WaitGroup
	for _, l := range s.loops {
		wg.Add(1)
		if !l.post(func(l *loop) { n.Add(int64(l.tabs.used)); wg.Done() }) {
			wg.Done()
		}
	}
	wg.Wait()
	return int(n.Load())
}

// lookup returns a backend's address, resolved once and cached (a
// hostname is looked up on first use only).
func (s *Server) lookup(addr string) (netip.AddrPort, error) {
	if v, ok := s.addrs.Load(addr); ok {
		return v.(netip.AddrPort), nil
	}
	ta, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return netip.AddrPort{}, err
	}
	ap := ta.AddrPort()
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	s.addrs.Store(addr, ap)
	return ap, nil
}

// sourceAddr returns the next source address of the family to bind a
// backend connection to, or nil.
func (s *Server) sourceAddr(family int) unix.Sockaddr {
	if len(s.sources) == 0 {
		return nil
	}
	for range s.sources {
		a := s.sources[int(s.sourceNext.Add(1))%len(s.sources)]
		if a.Is4() == (family == unix.AF_INET) {
			return sockaddr(netip.AddrPortFrom(a, 0))
		}
	}
	return nil
}

// fdLimit counts and logs running out of file descriptors. Logged at most
// once a second: at the limit it happens on every accept.
func (s *Server) fdLimit(err error, where string) {
	if err != unix.EMFILE && err != unix.ENFILE {
		return
	}
	n := s.c.fdLimit.Add(1)
	now := time.Now().Unix()
	if last := lastFDLog.Load(); last != now && lastFDLog.CompareAndSwap(last, now) {
		s.log.Warn("out of file descriptors: backing off", "where", where, "err", err, "count", n)
	}
}

var lastFDLog atomic.Int64

// portsExhausted counts and logs (at most once a second) a connect that
// found no free local port towards backend.
func (s *Server) portsExhausted(backend string) {
	n := s.c.portsExhausted.Add(1)
	now := time.Now().Unix()
	if last := lastPortLog.Load(); last != now && lastPortLog.CompareAndSwap(last, now) {
		s.log.Warn("no local port left towards the backend: add tunnel.source_addrs", "backend", backend, "count", n)
	}
}

var lastPortLog atomic.Int64

var (
	requestPool  = sync.Pool{New: func() any { return new(handshake.Request) }}
	responsePool = sync.Pool{New: func() any { return new(handshake.Response) }}
)

func getRequest() *handshake.Request { return requestPool.Get().(*handshake.Request) }
func putRequest(r *handshake.Request) {
	r.Reset() // drops its slices into the head buffer, which goes back to its own pool
	requestPool.Put(r)
}
func getResponse() *handshake.Response  { return responsePool.Get().(*handshake.Response) }
func putResponse(r *handshake.Response) { responsePool.Put(r) }
