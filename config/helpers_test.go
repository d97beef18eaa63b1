package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The three shapes of test file. Each puts the caller's lines at a known
// line number, so that the tables can name exact lines.
const (
	// baseYAML is a valid file of 4 lines; top(extra) starts extra at line 5.
	baseYAML = `listeners: [{address: ":8080"}]
pools:
  ws:
    backends: [{address: "127.0.0.1:8010"}]
`
)

// top returns a valid file with extra top-level lines from line 5.
func top(extra string) string { return baseYAML + extra }

// inPool returns a valid file with extra lines of pool ws from line 5,
// indented for it.
func inPool(extra string) string { return baseYAML + indent(extra, "    ") }

// inListener returns a valid file with extra lines of its one listener
// from line 5.
func inListener(extra string) string {
	return `pools:
  ws:
    backends: [{address: "127.0.0.1:8010"}]
listeners:
  - address: ":8080"
` + indent(extra, "    ")
}

// twoPools is a valid file but for routes, which extra (from line 7)
// supplies.
func twoPools(extra string) string {
	return `listeners: [{address: ":8080"}]
pools:
  ws:
    backends: [{address: "127.0.0.1:8010"}]
  wss:
    backends: [{address: "127.0.0.1:8020"}]
` + extra
}

func indent(s, by string) string {
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = by + l
		}
	}
	return strings.Join(lines, "")
}

func warningStrings(ws []Warning) []string {
	var out []string
	for _, w := range ws {
		out = append(out, w.String())
	}
	return out
}

// writeCert writes a self-signed ECDSA certificate for example.com valid
// until notAfter, and its key, into dir.
func writeCert(t testing.TB, dir, name string, notAfter time.Time) (cert, key string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "example.com"},
		DNSNames:     []string{"example.com"},
		NotBefore:    notAfter.Add(-48 * time.Hour),
		NotAfter:     notAfter,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	write := func(path, typ string, b []byte) {
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(cert, "CERTIFICATE", der)
	write(key, "EC PRIVATE KEY", kder)
	return cert, key
}

// exported returns c without what Parse records about the file, for
// comparing a config read from a file with one built or re-read.
func exported(c *Config) Config {
	cp := *c
	cp.src = nil
	return cp
}
