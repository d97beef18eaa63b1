package handshake

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWriteSeedCorpus regenerates the committed fuzz seeds in
// testdata/fuzz from the rule tables and golden requests, so every rule the
// tables test is also a starting point for the fuzzers. It runs only with
// WSGATE_WRITE_SEEDS=1:
//
//	WSGATE_WRITE_SEEDS=1 go test -run TestWriteSeedCorpus ./handshake/
func TestWriteSeedCorpus(t *testing.T) {
	if os.Getenv("WSGATE_WRITE_SEEDS") != "1" {
		t.Skip("set WSGATE_WRITE_SEEDS=1 to rewrite testdata/fuzz seeds")
	}
	write := func(target, name string, values ...any) {
		var b strings.Builder
		b.WriteString("go test fuzz v1\n")
		for _, v := range values {
			switch v := v.(type) {
			case []byte:
				fmt.Fprintf(&b, "[]byte(%q)\n", v)
			case bool:
				fmt.Fprintf(&b, "bool(%v)\n", v)
			case uint8:
				fmt.Fprintf(&b, "byte(%q)\n", v)
			case uint64:
				fmt.Fprintf(&b, "uint64(%d)\n", v)
			}
		}
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		name = "seed-" + strings.NewReplacer(" ", "-", "/", "-").Replace(name)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ins, _ := filepath.Glob("testdata/golden/*.in")
	for _, in := range ins {
		raw, err := os.ReadFile(in)
		if err != nil {
			t.Fatal(err)
		}
		name := "golden-" + strings.TrimSuffix(filepath.Base(in), ".in")
		write("FuzzParseRequest", name, raw)
		write("FuzzRewrite", name, raw, true, false, uint8(0), false)
		write("FuzzRewrite", name+"-untrusted-tls-nginx-fwd", raw, false, true, uint8(3), true)
	}
	for _, c := range rejectCases() {
		if len(c.in) > 2048 {
			continue // limit cases: the fuzzer's inputs stay small
		}
		write("FuzzParseRequest", "reject-"+c.name, c.in)
	}
	for i, c := range acceptCases() {
		if len(c.in) > 2048 {
			continue
		}
		write("FuzzParseRequest", "accept-"+c.name, c.in)
		write("FuzzRewrite", "accept-"+c.name, c.in, i%2 == 0, i%3 == 0, uint8(i%4), i%2 == 1)
	}
	for i, s := range validChunked {
		write("FuzzBodyTracker", fmt.Sprintf("valid-%d", i), []byte(s+"GET / HTTP/1.1\r\n\r\n"), uint64(i), uint8(0))
	}
	for i, s := range invalidChunked {
		if len(s) > 2048 {
			continue
		}
		write("FuzzBodyTracker", fmt.Sprintf("invalid-%d", i), []byte(s), uint64(i), uint8(0))
	}
	write("FuzzBodyTracker", "length", []byte("0123456789GET"), uint64(10), uint8(1))
}
