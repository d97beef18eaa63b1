package admin

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/wsgate/wsgate/internal/testutil"
)

func TestListBackends(t *testing.T) {
	testutil.CheckLeaks(t)
	edge := newPool(t, "127.0.0.1:9001")
	_, c := startServer(t, Config{Pools: pools(
		NamedPool{DefaultPool, newPool(t, "127.0.0.1:8010", "127.0.0.1:8011")},
		NamedPool{"edge", edge},
	)})
	var bs Backends
	a := c.get("/backends")
	expect(t, a, http.StatusOK, "GET /backends")
	a.json(t, &bs)
	if len(bs.Backends) != 3 || bs.Backends[0].Pool != "default" || bs.Backends[2].Pool != "edge" || bs.Backends[2].Address != "127.0.0.1:9001" {
		t.Fatalf("backends: %+v", bs)
	}
	c.get("/backends?pool=edge").json(t, &bs)
	if len(bs.Backends) != 1 || bs.Backends[0].Address != "127.0.0.1:9001" {
		t.Fatalf("pool=edge: %+v", bs)
	}
	a = c.get("/backends?pool=nope")
	expect(t, a, http.StatusNotFound, "unknown pool")
	if e := a.apiErr(t); e.Parameter != "pool" {
		t.Errorf("unknown pool error does not name the parameter: %+v", e)
	}

	var b Backend
	a = c.get("/backends/127.0.0.1:9001")
	expect(t, a, http.StatusOK, "GET one backend")
	a.json(t, &b)
	if b.Pool != "edge" || b.Address != "127.0.0.1:9001" || b.State != "up" {
		t.Fatalf("backend: %+v", b)
	}
	a = c.get("/backends/127.0.0.1:1")
	expect(t, a, http.StatusNotFound, "unknown backend")
	if e := a.apiErr(t); !strings.Contains(e.Error, "127.0.0.1:1") {
		t.Errorf("404 does not name the address: %+v", e)
	}
}

// TestAddBackend: 201 with the new backend; 400 naming the bad parameter;
// 409 for a duplicate; the pool is needed only when there are several.
func TestAddBackend(t *testing.T) {
	testutil.CheckLeaks(t)
	def := newPool(t, "127.0.0.1:8010")
	_, c := startServer(t, Config{Pools: pools(NamedPool{DefaultPool, def})})
	a := c.do("POST", "/backends", AddBackend{Address: "127.0.0.1:8012", Weight: 3, MaxConns: 100})
	expect(t, a, http.StatusCreated, "add")
	var b Backend
	a.json(t, &b)
	if b.Pool != DefaultPool || b.Address != "127.0.0.1:8012" || b.Weight != 3 || b.MaxConns != 100 || b.State != "up" {
		t.Fatalf("added: %+v", b)
	}
	if def.Lookup("127.0.0.1:8012") == nil {
		t.Fatal("not in the pool")
	}
	// The weight defaults to 1.
	expect(t, c.do("POST", "/backends", `{"address": "127.0.0.1:8013"}`), http.StatusCreated, "add without weight")
	if w := def.Lookup("127.0.0.1:8013").Weight(); w != 1 {
		t.Errorf("default weight %d", w)
	}

	bad := []struct {
		body  string
		code  int
		param string
	}{
		{`{"address": "nohost"}`, 400, "address"},
		{`{"address": ""}`, 400, "address"},
		{`{"address": "127.0.0.1:8014", "weight": 999}`, 400, "weight"},
		{`{"address": "127.0.0.1:8014", "weight": -1}`, 400, "weight"},
		{`{"address": "127.0.0.1:8014", "max_conns": -5}`, 400, "max_conns"},
		{`{"address": "127.0.0.1:8014", "wieght": 2}`, 400, "body"},
		{`not json`, 400, "body"},
		{`{"address": "127.0.0.1:8010"}`, 409, "address"},
		{`{"address": "127.0.0.1:8014", "pool": "nope"}`, 404, "pool"},
	}
	for _, tc := range bad {
		a := c.do("POST", "/backends", tc.body)
		if a.code != tc.code {
			t.Errorf("POST /backends %s: %d, want %d: %s", tc.body, a.code, tc.code, a.body)
			continue
		}
		if e := a.apiErr(t); e.Parameter != tc.param {
			t.Errorf("POST /backends %s: parameter %q, want %q (%s)", tc.body, e.Parameter, tc.param, e.Error)
		}
	}
	if def.Lookup("127.0.0.1:8014") != nil {
		t.Fatal("a refused backend was added")
	}

	// Two pools: say which.
	edge := newPool(t, "127.0.0.1:9001")
	_, c2 := startServer(t, Config{Pools: pools(NamedPool{DefaultPool, newPool(t, "127.0.0.1:8010")}, NamedPool{"edge", edge})})
	a = c2.do("POST", "/backends", AddBackend{Address: "127.0.0.1:9002"})
	expect(t, a, http.StatusBadRequest, "add without a pool among two")
	if e := a.apiErr(t); e.Parameter != "pool" || !strings.Contains(e.Error, "default, edge") {
		t.Errorf("error %+v", e)
	}
	expect(t, c2.do("POST", "/backends", AddBackend{Pool: "edge", Address: "127.0.0.1:9002"}), http.StatusCreated, "add to edge")
	if edge.Lookup("127.0.0.1:9002") == nil {
		t.Fatal("not added to edge")
	}
}

// TestRemoveBackend: a backend without tunnels leaves at once (200); one
// with tunnels drains and leaves with its last tunnel (202).
func TestRemoveBackend(t *testing.T) {
	testutil.CheckLeaks(t)
	def := newPool(t, "127.0.0.1:8010", "127.0.0.1:8011")
	_, c := startServer(t, Config{Pools: pools(NamedPool{DefaultPool, def})})

	var rm Removed
	a := c.do("DELETE", "/backends/127.0.0.1:8011", nil)
	expect(t, a, http.StatusOK, "remove an idle backend")
	a.json(t, &rm)
	if rm != (Removed{Pool: DefaultPool, Address: "127.0.0.1:8011", Removed: true}) || def.Lookup("127.0.0.1:8011") != nil {
		t.Fatalf("removed: %+v", rm)
	}

	lease, err := def.Pick(nil, nil) // the one left: 127.0.0.1:8010
	if err != nil {
		t.Fatal(err)
	}
	a = c.do("DELETE", "/backends/127.0.0.1:8010?deadline=1h&spread=10s", nil)
	expect(t, a, http.StatusAccepted, "remove a busy backend")
	var b Backend
	a.json(t, &b)
	if b.State != "draining" || b.Drain == nil || !b.Drain.Removing || b.Drain.Active != 1 || b.Drain.ActiveAtStart != 1 || b.Drain.SpreadSeconds != 10 {
		t.Fatalf("removing: %+v %+v", b, b.Drain)
	}
	lease.Done()
	waitFor(t, "the removal to complete", func() bool { return def.Lookup("127.0.0.1:8010") == nil })

	expect(t, c.do("DELETE", "/backends/127.0.0.1:8010", nil), http.StatusNotFound, "remove it again")
	a = c.do("DELETE", "/backends/127.0.0.1:1?deadline=-1s", nil)
	expect(t, a, http.StatusNotFound, "an unknown backend is 404 before its parameters are read")
}

// TestBackendInSeveralPools: /backends/{addr} finds an address in any
// pool; one in several needs ?pool=.
func TestBackendInSeveralPools(t *testing.T) {
	testutil.CheckLeaks(t)
	a1 := newPool(t, "127.0.0.1:8010", "127.0.0.1:8011")
	a2 := newPool(t, "127.0.0.1:8011")
	_, c := startServer(t, Config{Pools: pools(NamedPool{"one", a1}, NamedPool{"two", a2})})
	a := c.post("/backends/127.0.0.1:8011/drain")
	expect(t, a, http.StatusBadRequest, "ambiguous address")
	if e := a.apiErr(t); e.Parameter != "pool" || !strings.Contains(e.Error, "one, two") {
		t.Errorf("error %+v", e)
	}
	a = c.post("/backends/127.0.0.1:8011/drain?pool=two")
	expect(t, a, http.StatusOK, "drain in pool two")
	var b Backend
	a.json(t, &b)
	if b.Pool != "two" || b.State != "draining" || a1.Lookup("127.0.0.1:8011").State().String() != "up" {
		t.Fatalf("drained the wrong one: %+v", b)
	}
	expect(t, c.post("/backends/127.0.0.1:8010/drain"), http.StatusOK, "an address in one pool needs no ?pool=")
	expect(t, c.post("/backends/127.0.0.1:8010/drain?pool=two"), http.StatusNotFound, "not in that pool")
	expect(t, c.post("/backends/127.0.0.1:8010/drain?pool=three"), http.StatusNotFound, "no such pool")
}

// TestBackendAddressEscaping: addresses are path segments; an IPv6 one is
// sent escaped by careful clients and raw by others.
func TestBackendAddressEscaping(t *testing.T) {
	testutil.CheckLeaks(t)
	_, c := startServer(t, Config{Pools: pools(NamedPool{DefaultPool, newPool(t, "[::1]:8010", "localhost:8011")})})
	for _, p := range []string{"/backends/" + url.PathEscape("[::1]:8010"), "/backends/[::1]:8010", "/backends/localhost:8011"} {
		expect(t, c.get(p), http.StatusOK, "GET "+p)
	}
}
