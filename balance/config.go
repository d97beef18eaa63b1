package balance

import (
	"fmt"
	"net"
	"strings"
	"time"
)

// Policy names a selection policy.
type Policy string

const (
	// LeastConn minimises (active+1)/weight; ties go round-robin.
	LeastConn Policy = "least_conn"
	// RoundRobin is nginx's smooth weighted round robin.
	RoundRobin Policy = "round_robin"
	// Hash is consistent hashing of a key the engine supplies.
	Hash Policy = "hash"
)

// policyKind is what Pick switches on. Adding a policy: one file with its
// pick function, one row in policies and one case in Pick. Pick dispatches
// with a switch rather than a table of funcs or an interface because a call
// through either makes the compiler assume key and exclude escape, and the
// engine's stack-built keys would then be heap-allocated on every Pick.
type policyKind uint8

const (
	kindLeastConn policyKind = iota
	kindRoundRobin
	kindHash
)

var policies = []struct {
	name Policy
	kind policyKind
}{
	{LeastConn, kindLeastConn},
	{RoundRobin, kindRoundRobin},
	{Hash, kindHash},
}

// Defaults, used by NewPool when a field is zero and by the config package.
const (
	DefaultPolicy = LeastConn
	DefaultWeight = 1
	// DefaultMaxFails is nginx's max_fails default. In Config a zero
	// MaxFails disables passive health, as max_fails=0 does in nginx, so the
	// config layer applies this default when the option is absent.
	DefaultMaxFails = 1
	// DefaultFailTimeout is nginx's fail_timeout default.
	DefaultFailTimeout = 10 * time.Second
	// MaxWeight caps a weight: HAProxy's limit (weights 0..256); it also
	// bounds the hash ring to 160×256 points per backend.
	MaxWeight = 256

	// Active checks: HAProxy's inter 2s / rise 2 / fall 3 are for
	// request-rate traffic; for long-lived tunnels nginx Plus's 5 s interval
	// is plenty. A check that takes longer than DefaultCheckTimeout counts
	// as failed.
	DefaultCheckInterval = 5 * time.Second
	DefaultCheckTimeout  = 2 * time.Second
	DefaultCheckRise     = 2
	DefaultCheckFall     = 3
	DefaultCheckPath     = "/"

	DefaultHashKey = "ip"
)

// SplitHashKey splits a Config.HashKey into its source ("ip", "header",
// "cookie" or "query") and name ("" for ip).
func SplitHashKey(s string) (source, name string, err error) {
	source, name, colon := strings.Cut(s, ":")
	switch {
	case source == "ip" && !colon:
		return source, "", nil
	case (source == "header" || source == "cookie" || source == "query") && name != "":
		return source, name, nil
	}
	return "", "", fmt.Errorf("hash_key %q: must be ip, header:NAME, cookie:NAME or query:NAME", s)
}

// BackendConfig is one backend as configured.
type BackendConfig struct {
	Addr     string // host:port
	Weight   int    // 1..MaxWeight; 0 means DefaultWeight
	MaxConns int    // 0 = unlimited
}

// HealthCheck configures active checks; a zero Kind turns them off.
type HealthCheck struct {
	Kind     string        // "tcp" (connect) or "http" (GET Path, 2xx/3xx passes)
	Path     string        // http: request path, default "/"
	Interval time.Duration // between checks of one backend
	Timeout  time.Duration // for one check, connect and response
	Rise     int           // consecutive passes to come back up
	Fall     int           // consecutive failures to go down
}

// Config is a pool's configuration.
type Config struct {
	Policy      Policy        // default least_conn
	MaxFails    int           // nginx max_fails: failures within FailTimeout to mark down; 0 disables passive health
	FailTimeout time.Duration // nginx fail_timeout: the failure window and how long a backend stays down; default 10s
	SlowStart   time.Duration // ramp of a recovered or added backend's weight; 0 = off (hash ignores it, as nginx Plus)
	// HashKey is what the engine hashes under the hash policy: "ip" (the
	// client address, the default), "header:NAME", "cookie:NAME" or
	// "query:NAME". (Hashing socket.io's sid does not keep a session on one
	// backend: its first request has no sid yet.) The pool only validates it;
	// the engine extracts the key and passes it to Pick.
	HashKey  string
	Health   HealthCheck
	Backends []BackendConfig
}

func normalize(cfg *Config) error {
	if cfg.Policy == "" {
		cfg.Policy = DefaultPolicy
	}
	known := false
	names := make([]string, 0, len(policies))
	for _, row := range policies {
		names = append(names, string(row.name))
		known = known || row.name == cfg.Policy
	}
	if !known {
		return fmt.Errorf("policy %q: must be one of %s", cfg.Policy, strings.Join(names, ", "))
	}
	if cfg.MaxFails < 0 {
		return fmt.Errorf("max_fails %d: must be >= 0", cfg.MaxFails)
	}
	if cfg.FailTimeout < 0 {
		return fmt.Errorf("fail_timeout %v: must be >= 0", cfg.FailTimeout)
	}
	if cfg.FailTimeout == 0 {
		cfg.FailTimeout = DefaultFailTimeout
	}
	if cfg.SlowStart < 0 {
		return fmt.Errorf("slow_start %v: must be >= 0", cfg.SlowStart)
	}
	if cfg.HashKey == "" {
		cfg.HashKey = DefaultHashKey
	}
	if _, _, err := SplitHashKey(cfg.HashKey); err != nil {
		return err
	}
	if err := normalizeHealth(&cfg.Health); err != nil {
		return err
	}
	seen := make(map[string]bool, len(cfg.Backends))
	bs := make([]BackendConfig, len(cfg.Backends))
	for i, bc := range cfg.Backends {
		if err := normalizeBackend(&bc); err != nil {
			return err
		}
		if seen[bc.Addr] {
			return fmt.Errorf("backend %q: %w", bc.Addr, ErrDuplicateBackend)
		}
		seen[bc.Addr] = true
		bs[i] = bc
	}
	cfg.Backends = bs
	return nil
}

func normalizeBackend(bc *BackendConfig) error {
	if _, port, err := net.SplitHostPort(bc.Addr); err != nil || port == "" {
		return fmt.Errorf("backend %q: address must be host:port", bc.Addr)
	}
	if bc.Weight == 0 {
		bc.Weight = DefaultWeight
	}
	if err := checkWeight(bc.Weight); err != nil {
		return fmt.Errorf("backend %q: %w", bc.Addr, err)
	}
	if bc.MaxConns < 0 {
		return fmt.Errorf("backend %q: max_conns %d: must be >= 0", bc.Addr, bc.MaxConns)
	}
	return nil
}

func checkWeight(w int) error {
	if w < 1 || w > MaxWeight {
		return fmt.Errorf("weight %d: must be between 1 and %d", w, MaxWeight)
	}
	return nil
}
