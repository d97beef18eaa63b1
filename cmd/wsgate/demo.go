package main

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/wsgate/wsgate/balance"
	"github.com/wsgate/wsgate/engine"
	"github.com/wsgate/wsgate/internal/wsecho"
)

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "run wsgate on :8080 in front of two embedded echo backends on 127.0.0.1:8010 and :8011",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Value: ":8080", Usage: "address wsgate accepts clients on"},
			&cli.StringSliceFlag{Name: "backend-listen", Value: cli.NewStringSlice("127.0.0.1:8010", "127.0.0.1:8011"), Usage: "addresses of the embedded echo backends"},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
		},
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			var backends []balance.BackendConfig
			for i, addr := range c.StringSlice("backend-listen") {
				s, err := wsecho.Listen(addr, fmt.Sprintf("echo-%d", i+1))
				if err != nil {
					return fmt.Errorf("demo backend: %w", err)
				}
				defer s.Close()
				backends = append(backends, balance.BackendConfig{Addr: s.Addr()})
			}
			o := &serveOptions{accessLog: "stdout"}
			if err := o.logLevel.UnmarshalText([]byte(c.String("log-level"))); err != nil {
				return badFlag("log-level", c.String("log-level"), err)
			}
			o.engine.Listen = []string{c.String("listen")}
			o.pool.Backends = backends
			o.ready = func(srv *engine.Server) { printDemo(c, srv) }
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runServe(ctx, o, c.App.ErrWriter)
		},
	}
}

func printDemo(c *cli.Context, srv *engine.Server) {
	port := 8080
	if a := srv.Addrs(); len(a) > 0 {
		if ta, ok := a[0].(*net.TCPAddr); ok {
			port = ta.Port
		}
	}
	w := c.App.ErrWriter
	fmt.Fprintf(w, `
wsgate demo: two echo backends behind wsgate (least_conn), access log on stdout.

  websocat:  websocat ws://localhost:%[1]d/
  wscat:     npx wscat -c ws://localhost:%[1]d/
  browser:   open the console on any page and run
             ws = new WebSocket("ws://localhost:%[1]d/"); ws.onmessage = e => console.log(e.data); ws.onopen = () => ws.send("hello")
  plain:     curl -i http://localhost:%[1]d/   (shows the head the backend received)

Ctrl-C stops it.
`, port)
}
