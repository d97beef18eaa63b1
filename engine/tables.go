package engine

import (
	"github.com/wsgate/wsgate/balance"
)

// The loop's side tables. A tunnel refers to what it borrows — a chunk, an
// exchange, its backend — by index into these, so that tunnels themselves
// hold no pointer (see tunnel). The tables are as long as the most such
// things ever held at once, which for chunks and exchanges is the number in
// flight, not the number of tunnels.

// attach appends c's pending bytes to what dr has in flight (c itself when
// dr holds nothing), keeping their order.
func (l *loop) attach(dr *direction, c *chunk) {
	if dr.chunk == 0 {
		var k int32
		if n := len(l.chunkFree); n > 0 {
			k = l.chunkFree[n-1]
			l.chunkFree = l.chunkFree[:n-1]
			l.chunks[k] = c
		} else {
			k = int32(len(l.chunks))
			l.chunks = append(l.chunks, c)
		}
		dr.chunk = k + 1
		l.parked += cap(c.b)
		l.c.parked.Store(int64(l.parked))
		return
	}
	old := l.chunks[dr.chunk-1]
	l.parked -= cap(old.b)
	grown := growChunk(old, len(c.pending()))
	grown.b = append(grown.b, c.pending()...)
	l.chunks[dr.chunk-1] = grown
	putChunk(c)
	l.parked += cap(grown.b)
	l.c.parked.Store(int64(l.parked))
}

// park keeps the unwritten rest of a copy in a pooled chunk owned by the
// direction until the destination takes it.
func (l *loop) park(dr *direction, rest []byte) {
	c := getChunk(len(rest))
	c.b = append(c.b, rest...)
	l.attach(dr, c)
}

// unpark releases dr's chunk.
func (l *loop) unpark(dr *direction) {
	if dr.chunk == 0 {
		return
	}
	k := dr.chunk - 1
	c := l.chunks[k]
	l.chunks[k] = nil
	l.chunkFree = append(l.chunkFree, k)
	dr.chunk = 0
	l.parked -= cap(c.b)
	l.c.parked.Store(int64(l.parked))
	putChunk(c)
}

// pipeOf returns the pipe dr holds, or nil.
func (l *loop) pipeOf(dr *direction) *pipe {
	if dr.pipe == 0 {
		return nil
	}
	return l.pipes.all[dr.pipe-1]
}

// exOf returns tunnel t's exchange, or nil once the tunnel has started.
func (l *loop) exOf(t *tunnel) *exchange {
	if t.ex == 0 {
		return nil
	}
	return l.exchanges[t.ex-1]
}

func (l *loop) setEx(t *tunnel, ex *exchange) {
	var k int32
	if n := len(l.exFree); n > 0 {
		k = l.exFree[n-1]
		l.exFree = l.exFree[:n-1]
		l.exchanges[k] = ex
	} else {
		k = int32(len(l.exchanges))
		l.exchanges = append(l.exchanges, ex)
	}
	t.ex = k + 1
}

// dropEx releases tunnel t's exchange and its pooled parts.
func (l *loop) dropEx(t *tunnel) {
	if t.ex == 0 {
		return
	}
	k := t.ex - 1
	putExchange(l.exchanges[k])
	l.exchanges[k] = nil
	l.exFree = append(l.exFree, k)
	t.ex = 0
}

// backendSlot is one backend as this loop knows it: the lease its tunnels
// release (a Lease is only its backend, so one value serves them all), the
// head of the list of its upgraded tunnels here, and how many tunnels
// refer to the slot.
type backendSlot struct {
	lease balance.Lease
	head  int32
	refs  int32
}

// takeLease makes t hold lease: one active slot on its backend.
func (l *loop) takeLease(t *tunnel, lease balance.Lease) {
	b := lease.Backend()
	k, ok := l.backendIdx[b]
	if !ok {
		if n := len(l.backendFree); n > 0 {
			k = l.backendFree[n-1]
			l.backendFree = l.backendFree[:n-1]
			l.backends[k] = backendSlot{lease: lease, head: none}
		} else {
			k = int32(len(l.backends))
			l.backends = append(l.backends, backendSlot{lease: lease, head: none})
		}
		l.backendIdx[b] = k
	}
	l.backends[k].refs++
	t.be = k + 1
	t.leased = true
}

// backendOf returns t's backend, or nil.
func (l *loop) backendOf(t *tunnel) *balance.Backend {
	if t.be == 0 {
		return nil
	}
	return l.backends[t.be-1].lease.Backend()
}

// releaseLease gives t's active slot back: failed with kind when the
// attempt failed, done otherwise. With forget, t also stops referring to
// the backend (a retry will take another); otherwise the backend stays
// known to t for its access-log line.
func (l *loop) releaseLease(t *tunnel, failed bool, kind balance.FailKind, forget bool) {
	if t.be == 0 {
		return
	}
	s := &l.backends[t.be-1]
	if t.leased {
		if failed {
			s.lease.Failed(kind)
		} else {
			s.lease.Done()
		}
		t.leased = false
	}
	if forget {
		l.forgetBackend(t)
	}
}

// forgetBackend drops t's reference to its backend slot.
func (l *loop) forgetBackend(t *tunnel) {
	if t.be == 0 {
		return
	}
	k := t.be - 1
	t.be = 0
	s := &l.backends[k]
	if s.refs--; s.refs == 0 {
		delete(l.backendIdx, s.lease.Backend())
		*s = backendSlot{}
		l.backendFree = append(l.backendFree, k)
	}
}
