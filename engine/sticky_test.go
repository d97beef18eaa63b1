package engine

import (
	"bufio"
	"net"
	"strings"
	"testing"

	"github.com/wsgate/wsgate/balance"
	"github.com/wsgate/wsgate/internal/testutil"
	"github.com/wsgate/wsgate/internal/wsecho"
)

const stickyCookie = "WSGATE_BE"

// stickyAnswer is what one request through a sticky route got: the
// backend that answered and the cookie value set, if any.
type stickyAnswer struct {
	backend, cookie string
	attrs           string
}

// parseSetCookie returns the value and attributes of a Set-Cookie for
// stickyCookie, or "", "".
func parseSetCookie(v string) (value, attrs string) {
	pair, attrs, _ := strings.Cut(v, ";")
	name, value, ok := strings.Cut(pair, "=")
	if !ok || name != stickyCookie {
		return "", ""
	}
	return value, strings.TrimSpace(attrs)
}

// stickyGet sends a plain GET with the given Cookie field ("" = none).
func stickyGet(t *testing.T, addr, cookie string) stickyAnswer {
	t.Helper()
	var extra []string
	if cookie != "" {
		extra = append(extra, "Cookie: "+cookie)
	}
	ans := roundTrip(t, addr, getHead("x", "/", extra...))
	if ans.StatusCode != 200 {
		t.Fatalf("GET: %d", ans.StatusCode)
	}
	if n := len(ans.Header.Values("Set-Cookie")); n > 1 {
		t.Fatalf("%d Set-Cookie fields", n)
	}
	v, attrs := parseSetCookie(ans.Header.Get("Set-Cookie"))
	return stickyAnswer{ans.Header.Get("X-Echo-Server"), v, attrs}
}

// stickyUpgrade opens a WebSocket with the given Cookie field and keeps
// it open until the end of the test.
func stickyUpgrade(t *testing.T, addr, cookie string) (stickyAnswer, net.Conn, *bufio.Reader) {
	t.Helper()
	var extra []string
	if cookie != "" {
		extra = append(extra, "Cookie: "+cookie)
	}
	c, br, ans := rawUpgrade(t, addr, upgradeHead("x", "/", extra...), nil)
	if statusOf(ans) != 101 {
		t.Fatalf("upgrade: %q", ans)
	}
	echoOnce(t, c, br, []byte("x"))
	if n := strings.Count(strings.ToLower(ans), "\r\nset-cookie:"); n > 1 {
		t.Fatalf("%d Set-Cookie fields in %q", n, ans)
	}
	v, attrs := parseSetCookie(headerOf(ans, "Set-Cookie"))
	return stickyAnswer{headerOf(ans, "X-Echo-Server"), v, attrs}, c, br
}

func startSticky(t *testing.T) (*balance.Pool, string, map[string]string) {
	pool, addr, addrOf, _ := startStickyEchoes(t)
	return pool, addr, addrOf
}

func startStickyEchoes(t *testing.T) (*balance.Pool, string, map[string]string, map[string]*wsecho.Server) {
	a, b := startEcho(t, "a"), startEcho(t, "b")
	pool := newTestPool(t, a.Addr(), b.Addr())
	rt, err := NewRoutes([]RouteConfig{{Name: "/", Pool: pool, Sticky: &Sticky{Cookie: stickyCookie, Key: []byte("test key")}}}, nil, RewriteConfig{})
	if err != nil {
		t.Fatal(err)
	}
	_, addr := startProxy(t, []string{a.Addr()}, func(c *Config) { c.Routes = rt })
	return pool, addr, map[string]string{"a": a.Addr(), "b": b.Addr()}, map[string]*wsecho.Server{"a": a, "b": b}
}

// TestStickyCookie: an answer to a request without the cookie (a 101 or
// a plain answer) sets one naming the chosen backend, opaquely; requests
// carrying it all go to that backend, even when least_conn would choose
// the other, and are not told the cookie again.
func TestStickyCookie(t *testing.T) {
	testutil.CheckLeaks(t)
	_, addr, addrOf := startSticky(t)

	// Without a cookie requests are balanced (least_conn breaks ties
	// round-robin), and each answer names its backend.
	tokenOf := map[string]string{}
	for i := 0; i < 6; i++ {
		a := stickyGet(t, addr, "")
		if a.cookie == "" {
			t.Fatalf("answer %d without a cookie", i)
		}
		if old, ok := tokenOf[a.backend]; ok && old != a.cookie {
			t.Errorf("backend %s named %q and %q", a.backend, old, a.cookie)
		}
		tokenOf[a.backend] = a.cookie
		if a.attrs != "Path=/; HttpOnly; SameSite=Lax" {
			t.Errorf("cookie attributes %q", a.attrs)
		}
	}
	if len(tokenOf) != 2 || tokenOf["a"] == tokenOf["b"] {
		t.Fatalf("tokens by backend %v: want two different ones", tokenOf)
	}
	for name, tok := range tokenOf {
		_, port, _ := net.SplitHostPort(addrOf[name])
		if strings.Contains(tok, port) || strings.Contains(tok, "127") || len(tok) < 20 {
			t.Errorf("token %q for %s is not opaque", tok, addrOf[name])
		}
	}
	up, _, _ := stickyUpgrade(t, addr, "")
	if up.cookie == "" || up.cookie != tokenOf[up.backend] {
		t.Fatalf("101 without a cookie: %+v, want the cookie of %s", up, up.backend)
	}

	// Pinned to a: 10 open tunnels to a (least_conn alone would now send
	// everything to b), then 20 requests, plain and upgrades, all on a.
	pin := stickyCookie + "=" + tokenOf["a"]
	for i := 0; i < 10; i++ {
		if got, _, _ := stickyUpgrade(t, addr, pin); got.backend != "a" || got.cookie != "" {
			t.Fatalf("pinned upgrade %d: %+v", i, got)
		}
	}
	for i := 0; i < 20; i++ {
		var got stickyAnswer
		if i%2 == 0 {
			got = stickyGet(t, addr, pin)
		} else {
			got, _, _ = stickyUpgrade(t, addr, pin)
		}
		if got.backend != "a" || got.cookie != "" {
			t.Fatalf("pinned request %d: %+v, want backend a and no new cookie", i, got)
		}
	}
	// Among other cookies, too.
	if got := stickyGet(t, addr, "theme=dark; "+pin+"; sid=42"); got.backend != "a" {
		t.Errorf("cookie among others: %+v", got)
	}
	// Unpinned requests now go to b, the less loaded.
	if got := stickyGet(t, addr, ""); got.backend != "b" || got.cookie != tokenOf["b"] {
		t.Errorf("unpinned with a loaded: %+v", got)
	}
}

// TestStickyCookieForged: a tampered, unknown or foreign cookie — a client
// trying to pick its backend — is balanced as usual and told a fresh,
// valid cookie.
func TestStickyCookieForged(t *testing.T) {
	testutil.CheckLeaks(t)
	pool, addr, addrOf := startSticky(t)
	first := stickyGet(t, addr, "")
	second := stickyGet(t, addr, "")
	tokenOf := map[string]string{first.backend: first.cookie, second.backend: second.cookie}
	if len(tokenOf) != 2 {
		t.Fatalf("two requests went to %v", tokenOf)
	}
	// Hold tunnels to a so that balancing picks b: a forged cookie that
	// worked would send its request to a.
	for i := 0; i < 3; i++ {
		stickyUpgrade(t, addr, stickyCookie+"="+tokenOf["a"])
	}
	tok := tokenOf["a"]
	flip := func(k int) string {
		c := byte('A')
		if tok[k] == 'A' {
			c = 'B'
		}
		return tok[:k] + string(c) + tok[k+1:]
	}
	for _, forged := range []string{
		stickyCookie + "=" + flip(0),
		stickyCookie + "=" + flip(len(tok)/2),
		stickyCookie + "=" + flip(len(tok)-1),
		stickyCookie + "=" + tok[:len(tok)-1],
		stickyCookie + "=" + tok + "x",
		stickyCookie + "=" + strings.ToLower(tok),
		stickyCookie + "=127.0.0.1",
		stickyCookie + "=",
		"wsgate_be=" + tok, // cookie names are case-sensitive
		"X" + stickyCookie + "=" + tok,
	} {
		if forged == stickyCookie+"="+strings.ToLower(tok) && strings.ToLower(tok) == tok {
			continue
		}
		for _, upgrade := range []bool{false, true} {
			var got stickyAnswer
			if upgrade {
				var c net.Conn
				got, c, _ = stickyUpgrade(t, addr, forged)
				c.Close()
				waitFor(t, func() bool { return pool.Lookup(addrOf["b"]).Active() == 0 })
			} else {
				got = stickyGet(t, addr, forged)
			}
			if got.backend != "b" || got.cookie != tokenOf["b"] {
				t.Errorf("Cookie %q (upgrade %v): %+v, want balanced to b with b's cookie", forged, upgrade, got)
			}
		}
	}
}

// TestStickyCookieDrained: while the pinned backend drains, requests
// carrying its cookie go to the other backend and are given its cookie;
// once it is back, the old cookie pins again.
func TestStickyCookieDrained(t *testing.T) {
	testutil.CheckLeaks(t)
	pool, addr, addrOf := startSticky(t)
	tokenOf := map[string]string{}
	for len(tokenOf) < 2 {
		a := stickyGet(t, addr, "")
		tokenOf[a.backend] = a.cookie
	}
	pinA := stickyCookie + "=" + tokenOf["a"]
	_, held, hbr := stickyUpgrade(t, addr, pinA)
	if err := pool.Drain(addrOf["a"], 0, 0); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if got := stickyGet(t, addr, pinA); got.backend != "b" || got.cookie != tokenOf["b"] {
			t.Fatalf("pinned to a draining backend, request %d: %+v, want b with b's cookie", i, got)
		}
		if got, _, _ := stickyUpgrade(t, addr, pinA); got.backend != "b" || got.cookie != tokenOf["b"] {
			t.Fatalf("pinned to a draining backend, upgrade %d: %+v", i, got)
		}
	}
	echoOnce(t, held, hbr, []byte("the tunnel to the draining backend carries on"))
	if err := pool.Undrain(addrOf["a"]); err != nil {
		t.Fatal(err)
	}
	if got := stickyGet(t, addr, pinA); got.backend != "a" || got.cookie != "" {
		t.Errorf("after undrain: %+v, want a again", got)
	}
}

// TestStickyCookieBackendDown: when the pinned backend refuses
// connections, a request carrying its cookie is retried on the other
// backend and told that one's cookie.
func TestStickyCookieBackendDown(t *testing.T) {
	testutil.CheckLeaks(t)
	_, addr, _, echoes := startStickyEchoes(t)
	tokenOf := map[string]string{}
	for len(tokenOf) < 2 {
		a := stickyGet(t, addr, "")
		tokenOf[a.backend] = a.cookie
	}
	echoes["a"].Close()
	pinA := stickyCookie + "=" + tokenOf["a"]
	for i := 0; i < 3; i++ {
		if got := stickyGet(t, addr, pinA); got.backend != "b" || got.cookie != tokenOf["b"] {
			t.Fatalf("pinned to a dead backend, request %d: %+v, want b with b's cookie", i, got)
		}
		if got, _, _ := stickyUpgrade(t, addr, pinA); got.backend != "b" || got.cookie != tokenOf["b"] {
			t.Fatalf("pinned to a dead backend, upgrade %d: %+v", i, got)
		}
	}
}
