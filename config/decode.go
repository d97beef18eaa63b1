package config

import (
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// The file is decoded from yaml.Node by this package rather than by
// yaml.v3's Decode with KnownFields(true): that way every error names the
// field path and its line (yaml.v3's name the Go type), durations are
// strings with a unit ("10s", never a bare number of nanoseconds), a
// duplicate key is an error (yaml.v3 checks that only when decoding into
// Go values, not into Nodes), and the line of every field is kept so that
// validation messages can point at it too.

// source locates a config's fields in the file it was read from.
type source struct {
	file  string
	lines map[string]int // field path → line of its key or list item
}

// line returns the line of path, or of its nearest ancestor in the file
// (a missing field is reported where its section is), or 0.
func (s *source) line(path string) int {
	if s == nil {
		return 0
	}
	for path != "" {
		if n, ok := s.lines[path]; ok {
			return n
		}
		path = parent(path)
	}
	return 0
}

// set reports whether the file set path (as opposed to a default).
func (s *source) set(path string) bool {
	if s == nil {
		return false
	}
	_, ok := s.lines[path]
	return ok
}

// parent strips the last ".name" or "[i]" from path.
func parent(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

type decoder struct {
	src   *source
	errs  []Issue
	nodes int // decoded so far, against alias bombs
}

// maxNodes bounds the nodes one file may expand to: aliases can make a
// few lines of YAML expand exponentially ("billion laughs"), and no real
// configuration comes near it.
const maxNodes = 100_000

func (d *decoder) fail(n *yaml.Node, path, value, msg string) {
	d.errs = append(d.errs, Issue{File: d.src.file, Line: n.Line, Path: path, Value: value, Msg: msg})
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	percentType  = reflect.TypeFor[Percent]()
	prefixType   = reflect.TypeFor[netip.Prefix]()
	addrType     = reflect.TypeFor[netip.Addr]()
)

// decode reads n into v. A null (an empty value, or ~) leaves v as it is:
// it means "not set", so the default stays.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	n = deref(n)
	if d.nodes++; d.nodes > maxNodes {
		if d.nodes == maxNodes+1 {
			d.fail(n, path, "", "the file expands to too many values (aliases?)")
		}
		return
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return
	}
	switch v.Type() {
	case durationType:
		d.duration(n, v, path)
		return
	case percentType:
		d.percent(n, v, path)
		return
	case prefixType:
		d.prefix(n, v, path)
		return
	case addrType:
		if s, ok := d.scalar(n, path, "an IP address"); ok {
			a, err := netip.ParseAddr(s)
			if err != nil {
				d.fail(n, path, shown(n), "want an IP address")
				return
			}
			v.Set(reflect.ValueOf(a))
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		p := fresh(v.Type().Elem())
		d.decode(n, p.Elem(), path)
		v.Set(p)
	case reflect.Struct:
		d.structure(n, v, path)
	case reflect.Map:
		d.dict(n, v, path)
	case reflect.Slice:
		d.list(n, v, path)
	case reflect.String:
		if s, ok := d.scalar(n, path, "a string"); ok {
			v.SetString(s)
		}
	case reflect.Int:
		if _, ok := d.scalar(n, path, "an integer"); !ok {
			return
		}
		i, err := strconv.ParseInt(n.Value, 0, 64)
		if n.ShortTag() != "!!int" || err != nil {
			d.fail(n, path, shown(n), "want an integer")
			return
		}
		v.SetInt(i)
	case reflect.Bool:
		if _, ok := d.scalar(n, path, "true or false"); !ok {
			return
		}
		b, err := strconv.ParseBool(n.Value)
		if n.ShortTag() != "!!bool" || err != nil {
			d.fail(n, path, shown(n), "want true or false")
			return
		}
		v.SetBool(b)
	default:
		panic("config: no decoding for " + v.Type().String())
	}
}

// scalar returns n's text, or reports that path wants one (what).
func (d *decoder) scalar(n *yaml.Node, path, what string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.fail(n, path, "", "want "+what+", not "+kind(n))
		return "", false
	}
	return n.Value, true
}

// duration reads a Go duration string. A bare number is refused (except
// 0): "timeout: 30" is seconds to some readers and milliseconds to others.
func (d *decoder) duration(n *yaml.Node, v reflect.Value, path string) {
	s, ok := d.scalar(n, path, "a duration")
	if !ok {
		return
	}
	if n.ShortTag() == "!!int" || n.ShortTag() == "!!float" {
		if s == "0" {
			v.SetInt(0)
			return
		}
		d.fail(n, path, s, "want a duration with a unit, like 10s")
		return
	}
	t, err := time.ParseDuration(s)
	if err != nil {
		d.fail(n, path, shown(n), "want a duration like 10s or 1h30m")
		return
	}
	v.SetInt(int64(t))
}

// percent reads "10%", or a plain 10 meaning the same.
func (d *decoder) percent(n *yaml.Node, v reflect.Value, path string) {
	s, ok := d.scalar(n, path, "a percentage")
	if !ok {
		return
	}
	num, isPct := strings.CutSuffix(s, "%")
	if !isPct && n.ShortTag() != "!!int" && n.ShortTag() != "!!float" {
		d.fail(n, path, shown(n), "want a percentage like 10%")
		return
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil {
		d.fail(n, path, shown(n), "want a percentage like 10%")
		return
	}
	v.SetFloat(f)
}

// prefix reads a CIDR, or an address meaning just that address (as
// nginx's set_real_ip_from).
func (d *decoder) prefix(n *yaml.Node, v reflect.Value, path string) {
	s, ok := d.scalar(n, path, "a CIDR")
	if !ok {
		return
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		a, aerr := netip.ParseAddr(s)
		if aerr != nil || a.Zone() != "" {
			d.fail(n, path, shown(n), "want a CIDR like 10.0.0.0/8, or an address")
			return
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	v.Set(reflect.ValueOf(p))
}

func (d *decoder) list(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.SequenceNode {
		d.fail(n, path, shown(n), "want a list, not "+kind(n))
		return
	}
	if len(n.Content) == 0 {
		v.SetZero() // nil, so that an empty list and none compare equal
		return
	}
	s := reflect.MakeSlice(v.Type(), 0, len(n.Content))
	for i, item := range n.Content {
		p := index(path, i)
		d.src.lines[p] = item.Line
		e := fresh(v.Type().Elem())
		d.decode(item, e.Elem(), p)
		s = reflect.Append(s, e.Elem())
	}
	v.Set(s)
}

func (d *decoder) dict(n *yaml.Node, v reflect.Value, path string) {
	pairs, ok := d.pairs(n, path)
	if !ok {
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(v.Type()))
	}
	for _, kv := range pairs {
		name := kv[0].Value
		p := join(path, name)
		d.src.lines[p] = kv[0].Line
		e := fresh(v.Type().Elem())
		d.decode(kv[1], e.Elem(), p)
		v.SetMapIndex(reflect.ValueOf(name), e.Elem())
	}
}

func (d *decoder) structure(n *yaml.Node, v reflect.Value, path string) {
	pairs, ok := d.pairs(n, path)
	if !ok {
		return
	}
	t := v.Type()
	for _, kv := range pairs {
		name := kv[0].Value
		p := join(path, name)
		f, ok := fieldByName(t, name)
		if !ok {
			d.fail(kv[0], p, "", unknownField(t, name))
			continue
		}
		d.src.lines[p] = kv[0].Line
		d.decode(kv[1], v.FieldByIndex(f.Index), p)
	}
	if f, ok := v.Addr().Interface().(finisher); ok {
		f.finish(func(name string) bool { return d.src.set(join(path, name)) })
	}
}

// pairs returns a mapping's key/value pairs, with YAML merge keys ("<<:
// *base") expanded and overridden by the mapping's own keys, and refuses
// a key given twice (one of the two would be silently ignored).
func (d *decoder) pairs(n *yaml.Node, path string) ([][2]*yaml.Node, bool) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, shown(n), "want a mapping, not "+kind(n))
		return nil, false
	}
	var own, merged [][2]*yaml.Node
	first := map[string]int{}
	ok := true
	for i := 0; i+1 < len(n.Content); i += 2 {
		if d.nodes++; d.nodes > maxNodes {
			if d.nodes == maxNodes+1 {
				d.fail(n, path, "", "the file expands to too many values (aliases?)")
			}
			return nil, false
		}
		k, val := deref(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.fail(k, path, "", "want a name as key, not "+kind(k))
			ok = false
			continue
		}
		if k.ShortTag() == "!!merge" {
			m, mok := d.merge(val, path)
			merged, ok = append(merged, m...), ok && mok
			continue
		}
		if line, dup := first[k.Value]; dup {
			d.fail(k, join(path, k.Value), "", "given twice (first on line "+strconv.Itoa(line)+")")
			ok = false
			continue
		}
		first[k.Value] = k.Line
		own = append(own, [2]*yaml.Node{k, val})
	}
	for _, kv := range merged {
		if _, over := first[kv[0].Value]; !over {
			first[kv[0].Value] = kv[0].Line
			own = append(own, kv)
		}
	}
	return own, ok
}

// merge expands the value of a merge key: a mapping or a list of them.
func (d *decoder) merge(n *yaml.Node, path string) ([][2]*yaml.Node, bool) {
	n = deref(n)
	if n.Kind == yaml.SequenceNode {
		var all [][2]*yaml.Node
		for _, m := range n.Content {
			kv, ok := d.pairs(deref(m), path)
			if !ok {
				return nil, false
			}
			all = append(all, kv...)
		}
		return all, true
	}
	return d.pairs(n, path)
}

// fresh returns a pointer to a new value of t holding t's defaults.
func fresh(t reflect.Type) reflect.Value {
	p := reflect.New(t)
	if dv, ok := p.Interface().(defaulter); ok {
		dv.setDefaults()
	}
	return p
}

func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		return deref(n.Content[0])
	}
	return n
}

// shown is a scalar as the file wrote it, for messages: strings quoted.
func shown(n *yaml.Node) string {
	if n.Kind != yaml.ScalarNode {
		return ""
	}
	if n.ShortTag() == "!!str" {
		return strconv.Quote(n.Value)
	}
	return n.Value
}

func kind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	switch n.ShortTag() {
	case "!!int", "!!float":
		return "a number"
	case "!!bool":
		return "a boolean"
	}
	return "a string"
}

func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name
}

func fieldByName(t reflect.Type, name string) (reflect.StructField, bool) {
	for _, f := range reflect.VisibleFields(t) {
		if f.IsExported() && yamlName(f) == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func fieldNames(t reflect.Type) []string {
	var names []string
	for _, f := range reflect.VisibleFields(t) {
		if n := yamlName(f); f.IsExported() && n != "" {
			names = append(names, n)
		}
	}
	return names
}

// unknownField says what name might have meant: a misspelling is the
// usual cause, and the list of valid names the usual cure.
func unknownField(t reflect.Type, name string) string {
	names := fieldNames(t)
	best, bestDist := "", 3
	for _, n := range names {
		if dist := editDistance(strings.ToLower(name), n); dist < bestDist {
			best, bestDist = n, dist
		}
	}
	if best != "" {
		return "unknown field (did you mean " + best + "?)"
	}
	return "unknown field (want one of " + strings.Join(names, ", ") + ")"
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
