package engine

import (
	"golang.org/x/sys/unix"
)

const (
	spliceFlags = unix.SPLICE_F_MOVE | unix.SPLICE_F_NONBLOCK
	pipeBytes   = 64 << 10 // the default pipe capacity; one splice moves at most this
)

// pump moves bytes along direction d of an upgraded tunnel as far as the
// sockets allow: flush what is in flight, then read the source and write
// the destination, until one of them would block, the source ends, or the
// per-readiness budget is spent (then the tunnel is requeued: with edge
// triggering nobody would report the rest). It returns the side whose
// syscall failed, with the error; -1 and nil otherwise.
//
// Backpressure: the source is read only when nothing is in flight and the
// destination has room, so a slow reader makes wsgate hold at most one
// pipe or one chunk for it, never more.
func (l *loop) pump(i int32, t *tunnel, d int) (int, error) {
	dr := &t.dir[d]
	src, dst := d, 1-d
	sfd, dfd := int(t.fd[src]), int(t.fd[dst])
	for ops := 0; ops < maxOps; ops++ {
		if dr.chunk != 0 {
			if t.io[dst]&canWrite == 0 {
				return -1, nil
			}
			if side, err := l.flush(t, d); err != nil {
				return side, err
			}
			continue
		}
		if p := l.pipeOf(dr); p != nil && p.n > 0 {
			if t.io[dst]&canWrite == 0 {
				return -1, nil
			}
			n, err := unix.Splice(p.r, nil, dfd, nil, p.n, spliceFlags)
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
		if dr.flags&dEOF != 0 {
			l.dropPipe(dr)
			if dr.flags&dShut == 0 {
				// Half-close: the source finished and everything it sent
				// is delivered; tell the destination, and keep the other
				// direction going (RFC 9293 3.6; HAProxy does the same for
				// upgraded connections).
				dr.flags |= dShut
				if err := unix.Shutdown(dfd, unix.SHUT_WR); err != nil && err != unix.ENOTCONN {
					return dst, err
				}
			}
			return -1, nil
		}
		if t.io[src]&canRead == 0 || t.io[dst]&canWrite == 0 {
			l.dropPipe(dr) // an idle direction holds no pipe
			return -1, nil
		}
		if l.splicing(dr) {
			p := l.pipeOf(dr)
			if p == nil {
				if p = l.getPipe(); p == nil {
					if l.srv.mode == ModeSplice {
						l.wait(i, t, d)
						return -1, nil
					}
					dr.flags &^= dBurst // no pipe free: copy this burst
					continue
				}
				dr.pipe = p.id + 1
			}
			// The pipe is empty here, so EAGAIN can only mean the socket
			// is drained (DESIGN.md, "pitfalls").
			n, err := unix.Splice(sfd, nil, p.w, nil, pipeBytes, spliceFlags)
			if err != nil {
				if err == unix.EAGAIN {
					t.io[src] &^= canRead
					dr.flags &^= dBurst
					l.dropPipe(dr)
					return -1, nil
				}
				if err == unix.EINTR {
					continue
				}
				return src, err
			}
			if n == 0 {
				dr.flags |= dEOF
				continue
			}
			p.n = int(n)
			continue
		}

		// Copy path: one read into the loop's buffer, one write out of it.
		if l.parked+copyBufSize > l.srv.parkLimit {
			l.wait(i, t, d) // a partial write would have nowhere to go
			return -1, nil
		}
		n, err := unix.Read(sfd, l.buf)
		if err != nil {
			if err == unix.EAGAIN {
				t.io[src] &^= canRead
				return -1, nil
			}
			if err == unix.EINTR {
				continue
			}
			return src, err
		}
		if n == 0 {
			dr.flags |= dEOF
			continue
		}
		if n < len(l.buf) {
			// A short read drained the socket: any later byte raises a
			// new edge. Only a FIN that came with the data would not, and
			// EPOLLRDHUP told us of that one (peerShut).
			if t.io[src]&peerShut == 0 {
				t.io[src] &^= canRead
			}
		} else if l.srv.mode == ModeAuto {
			dr.flags |= dBurst // bulk: splice the rest of this burst
		}
		if side, err := l.write(t, d, l.buf[:n]); err != nil {
			return side, err
		}
		if dr.chunk != 0 {
			return -1, nil
		}
	}
	l.requeue(i, t)
	return -1, nil
}

// write sends p along direction d at once and parks what the destination
// did not take.
func (l *loop) write(t *tunnel, d int, p []byte) (int, error) {
	dst := 1 - d
	w, err := unix.Write(int(t.fd[dst]), p)
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

// flush writes direction d's chunk to its destination as far as it goes.
func (l *loop) flush(t *tunnel, d int) (int, error) {
	dr := &t.dir[d]
	dst := 1 - d
	for dr.chunk != 0 && t.io[dst]&canWrite != 0 {
		c := l.chunks[dr.chunk-1]
		n, err := unix.Write(int(t.fd[dst]), c.pending())
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
		l.moved(t, d, n)
		c.off += n
		if c.off == len(c.b) {
			l.unpark(dr)
		} else {
			t.io[dst] &^= canWrite // a short write means the send buffer is full
		}
	}
	return -1, nil
}

// splicing reports whether the next read of dr goes through a pipe.
func (l *loop) splicing(dr *direction) bool {
	switch l.srv.mode {
	case ModeSplice:
		return true
	case ModeCopy:
		return false
	}
	return dr.flags&dBurst != 0
}

// moved records n bytes delivered along direction d.
func (l *loop) moved(t *tunnel, d int, n int) {
	t.bytes[d] += uint64(n)
	t.active = l.now
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
