package engine

import (
	"bufio"
	"net"
	"sync"
	"testing"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"golang.org/x/sys/unix"
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
			cpu0 := processCPU(b)
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
			// The process's CPU, client and backend included: the same
			// for both cases but for the proxy's share, so the difference
			// is what tracking costs.
			b.ReportMetric(float64(processCPU(b)-cpu0)/float64(per*conns), "cpu-ns/msg")
		})
	}
}

// processCPU is the CPU time, in nanoseconds, this process has used.
func processCPU(tb testing.TB) int64 {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
