package engine

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws/wsutil"

	"github.com/wsgate/wsgate/balance"
	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/handshake"
	"github.com/wsgate/wsgate/internal/testutil"
)

// twoPools starts pools "a" (echoes a1, a2) and "b" (b1, b2): a backend's
// name starts with its pool's.
func twoPools(t *testing.T) map[string]*balance.Pool {
	a1, a2 := startEcho(t, "a1"), startEcho(t, "a2")
	b1, b2 := startEcho(t, "b1"), startEcho(t, "b2")
	return map[string]*balance.Pool{
		"a": newTestPool(t, a1.Addr(), a2.Addr()),
		"b": newTestPool(t, b1.Addr(), b2.Addr()),
	}
}

// TestRoutesHostAndPath: the config's router picks the pool — an exact
// host before a wildcard before any host, the longest path within a host
// — the prefix is stripped where the route says so, and a request no
// route matches is answered 404 no_route without reaching a backend.
func TestRoutesHostAndPath(t *testing.T) {
	testutil.CheckLeaks(t)
	pools := twoPools(t)
	rt := buildRoutes(t, []config.Route{
		{Host: "api.example.com", Path: "/", Pool: "b"},
		{Host: "*.example.com", Path: "/", Pool: "a"},
		{Host: "*.example.com", Path: "/b/", Pool: "b"},
		{Path: "/b/", Pool: "b", StripPrefix: true},
		{Path: "/a/", Pool: "a"},
	}, pools, RewriteConfig{}, nil)
	srv, addr := startProxy(t, []string{refusedAddr(t)}, func(c *Config) { c.Routes = rt })

	cases := []struct {
		host, target string
		pool         string // "" = 404
		backendSees  string // the target the backend receives
	}{
		{"api.example.com", "/x", "b", "/x"},
		{"API.Example.COM:8080", "/x", "b", "/x"},         // case and port ignored
		{"api.example.com", "/b/x", "b", "/b/x"},          // the exact host wins over the stripping route
		{"www.example.com", "/x", "a", "/x"},              // wildcard
		{"deep.www.example.com", "/x", "a", "/x"},         // wildcard, two labels
		{"www.example.com", "/b/x", "b", "/b/x"},          // longest path of the wildcard host, not stripped
		{"other.org", "/b/x?q=1", "b", "/x?q=1"},          // any host, stripped
		{"other.org", "/b/", "b", "/"},                    // stripped to the root
		{"other.org", "/a/x", "a", "/a/x"},                // any host, not stripped
		{"other.org", "/c", "", ""},                       // no route
		{"example.com", "/x", "", ""},                     // "*.example.com" wants a label before it
		{"other.org", "/b", "", ""},                       // "/b/" is not a prefix of "/b"
		{"api.example.com.evil.org", "/x", "", ""},        // not the exact host
		{"www.example.com:8080", "/b/y?z", "b", "/b/y?z"}, // port ignored for wildcards too
		{"[::1]:8080", "/a/v", "a", "/a/v"},               // an IPv6 Host matches host-less routes
		{"xexample.com", "/a/", "a", "/a/"},               // not a subdomain: host-less route
		{"other.org", "/a", "", ""},                       // path prefixes are plain byte prefixes
		{"other.org", "/a/../b/x", "a", "/a/../b/x"},      // no normalization: what the backend gets
		{"WWW.EXAMPLE.COM", "/b/" + strings.Repeat("z", 50), // long targets are stripped only where asked
			"b", "/b/" + strings.Repeat("z", 50)},
	}
	want404 := 0
	for _, tc := range cases {
		ans := roundTrip(t, addr, getHead(tc.host, tc.target))
		if tc.pool == "" {
			want404++
			if ans.StatusCode != 404 || ans.Body != handshake.ErrNoRoute.Text+"\n" {
				t.Errorf("Host %s %s: %d %q, want 404 %q", tc.host, tc.target, ans.StatusCode, ans.Body, handshake.ErrNoRoute.Text)
			}
			continue
		}
		name := ans.Header.Get("X-Echo-Server")
		if ans.StatusCode != 200 || !strings.HasPrefix(name, tc.pool) {
			t.Errorf("Host %s %s: %d from %q, want 200 from pool %s", tc.host, tc.target, ans.StatusCode, name, tc.pool)
			continue
		}
		if line := "\nGET " + tc.backendSees + " HTTP/1.1\n"; !strings.Contains(ans.Body, line) {
			t.Errorf("Host %s %s: backend saw\n%s\nwant request line %q", tc.host, tc.target, ans.Body, line[1:])
		}
		if !strings.Contains(ans.Body, "\nHost: "+tc.host+"\n") {
			t.Errorf("Host %s %s: Host not preserved:\n%s", tc.host, tc.target, ans.Body)
		}
	}
	if n := srv.Stats().Rejects["no_route"]; n != uint64(want404) {
		t.Errorf("no_route counted %d times, want %d", n, want404)
	}

	// An upgrade through the stripping route: the backend's 101 and its
	// report of the head show the stripped target.
	c, br, ans := rawUpgrade(t, addr, upgradeHead("other.org", "/b/ws?headers=1"), nil)
	if statusOf(ans) != 101 || !strings.HasPrefix(headerOf(ans, "X-Echo-Server"), "b") {
		t.Fatalf("upgrade through /b/: %q", ans)
	}
	msg, err := wsutil.ReadServerText(struct {
		io.Reader
		io.Writer
	}{br, c})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(msg), "\nGET /ws?headers=1 HTTP/1.1\n") {
		t.Errorf("backend saw the upgrade as\n%s", msg)
	}
	echoOnce(t, c, br, []byte("through a stripped route"))
}

// TestSetRoutesKeepsOpenTunnels: swapping the table sends new requests by
// the new one while a tunnel opened under the old one keeps working, also
// when the new table has no route for it any more.
func TestSetRoutesKeepsOpenTunnels(t *testing.T) {
	testutil.CheckLeaks(t)
	pools := twoPools(t)
	first := buildRoutes(t, []config.Route{{Path: "/", Pool: "a"}}, pools, RewriteConfig{}, nil)
	srv, addr := startProxy(t, []string{refusedAddr(t)}, func(c *Config) { c.Routes = first })

	old, obr, ans := rawUpgrade(t, addr, upgradeHead("x", "/chat"), nil)
	if statusOf(ans) != 101 || !strings.HasPrefix(headerOf(ans, "X-Echo-Server"), "a") {
		t.Fatalf("first table: %q", ans)
	}
	echoOnce(t, old, obr, []byte("before"))

	second := buildRoutes(t, []config.Route{{Path: "/", Pool: "b"}}, pools, RewriteConfig{}, nil)
	srv.SetRoutes(second)
	if srv.CurrentRoutes() != second {
		t.Fatal("CurrentRoutes is not the table just set")
	}
	for i := 0; i < 4; i++ {
		c, br, ans := rawUpgrade(t, addr, upgradeHead("x", "/chat"), nil)
		if statusOf(ans) != 101 || !strings.HasPrefix(headerOf(ans, "X-Echo-Server"), "b") {
			t.Fatalf("second table, tunnel %d: %q", i, ans)
		}
		echoOnce(t, c, br, []byte("new"))
		c.Close()
	}
	echoOnce(t, old, obr, []byte("after the swap"))

	// A table without a route for /chat: new requests get 404, the old
	// tunnel still carries bytes.
	third := buildRoutes(t, []config.Route{{Path: "/other/", Pool: "b"}}, pools, RewriteConfig{}, nil)
	srv.SetRoutes(third)
	if _, _, ans := rawUpgrade(t, addr, upgradeHead("x", "/chat"), nil); statusOf(ans) != 404 {
		t.Fatalf("third table: %q, want 404", ans)
	}
	echoOnce(t, old, obr, []byte("after its route is gone"))
	// The four closed tunnels end once the loop has read their clients'
	// EOFs, which may be just after this point.
	deadline := time.Now().Add(2 * time.Second)
	for srv.Stats().TunnelsActive != 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if st := srv.Stats(); st.TunnelsActive != 1 {
		t.Errorf("%d tunnels active, want the old one", st.TunnelsActive)
	}
}

// TestOriginAllowList: with Origins set, a WebSocket handshake from
// another origin is refused 403 origin_forbidden before any backend is
// dialled; an allowed origin (in any case) and no Origin at all pass, and
// plain requests are not subject to the WebSocket policy.
func TestOriginAllowList(t *testing.T) {
	testutil.CheckLeaks(t)
	b := startEcho(t, "a")
	pool := newTestPool(t, b.Addr())
	rt, err := NewRoutes([]RouteConfig{{Name: "/", Pool: pool, Origins: []string{"https://app.example.com", "http://localhost:3000"}}}, nil, RewriteConfig{})
	if err != nil {
		t.Fatal(err)
	}
	srv, addr := startProxy(t, []string{b.Addr()}, func(c *Config) { c.Routes = rt })

	refused := 0
	for _, tc := range []struct {
		origin string // "" = no Origin field
		want   int
	}{
		{"https://evil.example", 403},
		{"https://app.example.com.evil.example", 403},
		{"http://app.example.com", 403}, // another scheme is another origin
		{"null", 403},
		{"https://app.example.com", 101},
		{"HTTPS://APP.EXAMPLE.COM", 101},
		{"http://localhost:3000", 101},
		{"", 101},
	} {
		var extra []string
		if tc.origin != "" {
			extra = append(extra, "Origin: "+tc.origin)
		}
		c, br, ans := rawUpgrade(t, addr, upgradeHead("x", "/", extra...), nil)
		if statusOf(ans) != tc.want {
			t.Errorf("Origin %q: %q, want %d", tc.origin, ans, tc.want)
			continue
		}
		if tc.want == 101 {
			echoOnce(t, c, br, []byte("allowed"))
			continue
		}
		refused++
		if body, _ := io.ReadAll(br); string(body) != handshake.ErrForbiddenOrigin.Text+"\n" {
			t.Errorf("Origin %q: body %q", tc.origin, body)
		}
	}
	ans := roundTrip(t, addr, getHead("x", "/", "Origin: https://evil.example"))
	if ans.StatusCode != 200 {
		t.Errorf("plain GET with a foreign Origin: %d, want 200 (the policy is for WebSocket handshakes)", ans.StatusCode)
	}
	if n := srv.Stats().Rejects["origin_forbidden"]; n != uint64(refused) {
		t.Errorf("origin_forbidden counted %d, want %d", n, refused)
	}
}

// TestSubprotocolAllowList: with Subprotocols set, a handshake must offer
// at least one of them, in any element of a comma-separated list or of a
// repeated Sec-WebSocket-Protocol field; otherwise 403
// subprotocol_forbidden.
func TestSubprotocolAllowList(t *testing.T) {
	testutil.CheckLeaks(t)
	b := startEcho(t, "a")
	pool := newTestPool(t, b.Addr())
	rt, err := NewRoutes([]RouteConfig{{Name: "/", Pool: pool, Subprotocols: []string{"mqtt", "v2.chat"}}}, nil, RewriteConfig{})
	if err != nil {
		t.Fatal(err)
	}
	srv, addr := startProxy(t, []string{b.Addr()}, func(c *Config) { c.Routes = rt })

	refused := 0
	for _, tc := range []struct {
		fields []string
		want   int
	}{
		{nil, 403},
		{[]string{"Sec-WebSocket-Protocol: chat"}, 403},
		{[]string{"Sec-WebSocket-Protocol: chat, superchat"}, 403},
		{[]string{"Sec-WebSocket-Protocol: mqttx, v2"}, 403}, // whole tokens only
		{[]string{"Sec-WebSocket-Protocol: chat", "Sec-WebSocket-Protocol: superchat"}, 403},
		{[]string{"Sec-WebSocket-Protocol: mqtt"}, 101},
		{[]string{"Sec-WebSocket-Protocol: chat, v2.chat"}, 101},
		{[]string{"Sec-WebSocket-Protocol: chat ,  mqtt  "}, 101},
		{[]string{"Sec-WebSocket-Protocol: chat", "Sec-WebSocket-Protocol: superchat, v2.chat"}, 101},
	} {
		c, br, ans := rawUpgrade(t, addr, upgradeHead("x", "/", tc.fields...), nil)
		if statusOf(ans) != tc.want {
			t.Errorf("%q: %q, want %d", tc.fields, ans, tc.want)
			continue
		}
		if tc.want == 101 {
			echoOnce(t, c, br, []byte("allowed"))
			continue
		}
		refused++
		if body, _ := io.ReadAll(br); string(body) != handshake.ErrForbiddenProtocol.Text+"\n" {
			t.Errorf("%q: body %q", tc.fields, body)
		}
	}
	if n := srv.Stats().Rejects["subprotocol_forbidden"]; n != uint64(refused) {
		t.Errorf("subprotocol_forbidden counted %d, want %d", n, refused)
	}
}
