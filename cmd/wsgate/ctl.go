package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/wsgate/wsgate/admin"
	"github.com/wsgate/wsgate/config"
)

// exitCtl is ctl's exit status when the API refused a request or could not
// be reached.
const exitCtl = 1

func ctlCommand() *cli.Command {
	// Fresh flag values for each command: urfave/cli keeps state in them.
	addr := func(more ...cli.Flag) []cli.Flag {
		return append([]cli.Flag{&cli.StringFlag{Name: "pool", Usage: "the backend's pool, when the address is in several"}}, more...)
	}
	drain := func() []cli.Flag {
		return []cli.Flag{
			&cli.StringFlag{Name: "deadline", Usage: "close the remaining tunnels after this long, e.g. 60s (0 = never; default: the server's, 60s)"},
			&cli.StringFlag{Name: "spread", Usage: "spread those closes over this window, e.g. 30s (default: the server's, 30s)"},
		}
	}
	return &cli.Command{
		Name:  "ctl",
		Usage: "drive a running wsgate through its admin API",
		Description: "The admin address and token come from --admin and --token, or WSGATE_ADMIN and WSGATE_ADMIN_TOKEN.\n" +
			"Errors from the server are printed as it sent them; the exit status is then 1.",
		OnUsageError: usageError,
		Subcommands: []*cli.Command{
			ctlSub("stats", "", "tunnels, handshakes, bytes and backends, as a table", nil, ctlStats),
			ctlSub("backends", "", "the backends and their state", []cli.Flag{
				&cli.StringFlag{Name: "pool", Usage: "only this pool's"},
			}, ctlBackends),
			ctlSub("drain", "ADDR", "stop new tunnels to a backend; close its tunnels after the deadline, spread out", addr(drain()...), ctlDrain),
			ctlSub("undrain", "ADDR", "return a draining backend to service", addr(), ctlUndrain),
			ctlSub("close", "ADDR", "end a backend's tunnels gracefully (Close 1001) at a rate, without draining it", addr(
				&cli.Float64Flag{Name: "rate", Value: 10, Usage: "tunnels per second"},
			), ctlClose),
			ctlSub("add", "ADDR", "add a backend", []cli.Flag{
				&cli.StringFlag{Name: "pool", Usage: "the pool to add it to (needed when there are several)"},
				&cli.IntFlag{Name: "weight", Usage: "weight, 1..256 (default 1)"},
				&cli.IntFlag{Name: "max-conns", Usage: "most tunnels at once (0 = unlimited)"},
			}, ctlAdd),
			ctlSub("remove", "ADDR", "drain a backend, then remove it when its last tunnel ends", addr(drain()...), ctlRemove),
			ctlSub("node-drain", "", "drain the whole node: stop accepting, fail /readyz, close the tunnels after the deadline", drain(), ctlNodeDrain),
			ctlSub("node-undrain", "", "accept again after node-drain", nil, ctlNodeUndrain),
			ctlSub("reload", "", "re-read the configuration file", nil, ctlReload),
		},
	}
}

// ctlSub is one ctl subcommand with the connection flags. Those are on
// every subcommand (urfave/cli looks a flag up in the nearest command
// that defines it), so they go after the subcommand's name.
func ctlSub(name, arg, usage string, flags []cli.Flag, action func(*ctlClient, *cli.Context) error) *cli.Command {
	usageText := "wsgate ctl " + name
	if arg != "" {
		usageText += " " + arg
	}
	usageText += " [flags]"
	return &cli.Command{
		Name:      name,
		Usage:     usage,
		UsageText: usageText,
		ArgsUsage: arg,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "admin", Value: config.DefaultAdminListen, EnvVars: []string{"WSGATE_ADMIN"}, Usage: "admin API address: host:port or URL"},
			&cli.StringFlag{Name: "token", EnvVars: []string{"WSGATE_ADMIN_TOKEN"}, Usage: "admin token (prefer the environment variable: flags show in ps)"},
			&cli.DurationFlag{Name: "timeout", Value: 10 * time.Second, Usage: "give up on the API after this long"},
			&cli.BoolFlag{Name: "json", Usage: "print the API's JSON answer as it came"},
		}, flags...),
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			if err := trailingFlags(c, arg != ""); err != nil {
				return err
			}
			if arg != "" && c.Args().Len() == 0 {
				return cli.Exit(fmt.Sprintf("ctl %s: missing %s", name, arg), exitUsage)
			}
			cl, err := newCtlClient(c)
			if err != nil {
				return err
			}
			return action(cl, c)
		},
	}
}

// trailingFlags lets flags follow the positional argument, as in
// `wsgate ctl drain 10.0.0.5:8010 --deadline 10s`: urfave/cli stops at the
// first argument, so the rest is parsed here with the command's flags.
func trailingFlags(c *cli.Context, positional bool) error {
	args := c.Args().Slice()
	if !positional {
		if len(args) > 0 {
			return cli.Exit(fmt.Sprintf("ctl %s: unexpected argument %q", c.Command.Name, args[0]), exitUsage)
		}
		return nil
	}
	if len(args) <= 1 {
		return nil
	}
	fs := flag.NewFlagSet(c.Command.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	for _, f := range c.Command.Flags {
		if err := f.Apply(fs); err != nil {
			return err
		}
	}
	if err := fs.Parse(args[1:]); err != nil {
		return cli.Exit(fmt.Sprintf("ctl %s: %v", c.Command.Name, err), exitUsage)
	}
	if fs.NArg() > 0 {
		return cli.Exit(fmt.Sprintf("ctl %s: unexpected argument %q", c.Command.Name, fs.Arg(0)), exitUsage)
	}
	var err error
	fs.Visit(func(f *flag.Flag) {
		if e := c.Set(f.Name, f.Value.String()); e != nil && err == nil {
			err = cli.Exit(fmt.Sprintf("ctl %s: --%s: %v", c.Command.Name, f.Name, e), exitUsage)
		}
	})
	return err
}

// ctlClient talks to one admin API.
type ctlClient struct {
	base  string
	token string
	hc    *http.Client
	json  bool
	out   io.Writer
}

func newCtlClient(c *cli.Context) (*ctlClient, error) {
	base := strings.TrimRight(c.String("admin"), "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u, err := url.Parse(base)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, badFlag("admin", c.String("admin"), errors.New("want host:port or an http(s) URL"))
	}
	// One request per run: no connection is kept for later, so none is
	// left open when the command returns (ctl also runs in-process, in
	// tests).
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DisableKeepAlives = true
	return &ctlClient{
		base:  base,
		token: c.String("token"),
		hc:    &http.Client{Transport: tr, Timeout: c.Duration("timeout")},
		json:  c.Bool("json"),
		out:   c.App.Writer,
	}, nil
}

// do sends a request and decodes a 2xx answer into v; any other answer
// becomes an error carrying the server's message as it came.
func (cl *ctlClient) do(method, path string, query url.Values, body, v any) error {
	u := cl.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rb io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rb = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, u, rb)
	if err != nil {
		return cli.Exit(fmt.Sprintf("%s %s: %v", method, u, err), exitCtl)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if cl.token != "" {
		req.Header.Set("Authorization", "Bearer "+cl.token)
	}
	resp, err := cl.hc.Do(req)
	if err != nil {
		return cli.Exit(fmt.Sprintf("admin API at %s: %v", cl.base, unwrapURLError(err)), exitCtl)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return cli.Exit(fmt.Sprintf("%s %s: reading the answer: %v", method, path, err), exitCtl)
	}
	if resp.StatusCode/100 != 2 {
		msg := strings.TrimSpace(string(data))
		var ae struct{ Error string }
		if json.Unmarshal(data, &ae) == nil && ae.Error != "" {
			msg = ae.Error
		}
		if resp.StatusCode == http.StatusUnauthorized {
			msg += " (ctl: give it with --token or WSGATE_ADMIN_TOKEN)"
		}
		return cli.Exit(fmt.Sprintf("%s %s: %s: %s", method, path, resp.Status, msg), exitCtl)
	}
	if cl.json {
		cl.out.Write(data)
		if len(data) > 0 && data[len(data)-1] != '\n' {
			fmt.Fprintln(cl.out)
		}
		return nil
	}
	if v != nil {
		if err := json.Unmarshal(data, v); err != nil {
			return cli.Exit(fmt.Sprintf("%s %s: answer is not the JSON expected: %v", method, path, err), exitCtl)
		}
	}
	return nil
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func backendPath(addr, action string) string {
	p := "/backends/" + url.PathEscape(addr)
	if action != "" {
		p += "/" + action
	}
	return p
}

func drainQuery(c *cli.Context) url.Values {
	q := url.Values{}
	for _, name := range []string{"deadline", "spread", "pool"} {
		if c.IsSet(name) {
			q.Set(name, c.String(name))
		}
	}
	return q
}

func ctlStats(cl *ctlClient, c *cli.Context) error {
	var st admin.Stats
	if err := cl.do("GET", "/stats", nil, nil, &st); err != nil || cl.json {
		return err
	}
	printStats(cl.out, &st)
	return nil
}

func ctlBackends(cl *ctlClient, c *cli.Context) error {
	q := url.Values{}
	if c.IsSet("pool") {
		q.Set("pool", c.String("pool"))
	}
	var bs admin.Backends
	if err := cl.do("GET", "/backends", q, nil, &bs); err != nil || cl.json {
		return err
	}
	printBackends(cl.out, bs.Backends)
	return nil
}

func ctlDrain(cl *ctlClient, c *cli.Context) error {
	var b admin.Backend
	if err := cl.do("POST", backendPath(c.Args().First(), "drain"), drainQuery(c), nil, &b); err != nil || cl.json {
		return err
	}
	fmt.Fprintln(cl.out, describeBackend(&b))
	return nil
}

func ctlUndrain(cl *ctlClient, c *cli.Context) error {
	var b admin.Backend
	if err := cl.do("POST", backendPath(c.Args().First(), "undrain"), drainQuery(c), nil, &b); err != nil || cl.json {
		return err
	}
	fmt.Fprintln(cl.out, describeBackend(&b))
	return nil
}

func ctlClose(cl *ctlClient, c *cli.Context) error {
	q := url.Values{"rate": {strconv.FormatFloat(c.Float64("rate"), 'g', -1, 64)}}
	if p := c.String("pool"); p != "" {
		q.Set("pool", p)
	}
	var ans struct {
		Pool    string  `json:"pool"`
		Backend string  `json:"backend"`
		Rate    float64 `json:"rate"`
		Tunnels int64   `json:"tunnels"`
	}
	if err := cl.do("POST", backendPath(c.Args().First(), "close"), q, nil, &ans); err != nil || cl.json {
		return err
	}
	fmt.Fprintf(cl.out, "%s (pool %s): closing its %d tunnels at %g/s, about %.0fs\n", ans.Backend, ans.Pool, ans.Tunnels, ans.Rate, float64(ans.Tunnels)/ans.Rate)
	return nil
}

func ctlAdd(cl *ctlClient, c *cli.Context) error {
	req := admin.AddBackend{Pool: c.String("pool"), Address: c.Args().First(), Weight: c.Int("weight"), MaxConns: c.Int("max-conns")}
	var b admin.Backend
	if err := cl.do("POST", "/backends", nil, req, &b); err != nil || cl.json {
		return err
	}
	fmt.Fprintln(cl.out, "added", describeBackend(&b))
	return nil
}

func ctlRemove(cl *ctlClient, c *cli.Context) error {
	// 200 {removed: true} when it left at once, 202 with the backend while
	// it drains: decode into both.
	var ans struct {
		admin.Backend
		Removed bool `json:"removed"`
	}
	if err := cl.do("DELETE", backendPath(c.Args().First(), ""), drainQuery(c), nil, &ans); err != nil || cl.json {
		return err
	}
	if ans.Removed {
		fmt.Fprintf(cl.out, "%s: removed\n", ans.Address)
		return nil
	}
	fmt.Fprintf(cl.out, "%s; removed when its last tunnel ends\n", describeBackend(&ans.Backend))
	return nil
}

func ctlNodeDrain(cl *ctlClient, c *cli.Context) error {
	var st admin.NodeStatus
	if err := cl.do("POST", "/drain", drainQuery(c), nil, &st); err != nil || cl.json {
		return err
	}
	fmt.Fprintln(cl.out, describeNode(&st))
	return nil
}

func ctlNodeUndrain(cl *ctlClient, c *cli.Context) error {
	var st struct {
		admin.NodeStatus
		ClosesScheduled bool `json:"closes_scheduled"`
	}
	if err := cl.do("POST", "/undrain", nil, nil, &st); err != nil || cl.json {
		return err
	}
	fmt.Fprintln(cl.out, describeNode(&st.NodeStatus))
	if st.ClosesScheduled {
		fmt.Fprintln(cl.out, "the deadline had passed: tunnels already scheduled to close still close")
	}
	return nil
}

func ctlReload(cl *ctlClient, c *cli.Context) error {
	if err := cl.do("POST", "/reload", nil, nil, nil); err != nil || cl.json {
		return err
	}
	fmt.Fprintln(cl.out, "reloaded")
	return nil
}

// ---- output

func printStats(w io.Writer, st *admin.Stats) {
	fmt.Fprintf(w, "wsgate %s, up %s, node %s\n\n", st.Version, time.Duration(st.UptimeSeconds*float64(time.Second)).Round(time.Second), describeNode(&st.Node))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k string, kv ...any) {
		fmt.Fprint(tw, k)
		for i := 0; i+1 < len(kv); i += 2 {
			fmt.Fprintf(tw, "\t%s %v", kv[i], kv[i+1])
		}
		fmt.Fprintln(tw)
	}
	row("tunnels", "active", count(uint64(max(st.Tunnels.Active, 0))), "total", count(st.Tunnels.Total))
	row("handshakes", "ok", count(st.Handshakes.OK), "plain", count(st.Handshakes.PlainOK), "rejected", count(st.Handshakes.RejectedTotal))
	row("bytes", "up", size(st.Bytes.Up), "down", size(st.Bytes.Down))
	row("connections", "accepted", count(st.Connections.Accepted), "accept errors", count(st.Connections.AcceptErrors),
		"fd-limit hits", count(st.Connections.FDLimitHits), "heads pending", count(uint64(max(st.Connections.HeadsPending, 0))))
	row("pipes", "in use", st.PipesInUse, "parked", size(uint64(max(st.ParkedBytes, 0))))
	calls := "plain system calls"
	if st.IO.IOUring {
		calls = "io_uring"
	}
	row("socket calls", "by", calls, "batches", count(st.IO.Batches), "calls", count(st.IO.BatchedCalls))
	tw.Flush()
	for _, m := range []struct {
		name string
		m    map[string]uint64
	}{{"rejects", st.Handshakes.Rejected}, {"dial failures", st.DialFailures}, {"closes", st.Closes}} {
		if s := nonZero(m.m); s != "" {
			fmt.Fprintf(w, "%-13s %s\n", m.name, s)
		}
	}
	fmt.Fprintln(w)
	printBackends(w, st.Backends)
}

func printBackends(w io.Writer, bs []admin.Backend) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "POOL\tBACKEND\tSTATE\tWEIGHT\tACTIVE\tTOTAL\tFAILURES\tDRAIN")
	for _, b := range bs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", b.Pool, b.Address, b.State, b.Weight, b.Active, b.Total, b.Failures, describeDrain(b.Drain))
	}
	tw.Flush()
}

func describeBackend(b *admin.Backend) string {
	s := fmt.Sprintf("%s: %s, %d active", b.Address, b.State, b.Active)
	if d := describeDrain(b.Drain); d != "" {
		s += ", " + d
	}
	return s
}

func describeDrain(d *admin.Drain) string {
	if d == nil {
		return ""
	}
	s := fmt.Sprintf("%.0f%% done, %d left", d.Progress*100, d.Active)
	if d.Deadline != nil {
		s += fmt.Sprintf(", closing from %s over %s", d.Deadline.Local().Format("15:04:05"), time.Duration(d.SpreadSeconds*float64(time.Second)))
	}
	if d.Removing {
		s += ", removing"
	}
	return s
}

func describeNode(n *admin.NodeStatus) string {
	if n.Ready {
		return "ready"
	}
	s := n.Reason
	if d := n.Drain; d != nil {
		s += fmt.Sprintf(" (not accepting; %d tunnels left", d.Active)
		switch {
		case d.Closing:
			s += ", closing them now"
		case d.Deadline != nil:
			s += fmt.Sprintf(", closing from %s over %s", d.Deadline.Local().Format("15:04:05"), time.Duration(d.SpreadSeconds*float64(time.Second)))
		}
		s += ")"
	}
	return s
}

// nonZero lists a map's non-zero counts, largest first.
func nonZero(m map[string]uint64) string {
	type kv struct {
		k string
		v uint64
	}
	var list []kv
	for k, v := range m {
		if v > 0 {
			list = append(list, kv{k, v})
		}
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].v != list[j].v {
			return list[i].v > list[j].v
		}
		return list[i].k < list[j].k
	})
	parts := make([]string, len(list))
	for i, e := range list {
		parts[i] = e.k + " " + count(e.v)
	}
	return strings.Join(parts, ", ")
}

// count writes n with thousands separators.
func count(n uint64) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func size(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, i := float64(n), 0
	for f >= unit && i < 5 {
		f /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", f, "KMGTP"[i-1])
}
