// Package config holds wsgate's configuration: the YAML schema, its
// validation, and — in this file — every default, defined once, each with
// the failure it prevents. The engine, the admin server and the command line
// all take their defaults from here.
package config

import "time"

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

	// DefaultEarlyDataBytes caps the client bytes wsgate buffers after a
	// head while it dials the backend: netpoll reads without backpressure,
	// so without a cap a client could grow memory during the dial.
	DefaultEarlyDataBytes = 64 << 10
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
