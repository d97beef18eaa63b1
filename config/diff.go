package config

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// ChangeKind says how a part of the configuration changed.
type ChangeKind uint8

const (
	Added ChangeKind = iota + 1
	Removed
	Modified
)

func (k ChangeKind) String() string {
	switch k {
	case Added:
		return "added"
	case Removed:
		return "removed"
	case Modified:
		return "modified"
	}
	return "ChangeKind(" + fmt.Sprint(uint8(k)) + ")"
}

// Diff is what a reload changes, from one valid Config to the next. The
// engine swaps routes and pools live; it cannot re-open listeners, so any
// listener change (and a few settings, see SettingChange.Restart) needs a
// restart or a SIGUSR2 upgrade, and NeedsRestart says so.
type Diff struct {
	Listeners []ListenerChange // by address
	Pools     []PoolChange     // by name, in name order
	Routes    []RouteChange    // by host and path; apply by swapping the whole Router
	Settings  []SettingChange  // every other field that differs, by path
}

// ListenerChange is a listener added, removed, or with other settings
// (Fields: the yaml names that differ). Every one needs a restart.
type ListenerChange struct {
	Address string
	Kind    ChangeKind
	Fields  []string
}

// PoolChange is a pool added, removed or modified. For Modified, Fields
// lists pool settings that differ (policy, health_check, ...: the pool has
// to be rebuilt), and the backend lists what balance.Pool's Add,
// Remove (drain) and SetWeight/SetMaxConns apply in place.
type PoolChange struct {
	Name   string
	Kind   ChangeKind
	Fields []string

	BackendsAdded    []Backend
	BackendsRemoved  []string  // addresses
	BackendsModified []Backend // same address, new weight or max_conns
}

// RouteChange is a route added, removed or with other settings (Fields),
// named by its host and path, which are unique.
type RouteChange struct {
	Host, Path string
	Kind       ChangeKind
	Fields     []string
}

// SettingChange is any other field that differs, with both values as the
// file writes them.
type SettingChange struct {
	Path     string // e.g. "timeouts.idle"
	Old, New string
	// Restart: the engine reads it only at start (the splice loops, the
	// admin listener), so it takes effect after a restart.
	Restart bool
}

// restartSettings are the settings outside listeners that a running
// engine reads only at start: its loops are made with their mode, timers
// and dialer settings, the access log is opened once, and the admin server
// owns its listener. A reload applies routes, pools, headers, limits,
// certificates, the log level and the drain timeouts; the rest takes a
// restart, or a SIGUSR2 binary upgrade, which drops no tunnel.
var restartSettings = map[string]bool{
	"timeouts.header":         true,
	"timeouts.connect":        true,
	"timeouts.backend_answer": true,
	"timeouts.idle":           true,
	"timeouts.close":          true,
	"tunnel.mode":             true,
	"tunnel.io_uring":         true,
	"tunnel.loops":            true,
	"tunnel.tries":            true,
	"tunnel.source_addrs":     true,
	"access_log.output":       true,
	"access_log.interval":     true,
	"admin.address":           true,
	"admin.token_env":         true,
}

// Compare returns what changes from old to next.
func Compare(old, next *Config) Diff {
	var d Diff
	d.Listeners = compareListeners(old.Listeners, next.Listeners)
	for _, name := range unionKeys(old.Pools, next.Pools) {
		a, inOld := old.Pools[name]
		b, inNext := next.Pools[name]
		switch {
		case !inOld:
			d.Pools = append(d.Pools, PoolChange{Name: name, Kind: Added, BackendsAdded: b.Backends})
		case !inNext:
			d.Pools = append(d.Pools, PoolChange{Name: name, Kind: Removed})
		default:
			if pc, changed := comparePool(name, a, b); changed {
				d.Pools = append(d.Pools, pc)
			}
		}
	}
	d.Routes = compareRoutes(old.Routes, next.Routes)
	ov, nv := reflect.ValueOf(old).Elem(), reflect.ValueOf(next).Elem()
	for _, f := range reflect.VisibleFields(ov.Type()) {
		name := yamlName(f)
		if !f.IsExported() || name == "listeners" || name == "pools" || name == "routes" {
			continue
		}
		a, b := ov.FieldByIndex(f.Index), nv.FieldByIndex(f.Index)
		if f.Type.Kind() != reflect.Struct {
			d.settings(name, a, b)
			continue
		}
		for _, sf := range reflect.VisibleFields(f.Type) {
			d.settings(name+"."+yamlName(sf), a.FieldByIndex(sf.Index), b.FieldByIndex(sf.Index))
		}
	}
	return d
}

func (d *Diff) settings(path string, a, b reflect.Value) {
	if reflect.DeepEqual(a.Interface(), b.Interface()) {
		return
	}
	d.Settings = append(d.Settings, SettingChange{Path: path, Old: text(a), New: text(b), Restart: restartSettings[path]})
}

// text writes a value as Render does, on one line.
func text(v reflect.Value) string {
	b, err := yamlOneLine(encode(v))
	if err != nil {
		return fmt.Sprint(v.Interface())
	}
	return b
}

func compareListeners(old, next []Listener) []ListenerChange {
	var out []ListenerChange
	byAddr := map[string]Listener{}
	for _, l := range old {
		byAddr[l.Address] = l
	}
	seen := map[string]bool{}
	for _, l := range next {
		seen[l.Address] = true
		o, ok := byAddr[l.Address]
		switch {
		case !ok:
			out = append(out, ListenerChange{Address: l.Address, Kind: Added})
		default:
			if f := changedFields(o, l); f != nil {
				out = append(out, ListenerChange{Address: l.Address, Kind: Modified, Fields: f})
			}
		}
	}
	for _, l := range old {
		if !seen[l.Address] {
			out = append(out, ListenerChange{Address: l.Address, Kind: Removed})
		}
	}
	return out
}

func comparePool(name string, a, b Pool) (PoolChange, bool) {
	pc := PoolChange{Name: name, Kind: Modified, Fields: changedFields(a, b, "backends")}
	old := map[string]Backend{}
	for _, be := range a.Backends {
		old[be.Address] = be
	}
	seen := map[string]bool{}
	for _, be := range b.Backends {
		seen[be.Address] = true
		switch o, ok := old[be.Address]; {
		case !ok:
			pc.BackendsAdded = append(pc.BackendsAdded, be)
		case o != be:
			pc.BackendsModified = append(pc.BackendsModified, be)
		}
	}
	for _, be := range a.Backends {
		if !seen[be.Address] {
			pc.BackendsRemoved = append(pc.BackendsRemoved, be.Address)
		}
	}
	changed := pc.Fields != nil || pc.BackendsAdded != nil || pc.BackendsRemoved != nil || pc.BackendsModified != nil
	return pc, changed
}

func compareRoutes(old, next []Route) []RouteChange {
	key := func(r Route) string { return strings.ToLower(strings.TrimSuffix(r.Host, ".")) + " " + r.Path }
	var out []RouteChange
	byKey := map[string]Route{}
	for _, r := range old {
		byKey[key(r)] = r
	}
	seen := map[string]bool{}
	for _, r := range next {
		seen[key(r)] = true
		o, ok := byKey[key(r)]
		switch {
		case !ok:
			out = append(out, RouteChange{Host: r.Host, Path: r.Path, Kind: Added})
		default:
			if f := changedFields(o, r); f != nil {
				out = append(out, RouteChange{Host: r.Host, Path: r.Path, Kind: Modified, Fields: f})
			}
		}
	}
	for _, r := range old {
		if !seen[key(r)] {
			out = append(out, RouteChange{Host: r.Host, Path: r.Path, Kind: Removed})
		}
	}
	return out
}

// changedFields returns the yaml names of a's and b's fields that differ,
// except skip.
func changedFields(a, b any, skip ...string) []string {
	av, bv := reflect.ValueOf(a), reflect.ValueOf(b)
	var out []string
	for _, f := range reflect.VisibleFields(av.Type()) {
		name := yamlName(f)
		if !f.IsExported() || name == "" || slices.Contains(skip, name) {
			continue
		}
		if !reflect.DeepEqual(av.FieldByIndex(f.Index).Interface(), bv.FieldByIndex(f.Index).Interface()) {
			out = append(out, name)
		}
	}
	return out
}

func unionKeys(a, b map[string]Pool) []string {
	u := &Config{Pools: map[string]Pool{}}
	for k, v := range a {
		u.Pools[k] = v
	}
	for k, v := range b {
		u.Pools[k] = v
	}
	return poolNames(u)
}

// Empty reports a reload that changes nothing.
func (d Diff) Empty() bool {
	return len(d.Listeners) == 0 && len(d.Pools) == 0 && len(d.Routes) == 0 && len(d.Settings) == 0
}

// NeedsRestart reports changes a running engine cannot apply.
func (d Diff) NeedsRestart() bool {
	if len(d.Listeners) > 0 {
		return true
	}
	for _, s := range d.Settings {
		if s.Restart {
			return true
		}
	}
	return false
}

// String is the diff for a log or an API answer, one change per line:
//
//	listener ":8443" added: needs restart
//	pool "ws": backend "127.0.0.1:8012" added
//	timeouts.idle: 5m → 10m
func (d Diff) String() string {
	var b strings.Builder
	line := func(format string, args ...any) {
		fmt.Fprintf(&b, format+"\n", args...)
	}
	for _, l := range d.Listeners {
		line("listener %q %s%s: needs restart", l.Address, l.Kind, fields(l.Fields))
	}
	for _, p := range d.Pools {
		if p.Kind != Modified || p.Fields != nil {
			line("pool %q %s%s", p.Name, p.Kind, fields(p.Fields))
		}
		if p.Kind == Added {
			continue
		}
		for _, be := range p.BackendsAdded {
			line("pool %q: backend %q added", p.Name, be.Address)
		}
		for _, a := range p.BackendsRemoved {
			line("pool %q: backend %q removed (drained)", p.Name, a)
		}
		for _, be := range p.BackendsModified {
			line("pool %q: backend %q modified (weight %d, max_conns %d)", p.Name, be.Address, be.Weight, be.MaxConns)
		}
	}
	for _, r := range d.Routes {
		line("route %q %s%s", r.Host+r.Path, r.Kind, fields(r.Fields))
	}
	for _, s := range d.Settings {
		restart := ""
		if s.Restart {
			restart = ": needs restart"
		}
		line("%s: %s → %s%s", s.Path, s.Old, s.New, restart)
	}
	return b.String()
}

func fields(f []string) string {
	if f == nil {
		return ""
	}
	return " (" + strings.Join(f, ", ") + ")"
}
