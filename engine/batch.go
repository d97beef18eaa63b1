package engine

import (
	"fmt"
	"slices"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Batched socket calls on the copy path.
//
// On the virtual machines this project is measured on, a system call costs
// about 1.1 µs before it does any work (getppid in a loop), and the copy
// path of a small WebSocket message makes four: a recv and a send each way.
// Measured with 128 loopback connections, a 64-byte send and its recv cost
// 6.3 µs as two system calls and 2.6 µs as part of batches made with one
// io_uring_enter each. So the loops do not make those calls one at a time:
// pump queues a recv for each direction that has bytes to read, and after
// the loop has handled its epoll events it makes all the queued recvs with
// one io_uring_enter, then all the sends their bytes make with another.
// The sockets are non-blocking and the calls carry MSG_DONTWAIT, so each
// completes inside that call, exactly as the plain call would have: the
// bytes it found, or EAGAIN, never a wait in the kernel.
//
// Where io_uring is not available (Linux before 5.6; seccomp profiles that
// deny it, as Docker's default does; kernel.io_uring_disabled) the same
// batch is made with one recv or send system call per entry, which is what
// the loops did before: the state machine around the calls is the same
// either way, and so are its tests.
//
// A recv reads into one slot of the loop's arena, and the send that
// forwards those bytes writes from the same slot, so a batch copies
// nothing; the arena is reused by the next batch. A slot is 64 KiB, the
// read the copy path always made: one that fills it is the start of a
// burst, and ModeAuto sends the rest through a pipe. The arena is mapped
// outside the Go heap, and only the pages batches touch are resident;
// those of slots no batch has used for a while are given back (trim).

const (
	batchMax  = 256      // recvs per batch, and the ring's SQ size
	slotSize  = 64 << 10 // bytes one batched recv may read
	trimTicks = 50       // how often the arena's unused slots are given back
)

// IOUringMode chooses how the loops make their batched socket calls.
type IOUringMode uint8

const (
	// IOUringAuto uses io_uring where the kernel allows it, plain system
	// calls elsewhere.
	IOUringAuto IOUringMode = iota
	// IOUringOn requires io_uring: Start fails without it.
	IOUringOn
	// IOUringOff always makes plain system calls.
	IOUringOff
)

var ioUringModeNames = [...]string{"auto", "on", "off"}

func (m IOUringMode) String() string { return ioUringModeNames[m] }

// ParseIOUringMode reads "auto", "on" or "off".
func ParseIOUringMode(s string) (IOUringMode, error) {
	if i := slices.Index(ioUringModeNames[:], s); i >= 0 {
		return IOUringMode(i), nil
	}
	return 0, fmt.Errorf("io_uring %q: want auto, on or off", s)
}

// noteNoRing records that io_uring was refused, and says so once.
func (s *Server) noteNoRing(err error) {
	if !s.noRing.Swap(true) {
		s.log.Info("io_uring unavailable: the loops make one system call per socket call", "err", err)
	}
}

// IOUring reports whether the loops batch their socket calls with
// io_uring (false before Start).
func (s *Server) IOUring() bool {
	n := int(s.rings.Load())
	return n > 0 && n == len(s.loops)
}

// Kinds of batched call.
const (
	opRecv      uint8 = iota // the copy path's read, into a slot
	opSend                   // the copy path's write, from the slot its recv filled
	opSendChunk              // a direction's parked bytes (heads, answers, Close frames, rests)
	opCloseFD                // a finished tunnel's socket
)

// ioOp is one queued socket call.
type ioOp struct {
	buf  []byte // what a recv fills or a send sends; set when the batch is made
	i    int32  // the tunnel
	gen  uint32 // its generation when queued: a freed tunnel's ops are dropped
	fd   int32
	n    int32 // bytes a slot send sends
	res  int32 // bytes done, or -errno
	slot uint16
	kind uint8
	d    uint8 // the direction
}

// batch is a loop's queue of socket calls and what makes them.
type batch struct {
	ring    *ioRing // nil: plain system calls
	ringErr error   // why the ring was dropped, to be logged by the loop
	arena   []byte  // batchMax slots, mapped outside the Go heap
	recvs   []ioOp
	sends   []ioOp  // slot and chunk sends, then the closes
	closes  []int32 // sockets to close once the batch's sends are made
	used    int     // most slots one batch used since the last trim
	held    int     // slots whose pages may be resident
	trimmed uint32  // tick of the last trim
}

func (b *batch) init(ring *ioRing) error {
	arena, err := unix.Mmap(-1, 0, batchMax*slotSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return fmt.Errorf("mmap %d bytes for the copy slots: %w", batchMax*slotSize, err)
	}
	b.arena = arena
	b.ring = ring
	b.recvs = make([]ioOp, 0, batchMax)
	b.sends = make([]ioOp, 0, batchMax)
	return nil
}

// close closes the sockets still queued and releases the ring and the
// arena; the calls still queued are dropped (their tunnels are closed).
func (b *batch) close() {
	for _, fd := range b.closes {
		sysClose(int(fd))
	}
	b.recvs, b.sends, b.closes = nil, nil, nil
	if b.ring != nil {
		b.ring.close()
		b.ring = nil
	}
	if b.arena != nil {
		unix.Munmap(b.arena)
		b.arena = nil
	}
}

// trim gives back the pages of the slots no batch has used since the
// last trim: after a burst that spread over many slots, a quieter loop
// does not keep them resident.
func (b *batch) trim() {
	if b.held > b.used {
		unix.Madvise(b.arena[b.used*slotSize:b.held*slotSize], unix.MADV_DONTNEED)
	}
	b.held, b.used = b.used, 0
}

func (b *batch) slot(k uint16) []byte {
	off := int(k) * slotSize
	return b.arena[off : off+slotSize : off+slotSize]
}

// run makes the calls in ops and records each result in its res. A lone
// call is made plainly: io_uring_enter for one entry costs more than the
// call itself. Should io_uring_enter fail (a seccomp profile that allows
// setting a ring up but not using it, the kernel short of memory for
// requests again and again), the calls it did not make are made plainly,
// and so is everything after: the loop carries on without the ring
// rather than dropping its tunnels.
func (b *batch) run(ops []ioOp) {
	if b.ring == nil || len(ops) == 1 {
		for k := range ops {
			call(&ops[k])
		}
		return
	}
	r := b.ring
	for len(ops) > 0 {
		n := min(len(ops), r.space())
		for k := range ops[:n] {
			o := &ops[k]
			o.res = noResult
			s := r.prep()
			s.fd = o.fd
			s.userData = uint64(k)
			switch o.kind {
			case opRecv:
				s.opcode = uringOpRecv
				s.opFlags = unix.MSG_DONTWAIT
			case opSend, opSendChunk:
				s.opcode = uringOpSend
				s.opFlags = unix.MSG_DONTWAIT | unix.MSG_NOSIGNAL
			case opCloseFD:
				s.opcode = uringOpClose
			}
			if len(o.buf) > 0 {
				s.addr = uint64(uintptr(unsafe.Pointer(&o.buf[0])))
				s.len = uint32(len(o.buf))
			}
		}
		err := r.submitAndWait(n)
		done := ops[:n]
		r.reap(func(userData uint64, res int32) { done[userData].res = res })
		if err != nil {
			b.dropRing(err)
			// Every call the kernel took has completed (they never wait);
			// the rest were not taken.
			for k := range ops {
				if ops[k].res == noResult {
					call(&ops[k])
				}
			}
			return
		}
		ops = ops[n:]
	}
}

// noResult marks an op io_uring has not answered yet: no call returns it.
const noResult = -1 << 31

// dropRing gives up on the ring after io_uring_enter failed.
func (b *batch) dropRing(err error) {
	b.ringErr = err
	b.ring.close()
	b.ring = nil
}

// call makes one op as a plain system call.
func call(o *ioOp) {
	var (
		n int
		e error
	)
	switch o.kind {
	case opRecv:
		n, e = sysRead(int(o.fd), o.buf)
	case opSend, opSendChunk:
		n, e = sysWrite(int(o.fd), o.buf)
	case opCloseFD:
		e = sysClose(int(o.fd))
	}
	if e != nil {
		o.res = -int32(e.(unix.Errno))
		return
	}
	o.res = int32(n)
}

// queueRecv queues a recv for direction d of tunnel i, whose source is
// readable and whose destination has room. It reports false when the batch
// is full; the caller then requeues the tunnel for the next one.
func (l *loop) queueRecv(i int32, t *tunnel, d int) bool {
	b := &l.batch
	if len(b.recvs) == batchMax {
		return false
	}
	b.recvs = append(b.recvs, ioOp{i: i, gen: t.gen, fd: t.fd[d], slot: uint16(len(b.recvs)), kind: opRecv, d: uint8(d)})
	t.io[d] |= reading
	return true
}

// queueSendChunk queues the send of direction d's parked bytes. Which
// bytes is settled when the batch is made: whatever the direction has
// parked by then, in order.
func (l *loop) queueSendChunk(i int32, t *tunnel, d int) {
	dst := 1 - d
	l.batch.sends = append(l.batch.sends, ioOp{i: i, gen: t.gen, fd: t.fd[dst], kind: opSendChunk, d: uint8(d)})
	t.io[dst] |= writing
}

// closeLater queues fd to be closed with the batch's sends. It stays open
// until then, so its number cannot be given to another socket meanwhile;
// events it raises carry its tunnel's old generation and are dropped.
func (l *loop) closeLater(fd int32) {
	l.batch.closes = append(l.batch.closes, fd)
}

// flushIO makes the queued recvs, then the sends (those queued while the
// loop handled its events, and those that forward what the recvs read)
// with the queued closes after them, and hands each result to the
// tunnel's state machine. Nothing is queued when it returns.
func (l *loop) flushIO() {
	b := &l.batch
	if len(b.recvs)+len(b.sends)+len(b.closes) == 0 {
		return // an iteration that queued nothing is not a batch
	}
	if len(b.recvs) > 0 {
		b.used = max(b.used, len(b.recvs))
		b.held = max(b.held, b.used)
		recvs := l.prepare(b.recvs)
		b.run(recvs)
		for k := range recvs {
			l.received(&recvs[k])
		}
		l.c.batchedCalls.Add(uint64(len(recvs)))
		b.recvs = b.recvs[:0]
	}
	for len(b.sends)+len(b.closes) > 0 {
		ops := l.prepare(b.sends)
		sends := len(ops)
		for _, fd := range b.closes {
			ops = append(ops, ioOp{fd: fd, kind: opCloseFD})
		}
		b.closes = b.closes[:0]
		b.run(ops)
		for k := range ops[:sends] {
			if o := &ops[k]; o.kind == opSend {
				l.sent(o)
			} else {
				l.sentChunk(o)
			}
		}
		l.c.batchedCalls.Add(uint64(len(ops)))
		b.sends = ops[:0]
		// What the sends' results closed is closed in the next round.
	}
	l.c.batches.Add(1)
	if b.ringErr != nil {
		l.srv.rings.Add(-1)
		l.srv.log.Error("io_uring failed: this loop makes one system call per socket call from now on", "loop", l.id, "err", b.ringErr)
		b.ringErr = nil
	}
}

// opTunnel returns the tunnel o was queued for, or nil when the tunnel
// has been freed since: by an earlier result in the same batch, or
// before the batch was made.
func (l *loop) opTunnel(o *ioOp) *tunnel {
	t := l.tabs.at(o.i)
	if t.state == stFree || t.gen != o.gen {
		return nil
	}
	return t
}

// prepare drops, in place, the ops whose tunnel has been freed since they
// were queued — its fd number may belong to another socket by now (an
// accept in the same event batch) — and sets each op's buffer.
func (l *loop) prepare(ops []ioOp) []ioOp {
	k := 0
	for _, o := range ops {
		t := l.opTunnel(&o)
		if t == nil {
			continue
		}
		switch o.kind {
		case opRecv:
			o.buf = l.batch.slot(o.slot)
		case opSend:
			o.buf = l.batch.slot(o.slot)[:o.n]
		case opSendChunk:
			dr := &t.dir[o.d]
			if dr.chunk == 0 {
				t.io[1-o.d] &^= writing // unparked since: nothing to send
				continue
			}
			o.buf = l.chunks[dr.chunk-1].pending()
		}
		ops[k] = o
		k++
	}
	return ops[:k]
}
