package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/admin"
	"github.com/wsgate/wsgate/balance"
	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/engine"
	"github.com/wsgate/wsgate/handshake"
)

// node is a running wsgate: its configuration and what was built from it
// — the pools, the engine, the certificates — and how a new configuration
// replaces it (reload). The engine swaps routes, pools, header rules and
// limits live; listeners, timeouts and the tunnel settings are read at
// start, and a binary upgrade (SIGUSR2) applies them without dropping a
// tunnel.
type node struct {
	log    *slog.Logger
	level  *slog.LevelVar
	path   string // the configuration file; "" when built from flags
	srv    *engine.Server
	access *slog.Logger

	mu         sync.Mutex // one reload at a time
	cfg        *config.Config
	pools      map[string]*balance.Pool
	stickyKeys map[string][]byte // per pool, kept across reloads
	certs      map[string]*certSlot
	retiring   sync.WaitGroup
	stopping   chan struct{}
	retired    []*balance.Pool // closed by close, if not before
	poolList   atomic.Pointer[[]admin.NamedPool]
}

// certSlot is a TLS listener's certificate, replaced on reload.
type certSlot struct {
	cert atomic.Pointer[tls.Certificate]
}

// newNode builds the pools and the engine of cfg. inherited are listening
// sockets from the process that started this one (a binary upgrade).
func newNode(cfg *config.Config, path string, log *slog.Logger, level *slog.LevelVar, access *slog.Logger, inherited map[string][]int) (*node, error) {
	n := &node{
		log: log, level: level, path: path, access: access, cfg: cfg,
		pools: map[string]*balance.Pool{}, stickyKeys: map[string][]byte{}, certs: map[string]*certSlot{},
		stopping: make(chan struct{}),
	}
	for _, name := range sortedKeys(cfg.Pools) {
		pc := cfg.Pools[name]
		p, err := balance.NewPool(pc.Balance())
		if err != nil {
			n.closePools()
			return nil, fmt.Errorf("pools.%s: %w", name, err)
		}
		n.pools[name] = p
	}
	rt, err := n.routes(cfg)
	if err != nil {
		n.closePools()
		return nil, err
	}
	ec, err := n.engineConfig(cfg, inherited)
	if err != nil {
		n.closePools()
		return nil, err
	}
	ec.Routes = rt
	srv, err := engine.New(ec)
	if err != nil {
		n.closePools()
		return nil, err
	}
	n.srv = srv
	n.publishPools()
	return n, nil
}

// engineConfig maps cfg onto the engine's settings.
func (n *node) engineConfig(cfg *config.Config, inherited map[string][]int) (engine.Config, error) {
	mode, err := engine.ParseMode(cfg.Tunnel.Mode)
	if err != nil {
		return engine.Config{}, fmt.Errorf("tunnel.mode: %w", err)
	}
	uring, err := engine.ParseIOUringMode(cfg.Tunnel.IOUring)
	if err != nil {
		return engine.Config{}, fmt.Errorf("tunnel.io_uring: %w", err)
	}
	ec := engine.Config{
		Mode:              mode,
		IOUring:           uring,
		Loops:             cfg.Tunnel.Loops,
		Tries:             cfg.Tunnel.Tries,
		SourceAddrs:       cfg.Tunnel.SourceAddrs,
		HeaderTimeout:     cfg.Timeouts.Header,
		ConnectTimeout:    cfg.Timeouts.Connect,
		AnswerTimeout:     cfg.Timeouts.BackendAnswer,
		IdleTimeout:       cfg.Timeouts.Idle,
		CloseTimeout:      cfg.Timeouts.Close,
		Limits:            handshake.Limits{MaxHeadBytes: cfg.Limits.MaxHeaderBytes},
		MaxTunnels:        cfg.Limits.MaxTunnels,
		MaxTunnelsPerIP:   cfg.Limits.MaxTunnelsPerIP,
		AcceptRate:        cfg.Limits.AcceptRate,
		Logger:            n.log,
		AccessLog:         n.access,
		AccessLogInterval: cfg.AccessLog.Interval,
	}
	if ec.IdleTimeout == 0 {
		ec.IdleTimeout = -1 // the engine's "never"
	}
	for _, l := range cfg.Listeners {
		lc := engine.ListenerConfig{
			Address:       l.Address,
			ReusePort:     l.ReusePort,
			ProxyProtocol: l.ProxyProtocol,
			Keepalive:     l.Keepalive,
			Inherited:     inherited[l.Address],
		}
		if l.TLS != nil {
			slot, err := n.certSlot(l.Address, l.TLS)
			if err != nil {
				return engine.Config{}, err
			}
			lc.TLS = &tls.Config{
				MinVersion: tls.VersionTLS12,
				NextProtos: []string{"http/1.1"},
				GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
					return slot.cert.Load(), nil
				},
			}
		}
		ec.Listeners = append(ec.Listeners, lc)
	}
	return ec, nil
}

// certSlot loads a listener's certificate into its slot (made on first
// use), so a reload replaces the certificate under running listeners.
func (n *node) certSlot(addr string, t *config.TLS) (*certSlot, error) {
	cert, err := loadCert(addr, t)
	if err != nil {
		return nil, err
	}
	slot := n.certs[addr]
	if slot == nil {
		slot = &certSlot{}
		n.certs[addr] = slot
	}
	slot.cert.Store(cert)
	return slot, nil
}

func loadCert(addr string, t *config.TLS) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
	if err != nil {
		return nil, fmt.Errorf("listeners %s: tls: %w", addr, err)
	}
	return &cert, nil
}

// loadCerts reads the certificates of cfg's TLS listeners, by address.
func loadCerts(cfg *config.Config) (map[string]*tls.Certificate, error) {
	certs := map[string]*tls.Certificate{}
	for _, l := range cfg.Listeners {
		if l.TLS == nil {
			continue
		}
		cert, err := loadCert(l.Address, l.TLS)
		if err != nil {
			return nil, err
		}
		certs[l.Address] = cert
	}
	return certs, nil
}

// storeCerts puts re-read certificates under the running listeners. A
// listener added by the file has no slot yet: it needs a restart anyway.
func (n *node) storeCerts(certs map[string]*tls.Certificate) {
	for addr, cert := range certs {
		if slot := n.certs[addr]; slot != nil {
			slot.cert.Store(cert)
		}
	}
}

// routes builds the engine's routing table for cfg over n.pools.
func (n *node) routes(cfg *config.Config) (*engine.Routes, error) {
	router := cfg.Router()
	var rcs []engine.RouteConfig
	for _, r := range router.Routes() {
		p, ok := n.pools[r.Pool]
		if !ok {
			return nil, fmt.Errorf("route %s%s: no pool %q", r.Host, r.Path, r.Pool)
		}
		pc := cfg.Pools[r.Pool]
		rc := engine.RouteConfig{
			Name:           r.Host + r.Path,
			Pool:           p,
			Origins:        r.Origins,
			Subprotocols:   r.Subprotocols,
			MaxLifetime:    r.MaxLifetime,
			LifetimeJitter: r.LifetimeJitter.Fraction(),
			ProxyProtocol:  pc.ProxyProtocol,
		}
		if r.StripPrefix {
			rc.StripPrefix = r.Path
		}
		if pc.Sticky != nil {
			rc.Sticky = &engine.Sticky{Cookie: pc.Sticky.Cookie, Key: n.stickyKey(r.Pool, pc.Sticky)}
		}
		rcs = append(rcs, rc)
	}
	host, err := hostMode(cfg.Headers.Host)
	if err != nil {
		return nil, err
	}
	return engine.NewRoutes(rcs, router.Lookup, engine.RewriteConfig{
		Host:           host,
		HostLiteral:    cfg.Headers.HostLiteral,
		Forwarded:      cfg.Headers.Forwarded,
		TrustedProxies: cfg.Headers.TrustedProxies,
	})
}

// stickyKey is the key signing pool's cookies: from the environment
// variable the configuration names, else one random key per pool for the
// life of the process (a reload must not invalidate every cookie).
func (n *node) stickyKey(pool string, s *config.Sticky) []byte {
	if s.KeyEnv != "" {
		if v := os.Getenv(s.KeyEnv); v != "" {
			return []byte(v)
		}
	}
	if k, ok := n.stickyKeys[pool]; ok {
		return k
	}
	k, err := randomKey()
	if err != nil {
		n.log.Error("sticky: no random key; cookies will not survive a reload", "pool", pool, "err", err)
		return nil
	}
	n.stickyKeys[pool] = k
	return k
}

func hostMode(s string) (handshake.HostMode, error) {
	switch s {
	case "", "preserve":
		return handshake.HostPreserve, nil
	case "backend":
		return handshake.HostBackend, nil
	case "literal":
		return handshake.HostLiteral, nil
	case "nginx":
		return handshake.HostNginx, nil
	}
	return 0, fmt.Errorf("headers.host %q: want preserve, backend, literal or nginx", s)
}

// publishPools makes the admin API see the current pools, by name.
func (n *node) publishPools() {
	list := make([]admin.NamedPool, 0, len(n.pools))
	for _, name := range sortedKeys(n.pools) {
		list = append(list, admin.NamedPool{Name: name, Pool: n.pools[name]})
	}
	n.poolList.Store(&list)
}

func (n *node) namedPools() []admin.NamedPool { return *n.poolList.Load() }

// reload re-reads the configuration file and applies it. An invalid file
// changes nothing: its error is returned (to the admin API, to the log)
// and the running configuration stays.
func (n *node) reload(ctx context.Context) error {
	if n.path == "" {
		return admin.ErrNoConfigFile
	}
	next, warnings, err := config.Load(n.path)
	if err != nil {
		return err
	}
	for _, w := range warnings {
		n.log.Warn("config", "warning", w.String())
	}
	// Everything that can fail comes first, so that a failure leaves the
	// running configuration as it was. The certificates are read even when
	// the file is unchanged: renewing one rewrites the files it names, not
	// the configuration.
	certs, err := loadCerts(next)
	if err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	diff := config.Compare(n.cfg, next)
	if diff.Empty() {
		n.storeCerts(certs)
		n.log.Info("reload: configuration unchanged; certificates re-read", "file", n.path, "certificates", len(certs))
		return nil
	}
	pools, retire, err := n.nextPools(next, diff)
	if err != nil {
		return err
	}
	old := n.pools
	n.pools = pools
	rt, err := n.routes(next)
	if err != nil {
		n.pools = old
		for name, p := range pools {
			if old[name] != p {
				p.Close()
			}
		}
		return err
	}
	// Applied from here on.
	n.applyBackendChanges(diff, next)
	n.srv.SetRoutes(rt)
	n.srv.SetLimits(next.Limits.MaxTunnels, next.Limits.MaxTunnelsPerIP, next.Limits.AcceptRate)
	n.storeCerts(certs)
	if lv, err := parseLevel(next.LogLevel); err == nil {
		n.level.Set(lv)
	}
	for _, r := range retire {
		n.retire(r.pool, r.drain, next.Timeouts.Drain, next.Timeouts.DrainSpread)
	}
	n.cfg = next
	n.publishPools()
	if diff.NeedsRestart() {
		n.log.Warn("reload: some changes take effect only after a restart or a binary upgrade (SIGUSR2)", "changes", restartChanges(diff))
	}
	n.log.Info("reload: configuration applied", "file", n.path, "changes", diff.String())
	return nil
}

// nextPools returns the pools of next: the running pool object where a
// pool keeps its settings (its backend changes are applied in place, so
// its tunnels and counters carry on), a new one where it is new or its
// settings changed. retire lists the running pools that leave.
// retired is a pool leaving service; drain says its backends leave too.
type retired struct {
	pool  *balance.Pool
	drain bool
}

func (n *node) nextPools(next *config.Config, diff config.Diff) (map[string]*balance.Pool, []retired, error) {
	rebuild := map[string]bool{}
	for _, pc := range diff.Pools {
		if pc.Kind == config.Modified && len(pc.Fields) > 0 {
			rebuild[pc.Name] = true
		}
	}
	pools := map[string]*balance.Pool{}
	var made []*balance.Pool
	for _, name := range sortedKeys(next.Pools) {
		if p, ok := n.pools[name]; ok && !rebuild[name] {
			pools[name] = p
			continue
		}
		pc := next.Pools[name]
		p, err := balance.NewPool(pc.Balance())
		if err != nil {
			for _, m := range made {
				m.Close()
			}
			return nil, nil, fmt.Errorf("pools.%s: %w", name, err)
		}
		pools[name] = p
		made = append(made, p)
	}
	var retire []retired
	for name, p := range n.pools {
		if pools[name] != p {
			_, kept := next.Pools[name]
			retire = append(retire, retired{p, !kept})
		}
	}
	return pools, retire, nil
}

// applyBackendChanges adds, drains out and re-weighs the backends of the
// pools that are kept. A backend that leaves is drained, not cut: no new
// tunnels, and its tunnels end gracefully after the drain timeout,
// spread over the window.
func (n *node) applyBackendChanges(diff config.Diff, next *config.Config) {
	for _, pc := range diff.Pools {
		if pc.Kind != config.Modified || len(pc.Fields) > 0 {
			continue
		}
		p := n.pools[pc.Name]
		for _, b := range pc.BackendsAdded {
			if err := p.Add(balance.BackendConfig{Addr: b.Address, Weight: b.Weight, MaxConns: b.MaxConns}); err != nil {
				n.log.Warn("reload: add backend", "pool", pc.Name, "backend", b.Address, "err", err)
			}
		}
		for _, addr := range pc.BackendsRemoved {
			if err := p.Remove(addr, next.Timeouts.Drain, next.Timeouts.DrainSpread); err != nil {
				n.log.Warn("reload: remove backend", "pool", pc.Name, "backend", addr, "err", err)
			}
		}
		for _, b := range pc.BackendsModified {
			if err := p.SetWeight(b.Address, b.Weight); err != nil {
				n.log.Warn("reload: backend weight", "pool", pc.Name, "backend", b.Address, "err", err)
			}
			if err := p.SetMaxConns(b.Address, b.MaxConns); err != nil {
				n.log.Warn("reload: backend max_conns", "pool", pc.Name, "backend", b.Address, "err", err)
			}
		}
	}
}

// retire takes a pool out of service. One whose name left the
// configuration has its backends drained (no new tunnels, the rest ended
// gracefully after the drain timeout, spread over the window); one that
// was only rebuilt with other settings keeps its tunnels untouched until
// they end. Either way the pool is closed once it holds no tunnel.
func (n *node) retire(p *balance.Pool, drain bool, deadline, spread time.Duration) {
	n.retired = append(n.retired, p)
	if drain {
		for _, b := range p.Backends() {
			p.Remove(b.Addr(), deadline, spread)
		}
	}
	n.retiring.Add(1)
	go func() {
		defer n.retiring.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			active := int64(0)
			for _, b := range p.Backends() {
				active += b.Active()
			}
			if active == 0 {
				break
			}
			select {
			case <-t.C:
			case <-n.stopping:
				return // close() closes every pool
			}
		}
		p.Close()
	}()
}

func restartChanges(d config.Diff) string {
	var out []string
	for _, l := range d.Listeners {
		out = append(out, "listeners "+l.Address)
	}
	for _, s := range d.Settings {
		if s.Restart {
			out = append(out, s.Path)
		}
	}
	return strings.Join(out, ", ")
}

// close stops the engine at once and closes the pools.
func (n *node) close() {
	n.srv.Close()
	close(n.stopping)
	n.retiring.Wait()
	n.closePools()
}

func (n *node) closePools() {
	for _, p := range n.pools {
		p.Close()
	}
	for _, p := range n.retired {
		p.Close()
	}
}

func randomKey() ([]byte, error) {
	k := make([]byte, 32)
	_, err := rand.Read(k)
	return k, err
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func parseLevel(s string) (slog.Level, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(s)); err != nil {
		return 0, errors.New("want debug, info, warn or error")
	}
	return lv, nil
}
