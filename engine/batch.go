package engine

import (
	"fmt"
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
	for i, n := range ioUringModeNames {
		if s == n {
			return IOUringMode(i), nil
		}
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
	opRecv uint8 = iota
	opSend
)

// ioOp is one queued socket call of a tunnel's direction.
type ioOp struct {
	i    int32  // the tunnel
	gen  uint32 // its generation when queued: a freed tunnel's ops are dropped
	fd   int32
	n    int32 // bytes to receive (the slot's size) or to send
	res  int32 // bytes done, or -errno
	slot uint16
	kind uint8
	d    uint8 // the direction
}

// batch is a loop's queue of socket calls and what makes them.
type batch struct {
	ring    *ioRing // nil: plain system calls
	arena   []byte  // batchMax slots, mapped outside the Go heap
	recvs   []ioOp
	sends   []ioOp
	used    int    // most slots one batch used since the last trim
	held    int    // slots whose pages may be resident
	trimmed uint32 // tick of the last trim
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

// close releases the ring and the arena; nothing may be queued.
func (b *batch) close() {
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

// run makes the calls in ops and records each result in its res.
func (b *batch) run(ops []ioOp) error {
	if len(ops) == 0 {
		return nil
	}
	if b.ring == nil {
		for k := range ops {
			b.call(&ops[k])
		}
		return nil
	}
	r := b.ring
	for len(ops) > 0 {
		n := min(len(ops), r.space())
		for k := range ops[:n] {
			o := &ops[k]
			s := r.prep()
			s.fd = o.fd
			s.addr = uint64(uintptr(unsafe.Pointer(&b.slot(o.slot)[0])))
			s.len = uint32(o.n)
			s.userData = uint64(k)
			if o.kind == opRecv {
				s.opcode = uringOpRecv
				s.opFlags = unix.MSG_DONTWAIT
			} else {
				s.opcode = uringOpSend
				s.opFlags = unix.MSG_DONTWAIT | unix.MSG_NOSIGNAL
			}
		}
		if err := r.submitAndWait(n); err != nil {
			return err
		}
		done := ops[:n]
		r.reap(func(userData uint64, res int32) { done[userData].res = res })
		ops = ops[n:]
	}
	return nil
}

// call makes one op as a plain system call.
func (b *batch) call(o *ioOp) {
	p := b.slot(o.slot)[:o.n]
	var (
		n int
		e error
	)
	if o.kind == opRecv {
		n, e = sysRead(int(o.fd), p)
	} else {
		n, e = sysWrite(int(o.fd), p)
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
	b.recvs = append(b.recvs, ioOp{i: i, gen: t.gen, fd: t.fd[d], n: slotSize, slot: uint16(len(b.recvs)), kind: opRecv, d: uint8(d)})
	t.io[d] |= reading
	return true
}

// flushIO makes the queued recvs, then the sends that forward what they
// read, and hands each result to the tunnel's state machine.
func (l *loop) flushIO() error {
	b := &l.batch
	if len(b.recvs) == 0 {
		return nil
	}
	defer func() { b.recvs, b.sends = b.recvs[:0], b.sends[:0] }()
	// A tunnel freed since it queued a call may have had its fd number
	// reused already (an accept in the same event batch): such calls are
	// dropped, never made.
	recvs := l.live(b.recvs)
	b.used = max(b.used, len(b.recvs))
	b.held = max(b.held, b.used)
	if err := b.run(recvs); err != nil {
		return err
	}
	for k := range recvs {
		l.received(&recvs[k])
	}
	sends := l.live(b.sends)
	if err := b.run(sends); err != nil {
		return err
	}
	for k := range sends {
		l.sent(&sends[k])
	}
	l.c.batches.Add(1)
	l.c.batchedCalls.Add(uint64(len(recvs) + len(sends)))
	return nil
}

// live drops, in place, the ops whose tunnel has been freed since.
func (l *loop) live(ops []ioOp) []ioOp {
	k := 0
	for _, o := range ops {
		if t := l.tabs.at(o.i); t.state != stFree && t.gen == o.gen {
			ops[k] = o
			k++
		}
	}
	return ops[:k]
}

// received is pump's copy path after its recv: what came is checked and
// queued to be sent on, or the source's end or error is recorded.
func (l *loop) received(o *ioOp) {
	i, d := o.i, int(o.d)
	t := l.tabs.at(i)
	if t.state == stFree || t.gen != o.gen {
		return // an earlier result in this batch closed the tunnel
	}
	src, dst := d, 1-d
	dr := &t.dir[d]
	t.io[src] &^= reading
	if o.res < 0 {
		switch unix.Errno(-o.res) {
		case unix.EAGAIN:
			t.io[src] &^= canRead
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
	if n < int(o.n) {
		// A short read drained the socket: any later byte raises a new
		// edge. Only a FIN that came with the data would not, and
		// EPOLLRDHUP told us of that one (peerShut).
		if t.io[src]&peerShut == 0 {
			t.io[src] &^= canRead
		}
	} else if l.srv.mode == ModeAuto {
		dr.flags |= dBurst // bulk: splice the rest of this burst
	}
	p := l.batch.slot(o.slot)[:n]
	if dr.chunk != 0 || dr.flags&(dCloseWant|dCloseSent) != 0 {
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
	if t.io[src]&canRead != 0 && n < int(o.n) {
		l.requeue(i, t) // a FIN came with the data: read it
	}
}

// sent is pump's copy path after its send: what the destination did not
// take is parked until it has room.
func (l *loop) sent(o *ioOp) {
	i, d := o.i, int(o.d)
	t := l.tabs.at(i)
	if t.state == stFree || t.gen != o.gen {
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
	if w < int(o.n) {
		l.park(&t.dir[d], l.batch.slot(o.slot)[w:o.n])
		if o.res != -int32(unix.EINTR) {
			t.io[dst] &^= canWrite // EAGAIN or a short write: the send buffer is full
			return
		}
	}
	if t.io[d]&canRead != 0 || t.dir[d].chunk != 0 {
		l.requeue(i, t) // more to read, or to flush
	}
}
