package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/wsgate/wsgate/internal/wsecho"
)

func echoCommand() *cli.Command {
	return &cli.Command{
		Name:      "echo",
		Usage:     "run a WebSocket echo server (also answers plain HTTP with what it received)",
		UsageText: "wsgate echo --listen 127.0.0.1:8010",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:8010", Usage: "address to listen on"},
			&cli.StringFlag{Name: "name", Usage: "name reported in X-Echo-Server (default: the listen address)"},
		},
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			name := c.String("name")
			if name == "" {
				name = c.String("listen")
			}
			s, err := wsecho.Listen(c.String("listen"), name)
			if err != nil {
				return err
			}
			defer s.Close()
			fmt.Fprintf(c.App.ErrWriter, "wsgate echo listening on %s\n", s.Addr())
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			<-ctx.Done()
			return nil
		},
	}
}
