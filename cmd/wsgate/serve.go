package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/wsgate/wsgate/admin"
	"github.com/wsgate/wsgate/balance"
	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/engine"
)

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "run the proxy",
		UsageText: "wsgate serve --listen :8080 --backend 127.0.0.1:8010 --backend 127.0.0.1:8011\n" +
			"   wsgate serve --config /etc/wsgate/wsgate.yaml",
		Flags: append(serveFlags(), adminFlags()...),
		OnUsageError: func(c *cli.Context, err error, sub bool) error {
			return usageError(c, err, sub)
		},
		Action: func(c *cli.Context) error {
			opts, err := serveOptionsFrom(c)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runServe(ctx, opts, c.App.ErrWriter)
		},
	}
}

// serveFlags are serve's flags; demo shares the ones that make sense.
func serveFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "config", Usage: "YAML configuration file (see examples/); the quick-start flags below build the same configuration without one"},
		&cli.StringSliceFlag{Name: "listen", Value: cli.NewStringSlice(config.DefaultListen), Usage: "address to accept clients on (repeatable)"},
		&cli.StringSliceFlag{Name: "backend", Usage: "backend host:port[,weight=N][,max_conns=N] (repeatable, at least one)"},
		&cli.StringFlag{Name: "policy", Value: string(balance.DefaultPolicy), Usage: "balancing policy: least_conn, round_robin or hash (client IP)"},
		&cli.DurationFlag{Name: "idle-timeout", Value: config.DefaultIdleTimeout, Usage: "close a tunnel with no bytes either way for this long (0 = never); prevents dead tunnels piling up"},
		&cli.DurationFlag{Name: "connect-timeout", Value: config.DefaultConnectTimeout, Usage: "bound on a backend connect; a dead backend is noticed this fast"},
		&cli.DurationFlag{Name: "header-timeout", Value: config.DefaultHeaderTimeout, Usage: "bound on receiving a client's request head; stops slowloris"},
		&cli.DurationFlag{Name: "answer-timeout", Value: config.DefaultAnswerTimeout, Usage: "bound on the backend's answer head (504 after it)"},
		&cli.DurationFlag{Name: "keepalive", Usage: "ping the client of a WebSocket tunnel idle this long (0 = never); keeps NATs and L4 balancers from dropping it"},
		&cli.IntFlag{Name: "tries", Value: config.DefaultTries, Usage: "backends tried per request before 502/504"},
		&cli.BoolFlag{Name: "copy", Usage: "move tunnel bytes with read/write only (no splice)"},
		&cli.BoolFlag{Name: "splice", Usage: "move tunnel bytes with splice only (no copy path)"},
		&cli.IntFlag{Name: "loops", Usage: "splice loops (0 = one per CPU)"},
		&cli.StringFlag{Name: "io-uring", Value: config.DefaultIOUring, Usage: "batch socket calls with io_uring: auto (where the kernel allows it), on (required) or off (one system call each)"},
		&cli.IntFlag{Name: "reuseport", Value: 1, Usage: "listening sockets per address, with SO_REUSEPORT"},
		&cli.StringSliceFlag{Name: "trusted-proxy", Usage: "CIDR of a proxy in front whose X-Forwarded-* are kept (repeatable)"},
		&cli.StringFlag{Name: "access-log", Value: "stdout", Usage: "where the per-session JSON access log goes: stdout, stderr, off or a file path"},
		&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
	}
}

// quickFlags are the flags a configuration file replaces.
var quickFlags = []string{"listen", "backend", "policy", "idle-timeout", "connect-timeout", "header-timeout",
	"answer-timeout", "keepalive", "tries", "copy", "splice", "loops", "io-uring", "reuseport", "trusted-proxy", "access-log"}

type serveOptions struct {
	cfg   *config.Config
	path  string // the configuration file, "" when built from flags
	token string // the admin API's bearer token
	// ready, when set, is called once the proxy listens.
	ready func(*engine.Server)
	// inherited are listening sockets from the process that started this
	// one (a binary upgrade), by address.
	inherited map[string][]int
}

func serveOptionsFrom(c *cli.Context) (*serveOptions, error) {
	if path := c.String("config"); path != "" {
		for _, f := range quickFlags {
			if c.IsSet(f) {
				return nil, cli.Exit(fmt.Sprintf("--%s and --config: the file holds the whole configuration; choose one", f), exitUsage)
			}
		}
		cfg, warnings, err := config.Load(path)
		if err != nil {
			return nil, cli.Exit(err.Error(), exitUsage)
		}
		for _, w := range warnings {
			fmt.Fprintln(c.App.ErrWriter, "wsgate: warning:", w.String())
		}
		if c.IsSet("log-level") {
			if _, err := parseLevel(c.String("log-level")); err != nil {
				return nil, badFlag("log-level", c.String("log-level"), err)
			}
			cfg.LogLevel = c.String("log-level")
		}
		o := &serveOptions{cfg: cfg, path: path}
		if err := o.adminFrom(c); err != nil {
			return nil, err
		}
		return o, nil
	}
	cfg, err := configFromFlags(c)
	if err != nil {
		return nil, err
	}
	o := &serveOptions{cfg: cfg}
	if err := o.adminFrom(c); err != nil {
		return nil, err
	}
	if err := validateFlags(cfg); err != nil {
		return nil, err
	}
	return o, nil
}

// configFromFlags builds the configuration the quick-start flags describe:
// one pool, "default", with every request routed to it.
func configFromFlags(c *cli.Context) (*config.Config, error) {
	cfg := config.Default()
	for _, l := range c.StringSlice("listen") {
		if err := config.CheckListen(l); err != nil {
			return nil, badFlag("listen", l, err)
		}
		lc := config.DefaultListener(l)
		if n := c.Int("reuseport"); n < 1 || n > 64 {
			return nil, badFlag("reuseport", fmt.Sprint(n), fmt.Errorf("want 1..64"))
		} else {
			lc.ReusePort = n
		}
		if k := c.Duration("keepalive"); k < 0 {
			return nil, badFlag("keepalive", k.String(), fmt.Errorf("want 0 or a positive duration such as 30s"))
		} else {
			lc.Keepalive = k
		}
		cfg.Listeners = append(cfg.Listeners, lc)
	}
	backends := c.StringSlice("backend")
	if len(backends) == 0 {
		return nil, cli.Exit("--backend: at least one backend is required, e.g. --backend 127.0.0.1:8010 (or --config FILE)", exitUsage)
	}
	pool := config.DefaultPool()
	for _, b := range backends {
		bc, err := config.ParseBackend(b)
		if err != nil {
			return nil, badFlag("backend", b, err)
		}
		cb := config.DefaultBackend(bc.Addr)
		if bc.Weight != 0 {
			cb.Weight = bc.Weight
		}
		cb.MaxConns = bc.MaxConns
		pool.Backends = append(pool.Backends, cb)
	}
	switch p := balance.Policy(c.String("policy")); p {
	case balance.LeastConn, balance.RoundRobin, balance.Hash:
		pool.Policy = p
	default:
		return nil, badFlag("policy", string(p), fmt.Errorf("want least_conn, round_robin or hash"))
	}
	cfg.Pools = map[string]config.Pool{admin.DefaultPool: pool}
	durations := []struct {
		flag string
		dst  *time.Duration
		zero bool // 0 allowed
	}{
		{"idle-timeout", &cfg.Timeouts.Idle, true},
		{"connect-timeout", &cfg.Timeouts.Connect, false},
		{"header-timeout", &cfg.Timeouts.Header, false},
		{"answer-timeout", &cfg.Timeouts.BackendAnswer, false},
	}
	for _, d := range durations {
		v := c.Duration(d.flag)
		if v < 0 || (v == 0 && !d.zero) {
			return nil, badFlag(d.flag, v.String(), fmt.Errorf("want a positive duration such as 30s"))
		}
		*d.dst = v
	}
	if n := c.Int("tries"); n < 1 || n > 8 {
		return nil, badFlag("tries", fmt.Sprint(n), fmt.Errorf("want 1..8"))
	} else {
		cfg.Tunnel.Tries = n
	}
	switch {
	case c.Bool("copy") && c.Bool("splice"):
		return nil, cli.Exit("--copy and --splice: choose one", exitUsage)
	case c.Bool("copy"):
		cfg.Tunnel.Mode = engine.ModeCopy.String()
	case c.Bool("splice"):
		cfg.Tunnel.Mode = engine.ModeSplice.String()
	}
	if m := c.String("io-uring"); m != "auto" && m != "on" && m != "off" {
		return nil, badFlag("io-uring", m, fmt.Errorf("want auto, on or off"))
	} else {
		cfg.Tunnel.IOUring = m
	}
	if n := c.Int("loops"); n < 0 || n > 1024 {
		return nil, badFlag("loops", fmt.Sprint(n), fmt.Errorf("want 0..1024"))
	} else {
		cfg.Tunnel.Loops = n
	}
	for _, s := range c.StringSlice("trusted-proxy") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, badFlag("trusted-proxy", s, fmt.Errorf("want a CIDR such as 10.0.0.0/8"))
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		cfg.Headers.TrustedProxies = append(cfg.Headers.TrustedProxies, p.Masked())
	}
	if _, err := parseLevel(c.String("log-level")); err != nil {
		return nil, badFlag("log-level", c.String("log-level"), err)
	}
	cfg.LogLevel = c.String("log-level")
	cfg.AccessLog.Output = c.String("access-log")
	admin := c.String("admin")
	if admin != "off" {
		if err := config.CheckListen(admin); err != nil {
			return nil, badFlag("admin", admin, err)
		}
	}
	cfg.Admin.Address = admin
	return cfg, nil
}

// validateFlags runs the configuration's own checks on what the flags
// built, naming the flag where one field maps to one flag.
func validateFlags(cfg *config.Config) error {
	_, err := cfg.Validate()
	if err == nil {
		return nil
	}
	msg := err.Error()
	for field, flag := range map[string]string{"admin.address": "admin", "listeners": "listen", "access_log.output": "access-log"} {
		if strings.Contains(msg, field) {
			return cli.Exit(fmt.Sprintf("--%s: %s", flag, msg), exitUsage)
		}
	}
	return cli.Exit(msg, exitUsage)
}

// adminFrom takes the admin token: --admin-token (or WSGATE_ADMIN_TOKEN),
// else the environment variable the configuration names.
func (o *serveOptions) adminFrom(c *cli.Context) error {
	o.token = c.String("admin-token")
	if o.token == "" && o.cfg.Admin.TokenEnv != "" {
		o.token = os.Getenv(o.cfg.Admin.TokenEnv)
	}
	if c.IsSet("admin") && o.path != "" {
		return cli.Exit("--admin and --config: set admin.address in the file", exitUsage)
	}
	return nil
}

// runServe runs the proxy until ctx is done, then stops gracefully: no new
// connections, /readyz 503, tunnels given the drain timeout to end, the
// rest ended with Close frames spread over the drain window. SIGHUP
// reloads the configuration file; SIGUSR2 upgrades the binary in place.
func runServe(ctx context.Context, o *serveOptions, stderr io.Writer) error {
	cfg := o.cfg
	level := new(slog.LevelVar)
	if lv, err := parseLevel(cfg.LogLevel); err == nil {
		level.Set(lv)
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	startPprof(log)
	access, closeAccess, err := openAccessLog(cfg.AccessLog.Output)
	if err != nil {
		return badFlag("access-log", cfg.AccessLog.Output, err)
	}
	defer closeAccess()
	if o.inherited == nil {
		o.inherited = inheritedListeners(log)
		closeUnused(o.inherited, func(addr string) bool {
			for _, l := range cfg.Listeners {
				if l.Address == addr {
					return true
				}
			}
			return false
		}, log)
	}
	n, err := newNode(cfg, o.path, log, level, access, o.inherited)
	if err != nil {
		return cli.Exit(err.Error(), exitUsage)
	}
	defer n.close()
	srv := n.srv
	var reload func(context.Context) error
	if o.path != "" {
		reload = n.reload
	}
	ao := adminOptions{addr: adminAddr(cfg), token: o.token, drain: cfg.Timeouts.Drain, spread: cfg.Timeouts.DrainSpread, inherited: -1}
	if fds := o.inherited[adminKey]; len(fds) == 1 {
		ao.inherited = fds[0]
	}
	adm, err := startAdmin(ctx, ao, srv, n.namedPools, reload, log)
	if err != nil {
		return err
	}
	defer adm.stop()
	if err := srv.Start(); err != nil {
		return err
	}
	var addrs []string
	for _, a := range srv.Addrs() {
		addrs = append(addrs, a.String())
	}
	var pools []string
	for _, name := range sortedKeys(cfg.Pools) {
		var bs []string
		for _, b := range cfg.Pools[name].Backends {
			bs = append(bs, b.Address)
		}
		pools = append(pools, name+"="+strings.Join(bs, ","))
	}
	log.Info("wsgate serving", "version", version, "listen", strings.Join(addrs, ","), "pools", strings.Join(pools, " "), "config", o.path)
	if o.ready != nil {
		o.ready(srv)
	}
	signalReady(log)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	restarting := false
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case s := <-sigs:
			switch s {
			case syscall.SIGHUP:
				if reload == nil {
					log.Warn("SIGHUP: no configuration file to reload (started with flags)")
				} else if err := reload(context.Background()); err != nil {
					log.Error("reload refused; the running configuration stays", "err", err)
				}
			case syscall.SIGUSR2:
				if err := upgrade(srv, adm, log); err != nil {
					log.Error("binary upgrade failed; this process keeps serving", "err", err)
					continue
				}
				adm.stop() // the new process answers the admin API now
				restarting, done = true, true
			}
		}
	}
	n.mu.Lock()
	drain, spread := n.cfg.Timeouts.Drain, n.cfg.Timeouts.DrainSpread
	n.mu.Unlock()
	srv.SetRestarting(restarting)
	log.Info("stopping: no new connections; waiting for tunnels to end", "timeout", drain.String(), "spread", spread.String())
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := srv.Shutdown(sctx, spread); err != nil {
		log.Warn("drain timeout passed; the tunnels left were ended", "err", err)
	}
	log.Info("stopped")
	return nil
}

func adminAddr(cfg *config.Config) string {
	if cfg.Admin.Address == "off" {
		return ""
	}
	return cfg.Admin.Address
}

// openAccessLog opens the per-session log: JSON lines on stdout, stderr
// or a file; "off" disables it.
func openAccessLog(where string) (*slog.Logger, func(), error) {
	var w io.Writer
	closer := func() {}
	switch where {
	case "off", "":
		return nil, closer, nil
	case "stdout":
		w = os.Stdout
	case "stderr":
		w = os.Stderr
	default:
		f, err := os.OpenFile(where, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return nil, nil, err
		}
		w, closer = f, func() { f.Close() }
	}
	return slog.New(slog.NewJSONHandler(w, nil)), closer, nil
}
