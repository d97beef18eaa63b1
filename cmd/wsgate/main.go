// Command wsgate is the WebSocket / HTTP-Upgrade tunnel appliance: serve
// runs the proxy, demo runs it in front of two embedded echo backends,
// echo runs one echo backend, bench measures a proxy, ctl drives a running
// one through its admin API, check validates a configuration file, version
// prints the build.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

// exitUsage is the exit status for a bad flag or value, as for any
// command-line tool that follows the sysexits convention of 2 for usage.
const exitUsage = 2

func main() {
	if err := newApp().Run(os.Args); err != nil {
		var ec cli.ExitCoder
		if errors.As(err, &ec) {
			if msg := err.Error(); msg != "" {
				fmt.Fprintln(os.Stderr, "wsgate:", msg)
			}
			os.Exit(ec.ExitCode())
		}
		fmt.Fprintln(os.Stderr, "wsgate:", err)
		os.Exit(1)
	}
}

func newApp() *cli.App {
	return &cli.App{
		Name:    "wsgate",
		Usage:   "WebSocket / HTTP-Upgrade tunnel proxy: zero-copy, a few hundred bytes per idle tunnel",
		Version: version,
		// --backend values contain commas (weight=, max_conns=).
		DisableSliceFlagSeparator: true,
		// A bad flag is a usage error: say which and exit 2.
		OnUsageError: usageError,
		// Errors come back from Run; main prints them and exits, so the
		// CLI can also be run in-process by tests.
		ExitErrHandler: func(*cli.Context, error) {},
		Commands: []*cli.Command{
			serveCommand(),
			demoCommand(),
			echoCommand(),
			benchCommand(),
			ctlCommand(),
			checkCommand(),
			{
				Name:  "version",
				Usage: "print the version",
				Action: func(c *cli.Context) error {
					fmt.Fprintln(c.App.Writer, "wsgate", version)
					return nil
				},
			},
		},
	}
}

func usageError(_ *cli.Context, err error, _ bool) error {
	return cli.Exit(err.Error(), exitUsage)
}

// badFlag reports an invalid flag value, naming the flag and the value.
func badFlag(flag, value string, why error) error {
	return cli.Exit(fmt.Sprintf("--%s %q: %v", flag, value, why), exitUsage)
}
