package engine

import (
	"errors"

	"golang.org/x/sys/unix"
)

const (
	spliceFlags = unix.SPLICE_F_MOVE | unix.SPLICE_F_NONBLOCK
	// pipeBytes is the pipe capacity asked for (F_SETPIPE_SZ) and the most
	// one splice moves. 256 KiB instead of the default 64 KiB: measured
	// (bench bulk, 4 tunnels × 1 GiB each way), 4× fewer splice calls per
	// GB and 7% less proxy CPU. A pipe holds pages only while a burst is in
	// flight; the kernel may refuse the size (pipe-user-pages-soft), and
	// then the pipe stays 64 KiB and splices move less each.
	pipeBytes = 256 << 10

	// spliceMin is the payload still to come in a WebSocket frame from
	// which splice-auto splices it rather than copying: below it, three
	// splice calls cost more than a read and a write (DESIGN.md).
	spliceMin = 32 << 10

	// maxHeader is the longest WebSocket frame header: 2 + 8 + 4 bytes.
	maxHeader = 14
)

// pump moves bytes along direction d of an upgraded tunnel as far as the
// sockets allow: flush what is in flight, then splice the source to the
// destination, or queue a recv whose bytes the loop's batch sends on
// (batch.go), until one of them would block, the source ends, or the
// per-readiness budget is spent (then the tunnel is requeued: with edge
// triggering nobody would report the rest). It returns the side whose
// syscall failed, with the error; -1 and nil otherwise.
//
// Backpressure: the source is read only when nothing is in flight and the
// destination has room, so a slow reader makes wsgate hold at most one
// pipe or one chunk for it, never more.
//
// On WebSocket tunnels every byte read is followed by the direction's frame
// tracker, splice only ever moves payload whose length a header announced,
// and a graceful close (graceful.go) stops the direction at a frame
// boundary, sends wsgate's Close frame, and drops what the source sends
// after it while watching for the source's own Close.
func (l *loop) pump(i int32, t *tunnel, d int) (int, error) {
	dr := &t.dir[d]
	src, dst := d, 1-d
	dfd := int(t.fd[dst])
	for ops := 0; ops < maxOps; ops++ {
		if t.io[src]&reading != 0 || t.io[dst]&writing != 0 {
			return -1, nil // a call is queued (batch.go): nothing to do until it is made
		}
		if dr.chunk != 0 {
			return l.flush(i, t, d) // its result runs the tunnel again
		}
		if p := l.pipeOf(dr); p != nil && p.n > 0 {
			if t.io[dst]&canWrite == 0 {
				return -1, nil
			}
			n, err := sysSplice(p.r, dfd, p.n)
			if err != nil {
				if err == unix.EAGAIN {
					t.io[dst] &^= canWrite
					return -1, nil
				}
				if err == unix.EINTR {
					continue
				}
				return dst, err
			}
			p.n -= int(n)
			l.moved(t, d, int(n))
			l.c.spliced.Add(uint64(n))
			if p.n > 0 {
				t.io[dst] &^= canWrite
				return -1, nil
			}
			continue
		}

		// Nothing in flight.
		if dr.flags&(dCloseWant|dCloseSent) == dCloseWant && dr.fr.atBoundary() {
			l.sendClose(t, d)
			continue
		}
		if dr.flags&dEOF != 0 {
			l.dropPipe(dr)
			if dr.flags&dShut == 0 {
				// Half-close: the source finished and everything it sent
				// is delivered; tell the destination, and keep the other
				// direction going (RFC 9293 3.6; HAProxy does the same for
				// upgraded connections). When the other direction has
				// finished too, the close that follows sends the FIN:
				// the destination's input was read to its end, so the
				// close cannot turn into a reset.
				dr.flags |= dShut
				if t.dir[1-d].flags&dShut != 0 && t.state == stTunnel {
					return -1, nil
				}
				if err := sysShutdown(dfd, unix.SHUT_WR); err != nil && err != unix.ENOTCONN {
					return dst, err
				}
			}
			return -1, nil
		}
		if t.io[src]&canRead == 0 {
			l.dropPipe(dr) // an idle direction holds no pipe
			return -1, nil
		}
		if dr.flags&dCloseSent != 0 {
			// After our Close: read and drop, watching for the reply.
			if side, err := l.discard(t, d); err != nil || t.io[src]&canRead == 0 {
				return side, err
			}
			continue
		}
		if t.io[dst]&canWrite == 0 {
			l.dropPipe(dr)
			return -1, nil
		}
		if want, limit := l.splicing(t, dr); want {
			if side, err := l.spliceIn(i, t, d, limit); err != nil {
				return side, err
			}
			if t.io[src]&canRead == 0 || dr.flags&dWaiting != 0 {
				if p := l.pipeOf(dr); p != nil && p.n == 0 {
					// Drained: give the pipe back now, not at this
					// direction's next event, which may be long coming.
					// Held by idle directions, the pool ran dry and 1,000
					// splice-mode echo tunnels fell from 43k to 2.7k msgs/s.
					l.dropPipe(dr)
				}
				return -1, nil
			}
			continue
		}

		// Copy path: a recv queued for the loop's next batch, whose
		// bytes are sent on from the same slot (batch.go).
		if l.parked+(len(l.batch.recvs)+1)*slotSize > l.srv.parkLimit {
			l.wait(i, t, d) // a partial send would have nowhere to go
			return -1, nil
		}
		if !l.queueRecv(i, t, d) {
			break // the batch is full: this direction goes in the next one
		}
		return -1, nil
	}
	l.requeue(i, t)
	return -1, nil
}

// splicing reports whether the next read of dr goes through a pipe, and
// at most how many bytes (0: no limit but the pipe's).
func (l *loop) splicing(t *tunnel, dr *direction) (bool, int) {
	if !t.ws {
		switch l.srv.mode {
		case ModeSplice:
			return true, 0
		case ModeCopy:
			return false, 0
		}
		return dr.flags&dBurst != 0, 0
	}
	// A WebSocket direction splices payload only, never past its frame.
	remain, inPayload := dr.fr.inPayload()
	switch l.srv.mode {
	case ModeCopy:
		return false, 0
	case ModeSplice:
		return true, int(min(remain, pipeBytes)) // 0 at a header: spliceIn peeks it
	}
	if inPayload && (remain >= spliceMin || dr.flags&dBurst != 0) {
		return true, int(min(remain, pipeBytes))
	}
	dr.flags &^= dBurst
	return false, 0
}

// spliceIn moves up to limit bytes (or a pipe's worth) from the source
// into the direction's pipe. In ModeSplice a WebSocket direction at a frame
// header first peeks the header (MSG_PEEK: the bytes stay in the socket),
// then splices it with as much of its payload as fits, and follows the
// header's bytes from the peek.
func (l *loop) spliceIn(i int32, t *tunnel, d int, limit int) (int, error) {
	dr := &t.dir[d]
	src := d
	sfd := int(t.fd[src])
	var hdr [maxHeader]byte
	hlen := 0 // header bytes at the front of this splice
	if t.ws && limit == 0 {
		n, err := sysPeek(sfd, hdr[:])
		if err != nil {
			if err == unix.EAGAIN {
				t.io[src] &^= canRead
				return -1, nil
			}
			return src, err
		}
		if n == 0 {
			dr.flags |= dEOF
			return -1, nil
		}
		probe := dr.fr
		for hlen < n && (hlen == 0 || probe.hpos != 0) {
			probe.scan(hdr[hlen:hlen+1], false)
			hlen++
		}
		if probe.hpos != 0 {
			// Only part of a header has arrived; its rest raises a new edge.
			t.io[src] &^= canRead
			return -1, nil
		}
		limit = hlen + int(min(probe.remain, uint64(pipeBytes-hlen)))
	}
	p := l.pipeOf(dr)
	if p == nil {
		if p = l.getPipe(); p == nil {
			if l.srv.mode == ModeSplice {
				l.wait(i, t, d)
			} else {
				dr.flags &^= dBurst // no pipe free: copy this burst
			}
			return -1, nil
		}
		dr.pipe = uint16(p.id + 1)
	}
	if limit == 0 || limit > pipeBytes {
		limit = pipeBytes
	}
	// The pipe is empty here, so EAGAIN can only mean the socket is
	// drained (DESIGN.md, "pitfalls").
	n, err := sysSplice(sfd, p.w, limit)
	if err != nil {
		if err == unix.EAGAIN {
			t.io[src] &^= canRead
			dr.flags &^= dBurst
			l.dropPipe(dr)
			return -1, nil
		}
		if err == unix.EINTR {
			return -1, nil
		}
		return src, err
	}
	if n == 0 {
		dr.flags |= dEOF
		return -1, nil
	}
	p.n = int(n)
	t.active = l.now
	if t.ws {
		k := min(int(n), hlen)
		dr.fr.scan(hdr[:k], false)         // the header, as peeked
		dr.fr.remain -= uint64(int(n) - k) // the payload, whose length it gave
	}
	return -1, nil
}

// discard reads direction d's source after wsgate's Close went out on it:
// the bytes are dropped, a Close frame among them is the peer's reply.
func (l *loop) discard(t *tunnel, d int) (int, error) {
	dr := &t.dir[d]
	n, err := sysRead(int(t.fd[d]), l.buf)
	if err != nil {
		if err == unix.EAGAIN {
			t.io[d] &^= canRead
			return -1, nil
		}
		if err == unix.EINTR {
			return -1, nil
		}
		return d, err
	}
	if n == 0 {
		dr.flags |= dEOF
		return -1, nil
	}
	l.dropped(t, d, l.buf[:n])
	return -1, nil
}

// forward sends p, read from direction d's source, on to its destination
// behind whatever the direction has parked. During a graceful close it
// forwards up to the first frame boundary only: wsgate's Close goes there,
// and what follows is dropped while the source's own Close is watched for.
func (l *loop) forward(t *tunnel, d int, p []byte) (int, error) {
	dr := &t.dir[d]
	if dr.flags&dCloseSent != 0 {
		l.dropped(t, d, p)
		return -1, nil
	}
	var rest []byte
	if t.ws {
		if dr.flags&dCloseWant != 0 {
			b, _ := dr.fr.scan(p, true)
			p, rest = p[:b], p[b:]
		} else {
			dr.fr.scan(p, false)
		}
	}
	if len(p) > 0 {
		if side, err := l.write(t, d, p); err != nil {
			return side, err
		}
	}
	if rest != nil && dr.fr.atBoundary() {
		l.sendClose(t, d)
		l.dropped(t, d, rest)
	}
	return -1, nil
}

// dropped follows bytes that will not be forwarded, for the Close among them.
func (l *loop) dropped(t *tunnel, d int, p []byte) {
	dr := &t.dir[d]
	t.active = l.now
	if _, closed := dr.fr.scan(p, false); closed {
		dr.flags |= dPeerClosing
	}
	// The reply counts once it has arrived whole: a Close header read
	// apart from its payload (a client writing them separately, a busy
	// loop reading in between) would otherwise let wsgate close the
	// socket with the payload still to come, and the kernel answer it
	// with a reset.
	if dr.flags&dPeerClosing != 0 && dr.fr.atBoundary() {
		dr.flags |= dPeerClose
	}
}

// received is the copy path after its recv (batch.go): what came is
// checked and queued to be sent on, or the source's end or error is
// recorded.
func (l *loop) received(o *ioOp) {
	i, d := o.i, int(o.d)
	t := l.opTunnel(o)
	if t == nil {
		return
	}
	src, dst := d, 1-d
	dr := &t.dir[d]
	t.io[src] &^= reading
	if o.res < 0 {
		switch unix.Errno(-o.res) {
		case unix.EAGAIN:
			t.io[src] &^= canRead
			if dr.flags&(dCloseWant|dCloseSent) == dCloseWant {
				l.requeue(i, t) // a graceful close began meanwhile: its Close is due
			}
		case unix.EINTR:
			l.requeue(i, t)
		default:
			l.fail(i, t, src)
		}
		return
	}
	if o.res == 0 {
		dr.flags |= dEOF
		l.requeue(i, t) // pump half-closes the destination
		return
	}
	n := int(o.res)
	t.active = l.now
	if n < len(o.buf) {
		// A short read drained the socket: any later byte raises a new
		// edge. Only a FIN that came with the data would not, and
		// EPOLLRDHUP told us of that one (peerShut).
		if t.io[src]&peerShut == 0 {
			t.io[src] &^= canRead
		}
	} else if l.srv.mode == ModeAuto {
		dr.flags |= dBurst // bulk: splice the rest of this burst
	}
	p := o.buf[:n]
	if dr.chunk != 0 || t.io[dst]&writing != 0 || dr.flags&(dCloseWant|dCloseSent) != 0 {
		// Rare: a graceful close began, or bytes were queued on this
		// direction, while the recv was queued. Forward the plain way.
		if side, err := l.forward(t, d, p); err != nil {
			l.fail(i, t, side)
			return
		}
		l.requeue(i, t)
		return
	}
	if t.ws {
		dr.fr.scan(p, false)
	}
	l.batch.sends = append(l.batch.sends, ioOp{i: i, gen: t.gen, fd: t.fd[dst], n: int32(n), slot: o.slot, kind: opSend, d: o.d})
	if t.io[src]&canRead != 0 && n < len(o.buf) {
		l.requeue(i, t) // a FIN came with the data: read it
	}
}

// sent is the copy path after its send: what the destination did not
// take is parked until it has room.
func (l *loop) sent(o *ioOp) {
	i, d := o.i, int(o.d)
	t := l.opTunnel(o)
	if t == nil {
		return
	}
	dst := 1 - d
	w := 0
	if o.res >= 0 {
		w = int(o.res)
	} else if e := unix.Errno(-o.res); e != unix.EAGAIN && e != unix.EINTR {
		l.fail(i, t, dst)
		return
	}
	if w > 0 {
		l.moved(t, d, w)
	}
	if w < len(o.buf) {
		l.park(&t.dir[d], o.buf[w:])
		if o.res != -int32(unix.EINTR) {
			t.io[dst] &^= canWrite // EAGAIN or a short write: the send buffer is full
			return
		}
	}
	if t.io[d]&canRead != 0 || t.dir[d].chunk != 0 {
		l.requeue(i, t) // more to read, or to flush
	}
}

// sentChunk is flush after its send: the chunk gives up what went, and the
// tunnel's state machine runs again to go on from there. A failure is
// kept on the socket for the next flush to report where the state
// machine can act on it.
func (l *loop) sentChunk(o *ioOp) {
	i, d := o.i, int(o.d)
	t := l.opTunnel(o)
	if t == nil {
		return
	}
	dst := 1 - d
	dr := &t.dir[d]
	t.io[dst] &^= writing
	switch {
	case o.res >= 0:
		n := int(o.res)
		l.moved(t, d, n)
		if dr.chunk != 0 {
			c := l.chunks[dr.chunk-1]
			if c.off += n; c.off >= len(c.b) {
				l.unpark(dr)
			} else {
				t.io[dst] &^= canWrite // a short write: the send buffer is full
				return
			}
		}
	case o.res == -int32(unix.EAGAIN):
		t.io[dst] &^= canWrite
		return
	case o.res != -int32(unix.EINTR):
		t.io[dst] |= sendFailed
	}
	l.requeue(i, t)
}

// write sends p along direction d at once and parks what the destination
// did not take.
func (l *loop) write(t *tunnel, d int, p []byte) (int, error) {
	dst := 1 - d
	if t.dir[d].chunk != 0 || t.io[dst]&writing != 0 {
		l.park(&t.dir[d], p) // behind what is already on its way
		return -1, nil
	}
	w, err := sysWrite(int(t.fd[dst]), p)
	if err != nil {
		if err != unix.EAGAIN {
			return dst, err
		}
		w = 0
	}
	if w > 0 {
		l.moved(t, d, w)
	}
	if w < len(p) {
		l.park(&t.dir[d], p[w:])
		t.io[dst] &^= canWrite
	}
	return -1, nil
}

// flush queues the send of direction d's parked bytes; the batch makes
// it, and its result (sentChunk) runs the tunnel's state machine again.
// It reports the failure of an earlier send instead, with its side.
func (l *loop) flush(i int32, t *tunnel, d int) (int, error) {
	dst := 1 - d
	if t.io[dst]&sendFailed != 0 {
		return dst, errSendFailed
	}
	if t.dir[d].chunk != 0 && t.io[dst]&(canWrite|writing) == canWrite {
		l.queueSendChunk(i, t, d)
	}
	return -1, nil
}

// errSendFailed is what flush reports after a batched send failed (a
// reset, a broken pipe): the callers care about the side, not the errno.
var errSendFailed = errors.New("send failed")

// moved records n bytes delivered along direction d. Activity, for the
// idle timeout, is counted where bytes are read from a peer, not here:
// wsgate's own Pings must not keep a silent tunnel alive.
func (l *loop) moved(t *tunnel, d int, n int) {
	t.bytes[d] += uint64(n)
	l.c.bytes[d].Add(uint64(n))
}

func (l *loop) getPipe() *pipe {
	p, err := l.pipes.get()
	if err != nil {
		l.srv.fdLimit(err, "pipe2")
	}
	if p != nil {
		l.c.pipes.Store(int64(l.pipes.inUse()))
	}
	return p
}

// dropPipe gives dr's pipe back to the pool (closing it if it still holds
// bytes).
func (l *loop) dropPipe(dr *direction) {
	p := l.pipeOf(dr)
	if p == nil {
		return
	}
	l.pipes.put(p)
	dr.pipe = 0
	l.c.pipes.Store(int64(l.pipes.inUse()))
}

// wait queues direction d of tunnel i until a pipe or park room frees up.
func (l *loop) wait(i int32, t *tunnel, d int) {
	if t.dir[d].flags&dWaiting == 0 {
		t.dir[d].flags |= dWaiting
		l.waits = append(l.waits, i)
	}
}

// serveWaits requeues waiting tunnels, oldest first, while there is room
// for them. Waiters of a freed tunnel are skipped by their cleared flags.
func (l *loop) serveWaits() {
	k := 0
	for ; k < len(l.waits); k++ {
		if l.parked+copyBufSize > l.srv.parkLimit && len(l.pipes.idle) == 0 && l.pipes.created >= l.pipes.max {
			break
		}
		i := l.waits[k]
		t := l.tabs.at(i)
		if t.dir[0].flags&dWaiting == 0 && t.dir[1].flags&dWaiting == 0 {
			continue
		}
		t.dir[0].flags &^= dWaiting
		t.dir[1].flags &^= dWaiting
		l.requeue(i, t)
	}
	l.waits = append(l.waits[:0], l.waits[k:]...)
}
