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

	"github.com/wsgate/wsgate/balance"
	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/engine"
)

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:      "serve",
		Usage:     "run the proxy",
		UsageText: "wsgate serve --listen :8080 --backend 127.0.0.1:8010 --backend 127.0.0.1:8011",
		Flags:     append(serveFlags(), adminFlags()...),
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
		&cli.StringSliceFlag{Name: "listen", Value: cli.NewStringSlice(config.DefaultListen), Usage: "address to accept clients on (repeatable)"},
		&cli.StringSliceFlag{Name: "backend", Usage: "backend host:port[,weight=N][,max_conns=N] (repeatable, at least one)"},
		&cli.StringFlag{Name: "policy", Value: string(balance.DefaultPolicy), Usage: "balancing policy: least_conn, round_robin or hash (client IP)"},
		&cli.DurationFlag{Name: "idle-timeout", Value: config.DefaultIdleTimeout, Usage: "close a tunnel with no bytes either way for this long (0 = never); prevents dead tunnels piling up"},
		&cli.DurationFlag{Name: "connect-timeout", Value: config.DefaultConnectTimeout, Usage: "bound on a backend connect; a dead backend is noticed this fast"},
		&cli.DurationFlag{Name: "header-timeout", Value: config.DefaultHeaderTimeout, Usage: "bound on receiving a client's request head; stops slowloris"},
		&cli.DurationFlag{Name: "answer-timeout", Value: config.DefaultAnswerTimeout, Usage: "bound on the backend's answer head (504 after it)"},
		&cli.IntFlag{Name: "tries", Value: config.DefaultTries, Usage: "backends tried per request before 502/504"},
		&cli.BoolFlag{Name: "copy", Usage: "move tunnel bytes with read/write only (no splice)"},
		&cli.BoolFlag{Name: "splice", Usage: "move tunnel bytes with splice only (no copy path)"},
		&cli.IntFlag{Name: "loops", Usage: "splice loops (0 = one per CPU)"},
		&cli.IntFlag{Name: "reuseport", Value: 1, Usage: "listening sockets per address, with SO_REUSEPORT"},
		&cli.StringSliceFlag{Name: "trusted-proxy", Usage: "CIDR of a proxy in front whose X-Forwarded-* are kept (repeatable)"},
		&cli.StringFlag{Name: "access-log", Value: "stdout", Usage: "where the per-session JSON access log goes: stdout, stderr, off or a file path"},
		&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
	}
}

type serveOptions struct {
	engine    engine.Config
	pool      balance.Config
	logLevel  slog.Level
	accessLog string
	admin     adminOptions
	// ready, when set, is called once the proxy listens.
	ready func(*engine.Server)
}

func serveOptionsFrom(c *cli.Context) (*serveOptions, error) {
	o := &serveOptions{}
	for _, l := range c.StringSlice("listen") {
		if err := config.CheckListen(l); err != nil {
			return nil, badFlag("listen", l, err)
		}
		o.engine.Listen = append(o.engine.Listen, l)
	}
	backends := c.StringSlice("backend")
	if len(backends) == 0 {
		return nil, cli.Exit("--backend: at least one backend is required, e.g. --backend 127.0.0.1:8010", exitUsage)
	}
	for _, b := range backends {
		bc, err := config.ParseBackend(b)
		if err != nil {
			return nil, badFlag("backend", b, err)
		}
		o.pool.Backends = append(o.pool.Backends, bc)
	}
	switch p := balance.Policy(c.String("policy")); p {
	case balance.LeastConn, balance.RoundRobin, balance.Hash:
		o.pool.Policy = p
	default:
		return nil, badFlag("policy", string(p), fmt.Errorf("want least_conn, round_robin or hash"))
	}
	durations := []struct {
		flag string
		dst  *time.Duration
		zero bool // 0 allowed
	}{
		{"idle-timeout", &o.engine.IdleTimeout, true},
		{"connect-timeout", &o.engine.ConnectTimeout, false},
		{"header-timeout", &o.engine.HeaderTimeout, false},
		{"answer-timeout", &o.engine.AnswerTimeout, false},
	}
	for _, d := range durations {
		v := c.Duration(d.flag)
		if v < 0 || (v == 0 && !d.zero) {
			return nil, badFlag(d.flag, v.String(), fmt.Errorf("want a positive duration such as 30s"))
		}
		*d.dst = v
	}
	if o.engine.IdleTimeout == 0 {
		o.engine.IdleTimeout = -1 // the engine's "none"
	}
	if n := c.Int("tries"); n < 1 || n > 8 {
		return nil, badFlag("tries", fmt.Sprint(n), fmt.Errorf("want 1..8"))
	} else {
		o.engine.Tries = n
	}
	switch {
	case c.Bool("copy") && c.Bool("splice"):
		return nil, cli.Exit("--copy and --splice: choose one", exitUsage)
	case c.Bool("copy"):
		o.engine.Mode = engine.ModeCopy
	case c.Bool("splice"):
		o.engine.Mode = engine.ModeSplice
	}
	if n := c.Int("loops"); n < 0 || n > 1024 {
		return nil, badFlag("loops", fmt.Sprint(n), fmt.Errorf("want 0..1024"))
	} else {
		o.engine.Loops = n
	}
	if n := c.Int("reuseport"); n < 1 || n > 64 {
		return nil, badFlag("reuseport", fmt.Sprint(n), fmt.Errorf("want 1..64"))
	} else {
		o.engine.ReusePort = n
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
		o.engine.TrustedProxies = append(o.engine.TrustedProxies, p.Masked())
	}
	if err := o.logLevel.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return nil, badFlag("log-level", c.String("log-level"), fmt.Errorf("want debug, info, warn or error"))
	}
	o.accessLog = c.String("access-log")
	admin, err := adminOptionsFrom(c)
	if err != nil {
		return nil, err
	}
	o.admin = admin
	return o, nil
}

// runServe runs the proxy until ctx is done, then stops gracefully.
func runServe(ctx context.Context, o *serveOptions, stderr io.Writer) error {
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: o.logLevel}))
	o.engine.Logger = log
	startPprof(log)
	access, closeAccess, err := openAccessLog(o.accessLog)
	if err != nil {
		return badFlag("access-log", o.accessLog, err)
	}
	defer closeAccess()
	o.engine.AccessLog = access

	pool, err := balance.NewPool(o.pool)
	if err != nil {
		return cli.Exit(err.Error(), exitUsage)
	}
	defer pool.Close()
	o.engine.Pool = pool
	srv, err := engine.New(o.engine)
	if err != nil {
		return cli.Exit(err.Error(), exitUsage)
	}
	stopAdmin, err := startAdmin(ctx, o.admin, srv, pool, log)
	if err != nil {
		return err
	}
	defer stopAdmin()
	if err := srv.Start(); err != nil {
		return err
	}
	var addrs []string
	for _, a := range srv.Addrs() {
		addrs = append(addrs, a.String())
	}
	var bs []string
	for _, b := range o.pool.Backends {
		bs = append(bs, b.Addr)
	}
	log.Info("wsgate serving", "version", version, "listen", strings.Join(addrs, ","), "backends", strings.Join(bs, ","), "policy", string(pool.Policy()))
	if o.ready != nil {
		o.ready(srv)
	}
	<-ctx.Done()
	log.Info("stopping: no new connections; waiting for tunnels to end", "timeout", config.DefaultDrainDeadline.String())
	sctx, cancel := context.WithTimeout(context.Background(), config.DefaultDrainDeadline)
	defer cancel()
	if err := srv.Shutdown(sctx, config.DefaultDrainSpread); err != nil {
		log.Warn("stopped with tunnels still open; they were closed", "err", err)
	}
	return nil
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
