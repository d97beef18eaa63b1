package engine

import (
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/wsgate/wsgate/handshake"
)

// admission holds the node's connection limits: how many proxied
// connections it takes (max_tunnels, 503 beyond: shedding load before
// memory or fds run out) and how many per client address
// (max_tunnels_per_ip, 429 beyond: one client cannot take the node). A
// connection is counted from the moment its head is accepted until it
// closes, plain requests included: they hold two sockets too.
type admission struct {
	max   atomic.Int64
	perIP atomic.Int64
	held  atomic.Int64
	// Per-address counts, sharded so that the loops seldom meet on a
	// lock; only kept while a per-IP limit is set.
	shards [64]ipShard
}

type ipShard struct {
	mu sync.Mutex
	n  map[netip.Addr]int32
	_  [40]byte // one shard per cache line
}

// SetLimits changes the admission limits and the accept rate (0 =
// unlimited). Connections already admitted are not affected.
func (s *Server) SetLimits(maxTunnels, maxPerIP, acceptRate int) {
	s.admit.max.Store(int64(maxTunnels))
	s.admit.perIP.Store(int64(maxPerIP))
	s.acceptRate.Store(int64(acceptRate))
}

func (a *admission) shard(ip netip.Addr) *ipShard {
	b := ip.As16()
	h := uint32(2166136261)
	for _, c := range b[8:] {
		h = (h ^ uint32(c)) * 16777619
	}
	return &a.shards[h%uint32(len(a.shards))]
}

// take admits one connection from ip, or returns the rejection.
func (a *admission) take(ip netip.Addr) *handshake.Reject {
	if m := a.max.Load(); m > 0 && a.held.Load() >= m {
		return handshake.ErrTooManyTunnels
	}
	if m := a.perIP.Load(); m > 0 {
		sh := a.shard(ip)
		sh.mu.Lock()
		if int64(sh.n[ip]) >= m {
			sh.mu.Unlock()
			return handshake.ErrTooManyPerIP
		}
		if sh.n == nil {
			sh.n = make(map[netip.Addr]int32)
		}
		sh.n[ip]++
		sh.mu.Unlock()
	}
	a.held.Add(1)
	return nil
}

// release gives back what take counted for ip.
func (a *admission) release(ip netip.Addr) {
	a.held.Add(-1)
	sh := a.shard(ip)
	sh.mu.Lock()
	if n, ok := sh.n[ip]; ok {
		if n <= 1 {
			delete(sh.n, ip)
		} else {
			sh.n[ip] = n - 1
		}
	}
	sh.mu.Unlock()
}

// admitTunnel applies the limits to tunnel t's client.
func (l *loop) admitTunnel(t *tunnel, ip netip.Addr) *handshake.Reject {
	if r := l.srv.admit.take(ip); r != nil {
		return r
	}
	t.held = true
	return nil
}

// releaseTunnel gives t's admission back; finish calls it.
func (l *loop) releaseTunnel(t *tunnel) {
	if t.held {
		t.held = false
		l.srv.admit.release(t.peer.addr())
	}
}
