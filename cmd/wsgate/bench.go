package main

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/wsgate/wsgate/bench"
)

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "load generator: measure a WebSocket proxy (or a backend directly)",
		Subcommands: []*cli.Command{
			{
				Name:      "idle",
				Usage:     "open N tunnels at a rate, hold them idle, report memory per tunnel of --pid",
				UsageText: "wsgate bench idle --target ws://127.0.0.1:8080/ --conns 9000 --rate 2000 --hold 5s --pid $(pidof wsgate)",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "target", Value: "ws://127.0.0.1:8080/", Usage: "WebSocket URL"},
					&cli.IntFlag{Name: "conns", Value: 1000, Usage: "tunnels to open"},
					&cli.Float64Flag{Name: "rate", Value: 2000, Usage: "new tunnels per second"},
					&cli.DurationFlag{Name: "hold", Value: 0, Usage: "hold the tunnels idle this long before measuring"},
					&cli.IntFlag{Name: "pid", Usage: "process whose memory to measure"},
					&cli.StringFlag{Name: "source-addrs", Usage: "local addresses to dial from, e.g. 127.0.0.2-127.0.0.40"},
					&cli.BoolFlag{Name: "json", Usage: "print JSON"},
				},
				OnUsageError: usageError,
				Action: func(c *cli.Context) error {
					srcs, err := parseAddrRange(c.String("source-addrs"))
					if err != nil {
						return badFlag("source-addrs", c.String("source-addrs"), err)
					}
					res, err := bench.Idle(c.Context, bench.IdleConfig{
						Target:      c.String("target"),
						Conns:       c.Int("conns"),
						Rate:        c.Float64("rate"),
						Hold:        c.Duration("hold"),
						PID:         c.Int("pid"),
						SourceAddrs: srcs,
					})
					if err != nil {
						return err
					}
					if c.Bool("json") {
						enc := json.NewEncoder(c.App.Writer)
						enc.SetIndent("", "  ")
						return enc.Encode(res)
					}
					w := c.App.Writer
					fmt.Fprintf(w, "tunnels opened      %d (%d failed) in %.2fs\n", res.Conns, res.Failed, res.OpenSeconds)
					fmt.Fprintf(w, "handshake p50/p99   %.2f / %.2f ms (max %.2f)\n", res.HandshakeP50ms, res.HandshakeP99ms, res.HandshakeMaxMs)
					if c.Int("pid") > 0 {
						fmt.Fprintf(w, "target RSS          %d → %d KiB\n", res.RSSBefore>>10, res.RSSAfter>>10)
						fmt.Fprintf(w, "user space / tunnel %.0f B (anonymous %.0f B)\n", res.RSSPerConn, res.AnonPerConn)
						fmt.Fprintf(w, "kernel slab / tunnel %.0f B, TCP buffers / tunnel %.0f B (machine-wide)\n", res.SlabPerConn, res.TCPMemPerConn)
					}
					if res.FirstError != "" {
						fmt.Fprintf(w, "first error         %s\n", res.FirstError)
					}
					return nil
				},
			},
		},
	}
}

// parseAddrRange reads "127.0.0.2-127.0.0.40" or a comma list of
// addresses; "" is no addresses.
func parseAddrRange(s string) ([]netip.Addr, error) {
	if s == "" {
		return nil, nil
	}
	var out []netip.Addr
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := netip.ParseAddr(lo)
		if err != nil {
			return nil, err
		}
		if !isRange {
			out = append(out, a)
			continue
		}
		b, err := netip.ParseAddr(hi)
		if err != nil {
			return nil, err
		}
		if b.Less(a) || a.Is4() != b.Is4() {
			return nil, fmt.Errorf("range %s: want low-high of one family", part)
		}
		for x := a; ; x = x.Next() {
			out = append(out, x)
			if x == b || len(out) > 1<<16 {
				break
			}
		}
	}
	return out, nil
}
