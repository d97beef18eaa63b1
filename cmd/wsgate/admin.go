package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/urfave/cli/v2"

	"github.com/wsgate/wsgate/admin"
	"github.com/wsgate/wsgate/balance"
	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/engine"
)

// adminOptions configure the admin API of `wsgate serve`. The zero value
// is "off" (the demo builds its options by hand).
type adminOptions struct {
	addr  string // "" = off
	token string
}

// adminFlags are serve's admin flags.
func adminFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "admin", Value: config.DefaultAdminListen, Usage: "admin API and dashboard address, or off; a non-loopback address needs --admin-token"},
		&cli.StringFlag{Name: "admin-token", EnvVars: []string{"WSGATE_ADMIN_TOKEN"}, Usage: "bearer token the admin API requires for changes (prefer the environment variable: flags show in ps)"},
	}
}

func adminOptionsFrom(c *cli.Context) (adminOptions, error) {
	o := adminOptions{addr: c.String("admin"), token: c.String("admin-token")}
	if o.addr == "off" {
		return adminOptions{}, nil
	}
	if err := config.CheckListen(o.addr); err != nil {
		return o, badFlag("admin", o.addr, err)
	}
	return o, nil
}

// startAdmin starts the admin API in front of srv and pool; the returned
// function stops it. When ctx is done (SIGTERM) the API tells clients the
// node is stopping (/readyz 503, no undrain) but keeps answering while the
// proxy drains.
func startAdmin(ctx context.Context, o adminOptions, srv *engine.Server, pool *balance.Pool, log *slog.Logger) (func(), error) {
	if o.addr == "" {
		return func() {}, nil
	}
	a, err := admin.New(admin.Config{
		Addr:    o.addr,
		Token:   o.token,
		Version: version,
		Engine:  srv,
		Pools: func() []admin.NamedPool {
			return []admin.NamedPool{{Name: admin.DefaultPool, Pool: pool}}
		},
		// Reload stays nil until wsgate reads a configuration file: the
		// API answers 409 and says why.
		Logger: log,
	})
	if err != nil {
		return nil, err
	}
	if err := a.Listen(); err != nil {
		if errors.Is(err, admin.ErrNoToken) {
			return nil, cli.Exit(err.Error(), exitUsage)
		}
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			a.Stopping()
		case <-done:
		}
	}()
	return func() {
		close(done)
		a.Close()
	}, nil
}
