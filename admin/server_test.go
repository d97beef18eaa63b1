package admin

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/testutil"
)

// mutations lists every endpoint that changes something; each must need
// the token.
var mutations = []struct{ method, path string }{
	{"POST", "/backends"},
	{"DELETE", "/backends/127.0.0.1:8010"},
	{"POST", "/backends/127.0.0.1:8010/drain"},
	{"POST", "/backends/127.0.0.1:8010/undrain"},
	{"POST", "/drain"},
	{"POST", "/undrain"},
	{"POST", "/reload"},
}

var reads = []string{"/", "/static/app.js", "/stats", "/stats/history", "/metrics", "/healthz", "/readyz", "/backends", "/backends/127.0.0.1:8010"}

// TestAuth: with a token, every mutation answers 401 without one (with a
// WWW-Authenticate challenge) and 403 with a wrong one, and does nothing;
// reads need none.
func TestAuth(t *testing.T) {
	testutil.CheckLeaks(t)
	fe := &fakeEngine{}
	_, c := startServer(t, Config{Token: "s3cret-token", Engine: fe})
	anon := newClient(t, c.base, "")
	wrong := newClient(t, c.base, "s3cret-tokeX")
	for _, m := range mutations {
		a := anon.do(m.method, m.path, nil)
		expect(t, a, http.StatusUnauthorized, m.method+" "+m.path+" without a token")
		if e := a.apiErr(t); !strings.Contains(e.Error, "Bearer") {
			t.Errorf("401 message %q does not say how to authenticate", e.Error)
		}
		if h := a.header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer") {
			t.Errorf("401 without a Bearer challenge: %q", h)
		}
		a = wrong.do(m.method, m.path, nil)
		expect(t, a, http.StatusForbidden, m.method+" "+m.path+" with a wrong token")
		a.apiErr(t)
		for _, h := range []string{"Basic czNjcmV0LXRva2Vu", "Bearer", "s3cret-token"} {
			a = anon.do(m.method, m.path, nil, "Authorization", h)
			expect(t, a, http.StatusUnauthorized, m.method+" "+m.path+" with Authorization: "+h)
		}
	}
	if fe.pauses != 0 || len(fe.drainCalls()) != 0 {
		t.Fatal("a refused request reached the engine")
	}
	for _, p := range reads {
		expect(t, anon.get(p), http.StatusOK, "GET "+p+" without a token")
	}
	// The right token passes; the scheme is case-insensitive (RFC 9110 §11.1).
	expect(t, c.post("/drain?deadline=0"), http.StatusOK, "POST /drain with the token")
	expect(t, anon.do("POST", "/undrain", nil, "Authorization", "bearer s3cret-token"), http.StatusOK, "lower-case bearer")
}

// TestNoTokenNoAuth: without a token, mutations need none (the address is
// loopback).
func TestNoTokenNoAuth(t *testing.T) {
	testutil.CheckLeaks(t)
	_, c := startServer(t, Config{})
	expect(t, c.post("/backends/127.0.0.1:8010/drain"), http.StatusOK, "drain without a token configured")
	// A token sent anyway is ignored.
	expect(t, c.do("POST", "/backends/127.0.0.1:8010/undrain", nil, "Authorization", "Bearer x"), http.StatusOK, "undrain")
}

// TestTokenCompareConstantTime: the comparison hashes both sides, so its
// time does not depend on where the guess goes wrong or on its length.
// Timed directly (not over sockets) and compared by the fastest of many
// rounds, loosely: other work on the machine (other tests, other
// packages' tests) only ever adds time, so the fastest round is the
// comparison's own cost, and an early-exit comparison differs by far more
// than the margin.
func TestTokenCompareConstantTime(t *testing.T) {
	token := strings.Repeat("k", 64)
	s, err := New(Config{Engine: &fakeEngine{}, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	if !s.tokenOK(token) || s.tokenOK(token[:63]) || s.tokenOK(token+"k") || s.tokenOK("") {
		t.Fatal("tokenOK gives wrong answers")
	}
	// A long guess costs more to hash; what must not show is how much of
	// the token it got right, so the equal-length guesses are compared.
	// Rounds interleave the guesses so that drift (CPU frequency) hits
	// them alike.
	guesses := []struct{ name, guess string }{
		{"first byte wrong", "X" + token[1:]},
		{"last byte wrong", token[:63] + "X"},
		{"right", token},
		{"short", "k"},
		{"long", strings.Repeat("k", 4096)},
	}
	const rounds, per = 61, 500
	fastest := make([]time.Duration, len(guesses))
	for r := -1; r < rounds; r++ { // round -1 warms up
		for i, g := range guesses {
			start := time.Now()
			for range per {
				s.tokenOK(g.guess)
			}
			if d := time.Since(start); r >= 0 && (fastest[i] == 0 || d < fastest[i]) {
				fastest[i] = d
			}
		}
	}
	first, last, right := fastest[0], fastest[1], fastest[2]
	lo, hi := min(first, last, right), max(first, last, right)
	if float64(hi) > 1.5*float64(lo) {
		t.Errorf("comparison time depends on the guess: first byte wrong %v, last byte wrong %v, right %v (per %d)", first, last, right, per)
	}
}

// TestRefuseExposedWithoutToken: a non-loopback address without a token
// refuses to start, saying why and what to do; with a token it starts.
func TestRefuseExposedWithoutToken(t *testing.T) {
	testutil.CheckLeaks(t)
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:0"} {
		s, err := New(Config{Engine: &fakeEngine{}, Addr: addr})
		if err != nil {
			t.Fatal(err)
		}
		err = s.Listen()
		if err == nil {
			s.Close()
			t.Fatalf("%s without a token: started", addr)
		}
		if !errors.Is(err, ErrNoToken) || !strings.Contains(err.Error(), "--admin-token") || !strings.Contains(err.Error(), addr) {
			t.Errorf("%s: unclear refusal: %v", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0", "localhost:0"} {
		s, err := New(Config{Engine: &fakeEngine{}, Addr: addr})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Listen(); err != nil {
			if addr == "[::1]:0" && strings.Contains(err.Error(), "cannot assign") {
				continue // no IPv6 loopback here
			}
			t.Fatalf("%s: %v", addr, err)
		}
		s.Close()
	}
	s, err := New(Config{Engine: &fakeEngine{}, Addr: "0.0.0.0:0", Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatalf("0.0.0.0 with a token: %v", err)
	}
	s.Close()
}

// TestBrowserAttacks: without a token the API trusts loopback, so it must
// refuse what a hostile web page can make a browser on this host send:
// cross-origin mutations (CSRF) and requests under a rebound DNS name.
func TestBrowserAttacks(t *testing.T) {
	testutil.CheckLeaks(t)
	fe := &fakeEngine{}
	_, c := startServer(t, Config{Engine: fe})
	a := c.do("POST", "/drain", nil, "Origin", "http://evil.example")
	expect(t, a, http.StatusForbidden, "cross-origin POST /drain")
	a.apiErr(t)
	a = c.do("GET", "/stats", nil, "Host", "evil.example:9090")
	expect(t, a, http.StatusForbidden, "GET /stats under a foreign Host")
	a.apiErr(t)
	if fe.pauses != 0 {
		t.Fatal("a refused request paused the engine")
	}
	// What the dashboard itself sends passes.
	host := strings.TrimPrefix(c.base, "http://")
	expect(t, c.do("POST", "/undrain", nil, "Origin", c.base), http.StatusOK, "same-origin POST")
	expect(t, c.do("GET", "/stats", nil, "Host", "localhost:"+host[strings.LastIndexByte(host, ':')+1:]), http.StatusOK, "Host localhost")
	// With a token the Host is not checked (the API may be behind a name).
	_, ct := startServer(t, Config{Token: "t"})
	expect(t, ct.do("GET", "/stats", nil, "Host", "admin.example"), http.StatusOK, "named Host with a token")
}

// TestUnknownEndpoint: JSON 404 for unknown paths; a wrong method is 405.
func TestUnknownEndpoint(t *testing.T) {
	testutil.CheckLeaks(t)
	_, c := startServer(t, Config{})
	a := c.get("/nope")
	expect(t, a, http.StatusNotFound, "GET /nope")
	a.apiErr(t)
	expect(t, c.do("PUT", "/stats", nil), http.StatusMethodNotAllowed, "PUT /stats")
	expect(t, c.get("/drain"), http.StatusMethodNotAllowed, "GET /drain")
}

func TestCloseStopsEverything(t *testing.T) {
	testutil.CheckLeaks(t)
	s, c := startServer(t, Config{})
	expect(t, c.post("/drain?deadline=1h"), http.StatusOK, "drain with a deadline")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
}
