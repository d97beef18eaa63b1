package engine

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// BenchmarkEcho64B echoes 64-byte messages through the proxy over 50
// tunnels, with and without WebSocket frame tracking, to measure what
// tracking costs (issue: at most 5% of messages/s). Client, proxy and
// backend share the process, so compare the two, not the absolute rate.
func BenchmarkEcho64B(b *testing.B) {
	for _, tc := range []struct {
		name      string
		frameless bool
	}{{"frames", false}, {"bytes", true}} {
		b.Run(tc.name, func(b *testing.B) {
			be := startEcho(b, "a")
			_, addr := startProxy(b, []string{be.Addr()}, func(c *Config) { c.frameless = tc.frameless })
			const conns = 50
			type client struct {
				c  net.Conn
				br *bufio.Reader
			}
			cs := make([]client, conns)
			for k := range cs {
				c, br := dialWS(b, addr, "/")
				cs[k] = client{c, br}
			}
			msg := make([]byte, 64)
			b.ReportAllocs()
			srv := serverOf(b, addr)
			cpu0 := loopCPU(b, srv)
			b.ResetTimer()
			var wg sync.WaitGroup
			per := b.N/conns + 1
			for _, cl := range cs {
				wg.Add(1)
				go func(cl client) {
					defer wg.Done()
					rw := wsConn{cl.c, cl.br}
					for j := 0; j < per; j++ {
						if err := wsutil.WriteClientMessage(cl.c, ws.OpBinary, msg); err != nil {
							b.Error(err)
							return
						}
						if _, _, err := wsutil.ReadServerData(rw); err != nil {
							b.Error(err)
							return
						}
					}
				}(cl)
			}
			wg.Wait()
			b.ReportMetric(float64(per*conns)/b.Elapsed().Seconds(), "msgs/s")
			// The loops' own CPU: what the proxy spends moving the bytes,
			// unaffected by the client and backend in this process.
			b.ReportMetric(float64(loopCPU(b, srv)-cpu0)/float64(2*per*conns), "loop-ns/msg")
		})
	}
}

var servers sync.Map // proxy address → *Server, for benchmarks

func serverOf(tb testing.TB, addr string) *Server {
	v, ok := servers.Load(addr)
	if !ok {
		tb.Fatal("no server recorded for", addr)
	}
	return v.(*Server)
}

// loopCPU is the CPU time, in nanoseconds, the server's loop threads have
// used (from /proc/self/task/TID/schedstat).
func loopCPU(tb testing.TB, s *Server) int64 {
	var total int64
	for _, l := range s.loops {
		b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/schedstat", l.tid.Load()))
		if err != nil {
			tb.Fatal(err)
		}
		var ns int64
		fmt.Sscan(string(b), &ns)
		total += ns
	}
	return total
}
