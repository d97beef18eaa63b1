package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/wsgate/wsgate/config"
)

// checkCommand validates a configuration file the way serve and reload
// would, and prints the effective configuration: every default filled in,
// so an operator sees what wsgate will run, not only what the file says.
func checkCommand() *cli.Command {
	return &cli.Command{
		Name:      "check",
		Usage:     "validate a configuration file and print the effective configuration",
		UsageText: "wsgate check --config /etc/wsgate/wsgate.yaml",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Required: true, Usage: "YAML configuration file"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only problems"},
		},
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			path := c.String("config")
			cfg, warnings, err := config.Load(path)
			if err != nil {
				// Every problem, one per line, each naming its line and field.
				return cli.Exit(err.Error(), 1)
			}
			for _, w := range warnings {
				fmt.Fprintln(c.App.ErrWriter, "warning:", w.String())
			}
			if !c.Bool("quiet") {
				c.App.Writer.Write(cfg.Render())
			}
			fmt.Fprintf(c.App.ErrWriter, "%s: valid (%d warnings)\n", path, len(warnings))
			return nil
		},
	}
}
