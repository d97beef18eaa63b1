package config

import (
	"net/netip"
	"strconv"
	"time"

	"github.com/wsgate/wsgate/balance"
)

// Config is wsgate's whole configuration, as read from a YAML file (Load,
// Parse) or built in code (Default, then fill in and Validate). The yaml
// tags are the file's field names. Every field holds its effective value:
// defaults are filled in before the file is read over them, so a field the
// file sets to 0 means 0 (off, never, unlimited), never "the default".
type Config struct {
	// Listeners are the addresses clients connect to; at least one.
	Listeners []Listener `yaml:"listeners"`
	// Pools are the backend sets by name; at least one.
	Pools map[string]Pool `yaml:"pools"`
	// Routes send requests to pools by host and path; none sends every
	// request to the only pool.
	Routes    []Route   `yaml:"routes"`
	Timeouts  Timeouts  `yaml:"timeouts"`
	Limits    Limits    `yaml:"limits"`
	Headers   Headers   `yaml:"headers"`
	Tunnel    Tunnel    `yaml:"tunnel"`
	AccessLog AccessLog `yaml:"access_log"`
	Admin     Admin     `yaml:"admin"`
	// LogLevel is debug, info, warn or error: debug logs every rejected
	// handshake, too much for a node under attack.
	LogLevel string `yaml:"log_level"`

	// src locates fields in the file the config was read from, for
	// messages; nil for a config built in code.
	src *source
}

// Listener is one address clients connect to.
type Listener struct {
	// Address is host:port or :port (every address).
	Address string `yaml:"address"`
	// ReusePort opens this many SO_REUSEPORT sockets, 1..64, each with its
	// own accept queue, so one accept queue is not the bottleneck of a
	// reconnect storm on a many-core node.
	ReusePort int `yaml:"reuseport"`
	// ProxyProtocol accepts PROXY v1/v2 from the L4 balancer in front, so
	// X-Real-IP and per-IP limits see the client, not the balancer.
	ProxyProtocol bool `yaml:"proxy_protocol"`
	// TLS, when set, terminates wss here; nil serves plain ws.
	TLS *TLS `yaml:"tls"`
	// Keepalive pings the client of a WebSocket tunnel idle this long, so
	// NATs and L4 balancers do not forget the flow; 0 = never.
	Keepalive time.Duration `yaml:"keepalive"`
}

// TLS is a listener's certificate. Both files are loaded by Validate, so a
// mistyped path or a key that does not match fails `wsgate check`, not the
// first client.
type TLS struct {
	// Cert is the PEM certificate chain, leaf first.
	Cert string `yaml:"cert"`
	// Key is the PEM private key of the leaf.
	Key string `yaml:"key"`
}

// Pool is a set of backends and how to choose among them (balance.Config,
// plus what the engine does per pool).
type Pool struct {
	// Policy is least_conn, round_robin or hash: least_conn keeps
	// long-lived tunnels even where round robin piles them on the backends
	// that were up longest.
	Policy balance.Policy `yaml:"policy"`
	// HashKey is what the hash policy hashes: ip, header:NAME, cookie:NAME
	// or query:NAME; it keeps a client on one backend without a cookie.
	HashKey string `yaml:"hash_key"`
	// Sticky, when set, pins a client to a backend with a signed cookie,
	// so socket.io's polling requests and its upgrade meet the same
	// backend without ip_hash pinning a whole NAT to one.
	Sticky *Sticky `yaml:"sticky"`
	// MaxFails failures within FailTimeout mark a backend down (nginx
	// max_fails), so a dead backend stops costing every client a retry;
	// 0 disables passive health.
	MaxFails int `yaml:"max_fails"`
	// FailTimeout is the failure window and how long a backend then stays
	// down (nginx fail_timeout).
	FailTimeout time.Duration `yaml:"fail_timeout"`
	// SlowStart ramps a recovered or added backend's weight over this long,
	// so least_conn does not hand it every new tunnel at once; 0 = off.
	SlowStart time.Duration `yaml:"slow_start"`
	// HealthCheck, when set, probes backends actively, so a backend that
	// accepts but does not answer is taken out before clients find it.
	HealthCheck *HealthCheck `yaml:"health_check"`
	// ProxyProtocol sends PROXY v2 to these backends, so they see the
	// client's address instead of wsgate's.
	ProxyProtocol bool `yaml:"proxy_protocol"`
	// Backends are the servers; at least one.
	Backends []Backend `yaml:"backends"`
}

// Sticky is cookie stickiness for a pool.
type Sticky struct {
	// Cookie is the cookie's name; it must not collide with the
	// application's own cookies.
	Cookie string `yaml:"cookie"`
	// KeyEnv names the environment variable holding the key that signs the
	// cookie, so a client cannot choose its backend; every node behind one
	// L4 balancer needs the same key, or a cookie set by one node is
	// refused by the next. Unset: a random key per process, so cookies do
	// not survive a restart.
	KeyEnv string `yaml:"key_env"`
}

// HealthCheck is an active check of a pool's backends.
type HealthCheck struct {
	// Type is tcp (a connect succeeds) or http (GET Path answers 2xx/3xx);
	// http also catches a backend that accepts but is wedged.
	Type string `yaml:"type"`
	// Path is the http check's request path.
	Path string `yaml:"path"`
	// Interval is the time between checks of one backend.
	Interval time.Duration `yaml:"interval"`
	// Timeout fails a check that takes longer, so a hung backend counts as
	// down; at most Interval.
	Timeout time.Duration `yaml:"timeout"`
	// Rise consecutive passes bring a backend back, so a flapping one is
	// not re-added on one lucky check.
	Rise int `yaml:"rise"`
	// Fall consecutive failures take a backend out, so one lost packet
	// does not.
	Fall int `yaml:"fall"`
}

// Backend is one server of a pool.
type Backend struct {
	// Address is host:port.
	Address string `yaml:"address"`
	// Weight, 1..256, is the backend's share relative to the others.
	Weight int `yaml:"weight"`
	// MaxConns caps the backend's tunnels, so a small backend is not
	// overrun while the others have room; 0 = unlimited.
	MaxConns int `yaml:"max_conns"`
}

// Route sends matching requests to a pool. The most specific host wins
// (exact, then the longest wildcard, then any host), then the longest path
// prefix; see Router.
type Route struct {
	// Host is an exact host or "*.example.com" (every subdomain); "" is any
	// host. Matched case-insensitively, ignoring the request's port.
	Host string `yaml:"host"`
	// Path is a prefix of the request path, as nginx's "location /ws/".
	Path string `yaml:"path"`
	// StripPrefix removes Path from the target before it is forwarded
	// (keeping a leading "/"), for backends that serve at "/".
	StripPrefix bool `yaml:"strip_prefix"`
	// Pool names the pool the requests go to.
	Pool string `yaml:"pool"`
	// Origins, when set, allow only WebSocket handshakes from these origins
	// (403 otherwise): cross-site WebSocket hijacking protection for
	// backends that do not check Origin themselves.
	Origins []string `yaml:"origins"`
	// Subprotocols, when set, allow only handshakes offering one of these
	// Sec-WebSocket-Protocol values, so a backend never sees a protocol it
	// does not speak.
	Subprotocols []string `yaml:"subprotocols"`
	// MaxLifetime ends a tunnel gracefully after this long, so long-lived
	// clients rebalance onto backends added since they connected; 0 = never.
	MaxLifetime time.Duration `yaml:"max_lifetime"`
	// LifetimeJitter spreads MaxLifetime by ± this share, 0..50%, so the
	// clients of one reconnect storm do not all expire together.
	LifetimeJitter Percent `yaml:"lifetime_jitter"`
}

// Timeouts bound each phase of a connection.
type Timeouts struct {
	// Header bounds receiving a client's request head: stops slowloris.
	Header time.Duration `yaml:"header"`
	// Connect bounds a backend connect, so a dead backend is noticed fast.
	Connect time.Duration `yaml:"connect"`
	// BackendAnswer bounds the backend's answer head (504 after it).
	BackendAnswer time.Duration `yaml:"backend_answer"`
	// Idle closes a tunnel with no bytes either way for this long, so dead
	// peers do not pile up; 0 = never.
	Idle time.Duration `yaml:"idle"`
	// Drain is how long a graceful stop waits for tunnels to end before it
	// closes the rest; match Kubernetes' terminationGracePeriodSeconds.
	Drain time.Duration `yaml:"drain"`
	// DrainSpread spreads those closes over this window, so the clients'
	// reconnects do not arrive as one storm.
	DrainSpread time.Duration `yaml:"drain_spread"`
	// Close bounds a graceful WebSocket close: the wait for a frame
	// boundary and the peers' Close replies, so a stalled peer cannot hold
	// it open.
	Close time.Duration `yaml:"close"`
}

// Limits protect the node from too many clients; 0 is unlimited.
type Limits struct {
	// MaxTunnels caps the node's tunnels (503 beyond), so it sheds load
	// before it runs out of memory or file descriptors.
	MaxTunnels int `yaml:"max_tunnels"`
	// MaxTunnelsPerIP caps one client address's tunnels (429 beyond), so
	// one client cannot take the whole node.
	MaxTunnelsPerIP int `yaml:"max_tunnels_per_ip"`
	// MaxHeaderBytes caps a request head (431 beyond), so a client cannot
	// make wsgate buffer without bound.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// AcceptRate caps new tunnels per second on the node, smoothing a
	// reconnect herd the backends could not take at once.
	AcceptRate int `yaml:"accept_rate"`
}

// Headers configures the request head the backend receives.
type Headers struct {
	// Host is preserve (the client's Host, port kept, so Origin checks see
	// what the browser saw), backend (the backend's address), literal
	// (HostLiteral) or nginx (the host without port, as nginx's $host).
	Host string `yaml:"host"`
	// HostLiteral is the Host sent with host: literal.
	HostLiteral string `yaml:"host_literal"`
	// TrustedProxies are the peers (CIDRs or addresses) whose X-Real-IP and
	// X-Forwarded-* are kept; anyone else's are replaced, so clients cannot
	// spoof their address to the backend.
	TrustedProxies []netip.Prefix `yaml:"trusted_proxies"`
	// Forwarded also sends an RFC 7239 Forwarded header, for backends that
	// read only that.
	Forwarded bool `yaml:"forwarded"`
}

// Tunnel configures how tunnel bytes move and how backends are dialed.
type Tunnel struct {
	// Mode is auto (copy small messages, splice bulk), copy or splice;
	// forcing one is for benchmarks and diagnosis.
	Mode string `yaml:"mode"`
	// IOUring is auto (batch the loops' socket calls with io_uring where
	// the kernel allows it), on (refuse to start without it) or off (one
	// system call per socket call): batching saves the cost of a system
	// call per message, measured at a third of the proxy's CPU per small
	// message on a VM.
	IOUring string `yaml:"io_uring"`
	// Loops is the number of splice loops; 0 = one per CPU (GOMAXPROCS).
	Loops int `yaml:"loops"`
	// Tries is the backends one request may be dialed to, 1..8, before it
	// is answered 502/504, so one dead backend does not fail a client.
	Tries int `yaml:"tries"`
	// SourceAddrs are local addresses backend connections bind to in turn,
	// so one node holds more than ~64k tunnels to one backend address.
	SourceAddrs []netip.Addr `yaml:"source_addrs"`
}

// AccessLog configures the per-session JSON access log.
type AccessLog struct {
	// Output is stdout, stderr, off or a file path.
	Output string `yaml:"output"`
	// Interval also logs a line per live tunnel this often, so
	// hours-long tunnels are visible before they close; 0 = only at close.
	Interval time.Duration `yaml:"interval"`
}

// Admin configures the admin API.
type Admin struct {
	// Address is host:port, or off; it can drain the node, so keep it on
	// loopback or give it a token.
	Address string `yaml:"address"`
	// TokenEnv names the environment variable holding the bearer token for
	// changes (a token in the file would be readable by anyone who can
	// read the config).
	TokenEnv string `yaml:"token_env"`
}

// Percent is a share in percent: 10 is 10%. The file writes it "10%" (or a
// plain 10).
type Percent float64

// Fraction returns p as a fraction: 10% is 0.1.
func (p Percent) Fraction() float64 { return float64(p) / 100 }

// String writes p as the file does, "10%".
func (p Percent) String() string {
	return strconv.FormatFloat(float64(p), 'f', -1, 64) + "%"
}

// defaulter is a type whose fresh values, before the file is read over
// them, hold defaults (the elements of lists and maps, optional sections).
type defaulter interface{ setDefaults() }

func (l *Listener) setDefaults() { *l = DefaultListener("") }
func (p *Pool) setDefaults()     { *p = DefaultPool() }
func (b *Backend) setDefaults()  { *b = DefaultBackend("") }
func (r *Route) setDefaults()    { *r = DefaultRoute(DefaultRoutePath, "") }

// A check's type has no default (tcp and http catch different failures:
// the operator chooses); its path's default is kept if it becomes http.
func (h *HealthCheck) setDefaults() {
	*h = DefaultHealthCheck("http")
	h.Type = ""
}

func (s *Sticky) setDefaults() { *s = DefaultSticky() }

// finisher is a type whose defaults depend on what the file set: f reports
// whether the file set a field (by yaml name).
type finisher interface {
	finish(set func(field string) bool)
}

// finish drops the http default path from a tcp check, which has none.
func (h *HealthCheck) finish(set func(string) bool) {
	if h.Type != "http" && !set("path") {
		h.Path = ""
	}
}
