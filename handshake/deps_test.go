package handshake

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoNetHTTP holds the package to what DESIGN.md asks of the handshake
// phase: no net/http (its parser allocates ~8 KB per request and reads heads
// more leniently than wsgate may), directly or through a dependency. Tests
// use net/http as the reference parser; this checks the package alone.
func TestNoNetHTTP(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go not on PATH")
	}
	out, err := exec.Command(gobin, "list", "-e", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if pkg == "net/http" || strings.HasPrefix(pkg, "net/http/") {
			t.Errorf("handshake depends on %s", pkg)
		}
	}
}
