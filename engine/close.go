package engine

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wsgate/wsgate/balance"
)

var errClientEOF = errors.New("client closed in the middle of its request body")

// stepTunnel moves bytes both ways through an upgraded tunnel and closes
// it when both directions have finished or either socket fails.
func (l *loop) stepTunnel(i int32, t *tunnel) {
	for d := range t.dir {
		if side, err := l.pump(i, t, d); err != nil {
			l.fail(i, t, side)
			return
		}
	}
	if t.state == stClosing {
		if closingDone(t) {
			l.finishClosing(i, t)
		}
		return
	}
	if t.dir[dirUp].finished() && t.dir[dirDown].finished() {
		l.finish(i, causeDone)
	}
}

// fail closes tunnel i after a socket call on side failed (a reset, a
// broken pipe).
func (l *loop) fail(i int32, t *tunnel, side int) {
	if t.state == stClosing {
		l.finishClosing(i, t) // a peer closed hard during the close
		return
	}
	cause := causeClientReset
	if side == sideBackend {
		cause = causeBackendReset
	}
	l.finish(i, cause)
}

// linger ends a connection politely: whatever is queued for the client is
// flushed, its write side is shut, and its input is read and discarded
// until it closes or the linger timeout passes. Closing with unread input
// would send a reset that can destroy the answer still in flight.
func (l *loop) linger(i int32, t *tunnel, cause uint8) {
	l.closeBackend(t)
	l.releaseLease(t, false, 0, false)
	l.dropEx(t)
	l.unpark(&t.dir[dirUp])
	l.dropPipe(&t.dir[dirUp])
	t.cause = cause
	t.state = stLinger
	l.wheel.arm(i, l.now+l.srv.lingerTicks)
	l.stepLinger(i, t)
}

func (l *loop) stepLinger(i int32, t *tunnel) {
	if _, err := l.flush(i, t, dirDown); err != nil {
		l.finish(i, t.cause)
		return
	}
	dr := &t.dir[dirDown]
	if dr.chunk != 0 {
		return
	}
	fd := int(t.fd[sideClient])
	if dr.flags&dShut == 0 {
		dr.flags |= dShut
		sysShutdown(fd, unix.SHUT_WR)
	}
	for ops := 0; ops < maxOps; ops++ {
		if t.io[sideClient]&canRead == 0 {
			return
		}
		n, err := sysRead(fd, l.buf)
		if err == unix.EAGAIN {
			t.io[sideClient] &^= canRead
			return
		}
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			l.finish(i, t.cause)
			return
		}
	}
	l.requeue(i, t)
}

// armIdle sets tunnel i's timer to its next deadline: the idle timeout
// from its last activity, the keepalive ping, or a scheduled close,
// whichever is first.
func (l *loop) armIdle(i int32, t *tunnel) {
	var due uint32
	has := false
	earliest := func(at uint32) {
		if !has || int32(at-due) < 0 {
			due, has = at, true
		}
	}
	if idle := l.srv.idleTicks; idle > 0 {
		earliest(t.active + idle)
	}
	if ex := l.exOf(t); t.state == stHTTP && ex != nil && !ex.answered {
		earliest(t.active + l.srv.answerTicks)
	}
	if k := l.srv.listeners[t.ln].keepaliveTicks; k > 0 && t.ws {
		at := t.active + k
		if int32(at-l.now) <= 0 {
			at = l.now + k // pinged already: the next one an interval later
		}
		earliest(at)
	}
	if t.closeAt != 0 {
		earliest(t.closeAt)
	}
	if every := l.srv.cfg.AccessLogInterval; every > 0 && t.state == stTunnel && l.srv.accessLog != nil {
		age := time.Duration(time.Now().UnixNano() - t.started)
		next := time.Duration(t.logged+1) * every
		earliest(l.now + max(1, ticks(next-age)))
	}
	if has {
		l.wheel.arm(i, due)
	} else {
		l.wheel.disarm(i)
	}
}

func (l *loop) idleCheck(i int32, t *tunnel) {
	if t.state == stHTTP && !l.exOf(t).answered {
		l.answerTimedOut(i, t)
		return
	}
	if t.closeAt != 0 && int32(l.now-t.closeAt) >= 0 {
		l.beginClose(i, t, t.cause)
		return
	}
	if idle := l.srv.idleTicks; idle > 0 && int32(l.now-(t.active+idle)) >= 0 {
		l.beginClose(i, t, causeIdle)
		return
	}
	if every := l.srv.cfg.AccessLogInterval; every > 0 && t.state == stTunnel && l.srv.accessLog != nil {
		age := time.Duration(time.Now().UnixNano() - t.started)
		if n := uint16(min(age/every, 1<<16-1)); n > t.logged {
			t.logged = n
			l.logProgress(l.srv.accessLog, t)
		}
	}
	if k := l.srv.listeners[t.ln].keepaliveTicks; k > 0 && t.state == stTunnel && int32(l.now-(t.active+k)) >= 0 {
		if l.keepalive(t) {
			l.stepTunnel(i, t)
			if l.tabs.at(i).state == stFree {
				return
			}
		}
	}
	l.armIdle(i, t)
}

// link adds tunnel i to its backend's list in this loop, so that draining
// a backend finds its tunnels without scanning every tunnel.
func (l *loop) link(i int32, t *tunnel) {
	bs := &l.backends[t.be-1]
	t.bePrev, t.beNext = none, bs.head
	if bs.head != none {
		l.tabs.at(bs.head).bePrev = i
	}
	bs.head = i
	t.linked = true
}

func (l *loop) unlink(i int32, t *tunnel) {
	if !t.linked {
		return
	}
	if t.bePrev != none {
		l.tabs.at(t.bePrev).beNext = t.beNext
	} else {
		l.backends[t.be-1].head = t.beNext
	}
	if t.beNext != none {
		l.tabs.at(t.beNext).bePrev = t.bePrev
	}
	t.bePrev, t.beNext, t.linked = none, none, false
}

// backendTunnels lists backend b's upgraded tunnels in this loop, from its
// list: draining a backend never scans every tunnel.
func (l *loop) backendTunnels(b *balance.Backend) []int32 {
	k, ok := l.backendIdx[b]
	if !ok {
		return nil
	}
	var list []int32
	for i := l.backends[k].head; i != none; i = l.tabs.at(i).beNext {
		list = append(list, i)
	}
	return list
}

// allTunnels lists every upgraded tunnel in this loop.
func (l *loop) allTunnels() []int32 {
	var list []int32
	for k := range l.backends {
		for i := l.backends[k].head; l.backends[k].refs > 0 && i != none; i = l.tabs.at(i).beNext {
			list = append(list, i)
		}
	}
	return list
}

// scheduleCloses ends the tunnels in list spread over the window from now:
// the k-th of n at balance.Spread(k, n, spread) with jitter, so that the
// clients' reconnects arrive over the window and not as one storm. An
// earlier schedule wins over a later one.
func (l *loop) scheduleCloses(list []int32, spread time.Duration, cause uint8) {
	n := len(list)
	for k, i := range list {
		t := l.tabs.at(i)
		if t.state != stTunnel {
			continue // closing already, or gone
		}
		at := l.now + ticks(balance.Spread(k, n, spread, 0.5, nil))
		if at == 0 {
			at = 1
		}
		if t.closeAt == 0 || int32(at-t.closeAt) < 0 {
			t.closeAt = at
			t.cause = cause
		}
		if int32(t.closeAt-l.now) <= 0 {
			l.beginClose(i, t, t.cause)
		} else {
			l.armIdle(i, t)
		}
	}
}

// finish closes tunnel i for good: both sockets, its pipes and chunks, its
// backend slot; then counts it and writes its access-log line.
func (l *loop) finish(i int32, cause uint8) {
	t := l.tabs.at(i)
	if t.state == stFree {
		return
	}
	// A client that left without sending a byte is not a session
	// (headGone): no handshake time, no access-log line.
	ex := l.exOf(t)
	quiet := cause == causeClientGone && t.state == stHead && (ex.head == nil || len(ex.head.b) == 0)
	l.wheel.disarm(i)
	if t.tls {
		l.srv.closeBridge(int(t.fd[sideClient]))
	}
	for side := range t.fd {
		if fd := t.fd[side]; fd >= 0 {
			l.closeLater(fd)
			t.fd[side] = -1
		}
	}
	l.releaseTunnel(t)
	for d := range t.dir {
		dr := &t.dir[d]
		l.unpark(dr)
		l.dropPipe(dr)
		dr.flags = 0
	}
	if ex != nil {
		if t.status == 0 && !quiet {
			l.srv.c.observeHandshake(ex.accepted)
		}
		l.dropEx(t)
	}
	if t.status == 0 {
		// Closed before any answer: the client left during the
		// handshake, or wsgate was stopped.
		t.status = statusClientClosed
	}
	l.unlink(i, t)
	var backend string
	if b := l.backendOf(t); b != nil {
		backend = b.Addr()
	}
	l.releaseLease(t, false, 0, true)
	if t.status == 101 {
		l.c.tunnelsActive.Add(-1)
		l.c.observeTunnel(t.started)
	}
	l.c.closes[cause].Add(1)
	if log := l.srv.accessLog; log != nil && !quiet {
		l.logSession(log, t, backend, cause)
	}
	l.tabs.release(i)
}

// logProgress writes a live tunnel's line: hours-long tunnels are
// visible before they end.
func (l *loop) logProgress(log *slog.Logger, t *tunnel) {
	var backend string
	if b := l.backendOf(t); b != nil {
		backend = b.Addr()
	}
	d := time.Duration(time.Now().UnixNano() - t.started)
	log.LogAttrs(context.Background(), slog.LevelInfo, "tunnel",
		slog.String("client", t.peer.addrPort().String()),
		slog.String("backend", backend),
		slog.Uint64("bytes_up", t.bytes[dirUp]),
		slog.Uint64("bytes_down", t.bytes[dirDown]),
		slog.Float64("age_s", d.Seconds()),
	)
}

func (l *loop) logSession(log *slog.Logger, t *tunnel, backend string, cause uint8) {
	d := time.Duration(time.Now().UnixNano() - t.started)
	log.LogAttrs(context.Background(), slog.LevelInfo, "session",
		slog.String("client", t.peer.addrPort().String()),
		slog.String("backend", backend),
		slog.Int("status", int(t.status)),
		slog.Uint64("bytes_up", t.bytes[dirUp]),
		slog.Uint64("bytes_down", t.bytes[dirDown]),
		slog.Float64("duration_s", d.Seconds()),
		slog.String("close", causeNames[cause]),
	)
}
