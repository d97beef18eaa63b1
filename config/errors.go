package config

import (
	"strconv"
	"strings"
)

// Issue locates one problem in a configuration as precisely as is known,
// so an operator goes straight to the line: "FILE:LINE: PATH: VALUE: MSG",
// e.g.
//
//	wsgate.yaml:12: pools.ws.backends[1].weight: 0: must be between 1 and 256
//	wsgate.yaml:3: timeuts: unknown field (did you mean timeouts?)
//
// Parts that are unknown are left out: a config built in code has no file
// or line.
type Issue struct {
	File  string // the name given to Parse or Load
	Line  int    // 1-based; 0 if unknown
	Path  string // the field, e.g. "pools.ws.backends[1].weight"
	Value string // the offending value as written (strings quoted), or ""
	Msg   string
}

func (i Issue) String() string {
	var b strings.Builder
	switch {
	case i.File != "" && i.Line > 0:
		b.WriteString(i.File + ":" + strconv.Itoa(i.Line) + ": ")
	case i.File != "":
		b.WriteString(i.File + ": ")
	case i.Line > 0:
		b.WriteString("line " + strconv.Itoa(i.Line) + ": ")
	}
	if i.Path != "" {
		b.WriteString(i.Path + ": ")
	}
	if i.Value != "" {
		b.WriteString(i.Value + ": ")
	}
	b.WriteString(i.Msg)
	return b.String()
}

// Error is an Issue that makes a configuration unusable.
type Error Issue

func (e *Error) Error() string { return Issue(*e).String() }

// Warning is an Issue that does not stop wsgate but is probably a mistake
// (a pool no route uses, a setting that has no effect).
type Warning Issue

func (w Warning) String() string { return Issue(w).String() }

// Errors is every error found in one configuration, in file order, so one
// `wsgate check` run shows them all. Its message has one error per line.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}
