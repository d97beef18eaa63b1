package config

import (
	"bytes"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Render writes c as YAML with every default filled in: what `wsgate
// check` prints, so an operator sees what wsgate will actually do, and
// what Parse reads back into an equal Config. Optional sections that are
// off (tls, sticky, health_check) are left out.
func (c *Config) Render() []byte {
	root := encode(reflect.ValueOf(c).Elem())
	root.HeadComment = "wsgate effective configuration: every default filled in"
	if c.src != nil && c.src.file != "" {
		root.HeadComment = "wsgate effective configuration of " + c.src.file + ": every default filled in"
	}
	if len(c.Routes) == 0 && len(c.Pools) == 1 {
		for i := 0; i < len(root.Content); i += 2 {
			if root.Content[i].Value == "routes" {
				root.Content[i+1].LineComment = "none: every request goes to the only pool"
			}
		}
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		// Only reachable through a bug in encode: the tree is built here.
		panic("config: render: " + err.Error())
	}
	enc.Close()
	return b.Bytes()
}

// encode turns v into a YAML node; nil for a nil pointer (left out).
func encode(v reflect.Value) *yaml.Node {
	if s, ok := scalarText(v); ok {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return nil
		}
		return encode(v.Elem())
	case reflect.Struct:
		n := &yaml.Node{Kind: yaml.MappingNode}
		for _, f := range reflect.VisibleFields(v.Type()) {
			name := yamlName(f)
			if !f.IsExported() || name == "" {
				continue
			}
			if fv := encode(v.FieldByIndex(f.Index)); fv != nil {
				n.Content = append(n.Content, str(name), fv)
			}
		}
		return n
	case reflect.Map:
		n := &yaml.Node{Kind: yaml.MappingNode}
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		for _, k := range keys {
			n.Content = append(n.Content, str(k.String()), encode(v.MapIndex(k)))
		}
		return n
	case reflect.Slice:
		n := &yaml.Node{Kind: yaml.SequenceNode}
		for i := range v.Len() {
			n.Content = append(n.Content, encode(v.Index(i)))
		}
		// Lists of plain values read best on one line, as the file's
		// author would write them: origins: ["https://a", "https://b"].
		if n.Content == nil || n.Content[0].Kind == yaml.ScalarNode {
			n.Style = yaml.FlowStyle
		}
		return n
	case reflect.Int:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(v.Int(), 10)}
	case reflect.Bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(v.Bool())}
	}
	panic("config: no encoding for " + v.Type().String())
}

// scalarText writes the types the file writes as strings.
func scalarText(v reflect.Value) (string, bool) {
	switch x := v.Interface().(type) {
	case time.Duration:
		return formatDuration(x), true
	case Percent:
		return x.String(), true
	case netip.Prefix:
		return x.String(), true
	case netip.Addr:
		return x.String(), true
	}
	if v.Kind() == reflect.String {
		return v.String(), true
	}
	return "", false
}

func str(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }

// formatDuration is time.Duration.String without its trailing zero
// units: "5m", "1h", "1h30m" rather than "5m0s", "1h0m0s", "1h30m0s".
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// yamlOneLine writes n in flow style on one line, for diffs.
func yamlOneLine(n *yaml.Node) (string, error) {
	if n == nil {
		return "none", nil
	}
	var flow func(*yaml.Node)
	flow = func(n *yaml.Node) {
		n.Style |= yaml.FlowStyle
		for _, c := range n.Content {
			flow(c)
		}
	}
	if n.Kind == yaml.ScalarNode {
		return n.Value, nil
	}
	flow(n)
	b, err := yaml.Marshal(n)
	return strings.TrimSpace(string(b)), err
}
