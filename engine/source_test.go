package engine

import (
	"bufio"
	"net"
	"net/netip"
	"sync"
	"testing"

	"github.com/wsgate/wsgate/internal/testutil"
)

// TestSourceAddrs: backend connections bind the configured source
// addresses in turn (IP_BIND_ADDRESS_NO_PORT: the port is chosen at
// connect), so one node can hold more than one address's ports' worth of
// tunnels to a backend.
func TestSourceAddrs(t *testing.T) {
	testutil.CheckLeaks(t)
	var mu sync.Mutex
	seen := map[string]int{}
	rb := startRawBackend(t, true, func(c net.Conn, br *bufio.Reader) {
		host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
		mu.Lock()
		seen[host]++
		mu.Unlock()
		br.ReadByte() // hold the tunnel until the client leaves
	})
	srcs := []netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")}
	_, addr := startProxy(t, []string{rb.Addr()}, func(c *Config) { c.SourceAddrs = srcs })
	for range 6 {
		c, _ := dialWS(t, addr, "/")
		defer c.Close()
	}
	waitFor(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return seen["127.0.0.2"]+seen["127.0.0.3"] == 6
	})
	mu.Lock()
	defer mu.Unlock()
	if seen["127.0.0.2"] != 3 || seen["127.0.0.3"] != 3 || seen["127.0.0.1"] != 0 {
		t.Errorf("backend saw connections from %v; want 3 from each source address", seen)
	}
}
