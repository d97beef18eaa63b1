package config

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// badFiles is every decoding and validation rule: a file, the exact error
// message (all errors, one a line) and the exact warnings. A case with no
// error must parse.
var badFiles = []struct {
	name  string
	yaml  string
	err   string
	warns []string
	env   map[string]string
}{
	// Decoding: syntax, unknown fields, types.
	{name: "syntax", yaml: "listeners: [\n", err: `t.yaml:1: did not find expected node content`},
	{name: "two documents", yaml: top("---\nlog_level: info\n"), err: `t.yaml:5: a second YAML document (after ---): want one`},
	{name: "misspelt section", yaml: top("timeuts: {idle: 1s}\n"), err: `t.yaml:5: timeuts: unknown field (did you mean timeouts?)`},
	{name: "misspelt field", yaml: top("timeouts:\n  idle: 1s\n  conect: 1s\n"), err: `t.yaml:7: timeouts.conect: unknown field (did you mean connect?)`},
	{name: "unknown field", yaml: top("upstream: {}\n"), err: `t.yaml:5: upstream: unknown field (want one of listeners, pools, routes, timeouts, limits, headers, tunnel, access_log, admin, log_level)`},
	{name: "unknown in list item", yaml: "listeners: [{address: \":8080\"}]\npools:\n  ws:\n    backends:\n      - address: 127.0.0.1:8010\n        wieght: 2\n",
		err: `t.yaml:6: pools.ws.backends[0].wieght: unknown field (did you mean weight?)`},
	{name: "misspelt limit", yaml: twoPools("routes: [{path: /, pool: ws}, {path: /x, pool: wss}]\n") + "limits:\n  max_tunels: 1\n", err: `t.yaml:9: limits.max_tunels: unknown field (did you mean max_tunnels?)`},
	{name: "duplicate key", yaml: top("log_level: info\nlog_level: debug\n"), err: `t.yaml:6: log_level: given twice (first on line 5)`},
	{name: "duplicate pool", yaml: baseYAML + "  ws:\n    backends: [{address: \"127.0.0.1:8011\"}]\n", err: `t.yaml:5: pools.ws: given twice (first on line 3)`},
	{name: "int wants int", yaml: inListener("reuseport: many\n"), err: `t.yaml:6: listeners[0].reuseport: "many": want an integer`},
	{name: "int not float", yaml: top("limits: {max_tunnels: 1.5}\n"), err: `t.yaml:5: limits.max_tunnels: 1.5: want an integer`},
	{name: "int not quoted", yaml: top("limits: {max_tunnels: \"10\"}\n"), err: `t.yaml:5: limits.max_tunnels: "10": want an integer`},
	{name: "bool not yes", yaml: inListener("proxy_protocol: yes\n"), err: `t.yaml:6: listeners[0].proxy_protocol: "yes": want true or false`},
	{name: "duration needs unit", yaml: top("timeouts: {idle: 300}\n"), err: `t.yaml:5: timeouts.idle: 300: want a duration with a unit, like 10s`},
	{name: "duration syntax", yaml: top("timeouts: {idle: 5 minutes}\n"), err: `t.yaml:5: timeouts.idle: "5 minutes": want a duration like 10s or 1h30m`},
	{name: "percent", yaml: top("routes: [{pool: ws, max_lifetime: 1h, lifetime_jitter: ten}]\n"), err: `t.yaml:5: routes[0].lifetime_jitter: "ten": want a percentage like 10%`},
	{name: "list wanted", yaml: "listeners: \":8080\"\npools: {ws: {backends: [{address: \"h:1\"}]}}\n", err: `t.yaml:1: listeners: ":8080": want a list, not a string`},
	{name: "mapping wanted", yaml: top("timeouts: 10s\n"), err: `t.yaml:5: timeouts: "10s": want a mapping, not a string`},
	{name: "mapping in list wanted", yaml: "listeners: [\":8080\"]\npools: {ws: {backends: [{address: \"h:1\"}]}}\n", err: `t.yaml:1: listeners[0]: ":8080": want a mapping, not a string`},
	{name: "string wanted", yaml: top("log_level: {level: info}\n"), err: `t.yaml:5: log_level: want a string, not a mapping`},
	{name: "cidr", yaml: top("headers: {trusted_proxies: [10.0.0.0/33]}\n"), err: `t.yaml:5: headers.trusted_proxies[0]: "10.0.0.0/33": want a CIDR like 10.0.0.0/8, or an address`},
	{name: "source ip", yaml: top("tunnel: {source_addrs: [localhost]}\n"), err: `t.yaml:5: tunnel.source_addrs[0]: "localhost": want an IP address`},
	{name: "every decoding error at once", yaml: top("timeouts: {idle: 300, conect: 1s}\nlimits: {max_tunnels: x}\n"),
		err: "t.yaml:5: timeouts.idle: 300: want a duration with a unit, like 10s\n" +
			"t.yaml:5: timeouts.conect: unknown field (did you mean connect?)\n" +
			`t.yaml:6: limits.max_tunnels: "x": want an integer`},

	// Listeners.
	{name: "empty file", yaml: "# nothing\n", err: "t.yaml: listeners: none: want at least one\nt.yaml: pools: none: want at least one"},
	{name: "no listeners", yaml: "listeners: []\npools: {ws: {backends: [{address: \"h:1\"}]}}\n", err: `t.yaml:1: listeners: none: want at least one`},
	{name: "listen no colon", yaml: "listeners: [{address: \"8080\"}]\npools: {ws: {backends: [{address: \"h:1\"}]}}\n", err: `t.yaml:1: listeners[0].address: "8080": want host:port or :port`},
	{name: "listen ipv6 brackets", yaml: "listeners: [{address: \"::1:80\"}]\npools: {ws: {backends: [{address: \"h:1\"}]}}\n", err: `t.yaml:1: listeners[0].address: "::1:80": IPv6 hosts go in brackets, like [::1]:8080`},
	{name: "listen port", yaml: "listeners: [{address: \":70000\"}]\npools: {ws: {backends: [{address: \"h:1\"}]}}\n", err: `t.yaml:1: listeners[0].address: ":70000": port "70000": want 0..65535`},
	{name: "listen host", yaml: "listeners: [{address: \"a b:80\"}]\npools: {ws: {backends: [{address: \"h:1\"}]}}\n", err: `t.yaml:1: listeners[0].address: "a b:80": host "a b": want an IP address or a host name`},
	{name: "reuseport 0", yaml: inListener("reuseport: 0\n"), err: `t.yaml:6: listeners[0].reuseport: 0: must be between 1 and 64`},
	{name: "reuseport 65", yaml: inListener("reuseport: 65\n"), err: `t.yaml:6: listeners[0].reuseport: 65: must be between 1 and 64`},
	{name: "keepalive tick", yaml: inListener("keepalive: 500ms\n"), err: `t.yaml:6: listeners[0].keepalive: 500ms: must be at least 1s (the engine's timer resolution)`},
	{name: "keepalive negative", yaml: inListener("keepalive: -1s\n"), err: `t.yaml:6: listeners[0].keepalive: -1s: must be >= 0`},
	{name: "duplicate listener", yaml: inListener("") + "  - address: \":8080\"\n", err: `t.yaml:6: listeners[1].address: ":8080": same as listeners[0]`},
	{name: "wildcard overlap", yaml: inListener("") + "  - address: \"127.0.0.1:8080\"\n", err: `t.yaml:6: listeners[1].address: "127.0.0.1:8080": takes the same port as listeners[0] ":8080"`},
	{name: "v4 v6 wildcards overlap", yaml: inListener("") + "  - address: \"[::]:8080\"\n", err: `t.yaml:6: listeners[1].address: "[::]:8080": takes the same port as listeners[0] ":8080"`},
	{name: "two hosts one port", yaml: "listeners: [{address: \"127.0.0.2:8080\"}, {address: \"127.0.0.3:8080\"}, {address: \":0\"}, {address: \":0\"}]\npools: {ws: {backends: [{address: \"h:1\"}]}}\n"},
	{name: "tls needs key", yaml: inListener("tls: {cert: /x.pem}\n"), err: `t.yaml:6: listeners[0].tls.cert: "/x.pem": no such file or directory` + "\n" +
		`t.yaml:6: listeners[0].tls.key: missing: a TLS listener needs both cert and key`},

	// Pools and backends.
	{name: "no pools", yaml: "listeners: [{address: \":8080\"}]\npools: {}\n", err: `t.yaml:2: pools: none: want at least one`},
	{name: "pool name", yaml: "listeners: [{address: \":8080\"}]\npools:\n  w.s:\n    backends: [{address: \"h:1\"}]\n", err: `t.yaml:3: pools.w.s: "w.s": a pool name is letters, digits, - and _`},
	{name: "policy", yaml: inPool("policy: leastconn\n"), err: `t.yaml:5: pools.ws.policy: "leastconn": must be one of least_conn, round_robin, hash`},
	{name: "hash key", yaml: inPool("policy: hash\nhash_key: sid\n"), err: `t.yaml:6: pools.ws.hash_key: "sid": must be ip, header:NAME, cookie:NAME or query:NAME`},
	{name: "hash key header name", yaml: inPool("policy: hash\nhash_key: \"header:X Id\"\n"), err: `t.yaml:6: pools.ws.hash_key: "header:X Id": header name "X Id": not a valid token (RFC 9110)`},
	{name: "hash key without hash", yaml: inPool("hash_key: query:room\n"), warns: []string{`t.yaml:5: pools.ws.hash_key: "query:room": has no effect: policy is least_conn, not hash`}},
	{name: "sticky cookie", yaml: inPool("sticky: {cookie: \"my cookie\", key_env: K}\n"), env: map[string]string{"K": "k"}, err: `t.yaml:5: pools.ws.sticky.cookie: "my cookie": not a valid cookie name (an RFC 6265 token)`},
	{name: "sticky key env name", yaml: inPool("sticky: {key_env: 1KEY}\n"), err: `t.yaml:5: pools.ws.sticky.key_env: "1KEY": not an environment variable name`},
	{name: "sticky without key", yaml: inPool("sticky: {}\n"), warns: []string{`t.yaml:5: pools.ws.sticky: no key_env: cookies are signed with a random key per process, so they do not survive a restart or move between nodes`}},
	{name: "sticky key unset", yaml: inPool("sticky: {key_env: WSGATE_TEST_UNSET_KEY}\n"), warns: []string{`t.yaml:5: pools.ws.sticky.key_env: "WSGATE_TEST_UNSET_KEY": not set in the environment: serve will use a random key`}},
	{name: "sticky key set", yaml: inPool("sticky: {key_env: WSGATE_TEST_KEY}\n"), env: map[string]string{"WSGATE_TEST_KEY": "secret"}},
	{name: "max_fails", yaml: inPool("max_fails: -1\n"), err: `t.yaml:5: pools.ws.max_fails: -1: must be >= 0 (0 = no passive health)`},
	{name: "fail_timeout", yaml: inPool("fail_timeout: 0s\n"), err: `t.yaml:5: pools.ws.fail_timeout: 0s: must be > 0`},
	{name: "slow_start", yaml: inPool("slow_start: -1s\n"), err: `t.yaml:5: pools.ws.slow_start: -1s: must be >= 0`},
	{name: "slow_start hash", yaml: inPool("policy: hash\nslow_start: 30s\n"), warns: []string{`t.yaml:6: pools.ws.slow_start: 30s: has no effect with policy hash`}},
	{name: "health type", yaml: inPool("health_check: {type: udp}\n"), err: `t.yaml:5: pools.ws.health_check.type: "udp": must be one of tcp, http`},
	{name: "health type missing", yaml: inPool("health_check: {path: /}\n"), err: `t.yaml:5: pools.ws.health_check.type: missing: want one of tcp, http`},
	{name: "health path", yaml: inPool("health_check: {type: http, path: healthz}\n"), err: `t.yaml:5: pools.ws.health_check.path: "healthz": must start with / and contain no spaces or control characters`},
	{name: "health path tcp", yaml: inPool("health_check: {type: tcp, path: /healthz}\n"), warns: []string{`t.yaml:5: pools.ws.health_check.path: "/healthz": has no effect with type tcp`}},
	{name: "health interval", yaml: inPool("health_check:\n  type: tcp\n  interval: 0s\n"), err: `t.yaml:7: pools.ws.health_check.interval: 0s: must be > 0`},
	{name: "health timeout", yaml: inPool("health_check:\n  type: tcp\n  interval: 1s\n  timeout: 2s\n"), err: `t.yaml:8: pools.ws.health_check.timeout: 2s: must be at most interval (1s), or checks of one backend overlap`},
	{name: "health rise fall", yaml: inPool("health_check:\n  type: tcp\n  rise: 0\n  fall: 101\n"),
		err: "t.yaml:7: pools.ws.health_check.rise: 0: must be between 1 and 100\nt.yaml:8: pools.ws.health_check.fall: 101: must be between 1 and 100"},
	{name: "no backends", yaml: "listeners: [{address: \":8080\"}]\npools:\n  ws:\n    policy: least_conn\n", err: `t.yaml:3: pools.ws.backends: none: want at least one`},
	{name: "backend no host", yaml: "listeners: [{address: \":8080\"}]\npools:\n  ws:\n    backends: [{address: \":8010\"}]\n", err: `t.yaml:4: pools.ws.backends[0].address: ":8010": missing host`},
	{name: "backend port", yaml: "listeners: [{address: \":8080\"}]\npools:\n  ws:\n    backends: [{address: \"h:0\"}]\n", err: `t.yaml:4: pools.ws.backends[0].address: "h:0": port "0": want 1..65535`},
	{name: "backend weight", yaml: "listeners: [{address: \":8080\"}]\npools:\n  ws:\n    backends:\n      - address: 127.0.0.1:8010\n      - address: 127.0.0.1:8011\n        weight: 0\n",
		err: `t.yaml:7: pools.ws.backends[1].weight: 0: must be between 1 and 256`},
	{name: "backend max_conns", yaml: "listeners: [{address: \":8080\"}]\npools:\n  ws:\n    backends:\n      - {address: 127.0.0.1:8010, max_conns: -1}\n", err: `t.yaml:5: pools.ws.backends[0].max_conns: -1: must be >= 0 (0 = unlimited)`},
	{name: "duplicate backend", yaml: "listeners: [{address: \":8080\"}]\npools:\n  ws:\n    backends:\n      - address: 127.0.0.1:8010\n      - address: 127.0.0.1:8011\n      - address: 127.0.0.1:8010\n",
		err: `t.yaml:7: pools.ws.backends[2].address: "127.0.0.1:8010": same as backends[0]`},

	// Routes.
	{name: "two pools no routes", yaml: twoPools(""), err: `t.yaml: routes: none, but 2 pools (ws, wss): say which requests go to which pool`},
	{name: "route pool missing", yaml: top("routes:\n  - path: /ws/\n"), err: `t.yaml:6: routes[0].pool: missing: say which pool the requests go to`,
		warns: []string{`t.yaml:3: pools.ws: no route uses it`}},
	{name: "route pool unknown", yaml: twoPools("routes:\n  - path: /\n    pool: chat\n  - path: /x\n    pool: wss\n"), err: `t.yaml:9: routes[0].pool: "chat": no such pool (pools: ws, wss)`,
		warns: []string{`t.yaml:3: pools.ws: no route uses it`}},
	{name: "route path", yaml: top("routes: [{path: ws, pool: ws}]\n"), err: `t.yaml:5: routes[0].path: "ws": must start with /`},
	{name: "route path query", yaml: top("routes: [{path: \"/ws?x\", pool: ws}]\n"), err: `t.yaml:5: routes[0].path: "/ws?x": must not contain spaces, control characters, ? or #`},
	{name: "route host port", yaml: top("routes: [{host: \"example.com:80\", pool: ws}]\n"), err: `t.yaml:5: routes[0].host: "example.com:80": no port: ports are ignored when matching (IPv6 goes in brackets)`},
	{name: "route host star", yaml: top("routes: [{host: \"*\", pool: ws}]\n"), err: `t.yaml:5: routes[0].host: "*": leave host out to match any host`},
	{name: "route host mid wildcard", yaml: top("routes: [{host: \"a.*.com\", pool: ws}]\n"), err: `t.yaml:5: routes[0].host: "a.*.com": a wildcard only as a leading *., like *.example.com`},
	{name: "route host chars", yaml: top("routes: [{host: \"a..com\", pool: ws}]\n"), err: `t.yaml:5: routes[0].host: "a..com": want a host name, *.domain or an IP address`},
	{name: "route same host and path", yaml: twoPools("routes:\n  - {host: Example.com, path: /ws/, pool: ws}\n  - {host: example.com., path: /ws/, pool: wss}\n"),
		err: `t.yaml:9: routes[1]: "example.com./ws/": same host and path as routes[0]`},
	{name: "route default path twice", yaml: twoPools("routes:\n  - {pool: ws}\n  - {pool: wss, path: /}\n"), err: `t.yaml:9: routes[1]: "/": same host and path as routes[0]`},
	{name: "origin path", yaml: top("routes: [{pool: ws, origins: [\"https://app.example.com/\"]}]\n"), err: `t.yaml:5: routes[0].origins[0]: "https://app.example.com/": no path: browsers send an origin without one`},
	{name: "origin scheme", yaml: top("routes: [{pool: ws, origins: [\"ws://app.example.com\"]}]\n"), err: `t.yaml:5: routes[0].origins[0]: "ws://app.example.com": scheme "ws": browsers send http or https origins`},
	{name: "origin host", yaml: top("routes: [{pool: ws, origins: [\"app.example.com\"]}]\n"), err: `t.yaml:5: routes[0].origins[0]: "app.example.com": want scheme://host[:port], like https://app.example.com`},
	{name: "origin twice", yaml: top("routes: [{pool: ws, origins: [\"https://a.example.com:8443\", \"https://A.example.com:8443\"]}]\n"), err: `t.yaml:5: routes[0].origins[1]: "https://A.example.com:8443": same as [0]`},
	{name: "subprotocol", yaml: top("routes: [{pool: ws, subprotocols: [\"chat v2\"]}]\n"), err: `t.yaml:5: routes[0].subprotocols[0]: "chat v2": not a valid subprotocol (an RFC 9110 token)`},
	{name: "max_lifetime", yaml: top("routes: [{pool: ws, max_lifetime: 100ms}]\n"), err: `t.yaml:5: routes[0].max_lifetime: 100ms: must be at least 1s (the engine's timer resolution)`},
	{name: "jitter range", yaml: top("routes: [{pool: ws, max_lifetime: 1h, lifetime_jitter: 60%}]\n"), err: `t.yaml:5: routes[0].lifetime_jitter: 60%: must be between 0% and 50%`},
	{name: "jitter plain number", yaml: top("routes: [{pool: ws, max_lifetime: 1h, lifetime_jitter: 25}]\n")},
	{name: "jitter without lifetime", yaml: top("routes: [{pool: ws, lifetime_jitter: 5%}]\n"), warns: []string{`t.yaml:5: routes[0].lifetime_jitter: 5%: has no effect without max_lifetime`}},
	{name: "strip slash", yaml: top("routes: [{pool: ws, strip_prefix: true}]\n"), warns: []string{`t.yaml:5: routes[0].strip_prefix: true: has no effect with path /`}},
	{name: "unused pool", yaml: twoPools("routes: [{pool: ws}]\n"), warns: []string{`t.yaml:5: pools.wss: no route uses it`}},

	// Timeouts and limits.
	{name: "header timeout", yaml: top("timeouts: {header: 0s}\n"), err: `t.yaml:5: timeouts.header: 0s: must be > 0`},
	{name: "connect timeout", yaml: top("timeouts: {connect: -1s}\n"), err: `t.yaml:5: timeouts.connect: -1s: must be >= 0`},
	{name: "idle tick", yaml: top("timeouts: {idle: 500ms}\n"), err: `t.yaml:5: timeouts.idle: 500ms: must be at least 1s (the engine's timer resolution)`},
	{name: "idle off", yaml: top("timeouts: {idle: 0}\n")},
	{name: "drain", yaml: top("timeouts:\n  drain: -1m\n  drain_spread: -1s\n"),
		err: "t.yaml:6: timeouts.drain: -1m: must be >= 0\nt.yaml:7: timeouts.drain_spread: -1s: must be >= 0"},
	{name: "close timeout", yaml: top("timeouts: {close: 0s, backend_answer: 0s}\n"),
		err: "t.yaml:5: timeouts.backend_answer: 0s: must be > 0\nt.yaml:5: timeouts.close: 0s: must be > 0"},
	{name: "max_tunnels", yaml: top("limits: {max_tunnels: -1, accept_rate: -5}\n"),
		err: "t.yaml:5: limits.max_tunnels: -1: must be >= 0 (0 = unlimited)\nt.yaml:5: limits.accept_rate: -5: must be >= 0 (0 = unlimited)"},
	{name: "per ip over total", yaml: top("limits: {max_tunnels: 100, max_tunnels_per_ip: 200}\n"), warns: []string{`t.yaml:5: limits.max_tunnels_per_ip: 200: has no effect: more than max_tunnels (100)`}},
	{name: "max_header_bytes", yaml: top("limits:\n  max_header_bytes: 100\n"), err: `t.yaml:6: limits.max_header_bytes: 100: must be between 1024 and 1048576`},

	// Headers.
	{name: "host mode", yaml: top("headers: {host: client}\n"), err: `t.yaml:5: headers.host: "client": must be one of preserve, backend, literal, nginx`},
	{name: "host literal missing", yaml: top("headers: {host: literal}\n"), err: `t.yaml:5: headers.host_literal: missing: host: literal sends it`},
	{name: "host literal bad", yaml: top("headers: {host: literal, host_literal: \"a b\"}\n"), err: `t.yaml:5: headers.host_literal: "a b": want a host or host:port`},
	{name: "host literal port", yaml: top("headers: {host: literal, host_literal: \"ws.internal:8080\"}\n")},
	{name: "host literal unused", yaml: top("headers: {host_literal: ws.internal}\n"), warns: []string{`t.yaml:5: headers.host_literal: "ws.internal": has no effect: host is preserve, not literal`}},
	{name: "trusted host bits", yaml: top("headers:\n  trusted_proxies:\n    - 10.0.0.0/8\n    - 10.1.2.3/16\n"), err: `t.yaml:8: headers.trusted_proxies[1]: 10.1.2.3/16: host bits set (did you mean 10.1.0.0/16?)`},
	{name: "trusted twice", yaml: top("headers: {trusted_proxies: [10.0.0.1, 10.0.0.1/32]}\n"), err: `t.yaml:5: headers.trusted_proxies[1]: 10.0.0.1/32: same as [0]`},
	{name: "trusted everyone", yaml: top("headers: {trusted_proxies: [0.0.0.0/0]}\n"), warns: []string{`t.yaml:5: headers.trusted_proxies[0]: 0.0.0.0/0: trusts every peer: any client can set its own X-Forwarded-For`}},

	// Tunnel.
	{name: "mode", yaml: top("tunnel: {mode: zerocopy}\n"), err: `t.yaml:5: tunnel.mode: "zerocopy": must be one of auto, copy, splice`},
	{name: "loops", yaml: top("tunnel: {loops: -1}\n"), err: `t.yaml:5: tunnel.loops: -1: must be between 0 and 1024`},
	{name: "tries", yaml: top("tunnel:\n  tries: 0\n"), err: `t.yaml:6: tunnel.tries: 0: must be between 1 and 8`},
	{name: "tries max", yaml: top("tunnel:\n  tries: 9\n"), err: `t.yaml:6: tunnel.tries: 9: must be between 1 and 8`},
	{name: "source twice", yaml: top("tunnel:\n  source_addrs: [127.0.0.2, 127.0.0.3, 127.0.0.2]\n"), err: `t.yaml:6: tunnel.source_addrs[2]: 127.0.0.2: same as [0]`},
	{name: "source any", yaml: top("tunnel:\n  source_addrs: [0.0.0.0]\n"), err: `t.yaml:6: tunnel.source_addrs[0]: 0.0.0.0: want a unicast address of this host`},

	// Access log, admin, log level.
	{name: "access log empty", yaml: top("access_log: {output: \"\"}\n"), err: `t.yaml:5: access_log.output: missing: want stdout, stderr, off or a file path`},
	{name: "access log dir", yaml: top("access_log: {output: /nonexistent/dir/access.log}\n"), err: `t.yaml:5: access_log.output: "/nonexistent/dir/access.log": directory /nonexistent/dir: no such file or directory`},
	{name: "access log interval", yaml: top("access_log: {interval: 100ms}\n"), err: `t.yaml:5: access_log.interval: 100ms: must be 0 or at least 1s`},
	{name: "access log off interval", yaml: top("access_log: {output: off, interval: 10m}\n"), warns: []string{`t.yaml:5: access_log.interval: 10m: has no effect: output is off`}},
	{name: "admin address", yaml: top("admin: {address: localhost}\n"), err: `t.yaml:5: admin.address: "localhost": want host:port or :port`},
	{name: "admin on a listener's port", yaml: top("admin: {address: \"127.0.0.1:8080\"}\n"), err: `t.yaml:5: admin.address: "127.0.0.1:8080": takes the same port as listeners[0] ":8080"`},
	{name: "admin public without token", yaml: top("admin: {address: \":9090\", token_env: \"\"}\n"), err: `t.yaml:5: admin.token_env: missing: admin.address ":9090" is not loopback, and the admin API can drain the node`},
	{name: "admin token env name", yaml: top("admin: {token_env: MY-TOKEN}\n"), err: `t.yaml:5: admin.token_env: "MY-TOKEN": not an environment variable name`},
	{name: "admin public token unset", yaml: top("admin: {address: \"10.0.0.1:9090\", token_env: WSGATE_TEST_UNSET_TOKEN}\n"),
		warns: []string{`t.yaml:5: admin.token_env: "WSGATE_TEST_UNSET_TOKEN": not set in the environment: serve refuses a non-loopback admin address without a token`}},
	{name: "admin off", yaml: top("admin: {address: off, token_env: \"\"}\n")},
	{name: "log level", yaml: top("log_level: verbose\n"), err: `t.yaml:5: log_level: "verbose": must be one of debug, info, warn, error`},
}

func TestBadFiles(t *testing.T) {
	for _, tc := range badFiles {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			c, warns, err := Parse([]byte(tc.yaml), "t.yaml")
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.err {
				t.Errorf("error\n got: %s\nwant: %s\nfile:\n%s", got, tc.err, tc.yaml)
			}
			if w := warningStrings(warns); !slices.Equal(w, tc.warns) {
				t.Errorf("warnings\n got: %q\nwant: %q", w, tc.warns)
			}
			if (err == nil) != (c != nil) {
				t.Errorf("Parse returned config %v with error %v", c != nil, err)
			}
		})
	}
}

// TestErrorsAreErrors checks the error's type: callers (the admin API's
// reload answer) list the problems one by one.
func TestErrorsAreErrors(t *testing.T) {
	_, _, err := Parse([]byte(top("timeouts: {idle: x}\nlog_level: loud\n")), "t.yaml")
	es, ok := err.(Errors)
	if !ok || len(es) != 1 || es[0].Line != 5 || es[0].Path != "timeouts.idle" || es[0].Value != `"x"` {
		t.Fatalf("err = %#v", err)
	}
	// Validation runs only on a file that decoded, so the bad log_level
	// is not reported alongside.
	_, _, err = Parse([]byte(top("log_level: loud\n")), "")
	if err == nil || err.Error() != `line 5: log_level: "loud": must be one of debug, info, warn, error` {
		t.Fatalf("err = %v", err)
	}
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeCert(t, dir, "good", time.Now().Add(24*time.Hour))
	otherCert, _ := writeCert(t, dir, "other", time.Now().Add(24*time.Hour))
	oldCert, oldKey := writeCert(t, dir, "old", time.Now().Add(-time.Hour))
	if err := os.WriteFile(filepath.Join(dir, "junk.pem"), []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	listener := func(cert, key string) string {
		return inListener("tls:\n  cert: " + cert + "\n  key: " + key + "\n")
	}
	cases := []struct {
		name, yaml, err string
		warns           []string
	}{
		{name: "good", yaml: listener(cert, key)},
		{name: "mismatch", yaml: listener(otherCert, key), err: `t.yaml:6: listeners[0].tls: tls: private key does not match public key`},
		{name: "not pem", yaml: listener(filepath.Join(dir, "junk.pem"), key), err: `t.yaml:6: listeners[0].tls: tls: failed to find any PEM data in certificate input`},
		{name: "missing key file", yaml: listener(cert, filepath.Join(dir, "nope.key")), err: `t.yaml:8: listeners[0].tls.key: "` + filepath.Join(dir, "nope.key") + `": no such file or directory`},
		{name: "expired", yaml: listener(oldCert, oldKey), warns: []string{
			`t.yaml:7: listeners[0].tls.cert: "` + oldCert + `": expired on ` + time.Now().Add(-time.Hour).UTC().Format(time.DateOnly)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, warns, err := Parse([]byte(tc.yaml), "t.yaml")
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.err {
				t.Errorf("error\n got: %s\nwant: %s", got, tc.err)
			}
			if w := warningStrings(warns); !slices.Equal(w, tc.warns) {
				t.Errorf("warnings\n got: %q\nwant: %q", w, tc.warns)
			}
		})
	}
}

// TestLoadRelativePaths checks that Load reads TLS files relative to the
// config file, as its author saw them.
func TestLoadRelativePaths(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "tls"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeCert(t, filepath.Join(dir, "tls"), "site", time.Now().Add(time.Hour))
	path := filepath.Join(dir, "wsgate.yaml")
	yaml := inListener("tls: {cert: tls/site.pem, key: tls/site.key}\n") + "access_log: {output: logs.json}\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Listeners[0].TLS.Cert; got != filepath.Join(dir, "tls/site.pem") {
		t.Errorf("cert = %s", got)
	}
	if got := c.AccessLog.Output; got != filepath.Join(dir, "logs.json") {
		t.Errorf("access log = %s", got)
	}
	if _, _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: %v", err)
	}
}

// FuzzParse checks that no file makes Parse panic or hang, and that every
// file it accepts renders to one it reads back the same.
func FuzzParse(f *testing.F) {
	for _, tc := range badFiles {
		f.Add([]byte(tc.yaml))
	}
	for _, name := range []string{"../examples/nginx-recipe.yaml", "../examples/full.yaml"} {
		if data, err := os.ReadFile(name); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("x: &x {<<: *x}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, _, err := Parse(data, "fuzz.yaml")
		if err != nil {
			return
		}
		again, _, err := Parse(c.Render(), "rendered")
		if err != nil {
			t.Fatalf("rendered config does not parse: %v\n%s", err, c.Render())
		}
		if a, b := exported(c), exported(again); !reflect.DeepEqual(a, b) {
			t.Fatalf("round trip differs:\n%+v\n%+v", a, b)
		}
	})
}
