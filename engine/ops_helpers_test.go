package engine

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsgate/wsgate/balance"
	"github.com/wsgate/wsgate/config"
)

// Helpers for the tests of the operator features (routes, limits, PROXY
// protocol, wss, sticky cookies, lifetime, periodic access log).

// newTestPool is a least_conn pool over addrs, closed at the end of the
// test.
func newTestPool(t testing.TB, addrs ...string) *balance.Pool {
	t.Helper()
	var bcs []balance.BackendConfig
	for _, a := range addrs {
		bcs = append(bcs, balance.BackendConfig{Addr: a})
	}
	p, err := balance.NewPool(balance.Config{Backends: bcs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// buildRoutes builds the engine's table from a config's routes the way
// serve does: the config's Router is the match function, StripPrefix
// strips the route's path. tweak, when set, adjusts each RouteConfig.
func buildRoutes(t testing.TB, routes []config.Route, pools map[string]*balance.Pool, rw RewriteConfig,
	tweak func(i int, rc *RouteConfig)) *Routes {
	t.Helper()
	cfg := config.Config{Routes: routes}
	router := cfg.Router()
	var rcs []RouteConfig
	for i, r := range router.Routes() {
		rc := RouteConfig{Name: r.Host + r.Path, Pool: pools[r.Pool]}
		if rc.Pool == nil {
			t.Fatalf("route %d names pool %q the test did not make", i, r.Pool)
		}
		if r.StripPrefix {
			rc.StripPrefix = r.Path
		}
		if tweak != nil {
			tweak(i, &rc)
		}
		rcs = append(rcs, rc)
	}
	rt, err := NewRoutes(rcs, router.Lookup, rw)
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

// getHead is a plain GET request head.
func getHead(host, target string, extra ...string) string {
	h := "GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\n"
	for _, e := range extra {
		h += e + "\r\n"
	}
	return h + "\r\n"
}

// plainAnswer is a response read off a raw connection, with its body.
type plainAnswer struct {
	*http.Response
	Body string
}

// readAnswer reads one response and its whole body from br.
func readAnswer(t testing.TB, br *bufio.Reader) plainAnswer {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading answer: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("reading answer body: %v", err)
	}
	return plainAnswer{resp, string(body)}
}

// roundTrip sends raw (a request, possibly preceded by a PROXY header) on
// a new connection to addr and reads the answer.
func roundTrip(t testing.TB, addr, raw string) plainAnswer {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	return readAnswer(t, bufio.NewReader(c))
}

// headerOf returns the value of field name in an answer head, or "".
func headerOf(head, name string) string {
	for _, line := range strings.Split(head, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// dialWSFrom opens a WebSocket through addr from source address src
// (127.0.0.2 and so on: every 127/8 address is local on Linux). It
// returns the answer's error instead of failing, for limits tests.
func dialWSFrom(addr, src, path string) (net.Conn, *bufio.Reader, error) {
	d := ws.Dialer{
		Timeout: 5 * time.Second,
		NetDial: func(ctx context.Context, network, a string) (net.Conn, error) {
			nd := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
			return nd.DialContext(ctx, network, a)
		},
	}
	c, br, _, err := d.Dial(context.Background(), "ws://"+addr+path)
	if err != nil {
		return nil, nil, err
	}
	if br == nil {
		br = bufio.NewReader(c)
	}
	return c, br, nil
}

// expectNoAnswer reads c until it closes and fails if any byte came: a
// connection wsgate drops without an HTTP answer.
func expectNoAnswer(t testing.TB, c net.Conn, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	if len(got) > 0 {
		t.Errorf("%s: got %q, want the connection closed without an answer", what, got)
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Errorf("%s: connection still open after 5s", what)
	}
}
