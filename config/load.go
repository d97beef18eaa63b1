package config

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"

	"gopkg.in/yaml.v3"
)

// Load reads, decodes and validates the file at path. Relative paths in it
// (TLS files, an access log file) are taken relative to the file's
// directory, as the file's author saw them, not to wsgate's working
// directory; the returned Config holds them resolved.
func Load(path string) (*Config, []Warning, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	return parse(data, path, filepath.Dir(path))
}

// Parse decodes and validates a configuration; name is the file name used
// in messages. Relative paths in it stay relative to the working directory.
// On error the warnings found so far are returned too, and the error is
// Errors: every problem, in file order.
func Parse(data []byte, name string) (*Config, []Warning, error) {
	return parse(data, name, "")
}

func parse(data []byte, name, dir string) (*Config, []Warning, error) {
	c := Default()
	c.src = &source{file: name, lines: map[string]int{}}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	switch err := dec.Decode(&doc); {
	case errors.Is(err, io.EOF):
		// An empty file: Validate says what is missing.
	case err != nil:
		return nil, nil, Errors{syntaxError(name, err)}
	default:
		var more yaml.Node
		if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
			if err != nil {
				return nil, nil, Errors{syntaxError(name, err)}
			}
			// A second document would be ignored: refuse it rather than
			// run half of what the operator wrote.
			return nil, nil, Errors{{File: name, Line: more.Line, Msg: "a second YAML document (after ---): want one"}}
		}
		d := decoder{src: c.src}
		d.decode(&doc, reflect.ValueOf(c).Elem(), "")
		if len(d.errs) > 0 {
			return nil, nil, toErrors(d.errs)
		}
	}
	if dir != "" {
		c.resolvePaths(dir)
	}
	w, err := c.Validate()
	if err != nil {
		return nil, w, err
	}
	return c, w, nil
}

// yamlLine is how yaml.v3 reports where its parser stopped.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func syntaxError(name string, err error) *Error {
	e := &Error{File: name, Msg: err.Error()}
	if m := yamlLine.FindStringSubmatch(e.Msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Msg = m[2]
	} else if rest, ok := bytes.CutPrefix([]byte(e.Msg), []byte("yaml: ")); ok {
		e.Msg = string(rest)
	}
	return e
}

func toErrors(issues []Issue) Errors {
	sortIssues(issues)
	es := make(Errors, len(issues))
	for i := range issues {
		e := Error(issues[i])
		es[i] = &e
	}
	return es
}

func (c *Config) resolvePaths(dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	for i := range c.Listeners {
		if t := c.Listeners[i].TLS; t != nil {
			abs(&t.Cert)
			abs(&t.Key)
		}
	}
	if isLogFile(c.AccessLog.Output) {
		abs(&c.AccessLog.Output)
	}
}
