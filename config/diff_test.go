package config

import (
	"reflect"
	"testing"
)

const diffBase = `listeners:
  - address: ":8080"
  - address: ":8081"
pools:
  ws:
    backends:
      - address: 127.0.0.1:8010
      - address: 127.0.0.1:8011
  wss:
    backends: [{address: 127.0.0.1:8020}]
routes:
  - {path: /ws/, pool: ws}
  - {path: /wss, pool: wss}
`

func mustParse(t *testing.T, yaml string) *Config {
	t.Helper()
	c, _, err := Parse([]byte(yaml), "t.yaml")
	if err != nil {
		t.Fatalf("%v\n%s", err, yaml)
	}
	return c
}

func TestCompare(t *testing.T) {
	cases := []struct {
		name    string
		next    string
		want    Diff
		text    string
		restart bool
	}{
		{name: "same", next: diffBase},
		{name: "same, spelt out", next: diffBase + "timeouts: {idle: 5m, header: 10s}\nlog_level: info\n"},
		{
			name: "backends added, removed, modified",
			next: `listeners:
  - address: ":8080"
  - address: ":8081"
pools:
  ws:
    backends:
      - address: 127.0.0.1:8011
        weight: 3
      - address: 127.0.0.1:8012
  wss:
    backends: [{address: 127.0.0.1:8020}]
routes:
  - {path: /ws/, pool: ws}
  - {path: /wss, pool: wss}
`,
			want: Diff{Pools: []PoolChange{{
				Name: "ws", Kind: Modified,
				BackendsAdded:    []Backend{{Address: "127.0.0.1:8012", Weight: 1}},
				BackendsRemoved:  []string{"127.0.0.1:8010"},
				BackendsModified: []Backend{{Address: "127.0.0.1:8011", Weight: 3}},
			}}},
			text: `pool "ws": backend "127.0.0.1:8012" added` + "\n" +
				`pool "ws": backend "127.0.0.1:8010" removed (drained)` + "\n" +
				`pool "ws": backend "127.0.0.1:8011" modified (weight 3, max_conns 0)` + "\n",
		},
		{
			name: "pool settings, pool added and removed, routes",
			next: `listeners:
  - address: ":8080"
  - address: ":8081"
pools:
  ws:
    policy: round_robin
    health_check: {type: tcp}
    backends:
      - address: 127.0.0.1:8010
      - address: 127.0.0.1:8011
  chat:
    backends: [{address: 127.0.0.1:8030}]
routes:
  - {path: /ws/, pool: ws, max_lifetime: 1h}
  - {path: /chat/, pool: chat}
`,
			want: Diff{
				Pools: []PoolChange{
					{Name: "chat", Kind: Added, BackendsAdded: []Backend{{Address: "127.0.0.1:8030", Weight: 1}}},
					{Name: "ws", Kind: Modified, Fields: []string{"policy", "health_check"}},
					{Name: "wss", Kind: Removed},
				},
				Routes: []RouteChange{
					{Path: "/ws/", Kind: Modified, Fields: []string{"max_lifetime"}},
					{Path: "/chat/", Kind: Added},
					{Path: "/wss", Kind: Removed},
				},
			},
			text: `pool "chat" added` + "\n" +
				`pool "ws" modified (policy, health_check)` + "\n" +
				`pool "wss" removed` + "\n" +
				`route "/ws/" modified (max_lifetime)` + "\n" +
				`route "/chat/" added` + "\n" +
				`route "/wss" removed` + "\n",
		},
		{
			name: "listeners need a restart",
			next: `listeners:
  - address: ":8080"
    reuseport: 4
  - address: ":8443"
` + diffBase[len("listeners:\n  - address: \":8080\"\n  - address: \":8081\"\n"):],
			want: Diff{Listeners: []ListenerChange{
				{Address: ":8080", Kind: Modified, Fields: []string{"reuseport"}},
				{Address: ":8443", Kind: Added},
				{Address: ":8081", Kind: Removed},
			}},
			text: `listener ":8080" modified (reuseport): needs restart` + "\n" +
				`listener ":8443" added: needs restart` + "\n" +
				`listener ":8081" removed: needs restart` + "\n",
			restart: true,
		},
		{
			name: "settings",
			next: diffBase + "timeouts: {idle: 10m}\nheaders: {trusted_proxies: [10.0.0.0/8]}\ntunnel: {loops: 8}\n",
			want: Diff{Settings: []SettingChange{
				{Path: "timeouts.idle", Old: "5m", New: "10m", Restart: true},
				{Path: "headers.trusted_proxies", Old: "[]", New: "[10.0.0.0/8]"},
				{Path: "tunnel.loops", Old: "0", New: "8", Restart: true},
			}},
			text:    "timeouts.idle: 5m → 10m: needs restart\nheaders.trusted_proxies: [] → [10.0.0.0/8]\ntunnel.loops: 0 → 8: needs restart\n",
			restart: true,
		},
		{
			name: "admin address",
			next: diffBase + "admin: {address: \"127.0.0.1:9999\"}\nlog_level: debug\n",
			want: Diff{Settings: []SettingChange{
				{Path: "admin.address", Old: "127.0.0.1:9090", New: "127.0.0.1:9999", Restart: true},
				{Path: "log_level", Old: "info", New: "debug"},
			}},
			text:    "admin.address: 127.0.0.1:9090 → 127.0.0.1:9999: needs restart\nlog_level: info → debug\n",
			restart: true,
		},
	}
	old := mustParse(t, diffBase)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := Compare(old, mustParse(t, tc.next))
			if !reflect.DeepEqual(d, tc.want) {
				t.Errorf("Compare:\n got %+v\nwant %+v", d, tc.want)
			}
			if s := d.String(); s != tc.text {
				t.Errorf("String:\n got %q\nwant %q", s, tc.text)
			}
			if d.NeedsRestart() != tc.restart {
				t.Errorf("NeedsRestart = %v", d.NeedsRestart())
			}
			if d.Empty() != (tc.text == "") {
				t.Errorf("Empty = %v", d.Empty())
			}
		})
	}
}
