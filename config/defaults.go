// Package config holds wsgate's configuration: the YAML schema, its
// validation, and — in this file — every default, defined once, each with
// the failure it prevents. The engine, the admin server and the command line
// all take their defaults from here.
package config

import (
	"time"

	"github.com/wsgate/wsgate/balance"
)

// Listening and reading the client's head.
const (
	// DefaultListen is where `wsgate serve` listens without --listen.
	DefaultListen = ":8080"

	// DefaultHeaderTimeout bounds how long a client may take to send its
	// whole request head (nginx client_header_timeout 60s; HAProxy
	// timeout http-request). Shorter than nginx because a half-sent head
	// holds memory and a slot, and slowloris clients exploit the wait.
	DefaultHeaderTimeout = 10 * time.Second

	// DefaultMaxHeadBytes caps a request head (431 beyond it), like
	// nginx's large_client_header_buffers 4 8k and HAProxy's tune.bufsize.
	DefaultMaxHeadBytes = 16 << 10
)

// Talking to backends.
const (
	// DefaultConnectTimeout bounds a backend connect (nginx
	// proxy_connect_timeout 60s is far too long for a dead backend to be
	// noticed; HAProxy recommends 5s).
	DefaultConnectTimeout = 5 * time.Second

	// DefaultAnswerTimeout bounds the wait for the backend's answer head
	// after the request was sent (nginx proxy_read_timeout 60s before the
	// first byte). socket.io long-polls last up to 25 s, well inside it.
	DefaultAnswerTimeout = 60 * time.Second

	// DefaultTries is how many backends one request may be dialed to before
	// it is answered 502/504: the first and one more, as nginx's
	// proxy_next_upstream error timeout with proxy_next_upstream_tries 0
	// effectively gives with two backends.
	DefaultTries = 2
)

// Tunnels.
const (
	// DefaultIdleTimeout closes a tunnel with no bytes in either direction
	// for this long: the seed recipe's proxy_read_timeout 300s. 0 disables.
	DefaultIdleTimeout = 300 * time.Second

	// DefaultLingerTimeout is how long wsgate keeps reading (and discarding)
	// from a client it has answered with an error or a final response, so
	// that closing with unread bytes does not reset the connection and
	// destroy the answer in flight (nginx lingering_timeout 5s).
	DefaultLingerTimeout = 2 * time.Second

	// DefaultCloseTimeout bounds a graceful close of a WebSocket tunnel:
	// the wait for a frame boundary and for the peers' Close replies. A
	// peer stalled mid-frame would otherwise hold the close open.
	DefaultCloseTimeout = 2 * time.Second

	// DefaultKeepalive is 0: wsgate sends no Ping of its own unless asked
	// (--keepalive); the backends' own pings usually keep NATs open.
	DefaultKeepalive = 0

	// DefaultParkBytes caps, per loop, the bytes parked in chunks after
	// partial writes; directions wait for room beyond it, so a crowd of
	// slow readers cannot grow memory without bound.
	DefaultParkBytes = 64 << 20
)

// Admin.
const (
	// DefaultAdminListen keeps the admin API on loopback: it can drain the
	// node, so it is never exposed by default.
	DefaultAdminListen = "127.0.0.1:9090"

	// DefaultDrainDeadline and DefaultDrainSpread are used when a drain
	// request names neither.
	DefaultDrainDeadline = 60 * time.Second
	DefaultDrainSpread   = 30 * time.Second
)

// Listeners.
const (
	// DefaultReusePort is one socket per address: SO_REUSEPORT only pays
	// when one accept queue is the bottleneck, and each extra socket is a
	// queue a restart must hand over.
	DefaultReusePort = 1
	// MaxReusePort caps sockets per address: past the core count more
	// accept queues only add fds to pass on an upgrade.
	MaxReusePort = 64
)

// Pools and routes.
const (
	// DefaultStickyCookie names the sticky cookie when sticky: {} names
	// none; prefixed so it does not collide with the application's.
	DefaultStickyCookie = "wsgate_sticky"

	// DefaultRoutePath matches every request, as nginx's "location /".
	DefaultRoutePath = "/"

	// DefaultLifetimeJitter (percent) spreads max_lifetime expiries: the
	// clients of one reconnect storm would otherwise all expire in the same
	// second and come back as the same storm.
	DefaultLifetimeJitter = 10
	// MaxLifetimeJitter (percent): beyond ±50% a "lifetime" no longer
	// bounds anything.
	MaxLifetimeJitter = 50

	// MaxCheckRiseFall caps health-check rise and fall: more consecutive
	// results than this takes minutes to notice a change at any interval.
	MaxCheckRiseFall = 100
)

// Limits.
const (
	// DefaultMaxTunnels, DefaultMaxTunnelsPerIP and DefaultAcceptRate are 0,
	// unlimited, as nginx: a useful limit depends on the node's memory and
	// the clients (one NAT may carry thousands), so it is the operator's to
	// set.
	DefaultMaxTunnels      = 0
	DefaultMaxTunnelsPerIP = 0
	DefaultAcceptRate      = 0

	// MinHeadBytes and MaxHeadBytesLimit bound max_header_bytes: a browser
	// upgrade with cookies is 1–4 KiB, so less than 1 KiB refuses real
	// clients; more than 1 MiB per half-read head lets a few thousand
	// clients exhaust memory.
	MinHeadBytes      = 1 << 10
	MaxHeadBytesLimit = 1 << 20
)

// Headers and tunnels.
const (
	// DefaultHostMode keeps the client's Host, port included, so backends
	// that compare Origin with Host (gorilla, socket.io) accept the
	// handshake.
	DefaultHostMode = "preserve"

	// DefaultTunnelMode copies small messages and splices bulk: measured
	// best for both (DESIGN.md, prototype).
	DefaultTunnelMode = "auto"
	// DefaultIOUring batches the loops' socket calls with io_uring where
	// the kernel allows it, and falls back to plain system calls where it
	// does not (seccomp profiles, kernel.io_uring_disabled, Linux < 5.6).
	DefaultIOUring = "auto"
	// MaxLoops caps splice loops: each is a thread, and more loops than
	// cores only add context switches.
	MaxLoops = 1024
	// MaxTries caps dial attempts per request: beyond a few, a client waits
	// connect-timeout × tries before its 502.
	MaxTries = 8
)

// Logs and admin.
const (
	// DefaultAccessLog writes the access log to stdout, where container
	// runtimes collect it.
	DefaultAccessLog = "stdout"
	// DefaultAccessLogInterval is 0: one line per tunnel, at close; a
	// periodic line per live tunnel on a node with a million of them is a
	// lot of log.
	DefaultAccessLogInterval = 0
	// MinAccessLogInterval: more often than once a second per live tunnel
	// floods the log.
	MinAccessLogInterval = time.Second

	// DefaultAdminTokenEnv is where the admin token is read from: the
	// environment, since flags show in ps and files get copied around.
	DefaultAdminTokenEnv = "WSGATE_ADMIN_TOKEN"

	// DefaultLogLevel logs starts, stops, reloads and errors, not every
	// rejected handshake (debug), which a node under attack cannot afford.
	DefaultLogLevel = "info"

	// MinTick is the shortest keepalive, idle, lifetime or periodic-log
	// timer a file may set. The engine's wheel ticks every 100 ms and a
	// timer fires within a tick of its time, so below 1 s that error would
	// be over 10% of the value; the file then means something the engine
	// cannot keep.
	MinTick = time.Second
)

// Default returns a Config with every default filled in and no listeners,
// pools or routes: add those, then Validate.
func Default() *Config {
	return &Config{
		Timeouts: Timeouts{
			Header:        DefaultHeaderTimeout,
			Connect:       DefaultConnectTimeout,
			BackendAnswer: DefaultAnswerTimeout,
			Idle:          DefaultIdleTimeout,
			Drain:         DefaultDrainDeadline,
			DrainSpread:   DefaultDrainSpread,
			Close:         DefaultCloseTimeout,
		},
		Limits: Limits{
			MaxTunnels:      DefaultMaxTunnels,
			MaxTunnelsPerIP: DefaultMaxTunnelsPerIP,
			MaxHeaderBytes:  DefaultMaxHeadBytes,
			AcceptRate:      DefaultAcceptRate,
		},
		Headers:   Headers{Host: DefaultHostMode},
		Tunnel:    Tunnel{Mode: DefaultTunnelMode, IOUring: DefaultIOUring, Tries: DefaultTries},
		AccessLog: AccessLog{Output: DefaultAccessLog, Interval: DefaultAccessLogInterval},
		Admin:     Admin{Address: DefaultAdminListen, TokenEnv: DefaultAdminTokenEnv},
		LogLevel:  DefaultLogLevel,
	}
}

// DefaultListener returns a listener on addr with the defaults.
func DefaultListener(addr string) Listener {
	return Listener{Address: addr, ReusePort: DefaultReusePort, Keepalive: DefaultKeepalive}
}

// DefaultPool returns a pool of the given backends with the defaults
// (balance's, and passive health on as in nginx).
func DefaultPool(backends ...string) Pool {
	p := Pool{
		Policy:      balance.DefaultPolicy,
		HashKey:     balance.DefaultHashKey,
		MaxFails:    balance.DefaultMaxFails,
		FailTimeout: balance.DefaultFailTimeout,
	}
	for _, b := range backends {
		p.Backends = append(p.Backends, DefaultBackend(b))
	}
	return p
}

// DefaultBackend returns a backend at addr with the defaults.
func DefaultBackend(addr string) Backend {
	return Backend{Address: addr, Weight: balance.DefaultWeight}
}

// DefaultRoute returns a route of every host and the given path prefix to
// pool.
func DefaultRoute(path, pool string) Route {
	return Route{Path: path, Pool: pool, LifetimeJitter: DefaultLifetimeJitter}
}

// DefaultHealthCheck returns an active check of the given type ("tcp" or
// "http") with balance's defaults.
func DefaultHealthCheck(typ string) HealthCheck {
	h := HealthCheck{
		Type:     typ,
		Interval: balance.DefaultCheckInterval,
		Timeout:  balance.DefaultCheckTimeout,
		Rise:     balance.DefaultCheckRise,
		Fall:     balance.DefaultCheckFall,
	}
	if typ == "http" {
		h.Path = balance.DefaultCheckPath
	}
	return h
}

// DefaultSticky returns cookie stickiness with the default cookie name.
func DefaultSticky() Sticky { return Sticky{Cookie: DefaultStickyCookie} }
