package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/wsgate/wsgate/admin"
	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/engine"
)

// adminOptions configure the admin API of `wsgate serve`. The zero value
// is "off" (the demo builds its options by hand).
type adminOptions struct {
	addr          string // "" = off
	token         string
	drain, spread time.Duration // a drain request's defaults
	inherited     int           // listening socket from a binary upgrade; -1 = none
}

// adminFlags are serve's admin flags.
func adminFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "admin", Value: config.DefaultAdminListen, Usage: "admin API and dashboard address, or off; a non-loopback address needs --admin-token"},
		&cli.StringFlag{Name: "admin-token", EnvVars: []string{"WSGATE_ADMIN_TOKEN"}, Usage: "bearer token the admin API requires for changes (prefer the environment variable: flags show in ps)"},
	}
}

// adminRun is a running admin API.
type adminRun struct {
	stop func()
	ln   net.Listener // nil when the API is off
}

// file returns a copy of the admin listening socket for a binary upgrade,
// or nil.
func (r *adminRun) file() *os.File {
	tl, ok := r.ln.(*net.TCPListener)
	if !ok {
		return nil
	}
	f, err := tl.File()
	if err != nil {
		return nil
	}
	return f
}

// startAdmin binds the admin API for srv and pools (or takes over the
// socket a binary upgrade passed down), and serves it once srv has
// started. Binding first makes a bad or exposed admin address fail before
// the proxy accepts anyone; serving only after Start keeps the API (and
// its once-a-second sampler) from reading the engine while Start builds
// it. When ctx is done (SIGTERM) the API tells clients the node is
// stopping (/readyz 503, no undrain) but keeps answering while the proxy
// drains.
func startAdmin(ctx context.Context, o adminOptions, srv *engine.Server, pools func() []admin.NamedPool, reload func(context.Context) error, log *slog.Logger) (*adminRun, error) {
	if o.addr == "" {
		return &adminRun{stop: func() {}}, nil
	}
	a, err := admin.New(admin.Config{
		Addr:    o.addr,
		Token:   o.token,
		Version: version,
		Engine:  srv,
		Pools:   pools,
		// Reload is nil without a configuration file: the API answers
		// 409 and says why.
		Reload:        reload,
		DrainDeadline: o.drain,
		DrainSpread:   o.spread,
		Logger:        log,
	})
	if err != nil {
		return nil, err
	}
	var ln net.Listener
	if o.inherited >= 0 {
		f := os.NewFile(uintptr(o.inherited), "admin listener")
		ln, err = net.FileListener(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("admin: inherited listener: %w", err)
		}
		if want, err := net.ResolveTCPAddr("tcp", o.addr); err != nil || want.Port != ln.Addr().(*net.TCPAddr).Port {
			// admin.address changed across the upgrade: bind the new one.
			ln.Close()
			ln = nil
		}
	}
	if ln == nil {
		if ln, err = a.Bind(); err != nil {
			if errors.Is(err, admin.ErrNoToken) {
				return nil, cli.Exit(err.Error(), exitUsage)
			}
			return nil, err
		}
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		// The engine has no started signal of its own; its listeners'
		// addresses appear when Start has returned (it holds the
		// server's lock throughout), so they are it.
		for len(srv.Addrs()) == 0 {
			select {
			case <-stop:
				ln.Close()
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
		if err := a.Serve(ln); err != nil {
			log.Error("admin API", "err", err)
			ln.Close()
			return
		}
		select {
		case <-ctx.Done():
			a.Stopping()
		case <-stop:
		}
	}()
	var once sync.Once
	return &adminRun{ln: ln, stop: func() {
		once.Do(func() {
			close(stop)
			<-done
			a.Close()
		})
	}}, nil
}
