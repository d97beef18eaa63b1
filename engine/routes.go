package engine

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/wsgate/wsgate/balance"
	"github.com/wsgate/wsgate/handshake"
)

// RouteConfig is one route as the engine runs it: where its requests go
// and the WebSocket policy applied to them (config.Route, with the pool it
// names).
type RouteConfig struct {
	// Name identifies the route in the access log, as "host/path".
	Name string
	Pool *balance.Pool
	// StripPrefix is removed from the front of the request path before
	// the request is forwarded (a leading "/" is kept); "" forwards the
	// target unchanged.
	StripPrefix string
	// Origins, when set, allow only WebSocket handshakes whose Origin is
	// one of them (compared case-insensitively) or that send none: a
	// browser always sends Origin, so this stops cross-site WebSocket
	// hijacking, and a non-browser client could send any Origin anyway.
	Origins []string
	// Subprotocols, when set, allow only WebSocket handshakes that offer
	// at least one of them in Sec-WebSocket-Protocol.
	Subprotocols []string
	// MaxLifetime ends tunnels gracefully this long after they started, ±
	// LifetimeJitter (a fraction, 0..0.5); 0 = never.
	MaxLifetime    time.Duration
	LifetimeJitter float64
	// Sticky, when set, keeps a client on one backend with a signed cookie.
	Sticky *Sticky
	// ProxyProtocol sends a PROXY v2 header to the backend before the
	// request head.
	ProxyProtocol bool
}

// Routes is the routing table: immutable, swapped whole by SetRoutes on
// reload, so a request sees one consistent table and the loops read it
// without a lock.
type Routes struct {
	match   func(host, path []byte) int
	routes  []*Route
	pools   []*balance.Pool // every pool the routes name, once
	trusted []netip.Prefix
}

// RewriteConfig is how request heads are rewritten for every route.
type RewriteConfig struct {
	Host         handshake.HostMode
	HostLiteral  string
	Forwarded    bool // also send RFC 7239 Forwarded
	KeepAllNames bool // forward fields nginx would drop as invalid names
	// TrustedProxies are the peers whose X-Real-IP and X-Forwarded-* are
	// kept (and who may send PROXY headers, when this is set); everyone
	// else's are replaced.
	TrustedProxies []netip.Prefix
}

// NewRoutes builds a table over rcs. match returns the index in rcs of
// the route for a request's Host value and target, or -1 (answered 404);
// it must not allocate, retain its arguments, or block. A nil match sends
// every request to rcs[0].
func NewRoutes(rcs []RouteConfig, match func(host, path []byte) int, rw RewriteConfig) (*Routes, error) {
	if len(rcs) == 0 {
		return nil, errors.New("engine: no routes")
	}
	if match == nil {
		if len(rcs) != 1 {
			return nil, errors.New("engine: several routes need a match function")
		}
		match = func([]byte, []byte) int { return 0 }
	}
	rt := &Routes{match: match, trusted: rw.TrustedProxies}
	seen := map[*balance.Pool]bool{}
	for i, rc := range rcs {
		if rc.Pool == nil {
			return nil, fmt.Errorf("engine: route %d (%s): no pool", i, rc.Name)
		}
		if rc.LifetimeJitter < 0 || rc.LifetimeJitter > 0.5 {
			return nil, fmt.Errorf("engine: route %s: lifetime jitter %v: want 0..0.5", rc.Name, rc.LifetimeJitter)
		}
		r := &Route{
			name: rc.Name,
			Pool: rc.Pool,
			rewrite: handshake.RewriteOptions{
				HostMode:     rw.Host,
				HostLiteral:  rw.HostLiteral,
				Forwarded:    rw.Forwarded,
				KeepAllNames: rw.KeepAllNames,
			},
			key:       parseHashKey(rc.Pool),
			strip:     []byte(rc.StripPrefix),
			lifetime:  rc.MaxLifetime,
			jitter:    rc.LifetimeJitter,
			proxyV2:   rc.ProxyProtocol,
			origins:   byteSlices(rc.Origins),
			protocols: byteSlices(rc.Subprotocols),
			table:     rt,
		}
		if rc.Sticky != nil {
			s, err := newSticky(*rc.Sticky)
			if err != nil {
				return nil, fmt.Errorf("engine: route %s: %w", rc.Name, err)
			}
			r.sticky = s
		}
		rt.routes = append(rt.routes, r)
		if !seen[rc.Pool] {
			seen[rc.Pool] = true
			rt.pools = append(rt.pools, rc.Pool)
		}
	}
	return rt, nil
}

// trusts reports whether peer a may set X-Forwarded-* (and PROXY headers).
func (rt *Routes) trusts(a netip.Addr) bool {
	for _, p := range rt.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Pools returns every pool the routes send requests to.
func (rt *Routes) Pools() []*balance.Pool { return rt.pools }

func byteSlices(ss []string) [][]byte {
	var out [][]byte
	for _, s := range ss {
		out = append(out, []byte(s))
	}
	return out
}

// find returns the route of req, or nil.
func (rt *Routes) find(req *handshake.Request) *Route {
	i := rt.match(req.Host, req.Target)
	if i < 0 || i >= len(rt.routes) {
		return nil
	}
	return rt.routes[i]
}

// Route is a route of the current table.
type Route struct {
	name      string
	Pool      *balance.Pool
	rewrite   handshake.RewriteOptions
	key       hashKey
	strip     []byte
	origins   [][]byte
	protocols [][]byte
	lifetime  time.Duration
	jitter    float64
	sticky    *sticky
	proxyV2   bool
	table     *Routes
}

// target appends to dst the request target the backend receives, and
// returns nil when it is the client's unchanged.
func (r *Route) target(dst []byte, req *handshake.Request) []byte {
	if len(r.strip) == 0 || !bytes.HasPrefix(req.Target, r.strip) {
		return nil
	}
	rest := req.Target[len(r.strip):]
	dst = append(dst[:0], '/')
	if len(rest) > 0 && rest[0] == '/' {
		rest = rest[1:]
	}
	return append(dst, rest...)
}

// admit applies the route's WebSocket policy to req, returning the
// rejection to answer or nil.
func (r *Route) admit(req *handshake.Request) *handshake.Reject {
	if !req.IsWebSocket {
		return nil
	}
	if len(r.origins) > 0 && req.Origin != nil && !r.originAllowed(req.Origin) {
		return handshake.ErrForbiddenOrigin
	}
	if len(r.protocols) > 0 && !r.protocolOffered(req) {
		return handshake.ErrForbiddenProtocol
	}
	return nil
}

func (r *Route) originAllowed(origin []byte) bool {
	for _, o := range r.origins {
		if bytes.EqualFold(o, origin) {
			return true
		}
	}
	return false
}

// protocolOffered reports whether any Sec-WebSocket-Protocol field of req
// lists an allowed subprotocol (RFC 6455 4.1: a comma-separated list, and
// the field may repeat).
func (r *Route) protocolOffered(req *handshake.Request) bool {
	for _, h := range req.Headers {
		if !bytes.EqualFold(h.Name, []byte("Sec-WebSocket-Protocol")) {
			continue
		}
		v := h.Value
		for len(v) > 0 {
			var tok []byte
			if i := bytes.IndexByte(v, ','); i >= 0 {
				tok, v = v[:i], v[i+1:]
			} else {
				tok, v = v, nil
			}
			tok = bytes.TrimSpace(tok)
			for _, p := range r.protocols {
				if bytes.Equal(p, tok) {
					return true
				}
			}
		}
	}
	return false
}

// lifetimeTicks returns when a tunnel of this route started now must end,
// in ticks from now, jittered; 0 = never.
func (r *Route) lifetimeTicks() uint32 {
	if r.lifetime <= 0 {
		return 0
	}
	d := float64(r.lifetime)
	if r.jitter > 0 {
		d *= 1 + r.jitter*(2*rand.Float64()-1)
	}
	return max(1, ticks(time.Duration(d)))
}

// SetRoutes swaps the routing table: requests whose head is parsed from
// now on use rt; connections already past routing keep theirs. Pools new
// to the engine get its drain hand-off.
func (s *Server) SetRoutes(rt *Routes) {
	for _, p := range rt.pools {
		p.OnDrainDeadline(s.drainBackend)
	}
	s.routes.Store(rt)
}

// CurrentRoutes returns the routing table in use.
func (s *Server) CurrentRoutes() *Routes { return s.routes.Load() }
