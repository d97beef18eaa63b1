package config

import (
	"testing"
)

func routerOf(routes ...Route) *Router {
	c := Default()
	c.Pools = map[string]Pool{}
	for i := range routes {
		if routes[i].Path == "" {
			routes[i].Path = "/"
		}
		c.Pools[routes[i].Pool] = DefaultPool("127.0.0.1:1")
	}
	c.Routes = routes
	return c.Router()
}

func TestMatch(t *testing.T) {
	r := routerOf(
		Route{Path: "/", Pool: "any"},
		Route{Path: "/ws/", Pool: "ws"},
		Route{Path: "/wss", Pool: "wss"},
		Route{Host: "*.example.com", Path: "/", Pool: "wild"},
		Route{Host: "*.eu.example.com", Path: "/", Pool: "wild-eu"},
		Route{Host: "*.example.com", Path: "/ws/", Pool: "wild-ws"},
		Route{Host: "API.example.com", Path: "/v2/", Pool: "api"},
		Route{Host: "[::1]", Path: "/", Pool: "v6"},
		Route{Host: "10.0.0.1", Path: "/x", Pool: "v4"},
	)
	cases := []struct{ host, path, pool string }{
		// Any host: the longest prefix, as nginx prefix locations.
		{"other.org", "/", "any"},
		{"other.org", "/ws", "any"},
		{"other.org", "/ws/", "ws"},
		{"other.org", "/ws/chat?room=1", "ws"},
		{"other.org", "/wss", "wss"},
		{"other.org", "/wss/socket.io/", "wss"},
		{"other.org", "/wssx", "wss"},
		{"other.org", "", "any"},
		{"", "/ws/", "ws"},
		// Wildcards: a subdomain, not the domain itself; longest wins.
		{"a.example.com", "/", "wild"},
		{"a.b.example.com", "/ws/x", "wild-ws"},
		{"example.com", "/", "any"},
		{"xexample.com", "/", "any"},
		{"fr.eu.example.com", "/ws/", "wild-eu"},
		{"A.Example.COM", "/", "wild"},
		// Exact beats wildcard; its routes fall through for other paths.
		{"api.example.com", "/v2/users", "api"},
		{"Api.Example.Com:443", "/v2/", "api"},
		{"api.example.com.", "/v2/", "api"},
		{"api.example.com", "/v1/", "wild"},
		{"api.example.com", "/ws/", "wild-ws"},
		// Ports are ignored; IPv6 hosts keep their brackets.
		{"a.example.com:8443", "/", "wild"},
		{"[::1]:8080", "/", "v6"},
		{"[::1]", "/ws/", "v6"},
		{"10.0.0.1:80", "/x", "v4"},
		{"10.0.0.1", "/y", "any"},
	}
	for _, tc := range cases {
		rt := r.Match([]byte(tc.host), []byte(tc.path))
		if rt == nil || rt.Pool != tc.pool {
			t.Errorf("Match(%q, %q) = %+v, want pool %s", tc.host, tc.path, rt, tc.pool)
		}
		if s := r.MatchString(tc.host, tc.path); s != rt {
			t.Errorf("MatchString(%q, %q) = %+v, Match %+v", tc.host, tc.path, s, rt)
		}
		if i := r.Lookup([]byte(tc.host), []byte(tc.path)); i < 0 || &r.Routes()[i] != rt {
			t.Errorf("Lookup(%q, %q) = %d", tc.host, tc.path, i)
		}
	}
}

func TestMatchNone(t *testing.T) {
	r := routerOf(Route{Path: "/ws/", Pool: "ws"}, Route{Host: "a.example.com", Path: "/", Pool: "a"})
	for _, tc := range []struct{ host, path string }{{"b.example.com", "/"}, {"", ""}, {"b", "/w"}} {
		if rt := r.MatchString(tc.host, tc.path); rt != nil {
			t.Errorf("Match(%q, %q) = %+v, want none", tc.host, tc.path, rt)
		}
		if i := r.Lookup([]byte(tc.host), []byte(tc.path)); i != -1 {
			t.Errorf("Lookup(%q, %q) = %d, want -1", tc.host, tc.path, i)
		}
	}
	// No routes, one pool: everything goes to it; two pools: nothing
	// (Validate refuses that config).
	c := Default()
	c.Pools = map[string]Pool{"only": DefaultPool("h:1")}
	if rt := c.Router().MatchString("x", "/y"); rt == nil || rt.Pool != "only" || rt.LifetimeJitter != DefaultLifetimeJitter {
		t.Errorf("implicit route = %+v", rt)
	}
	c.Pools["two"] = DefaultPool("h:2")
	if rt := c.Router().MatchString("x", "/y"); rt != nil {
		t.Errorf("two pools, no routes: %+v", rt)
	}
}

func TestMatchAllocs(t *testing.T) {
	r := benchRouter()
	host, path := []byte("Chat.Example.com:443"), []byte("/ws/room/42?token=x")
	if n := testing.AllocsPerRun(100, func() { r.Match(host, path) }); n != 0 {
		t.Errorf("Match allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { r.MatchString("chat.example.com", "/ws/room") }); n != 0 {
		t.Errorf("MatchString allocates %v times", n)
	}
}

// benchRouter is a realistic table: a dozen routes over three hosts.
func benchRouter() *Router {
	return routerOf(
		Route{Path: "/", Pool: "web"},
		Route{Path: "/ws/", Pool: "ws"},
		Route{Path: "/wss", Pool: "wss"},
		Route{Path: "/socket.io/", Pool: "sio"},
		Route{Path: "/api/", Pool: "api"},
		Route{Host: "*.example.com", Path: "/", Pool: "wild"},
		Route{Host: "*.example.com", Path: "/ws/", Pool: "wild-ws"},
		Route{Host: "chat.example.com", Path: "/ws/", Pool: "chat"},
		Route{Host: "chat.example.com", Path: "/ws/room/", Pool: "rooms"},
		Route{Host: "chat.example.com", Path: "/admin/", Pool: "admin"},
		Route{Host: "api.example.com", Path: "/v1/", Pool: "v1"},
		Route{Host: "api.example.com", Path: "/v2/", Pool: "v2"},
	)
}

func BenchmarkMatch(b *testing.B) {
	r := benchRouter()
	for _, bc := range []struct{ name, host, path string }{
		{"exact", "chat.example.com:443", "/ws/room/42?token=x"},
		{"wildcard", "eu.example.com", "/ws/feed"},
		{"any", "other.org", "/socket.io/?EIO=4&transport=websocket"},
	} {
		host, path := []byte(bc.host), []byte(bc.path)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r.Match(host, path)
			}
		})
	}
}
