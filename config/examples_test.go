package config

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/balance"
)

// loadFull loads examples/full.yaml with its TLS paths pointed at a fresh
// self-signed certificate: no key is committed with the examples.
func loadFull(t *testing.T) *Config {
	t.Helper()
	dir := t.TempDir()
	writeCert(t, dir, "example.com", time.Now().Add(24*time.Hour))
	data, err := os.ReadFile("../examples/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	data = []byte(strings.ReplaceAll(string(data), "/etc/wsgate/tls/", dir+"/"))
	t.Setenv("WSGATE_STICKY_KEY", "test")
	c, warns, err := Parse(data, "full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) > 0 {
		t.Errorf("warnings: %q", warningStrings(warns))
	}
	return c
}

func TestNginxRecipe(t *testing.T) {
	c, warns, err := Load("../examples/nginx-recipe.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) > 0 {
		t.Errorf("warnings: %q", warningStrings(warns))
	}
	want := Default()
	want.Listeners = []Listener{DefaultListener(":8080")}
	want.Pools = map[string]Pool{"ws": DefaultPool("127.0.0.1:8010", "127.0.0.1:8011")}
	want.Headers.Host = "nginx"
	want.Timeouts.Idle = 300 * time.Second
	if got := exported(c); !reflect.DeepEqual(got, *want) {
		t.Errorf("nginx recipe:\n got %+v\nwant %+v", got, *want)
	}
	bc, ok := c.PoolConfig("ws")
	wantBC := balance.Config{
		Policy: balance.LeastConn, MaxFails: 1, FailTimeout: 10 * time.Second, HashKey: "ip",
		Backends: []balance.BackendConfig{{Addr: "127.0.0.1:8010", Weight: 1}, {Addr: "127.0.0.1:8011", Weight: 1}},
	}
	if !ok || !reflect.DeepEqual(bc, wantBC) {
		t.Errorf("PoolConfig = %+v, %v; want %+v", bc, ok, wantBC)
	}
	if _, ok := c.PoolConfig("nope"); ok {
		t.Error("PoolConfig of an unknown pool")
	}
	r := c.Router()
	if rt := r.MatchString("example.com", "/anything"); rt == nil || rt.Pool != "ws" {
		t.Errorf("implicit route = %+v", rt)
	}
}

func TestFullExample(t *testing.T) {
	c := loadFull(t)
	// Spot checks that every section was read, not defaulted.
	if len(c.Listeners) != 2 || c.Listeners[1].TLS == nil || c.Listeners[1].ReusePort != 4 || c.Listeners[1].Keepalive != 30*time.Second {
		t.Errorf("listeners = %+v", c.Listeners)
	}
	if len(c.Pools) != 3 || c.Pools["wss"].Sticky == nil || c.Pools["wss"].HealthCheck.Path != "/healthz" {
		t.Errorf("pools = %+v", c.Pools)
	}
	if h := c.Pools["chat"].HealthCheck; h == nil || *h != (HealthCheck{Type: "tcp", Interval: 5 * time.Second, Timeout: 2 * time.Second, Rise: 2, Fall: 3}) {
		t.Errorf("chat health = %+v", h)
	}
	if len(c.Routes) != 3 || c.Routes[2].LifetimeJitter != 10 || c.Routes[2].MaxLifetime != time.Hour {
		t.Errorf("routes = %+v", c.Routes)
	}
	if len(c.Headers.TrustedProxies) != 1 || len(c.Tunnel.SourceAddrs) != 2 {
		t.Errorf("headers %+v tunnel %+v", c.Headers, c.Tunnel)
	}
	// The seeds' routing: location /ws/ and location /wss to different pools.
	r := c.Router()
	for path, pool := range map[string]string{"/ws/": "ws", "/ws/x": "ws", "/wss": "wss", "/wss/socket.io/?EIO=4": "wss"} {
		if rt := r.MatchString("example.com", path); rt == nil || rt.Pool != pool {
			t.Errorf("%s → %+v, want pool %s", path, rt, pool)
		}
	}
	if rt := r.MatchString("example.com", "/ws"); rt != nil {
		t.Errorf("/ws → %+v, want none (location /ws/ does not match /ws)", rt)
	}
	if rt := r.MatchString("eu.chat.example.com:8443", "/ws/"); rt == nil || rt.Pool != "chat" {
		t.Errorf("chat host → %+v", rt)
	}
}

// TestFullExampleIsFull checks that full.yaml sets every field, so that it
// documents them all.
func TestFullExampleIsFull(t *testing.T) {
	c := loadFull(t)
	var missing []string
	var walk func(t reflect.Type, path string)
	walk = func(t reflect.Type, path string) {
		for _, f := range reflect.VisibleFields(t) {
			name := yamlName(f)
			if !f.IsExported() || name == "" {
				continue
			}
			p := join(path, name)
			if !c.src.setUnder(p) {
				missing = append(missing, p)
			}
			ft := f.Type
			for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice || ft.Kind() == reflect.Map {
				if ft.Kind() != reflect.Pointer {
					p += "[]"
				}
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct && !isScalarType(ft) {
				walk(ft, p)
			}
		}
	}
	walk(reflect.TypeFor[Config](), "")
	if missing != nil {
		t.Errorf("examples/full.yaml does not show %s", strings.Join(missing, ", "))
	}
}

// setUnder reports whether the file set path, where "[]" in path stands
// for any list index or map key.
func (s *source) setUnder(path string) bool {
	for p := range s.lines {
		if matchPattern(path, p) {
			return true
		}
	}
	return false
}

func matchPattern(pattern, path string) bool {
	for {
		before, after, found := strings.Cut(pattern, "[]")
		if !strings.HasPrefix(path, before) {
			return false
		}
		if !found {
			return path == before
		}
		path = path[len(before):]
		// Skip one "[i]" or ".key".
		switch {
		case strings.HasPrefix(path, "["):
			i := strings.IndexByte(path, ']')
			if i < 0 {
				return false
			}
			path = path[i+1:]
		case strings.HasPrefix(path, "."):
			i := strings.IndexAny(path[1:], ".[")
			if i < 0 {
				return false
			}
			path = path[i+1:]
		default:
			return false
		}
		pattern = after
	}
}

func isScalarType(t reflect.Type) bool {
	return t == durationType || t == percentType || t == prefixType || t == addrType
}

func TestRenderRoundTrip(t *testing.T) {
	nginx, _, err := Load("../examples/nginx-recipe.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*Config{"full": loadFull(t), "nginx": nginx} {
		t.Run(name, func(t *testing.T) {
			out := c.Render()
			again, warns, err := Parse(out, "rendered")
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if len(warns) > 0 {
				t.Errorf("warnings: %q", warningStrings(warns))
			}
			if a, b := exported(c), exported(again); !reflect.DeepEqual(a, b) {
				t.Errorf("round trip differs:\n got %+v\nwant %+v\n%s", b, a, out)
			}
			if d := Compare(c, again); !d.Empty() {
				t.Errorf("round trip diff: %s", d)
			}
			if out2 := again.Render(); string(out2[strings.IndexByte(string(out2), '\n'):]) != string(out[strings.IndexByte(string(out), '\n'):]) {
				t.Errorf("second render differs:\n%s\n---\n%s", out, out2)
			}
		})
	}
}

func TestRenderText(t *testing.T) {
	c, _, err := Parse([]byte(top("routes: [{path: /ws/, pool: ws, max_lifetime: 90m, lifetime_jitter: 2.5%, origins: [\"https://a.example\"]}]\nheaders: {trusted_proxies: [10.0.0.1]}\n")), "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out := string(c.Render())
	for _, want := range []string{
		"# wsgate effective configuration of x.yaml: every default filled in\n",
		"  - address: :8080\n",
		"    max_lifetime: 1h30m\n",
		"    lifetime_jitter: 2.5%\n",
		`    origins: ['https://a.example']` + "\n",
		"  trusted_proxies: [10.0.0.1/32]\n",
		"  backend_answer: 1m\n",
		"  source_addrs: []\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("render lacks %q:\n%s", want, out)
		}
	}
}

// TestBuiltInCode checks the path the command line takes: Default, fill
// in, Validate.
func TestBuiltInCode(t *testing.T) {
	c := Default()
	c.Listeners = []Listener{DefaultListener(":8080")}
	p := DefaultPool("127.0.0.1:8010")
	p.Backends = append(p.Backends, Backend{Address: "127.0.0.1:8011"}) // weight 0: not a default
	hc := DefaultHealthCheck("tcp")
	p.HealthCheck = &hc
	c.Pools = map[string]Pool{"default": p}
	_, err := c.Validate()
	if err == nil || err.Error() != "pools.default.backends[1].weight: 0: must be between 1 and 256" {
		t.Fatalf("Validate = %v", err)
	}
	p.Backends[1].Weight = 1
	if w, err := c.Validate(); err != nil || len(w) > 0 {
		t.Fatalf("Validate = %v, %v", w, err)
	}
	out := c.Render()
	again, _, err := Parse(out, "")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !reflect.DeepEqual(exported(again), *c) {
		t.Errorf("round trip:\n got %+v\nwant %+v", exported(again), *c)
	}
}
