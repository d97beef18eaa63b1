package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"

	"github.com/wsgate/wsgate/bench"
)

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "load generator: measure a WebSocket proxy (or a backend directly)",
		Description: "Each mode runs against --target (an echo server, or a proxy in front of echo servers such as `wsgate echo`)\n" +
			"and, with --pid, measures that process and its children (nginx and HAProxy workers) from /proc.\n" +
			"Every run is bounded in count and in time.",
		Subcommands: []*cli.Command{
			benchIdleCommand(),
			benchEchoCommand(),
			benchBulkCommand(),
			benchHandshakeCommand(),
		},
	}
}

// benchFlags are the flags every mode has.
func benchFlags(more ...cli.Flag) []cli.Flag {
	return append([]cli.Flag{
		&cli.StringFlag{Name: "target", Value: "ws://127.0.0.1:8080/", Usage: "WebSocket URL of the proxy or echo server"},
		&cli.IntFlag{Name: "pid", Usage: "process to measure (with its children) from /proc; 0 = none"},
		&cli.StringFlag{Name: "source-addrs", Usage: "local addresses to dial from, in turn, e.g. 127.0.0.2-127.0.0.40 (more than ~28k connections)"},
		&cli.BoolFlag{Name: "json", Usage: "print the result as JSON"},
	}, more...)
}

func benchIdleCommand() *cli.Command {
	return &cli.Command{
		Name:      "idle",
		Usage:     "open N tunnels at a rate, hold them idle, report memory per tunnel of --pid",
		UsageText: "wsgate bench idle --target ws://127.0.0.1:8080/ --conns 9000 --rate 2000 --hold 5s --pid $(pidof wsgate)",
		Flags: benchFlags(
			&cli.IntFlag{Name: "conns", Value: 1000, Usage: "tunnels to open"},
			&cli.Float64Flag{Name: "rate", Value: 2000, Usage: "new tunnels per second"},
			&cli.DurationFlag{Name: "hold", Value: 0, Usage: "hold the tunnels idle this long before measuring"},
		),
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			srcs, err := sourceAddrs(c)
			if err != nil {
				return err
			}
			n := c.Int("conns")
			bar := newBar(c, int64(n), "opening tunnels")
			res, err := bench.Idle(c.Context, bench.IdleConfig{
				Target:      c.String("target"),
				Conns:       n,
				Rate:        c.Float64("rate"),
				Hold:        c.Duration("hold"),
				PID:         c.Int("pid"),
				SourceAddrs: srcs,
				Progress:    func(opened int) { bar.set(int64(opened), int64(n)) },
			})
			bar.finish()
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, res)
			}
			w := c.App.Writer
			fmt.Fprintf(w, "tunnels opened       %d (%d failed) in %.2fs\n", res.Conns, res.Failed, res.OpenSeconds)
			fmt.Fprintf(w, "handshake p50/p99    %.2f / %.2f ms (max %.2f)\n", res.HandshakeP50ms, res.HandshakeP99ms, res.HandshakeMaxMs)
			if c.Int("pid") > 0 {
				fmt.Fprintf(w, "target RSS           %d → %d KiB\n", res.RSSBefore>>10, res.RSSAfter>>10)
				fmt.Fprintf(w, "user space / tunnel  %.0f B (anonymous %.0f B)\n", res.RSSPerConn, res.AnonPerConn)
				fmt.Fprintf(w, "kernel slab / tunnel %.0f B, TCP buffers / tunnel %.0f B (machine-wide)\n", res.SlabPerConn, res.TCPMemPerConn)
			}
			if res.FirstError != "" {
				fmt.Fprintf(w, "first error          %s\n", res.FirstError)
			}
			return nil
		},
	}
}

func benchEchoCommand() *cli.Command {
	return &cli.Command{
		Name:      "echo",
		Usage:     "N tunnels × M messages of S bytes, each waiting for its echo: messages/s, round-trip percentiles, CPU per message of --pid",
		UsageText: "wsgate bench echo --target ws://127.0.0.1:8080/ --conns 1000 --messages 1000 --size 64 --duration 10s --pid $(pidof wsgate)",
		Flags: benchFlags(
			&cli.IntFlag{Name: "conns", Value: 100, Usage: "tunnels, each with one message in flight"},
			&cli.IntFlag{Name: "messages", Value: 1000, Usage: "messages per tunnel (count bound)"},
			&cli.IntFlag{Name: "size", Value: 64, Usage: "payload bytes per message"},
			&cli.DurationFlag{Name: "duration", Value: time.Minute, Usage: "stop sending after this long (time bound)"},
		),
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			srcs, err := sourceAddrs(c)
			if err != nil {
				return err
			}
			bar := newBar(c, 0, "echoing")
			res, err := bench.Echo(c.Context, bench.EchoConfig{
				Target:      c.String("target"),
				Conns:       c.Int("conns"),
				Messages:    c.Int("messages"),
				Size:        c.Int("size"),
				Duration:    c.Duration("duration"),
				PID:         c.Int("pid"),
				SourceAddrs: srcs,
				Progress:    bar.set,
			})
			bar.finish()
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, res)
			}
			w := c.App.Writer
			fmt.Fprintf(w, "messages echoed      %d of %d B over %d tunnels in %.2fs (%d tunnels failed)\n", res.Messages, res.Size, res.Conns, res.Seconds, res.Failed)
			fmt.Fprintf(w, "messages/s           %.0f\n", res.MessagesPerSec)
			printPercentiles(w, "round trip", res.RTT)
			if c.Int("pid") > 0 {
				fmt.Fprintf(w, "target CPU           %.2f s, %.3f s per 100k messages\n", res.CPUSeconds, res.CPUPer100k)
			}
			printMachine(w, res.Machine)
			if res.FirstError != "" {
				fmt.Fprintf(w, "first error          %s\n", res.FirstError)
			}
			return nil
		},
	}
}

func benchBulkCommand() *cli.Command {
	return &cli.Command{
		Name:      "bulk",
		Usage:     "N tunnels each send B bytes and read them back at once: Gbit/s, CPU-seconds per GB of --pid",
		UsageText: "wsgate bench bulk --target ws://127.0.0.1:8080/ --conns 4 --bytes 1GiB --pid $(pidof wsgate)",
		Flags: benchFlags(
			&cli.IntFlag{Name: "conns", Value: 4, Usage: "tunnels"},
			&cli.StringFlag{Name: "bytes", Value: "1GiB", Usage: "payload each way per tunnel (B, KiB, MiB, GiB)"},
			&cli.StringFlag{Name: "frame", Value: "1MiB", Usage: "payload per WebSocket frame"},
			&cli.DurationFlag{Name: "timeout", Value: 10 * time.Minute, Usage: "bound on the run"},
		),
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			srcs, err := sourceAddrs(c)
			if err != nil {
				return err
			}
			n, err := parseSize(c.String("bytes"))
			if err != nil {
				return badFlag("bytes", c.String("bytes"), err)
			}
			frame, err := parseSize(c.String("frame"))
			if err != nil || frame > 1<<30 {
				return badFlag("frame", c.String("frame"), fmt.Errorf("want a size up to 1GiB"))
			}
			bar := newBar(c, 0, "moving bytes")
			res, err := bench.Bulk(c.Context, bench.BulkConfig{
				Target:      c.String("target"),
				Conns:       c.Int("conns"),
				Bytes:       n,
				Frame:       int(frame),
				PID:         c.Int("pid"),
				SourceAddrs: srcs,
				Timeout:     c.Duration("timeout"),
				Progress:    bar.set,
			})
			bar.finish()
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, res)
			}
			w := c.App.Writer
			fmt.Fprintf(w, "bytes sent/received  %d / %d over %d tunnels in %.2fs\n", res.Sent, res.Received, res.Conns, res.Seconds)
			fmt.Fprintf(w, "throughput           %.2f Gbit/s (both directions)\n", res.Gbps)
			if c.Int("pid") > 0 {
				fmt.Fprintf(w, "target CPU           %.2f s, %.3f s per GB\n", res.CPUSeconds, res.CPUPerGB)
			}
			printMachine(w, res.Machine)
			return nil
		},
	}
}

func benchHandshakeCommand() *cli.Command {
	return &cli.Command{
		Name:      "handshake",
		Usage:     "connect, upgrade, close, again and again for a duration: upgrades/s, CPU per upgrade of --pid",
		UsageText: "wsgate bench handshake --target ws://127.0.0.1:8080/ --duration 10s --source-addrs 127.0.0.2-127.0.0.40 --pid $(pidof wsgate)",
		Flags: benchFlags(
			&cli.DurationFlag{Name: "duration", Value: 10 * time.Second, Usage: "how long to run (time bound)"},
			&cli.Int64Flag{Name: "max", Value: 10_000_000, Usage: "stop after this many upgrades (count bound)"},
			&cli.IntFlag{Name: "concurrency", Value: 32, Usage: "handshakes in flight"},
		),
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			srcs, err := sourceAddrs(c)
			if err != nil {
				return err
			}
			bar := newBar(c, 0, "upgrading")
			res, err := bench.Handshake(c.Context, bench.HandshakeConfig{
				Target:      c.String("target"),
				Duration:    c.Duration("duration"),
				Max:         c.Int64("max"),
				Concurrency: c.Int("concurrency"),
				PID:         c.Int("pid"),
				SourceAddrs: srcs,
				Progress:    bar.set,
			})
			bar.finish()
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, res)
			}
			w := c.App.Writer
			fmt.Fprintf(w, "upgrades             %d in %.2fs (%d failed)\n", res.Handshakes, res.Seconds, res.Failed)
			fmt.Fprintf(w, "upgrades/s           %.0f\n", res.PerSec)
			printPercentiles(w, "connect to 101", res.Latency)
			if c.Int("pid") > 0 {
				fmt.Fprintf(w, "target CPU           %.2f s, %.1f µs per upgrade\n", res.CPUSeconds, res.CPUPerHandshake)
			}
			printMachine(w, res.Machine)
			if res.FirstError != "" {
				fmt.Fprintf(w, "first error          %s\n", res.FirstError)
			}
			return nil
		},
	}
}

func sourceAddrs(c *cli.Context) ([]netip.Addr, error) {
	srcs, err := bench.ParseAddrRange(c.String("source-addrs"))
	if err != nil {
		return nil, badFlag("source-addrs", c.String("source-addrs"), err)
	}
	return srcs, nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printMachine says how busy the machine was: a run that saturates it
// measures the machine as much as the target.
func printMachine(w io.Writer, m *bench.Machine) {
	if m == nil {
		return
	}
	fmt.Fprintf(w, "machine CPU          %.0f%% of %d CPUs busy (%.2f CPU-s), %.2f s stolen by the hypervisor\n", 100*m.Busy, m.CPUs, m.BusySeconds, m.StealSeconds)
}

func printPercentiles(w io.Writer, what string, p bench.Percentiles) {
	fmt.Fprintf(w, "%-20s p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f ms\n", what, p.P50, p.P90, p.P99, p.P999, p.Max)
}

// parseSize reads a byte count: 1048576, 64KiB, 1MiB, 1GiB (or KB, MB, GB
// as powers of ten).
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if len(s) > len(u.suffix) && s[len(s)-len(u.suffix):] == u.suffix {
			s, mult = s[:len(s)-len(u.suffix)], u.mult
			break
		}
	}
	var n int64
	if _, err := fmt.Sscan(s, &n); err != nil || n <= 0 || n > (1<<40)/mult {
		return 0, fmt.Errorf("want a positive size such as 1GiB, 64KiB or 4096")
	}
	return n * mult, nil
}

// bar is a progress bar on stderr when stderr is a terminal, nothing
// otherwise (scripts, --json pipes, tests).
type bar struct{ pb *progressbar.ProgressBar }

func newBar(c *cli.Context, total int64, what string) *bar {
	f, ok := c.App.ErrWriter.(*os.File)
	if !ok {
		return &bar{}
	}
	if st, err := f.Stat(); err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return &bar{}
	}
	return &bar{pb: progressbar.NewOptions64(max(total, 1),
		progressbar.OptionSetWriter(f),
		progressbar.OptionSetDescription(what),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionClearOnFinish(),
	)}
}

func (b *bar) set(done, total int64) {
	if b.pb == nil {
		return
	}
	if b.pb.GetMax64() != total && total > 0 {
		b.pb.ChangeMax64(total)
	}
	b.pb.Set64(done)
}

func (b *bar) finish() {
	if b.pb != nil {
		b.pb.Finish()
	}
}
