package engine

import (
	"runtime"
	"runtime/debug"
	"time"
)

// Returning memory after handshake bursts.
//
// A handshake allocates transient objects (the exchange, a socket
// address) and borrows pooled ones (the parsed request, head buffers). After a burst — a restart's reconnect
// herd, a benchmark opening 9,000 tunnels — they are garbage or idle in
// pools, but the Go runtime keeps the heap they grew until later GCs and
// its scavenger get round to it, which an idle process may not do for
// minutes: the node's RSS then says it holds far more per tunnel than it
// does. So once a burst is over (no new connection for a quiet period
// after at least trimMinAccepts of them) the engine runs two GCs (the
// second empties sync.Pool's victim caches) and returns the freed pages
// to the OS. At most once per trimInterval, never during a burst.
const (
	trimQuiet      = 2 * time.Second
	trimInterval   = 10 * time.Second
	trimMinAccepts = 500
)

func (s *Server) trimAfterBursts() {
	defer s.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var lastAccepted uint64
	var lastChange, lastTrim time.Time
	var sinceTrim uint64
	for {
		select {
		case <-s.quit:
			return
		case now := <-t.C:
			n := s.accepted()
			if n != lastAccepted {
				sinceTrim += n - lastAccepted
				lastAccepted, lastChange = n, now
				continue
			}
			if sinceTrim < trimMinAccepts || now.Sub(lastChange) < trimQuiet || now.Sub(lastTrim) < trimInterval {
				continue
			}
			runtime.GC()
			debug.FreeOSMemory()
			sinceTrim, lastTrim = 0, now
			s.c.trims.Add(1)
		}
	}
}

// accepted sums the loops' accept counters.
func (s *Server) accepted() uint64 {
	var n uint64
	for _, l := range s.loops {
		n += l.c.accepted.Load()
	}
	return n
}
