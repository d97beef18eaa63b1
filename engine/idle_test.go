package engine

import (
	"bufio"
	"net"
	"reflect"
	"runtime"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/wsgate/wsgate/internal/testutil"
)

// seqBackend answers upgrades one after another on a single goroutine and
// keeps the connections open without reading them, so a test can count
// the proxy's goroutines with the backend adding none per tunnel.
type seqBackend struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	done  chan struct{}
}

func startSeqBackend(t testing.TB) *seqBackend {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &seqBackend{ln: ln, done: make(chan struct{})}
	go func() {
		defer close(b.done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			head, err := readHead(bufio.NewReader(c))
			if err != nil {
				c.Close()
				continue
			}
			c.Write([]byte(switchHead(head)))
			c.SetDeadline(time.Time{})
			b.mu.Lock()
			b.conns = append(b.conns, c)
			b.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-b.done
		b.mu.Lock()
		for _, c := range b.conns {
			c.Close()
		}
		b.mu.Unlock()
	})
	return b
}

// TestIdleTunnelsCostNoGoroutineNoPipe opens 2,000 idle tunnels and checks
// that they add no goroutine and hold no pipe (DESIGN.md: an idle tunnel
// is a small struct in a loop and nothing else).
func TestIdleTunnelsCostNoGoroutineNoPipe(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 2,000 tunnels")
	}
	testutil.CheckLeaks(t)
	const n = 2000
	b := startSeqBackend(t)
	srv, addr := startProxy(t, []string{b.ln.Addr().String()}, nil)

	// One tunnel first, so that goroutines started once (the backend's,
	// the runtime's) are running before the count.
	warm, _, _ := rawUpgrade(t, addr, upgradeHead("x", "/"), nil)
	warm.Close()
	settle := func() int {
		// Goroutines of earlier tests may still be ending; give them a moment.
		var g int
		for k := 0; k < 50; k++ {
			g = runtime.NumGoroutine()
			time.Sleep(20 * time.Millisecond)
			if g == runtime.NumGoroutine() {
				break
			}
		}
		return g
	}
	g0 := settle()

	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < n; i++ {
		c, _, ans := rawUpgrade(t, addr, upgradeHead("x", "/"), nil)
		if statusOf(ans) != 101 {
			t.Fatalf("tunnel %d: %q", i, ans)
		}
		c.SetDeadline(time.Time{})
		conns = append(conns, c)
	}
	// n, and the warm-up tunnel: its client closed, so it is half-closed,
	// held until the backend closes its side too.
	waitFor(t, func() bool { return srv.Stats().TunnelsActive == n+1 })
	g1 := settle()
	st := srv.Stats()
	t.Logf("goroutines: %d before, %d with %d idle tunnels; pipes in use %d", g0, g1, n, st.PipesInUse)
	if g1-g0 > 10 {
		t.Errorf("goroutines grew from %d to %d with %d idle tunnels", g0, g1, n)
	}
	if st.PipesInUse != 0 {
		t.Errorf("%d pipes in use with every tunnel idle", st.PipesInUse)
	}
	if st.HeadsPending != 0 {
		t.Errorf("%d connections still counted in the head phase", st.HeadsPending)
	}
}

// TestTunnelSize guards the per-tunnel struct: every idle tunnel costs its
// size (plus page rounding), and the memory target is 256 B in all. It
// must also hold no pointer: the slab keeps tunnels in memory mapped
// outside the Go heap, where the garbage collector would not see one.
func TestTunnelSize(t *testing.T) {
	if n := unsafe.Sizeof(tunnel{}); n > 160 {
		t.Errorf("tunnel is %d bytes; keep it within 160 (DESIGN.md: ≤ 256 B per idle tunnel in all)", n)
	}
	var walk func(path string, typ reflect.Type)
	walk = func(path string, typ reflect.Type) {
		switch typ.Kind() {
		case reflect.Pointer, reflect.UnsafePointer, reflect.Slice, reflect.Map, reflect.String,
			reflect.Interface, reflect.Chan, reflect.Func:
			t.Errorf("tunnel%s is a %v: tunnels live outside the Go heap and must hold no pointer", path, typ.Kind())
		case reflect.Array:
			walk(path+"[]", typ.Elem())
		case reflect.Struct:
			for i := range typ.NumField() {
				f := typ.Field(i)
				walk(path+"."+f.Name, f.Type)
			}
		}
	}
	walk("", reflect.TypeFor[tunnel]())
}
