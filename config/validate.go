package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wsgate/wsgate/balance"
)

// Validate checks every field. It returns the warnings (probable mistakes
// that do not stop wsgate) and, if anything is wrong, an Errors with every
// error found. It reads the TLS files, so that a bad certificate fails
// `wsgate check` rather than the first client. A config built in code can
// be validated too; its messages then have no file or line.
func (c *Config) Validate() ([]Warning, error) {
	k := checker{c: c}
	k.listeners()
	k.pools()
	k.routes()
	k.timeouts()
	k.limits()
	k.headers()
	k.tunnel()
	k.accessLog()
	k.admin()
	k.oneOf("log_level", c.LogLevel, "debug", "info", "warn", "error")

	sortIssues(k.warns)
	w := make([]Warning, len(k.warns))
	for i, is := range k.warns {
		w[i] = Warning(is)
	}
	if len(k.errs) > 0 {
		return w, toErrors(k.errs)
	}
	return w, nil
}

type checker struct {
	c     *Config
	errs  []Issue
	warns []Issue
}

func (k *checker) issue(path, value, msg string) Issue {
	is := Issue{Path: path, Value: value, Msg: msg, Line: k.c.src.line(path)}
	if k.c.src != nil {
		is.File = k.c.src.file
	}
	return is
}

func (k *checker) errorf(path, value, format string, args ...any) {
	k.errs = append(k.errs, k.issue(path, value, fmt.Sprintf(format, args...)))
}

func (k *checker) warnf(path, value, format string, args ...any) {
	k.warns = append(k.warns, k.issue(path, value, fmt.Sprintf(format, args...)))
}

func sortIssues(s []Issue) {
	slices.SortStableFunc(s, func(a, b Issue) int { return a.Line - b.Line })
}

func q(s string) string { return strconv.Quote(s) }

func (k *checker) intRange(path string, v, lo, hi int) {
	if v < lo || v > hi {
		k.errorf(path, strconv.Itoa(v), "must be between %d and %d", lo, hi)
	}
}

func (k *checker) nonNegative(path string, v int) {
	if v < 0 {
		k.errorf(path, strconv.Itoa(v), "must be >= 0 (0 = unlimited)")
	}
}

func (k *checker) oneOf(path, v string, allowed ...string) bool {
	if slices.Contains(allowed, v) {
		return true
	}
	if v == "" {
		k.errorf(path, "", "missing: want one of %s", strings.Join(allowed, ", "))
		return false
	}
	k.errorf(path, q(v), "must be one of %s", strings.Join(allowed, ", "))
	return false
}

// Duration rules. Timers shorter than MinTick are refused: the engine
// keeps them only to within a 100 ms tick (see MinTick).
const (
	durPositive = iota // > 0
	durOptional        // >= 0
	durTick            // > 0, at least MinTick
	durOptTick         // 0 (off), or at least MinTick
)

func (k *checker) duration(path string, d time.Duration, rule int) {
	v := formatDuration(d)
	switch {
	case d < 0:
		k.errorf(path, v, "must be >= 0")
	case d == 0 && (rule == durPositive || rule == durTick):
		k.errorf(path, v, "must be > 0")
	case d > 0 && d < MinTick && (rule == durTick || rule == durOptTick):
		k.errorf(path, v, "must be at least %s (the engine's timer resolution)", formatDuration(MinTick))
	}
}

func (k *checker) listeners() {
	c := k.c
	if len(c.Listeners) == 0 {
		k.errorf("listeners", "", "none: want at least one")
	}
	for i, l := range c.Listeners {
		p := index("listeners", i)
		if msg := addrProblem(l.Address, true); msg != "" {
			k.errorf(p+".address", q(l.Address), "%s", msg)
		} else {
			for j := range i {
				if msg := overlap(l.Address, c.Listeners[j].Address, index("listeners", j)); msg != "" {
					k.errorf(p+".address", q(l.Address), "%s", msg)
					break
				}
			}
		}
		k.intRange(p+".reuseport", l.ReusePort, 1, MaxReusePort)
		if l.TLS != nil {
			k.tls(p+".tls", l.TLS)
		}
		k.duration(p+".keepalive", l.Keepalive, durOptTick)
	}
}

func (k *checker) tls(p string, t *TLS) {
	ok := true
	for _, f := range []struct{ name, file string }{{"cert", t.Cert}, {"key", t.Key}} {
		if f.file == "" {
			k.errorf(p+"."+f.name, "", "missing: a TLS listener needs both cert and key")
			ok = false
			continue
		}
		if _, err := os.Stat(f.file); err != nil {
			k.errorf(p+"."+f.name, q(f.file), "%s", pathErr(err))
			ok = false
		}
	}
	if !ok {
		return
	}
	pair, err := tls.LoadX509KeyPair(t.Cert, t.Key)
	if err != nil {
		k.errorf(p, "", "%v", err)
		return
	}
	if leaf := pair.Leaf; leaf != nil && time.Now().After(leaf.NotAfter) {
		k.warnf(p+".cert", q(t.Cert), "expired on %s", leaf.NotAfter.UTC().Format(time.DateOnly))
	}
}

// pathErr drops the path from an fs error: the message already shows it.
func pathErr(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

func (k *checker) pools() {
	c := k.c
	if len(c.Pools) == 0 {
		k.errorf("pools", "", "none: want at least one")
	}
	for _, name := range poolNames(c) {
		k.pool("pools."+name, name, c.Pools[name])
	}
}

func poolNames(c *Config) []string {
	names := make([]string, 0, len(c.Pools))
	for n := range c.Pools {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func (k *checker) pool(p, name string, pl Pool) {
	if !isName(name) {
		k.errorf(p, q(name), "a pool name is letters, digits, - and _")
	}
	policies := []string{string(balance.LeastConn), string(balance.RoundRobin), string(balance.Hash)}
	k.oneOf(p+".policy", string(pl.Policy), policies...)
	if source, key, err := balance.SplitHashKey(pl.HashKey); err != nil {
		k.errorf(p+".hash_key", q(pl.HashKey), "must be ip, header:NAME, cookie:NAME or query:NAME")
	} else if (source == "header" || source == "cookie") && !isToken(key) {
		k.errorf(p+".hash_key", q(pl.HashKey), "%s name %q: not a valid token (RFC 9110)", source, key)
	}
	// No-effect warnings are for values other than the default, which
	// Render writes out and a file may spell out harmlessly.
	if pl.Policy != balance.Hash && pl.HashKey != balance.DefaultHashKey {
		k.warnf(p+".hash_key", q(pl.HashKey), "has no effect: policy is %s, not hash", pl.Policy)
	}
	if s := pl.Sticky; s != nil {
		if !isToken(s.Cookie) {
			k.errorf(p+".sticky.cookie", q(s.Cookie), "not a valid cookie name (an RFC 6265 token)")
		}
		switch {
		case s.KeyEnv == "":
			k.warnf(p+".sticky", "", "no key_env: cookies are signed with a random key per process, so they do not survive a restart or move between nodes")
		case !isEnvName(s.KeyEnv):
			k.errorf(p+".sticky.key_env", q(s.KeyEnv), "not an environment variable name")
		case os.Getenv(s.KeyEnv) == "":
			k.warnf(p+".sticky.key_env", q(s.KeyEnv), "not set in the environment: serve will use a random key")
		}
	}
	if pl.MaxFails < 0 {
		k.errorf(p+".max_fails", strconv.Itoa(pl.MaxFails), "must be >= 0 (0 = no passive health)")
	}
	k.duration(p+".fail_timeout", pl.FailTimeout, durPositive)
	k.duration(p+".slow_start", pl.SlowStart, durOptional)
	if pl.SlowStart > 0 && pl.Policy == balance.Hash {
		k.warnf(p+".slow_start", formatDuration(pl.SlowStart), "has no effect with policy hash")
	}
	if h := pl.HealthCheck; h != nil {
		k.health(p+".health_check", h)
	}
	if len(pl.Backends) == 0 {
		k.errorf(p+".backends", "", "none: want at least one")
	}
	first := map[string]int{}
	for i, b := range pl.Backends {
		bp := index(p+".backends", i)
		if msg := addrProblem(b.Address, false); msg != "" {
			k.errorf(bp+".address", q(b.Address), "%s", msg)
		} else if j, dup := first[b.Address]; dup {
			k.errorf(bp+".address", q(b.Address), "same as backends[%d]", j)
		} else {
			first[b.Address] = i
		}
		k.intRange(bp+".weight", b.Weight, 1, balance.MaxWeight)
		k.nonNegative(bp+".max_conns", b.MaxConns)
	}
}

func (k *checker) health(p string, h *HealthCheck) {
	if !k.oneOf(p+".type", h.Type, "tcp", "http") {
		return
	}
	if h.Type == "http" {
		if !strings.HasPrefix(h.Path, "/") || strings.ContainsFunc(h.Path, isSpaceOrCtl) {
			k.errorf(p+".path", q(h.Path), "must start with / and contain no spaces or control characters")
		}
	} else if h.Path != "" {
		k.warnf(p+".path", q(h.Path), "has no effect with type tcp")
	}
	k.duration(p+".interval", h.Interval, durPositive)
	k.duration(p+".timeout", h.Timeout, durPositive)
	if h.Interval > 0 && h.Timeout > h.Interval {
		k.errorf(p+".timeout", formatDuration(h.Timeout), "must be at most interval (%s), or checks of one backend overlap", formatDuration(h.Interval))
	}
	k.intRange(p+".rise", h.Rise, 1, MaxCheckRiseFall)
	k.intRange(p+".fall", h.Fall, 1, MaxCheckRiseFall)
}

func (k *checker) routes() {
	c := k.c
	if len(c.Routes) == 0 {
		if len(c.Pools) > 1 {
			k.errorf("routes", "", "none, but %d pools (%s): say which requests go to which pool",
				len(c.Pools), strings.Join(poolNames(c), ", "))
		}
		return
	}
	used := map[string]bool{}
	first := map[string]int{}
	for i, r := range c.Routes {
		p := index("routes", i)
		if r.Host != "" {
			if msg := routeHostProblem(r.Host); msg != "" {
				k.errorf(p+".host", q(r.Host), "%s", msg)
			}
		}
		if !strings.HasPrefix(r.Path, "/") {
			k.errorf(p+".path", q(r.Path), "must start with /")
		} else if strings.ContainsFunc(r.Path, func(c rune) bool { return isSpaceOrCtl(c) || c == '?' || c == '#' }) {
			k.errorf(p+".path", q(r.Path), "must not contain spaces, control characters, ? or #")
		}
		if r.StripPrefix && r.Path == "/" {
			k.warnf(p+".strip_prefix", "true", "has no effect with path /")
		}
		switch _, ok := c.Pools[r.Pool]; {
		case r.Pool == "":
			k.errorf(p+".pool", "", "missing: say which pool the requests go to")
		case !ok:
			k.errorf(p+".pool", q(r.Pool), "no such pool (pools: %s)", strings.Join(poolNames(c), ", "))
		default:
			used[r.Pool] = true
		}
		key := strings.ToLower(strings.TrimSuffix(r.Host, ".")) + r.Path
		if j, dup := first[key]; dup {
			k.errorf(p, q(r.Host+r.Path), "same host and path as routes[%d]", j)
		} else {
			first[key] = i
		}
		k.list(p+".origins", r.Origins, originProblem)
		k.list(p+".subprotocols", r.Subprotocols, func(s string) string {
			if !isToken(s) {
				return "not a valid subprotocol (an RFC 9110 token)"
			}
			return ""
		})
		k.duration(p+".max_lifetime", r.MaxLifetime, durOptTick)
		if r.LifetimeJitter < 0 || r.LifetimeJitter > MaxLifetimeJitter {
			k.errorf(p+".lifetime_jitter", r.LifetimeJitter.String(), "must be between 0%% and %d%%", MaxLifetimeJitter)
		}
		if r.MaxLifetime == 0 && r.LifetimeJitter != DefaultLifetimeJitter {
			k.warnf(p+".lifetime_jitter", r.LifetimeJitter.String(), "has no effect without max_lifetime")
		}
	}
	for _, name := range poolNames(c) {
		if !used[name] {
			k.warnf("pools."+name, "", "no route uses it")
		}
	}
}

// list checks each item of a string list with problem, case-insensitively
// refusing one given twice.
func (k *checker) list(p string, items []string, problem func(string) string) {
	first := map[string]int{}
	for i, s := range items {
		ip := index(p, i)
		if msg := problem(s); msg != "" {
			k.errorf(ip, q(s), "%s", msg)
			continue
		}
		if j, dup := first[strings.ToLower(s)]; dup {
			k.errorf(ip, q(s), "same as [%d]", j)
			continue
		}
		first[strings.ToLower(s)] = i
	}
}

func (k *checker) timeouts() {
	t := k.c.Timeouts
	k.duration("timeouts.header", t.Header, durTick)
	k.duration("timeouts.connect", t.Connect, durTick)
	k.duration("timeouts.backend_answer", t.BackendAnswer, durTick)
	k.duration("timeouts.idle", t.Idle, durOptTick)
	k.duration("timeouts.drain", t.Drain, durOptional)
	k.duration("timeouts.drain_spread", t.DrainSpread, durOptional)
	k.duration("timeouts.close", t.Close, durTick)
}

func (k *checker) limits() {
	l := k.c.Limits
	k.nonNegative("limits.max_tunnels", l.MaxTunnels)
	k.nonNegative("limits.max_tunnels_per_ip", l.MaxTunnelsPerIP)
	if l.MaxTunnels > 0 && l.MaxTunnelsPerIP > l.MaxTunnels {
		k.warnf("limits.max_tunnels_per_ip", strconv.Itoa(l.MaxTunnelsPerIP), "has no effect: more than max_tunnels (%d)", l.MaxTunnels)
	}
	k.intRange("limits.max_header_bytes", l.MaxHeaderBytes, MinHeadBytes, MaxHeadBytesLimit)
	k.nonNegative("limits.accept_rate", l.AcceptRate)
}

func (k *checker) headers() {
	h := k.c.Headers
	if k.oneOf("headers.host", h.Host, "preserve", "backend", "literal", "nginx") {
		switch {
		case h.Host == "literal" && h.HostLiteral == "":
			k.errorf("headers.host_literal", "", "missing: host: literal sends it")
		case h.Host != "literal" && h.HostLiteral != "":
			k.warnf("headers.host_literal", q(h.HostLiteral), "has no effect: host is %s, not literal", h.Host)
		}
	}
	if h.HostLiteral != "" && !isHostPort(h.HostLiteral) {
		k.errorf("headers.host_literal", q(h.HostLiteral), "want a host or host:port")
	}
	first := map[netip.Prefix]int{}
	for i, p := range h.TrustedProxies {
		ip := index("headers.trusted_proxies", i)
		switch j, dup := first[p]; {
		case p != p.Masked():
			k.errorf(ip, p.String(), "host bits set (did you mean %s?)", p.Masked())
		case dup:
			k.errorf(ip, p.String(), "same as [%d]", j)
		case p.Bits() == 0:
			first[p] = i
			k.warnf(ip, p.String(), "trusts every peer: any client can set its own X-Forwarded-For")
		default:
			first[p] = i
		}
	}
}

func (k *checker) tunnel() {
	t := k.c.Tunnel
	k.oneOf("tunnel.mode", t.Mode, "auto", "copy", "splice")
	k.oneOf("tunnel.io_uring", t.IOUring, "auto", "on", "off")
	k.intRange("tunnel.loops", t.Loops, 0, MaxLoops)
	k.intRange("tunnel.tries", t.Tries, 1, MaxTries)
	first := map[netip.Addr]int{}
	for i, a := range t.SourceAddrs {
		ip := index("tunnel.source_addrs", i)
		if j, dup := first[a]; dup {
			k.errorf(ip, a.String(), "same as [%d]", j)
		} else if a.IsUnspecified() || a.IsMulticast() || a.Zone() != "" {
			k.errorf(ip, a.String(), "want a unicast address of this host")
		} else {
			first[a] = i
		}
	}
}

func isLogFile(out string) bool {
	return out != "" && out != "stdout" && out != "stderr" && out != "off"
}

func (k *checker) accessLog() {
	a := k.c.AccessLog
	if a.Output == "" {
		k.errorf("access_log.output", "", "missing: want stdout, stderr, off or a file path")
	} else if isLogFile(a.Output) {
		dir := filepath.Dir(a.Output)
		if st, err := os.Stat(dir); err != nil {
			k.errorf("access_log.output", q(a.Output), "directory %s: %s", dir, pathErr(err))
		} else if !st.IsDir() {
			k.errorf("access_log.output", q(a.Output), "%s is not a directory", dir)
		}
	}
	k.duration("access_log.interval", a.Interval, durOptional)
	if a.Interval > 0 && a.Interval < MinAccessLogInterval {
		k.errorf("access_log.interval", formatDuration(a.Interval), "must be 0 or at least %s", formatDuration(MinAccessLogInterval))
	}
	if a.Output == "off" && a.Interval > 0 {
		k.warnf("access_log.interval", formatDuration(a.Interval), "has no effect: output is off")
	}
}

func (k *checker) admin() {
	a := k.c.Admin
	if a.Address == "off" {
		return
	}
	if msg := addrProblem(a.Address, true); msg != "" {
		k.errorf("admin.address", q(a.Address), "%s", msg)
		return
	}
	for j, l := range k.c.Listeners {
		if msg := overlap(a.Address, l.Address, index("listeners", j)); msg != "" {
			k.errorf("admin.address", q(a.Address), "%s", msg)
			break
		}
	}
	loopback := isLoopback(a.Address)
	switch {
	case a.TokenEnv == "" && !loopback:
		k.errorf("admin.token_env", "", "missing: admin.address %q is not loopback, and the admin API can drain the node", a.Address)
	case a.TokenEnv == "":
	case !isEnvName(a.TokenEnv):
		k.errorf("admin.token_env", q(a.TokenEnv), "not an environment variable name")
	case !loopback && os.Getenv(a.TokenEnv) == "":
		k.warnf("admin.token_env", q(a.TokenEnv), "not set in the environment: serve refuses a non-loopback admin address without a token")
	}
}

// addrProblem says what is wrong with a host:port, or "". A listen
// address may leave out the host (every address) and use port 0 (any).
func addrProblem(addr string, listen bool) string {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		if listen {
			return "want host:port or :port"
		}
		return "want host:port"
	}
	host, port := addr[:i], addr[i+1:]
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		if a, err := netip.ParseAddr(host[1 : len(host)-1]); err != nil || !a.Is6() {
			return "want an IPv6 address in the brackets"
		}
	} else if strings.Contains(host, ":") {
		return "IPv6 hosts go in brackets, like [::1]:8080"
	} else if host == "" && !listen {
		return "missing host"
	} else if host != "" && !isHostname(host) {
		return "host " + q(host) + ": want an IP address or a host name"
	}
	lo := 1
	if listen {
		lo = 0
	}
	if n, err := strconv.Atoi(port); err != nil || n < lo || n > 65535 {
		return fmt.Sprintf("port %q: want %d..65535", port, lo)
	}
	return ""
}

// overlap says how listen address a collides with b (named bName), or "".
// A wildcard host takes the port on every address, and on Linux ":8080",
// "0.0.0.0:8080" and "[::]:8080" collide with each other too.
func overlap(a, b, bName string) string {
	if addrProblem(a, true) != "" || addrProblem(b, true) != "" {
		return ""
	}
	ha, pa := splitListen(a)
	hb, pb := splitListen(b)
	if pa != pb || pa == "0" || (ha != hb && ha != "*" && hb != "*") {
		return ""
	}
	if a == b {
		return "same as " + bName
	}
	return "takes the same port as " + bName + " " + q(b)
}

func splitListen(addr string) (host, port string) {
	i := strings.LastIndexByte(addr, ':')
	host, port = strings.ToLower(addr[:i]), addr[i+1:]
	switch host {
	case "", "0.0.0.0", "[::]":
		host = "*"
	}
	return host, port
}

func isLoopback(addr string) bool {
	host := addr[:strings.LastIndexByte(addr, ':')]
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && a.IsLoopback()
}

// routeHostProblem says what is wrong with a route's host, or "".
func routeHostProblem(h string) string {
	switch {
	case h == "*":
		return "leave host out to match any host"
	case strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]"):
		if a, err := netip.ParseAddr(h[1 : len(h)-1]); err != nil || !a.Is6() {
			return "want an IPv6 address in the brackets"
		}
		return ""
	case strings.Contains(h, ":"):
		return "no port: ports are ignored when matching (IPv6 goes in brackets)"
	}
	name := strings.TrimPrefix(h, "*.")
	if strings.Contains(name, "*") {
		return "a wildcard only as a leading *., like *.example.com"
	}
	if !isHostname(strings.TrimSuffix(name, ".")) {
		return "want a host name, *.domain or an IP address"
	}
	return ""
}

// isHostname accepts dot-separated labels of letters, digits, - and _
// (IPv4 addresses are such names too).
func isHostname(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// isHostPort accepts what may go in a Host header: a host name, IPv4 or
// bracketed IPv6 address, with an optional port.
func isHostPort(s string) bool {
	if routeHostProblem(s) == "" && !strings.HasPrefix(s, "*") {
		return true
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return false
	}
	host, port := s[:i], s[i+1:]
	n, err := strconv.Atoi(port)
	return err == nil && n >= 1 && n <= 65535 && !strings.HasPrefix(host, "*") && routeHostProblem(host) == ""
}

// originProblem checks a browser Origin (RFC 6454 serialization):
// scheme://host[:port], nothing after.
func originProblem(o string) string {
	const want = "want scheme://host[:port], like https://app.example.com"
	u, err := url.Parse(o)
	if err != nil || u.Host == "" || u.Opaque != "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(o, "?") || strings.HasSuffix(o, "#") {
		return want
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "scheme " + q(u.Scheme) + ": browsers send http or https origins"
	}
	if u.Path != "" {
		return "no path: browsers send an origin without one"
	}
	if !isHostPort(u.Host) {
		return want
	}
	return ""
}

// isToken reports an RFC 9110 token (header names, cookie names,
// subprotocols).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

func isName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func isEnvName(s string) bool {
	return s != "" && isName(s) && !strings.Contains(s, "-") && (s[0] < '0' || s[0] > '9')
}

func isSpaceOrCtl(c rune) bool { return c <= ' ' || c == 0x7f }
