package config

import (
	"slices"
	"strings"
)

// Router finds the route of a request; the engine asks it once per
// request, so Match allocates nothing. A Router is immutable and safe for
// many goroutines: on reload, build a new one and swap the pointer.
//
// Precedence, as nginx's server_name then location: the most specific host
// wins first — an exact host, then the longest matching "*." wildcard,
// then routes without a host — and among the routes of that host the
// longest path prefix. Unlike nginx, a host whose routes do not match the
// path falls through to the less specific hosts' routes rather than
// answering 404, so adding a host-specific route never takes paths away
// from the catch-all.
type Router struct {
	routes []Route
	table  []entry // in precedence order
}

const (
	hostExact = iota
	hostWildcard
	hostAny
)

type entry struct {
	kind  uint8
	host  string // lowercased; for a wildcard the suffix with its dot, ".example.com"
	path  string
	route int
}

// Router compiles c's routes. With no routes and exactly one pool, every
// request goes to that pool (the quick-start case). c should be valid.
func (c *Config) Router() *Router {
	routes := slices.Clone(c.Routes)
	if len(routes) == 0 && len(c.Pools) == 1 {
		for name := range c.Pools {
			routes = []Route{DefaultRoute(DefaultRoutePath, name)}
		}
	}
	r := &Router{routes: routes, table: make([]entry, len(routes))}
	for i, rt := range routes {
		e := entry{kind: hostAny, path: rt.Path, route: i}
		host := strings.ToLower(strings.TrimSuffix(rt.Host, "."))
		switch {
		case strings.HasPrefix(host, "*."):
			e.kind, e.host = hostWildcard, host[1:]
		case host != "":
			e.kind, e.host = hostExact, host
		}
		r.table[i] = e
	}
	slices.SortStableFunc(r.table, func(a, b entry) int {
		if a.kind != b.kind {
			return int(a.kind) - int(b.kind)
		}
		if len(a.host) != len(b.host) {
			return len(b.host) - len(a.host)
		}
		return len(b.path) - len(a.path)
	})
	return r
}

// Routes returns the routes Match chooses from, indexed as Lookup returns
// them; the caller must not modify them.
func (r *Router) Routes() []Route { return r.routes }

// Match returns the route of a request with the given Host header value
// (its port, if any, is ignored) and path (the request target in origin
// form; its query is never part of a route prefix), or nil.
func (r *Router) Match(host, path []byte) *Route { return r.at(lookup(r, host, path)) }

// MatchString is Match for strings.
func (r *Router) MatchString(host, path string) *Route { return r.at(lookup(r, host, path)) }

// Lookup is Match returning the route's index in Routes, or -1: the engine
// keeps its per-route state in a slice parallel to Routes.
func (r *Router) Lookup(host, path []byte) int { return lookup(r, host, path) }

func (r *Router) at(i int) *Route {
	if i < 0 {
		return nil
	}
	return &r.routes[i]
}

func lookup[T string | []byte](r *Router, host, path T) int {
	h := hostOnly(host)
	for i := range r.table {
		e := &r.table[i]
		switch e.kind {
		case hostExact:
			if len(h) != len(e.host) || !foldEqual(h, e.host) {
				continue
			}
		case hostWildcard:
			// len(h) > len(suffix): "*.example.com" wants a label before it.
			if len(h) <= len(e.host) || !foldEqual(h[len(h)-len(e.host):], e.host) {
				continue
			}
		}
		if hasPrefix(path, e.path) {
			return e.route
		}
	}
	return -1
}

// hostOnly strips the port and a trailing dot from a Host value
// ("Example.com.:8080" → "Example.com"; "[::1]:80" → "[::1]").
func hostOnly[T string | []byte](h T) T {
	if len(h) > 0 && h[0] == '[' {
		for i := 1; i < len(h); i++ {
			if h[i] == ']' {
				return h[:i+1]
			}
		}
		return h
	}
	for i := 0; i < len(h); i++ {
		if h[i] == ':' {
			h = h[:i]
			break
		}
	}
	if len(h) > 0 && h[len(h)-1] == '.' {
		h = h[:len(h)-1]
	}
	return h
}

// foldEqual compares s with lower, already lowercase, ASCII-insensitively
// (host names are ASCII; IDNs arrive as punycode). len(s) == len(lower).
func foldEqual[T string | []byte](s T, lower string) bool {
	for i := 0; i < len(lower); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// hasPrefix is a plain byte prefix, as nginx's prefix locations: "/wss"
// matches "/wss", "/wss/x" and "/wssx". An empty path is "/".
func hasPrefix[T string | []byte](path T, prefix string) bool {
	if len(path) == 0 {
		return prefix == "/"
	}
	if len(path) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		if path[i] != prefix[i] {
			return false
		}
	}
	return true
}
