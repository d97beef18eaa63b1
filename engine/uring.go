package engine

import (
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// io_uring, as much of it as the loops use: one ring per loop, to make a
// batch of socket calls with one system call (batch.go says why).
//
// It is written here rather than taken from a library for the reason
// sys.go gives for the loops' other calls: io_uring_enter must go through
// RawSyscall, without the scheduler. The Go ports of liburing call it
// through Syscall, which on a batch of sends long enough for the runtime's
// monitor takes the loop's P away and brings back the futex calls and
// context switches that RawSyscall removed. The loops need only recv,
// send and close, and the setup around them: four structures of the kernel's ABI
// (include/uapi/linux/io_uring.h), which do not change.

// uringParams is struct io_uring_params.
type uringParams struct {
	sqEntries    uint32
	cqEntries    uint32
	flags        uint32
	sqThreadCPU  uint32
	sqThreadIdle uint32
	features     uint32
	wqFd         uint32
	resv         [3]uint32
	sq           struct{ head, tail, ringMask, ringEntries, flags, dropped, array, resv1, userAddrLo, userAddrHi uint32 }
	cq           struct{ head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1, userAddrLo, userAddrHi uint32 }
}

// uringSQE is struct io_uring_sqe (64 bytes).
type uringSQE struct {
	opcode      uint8
	flags       uint8
	ioprio      uint16
	fd          int32
	off         uint64
	addr        uint64
	len         uint32
	opFlags     uint32 // msg_flags for send and recv
	userData    uint64
	bufIndex    uint16
	personality uint16
	spliceFdIn  int32
	addr3       uint64
	_           uint64
}

// uringCQE is struct io_uring_cqe (16 bytes).
type uringCQE struct {
	userData uint64
	res      int32 // bytes, or -errno
	flags    uint32
}

const (
	uringOpClose = 19 // IORING_OP_CLOSE, Linux 5.6
	uringOpSend  = 26 // IORING_OP_SEND, Linux 5.6
	uringOpRecv  = 27 // IORING_OP_RECV, Linux 5.6

	uringOffSQRing = 0
	uringOffSQEs   = 0x10000000

	uringEnterGetEvents = 1 << 0

	uringSetupSubmitAll   = 1 << 7 // Linux 5.18: one failed SQE does not stop the rest
	uringSetupCoopTaskrun = 1 << 8 // Linux 5.19: no interrupt to run completion work

	uringFeatSingleMmap = 1 << 0 // Linux 5.4: SQ and CQ rings in one mapping
	uringFeatNoDrop     = 1 << 1 // Linux 5.5: completions are never dropped

	uringRegisterProbe = 8 // IORING_REGISTER_PROBE, Linux 5.6
	uringOpSupported   = 1 << 0
)

// ioRing is one io_uring instance, used by one loop's goroutine only.
type ioRing struct {
	fd      int
	sqHead  *uint32 // advanced by the kernel as it takes SQEs
	sqTail  *uint32 // published by us at submit
	sqMask  uint32
	sqArray []uint32
	sqes    []uringSQE
	cqHead  *uint32 // advanced by us as we take CQEs
	cqTail  *uint32 // advanced by the kernel as it posts CQEs
	cqMask  uint32
	cqes    []uringCQE
	tail    uint32 // our SQ tail, ahead of *sqTail by the SQEs not yet submitted
	rings   []byte // the mappings, for close
	sqeMem  []byte
}

// errUringUnsupported is returned by newRing on a kernel whose io_uring
// lacks what the loops need.
var errUringUnsupported = errors.New("io_uring without IORING_OP_SEND/RECV/CLOSE or single-mmap rings (Linux 5.6 or later is needed)")

// newRing sets up a ring of at least entries SQEs and twice as many CQEs.
// Flags from newer kernels are asked for and dropped one by one when the
// kernel refuses them.
func newRing(entries uint32) (*ioRing, error) {
	// SINGLE_ISSUER and DEFER_TASKRUN would tie the ring to the thread
	// that creates it, which is not the loop's (Start makes the rings, so
	// that a failure fails Start); measured, they saved under 1%.
	flagSets := []uint32{uringSetupSubmitAll | uringSetupCoopTaskrun, 0}
	var (
		p   uringParams
		fd  uintptr
		err error
	)
	for _, flags := range flagSets {
		p = uringParams{flags: flags}
		var e unix.Errno
		fd, _, e = unix.RawSyscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
		if e == 0 {
			err = nil
			break
		}
		err = fmt.Errorf("io_uring_setup: %w", e)
		if e != unix.EINVAL {
			return nil, err // ENOSYS, EPERM (seccomp, io_uring_disabled), ENOMEM, EMFILE
		}
	}
	if err != nil {
		return nil, err
	}
	r := &ioRing{fd: int(fd)}
	if p.features&(uringFeatSingleMmap|uringFeatNoDrop) != uringFeatSingleMmap|uringFeatNoDrop || !r.supports(uringOpSend, uringOpRecv, uringOpClose) {
		unix.Close(r.fd)
		return nil, errUringUnsupported
	}
	size := max(p.sq.array+p.sqEntries*4, p.cq.cqes+p.cqEntries*uint32(unsafe.Sizeof(uringCQE{})))
	r.rings, err = unix.Mmap(r.fd, uringOffSQRing, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		unix.Close(r.fd)
		return nil, fmt.Errorf("mmap io_uring rings: %w", err)
	}
	r.sqeMem, err = unix.Mmap(r.fd, uringOffSQEs, int(p.sqEntries)*int(unsafe.Sizeof(uringSQE{})), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		unix.Munmap(r.rings)
		unix.Close(r.fd)
		return nil, fmt.Errorf("mmap io_uring SQEs: %w", err)
	}
	base := unsafe.Pointer(&r.rings[0])
	r.sqHead = (*uint32)(unsafe.Add(base, p.sq.head))
	r.sqTail = (*uint32)(unsafe.Add(base, p.sq.tail))
	r.sqMask = *(*uint32)(unsafe.Add(base, p.sq.ringMask))
	r.sqArray = unsafe.Slice((*uint32)(unsafe.Add(base, p.sq.array)), p.sqEntries)
	r.sqes = unsafe.Slice((*uringSQE)(unsafe.Pointer(&r.sqeMem[0])), p.sqEntries)
	r.cqHead = (*uint32)(unsafe.Add(base, p.cq.head))
	r.cqTail = (*uint32)(unsafe.Add(base, p.cq.tail))
	r.cqMask = *(*uint32)(unsafe.Add(base, p.cq.ringMask))
	r.cqes = unsafe.Slice((*uringCQE)(unsafe.Add(base, p.cq.cqes)), p.cqEntries)
	r.tail = atomic.LoadUint32(r.sqTail)
	return r, nil
}

// supports asks the kernel whether it implements every one of ops.
func (r *ioRing) supports(ops ...uint8) bool {
	// struct io_uring_probe: a 16-byte header, then 8 bytes per opcode.
	var probe [16 + 256*8]byte
	_, _, e := unix.RawSyscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), uringRegisterProbe,
		uintptr(unsafe.Pointer(&probe[0])), 256, 0, 0)
	if e != 0 {
		return false // before Linux 5.6, which has no send or recv either
	}
	last := probe[0]
	for _, op := range ops {
		if op > last || probe[16+int(op)*8+2]&uringOpSupported == 0 {
			return false
		}
	}
	return true
}

// space is how many SQEs can be prepared before the next submit.
func (r *ioRing) space() int {
	return len(r.sqes) - int(r.tail-atomic.LoadUint32(r.sqHead))
}

// prep returns the next SQE, zeroed; the caller checked space.
func (r *ioRing) prep() *uringSQE {
	k := r.tail & r.sqMask
	r.sqArray[k] = k
	s := &r.sqes[k]
	*s = uringSQE{}
	r.tail++
	return s
}

// submitAndWait submits the prepared SQEs and waits until n completions
// are posted. On sockets that are non-blocking and with MSG_DONTWAIT every
// call completes in the submitting call, so the wait returns at once.
func (r *ioRing) submitAndWait(n int) error {
	atomic.StoreUint32(r.sqTail, r.tail)
	busy := 0
	for {
		toSubmit := r.tail - atomic.LoadUint32(r.sqHead)
		ready := int(atomic.LoadUint32(r.cqTail) - atomic.LoadUint32(r.cqHead))
		if toSubmit == 0 && ready >= n {
			return nil
		}
		wait := uintptr(0)
		if ready < n {
			wait = uintptr(n - ready)
		}
		_, _, e := unix.RawSyscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(toSubmit), wait, uringEnterGetEvents, 0, 0)
		switch e {
		case 0, unix.EINTR:
			// EINTR: a signal (the Go runtime preempts with SIGURG).
		case unix.EAGAIN, unix.EBUSY:
			// The kernel is short of memory for requests, or has
			// completions to post first: ask again, a bounded number of
			// times.
			if busy++; busy > 64 {
				return fmt.Errorf("io_uring_enter: %w (%d times)", e, busy)
			}
		default:
			return fmt.Errorf("io_uring_enter: %w", e)
		}
	}
}

// reap calls f with each posted completion, in order, and consumes them.
func (r *ioRing) reap(f func(userData uint64, res int32)) {
	head := atomic.LoadUint32(r.cqHead)
	tail := atomic.LoadUint32(r.cqTail)
	for ; head != tail; head++ {
		c := &r.cqes[head&r.cqMask]
		f(c.userData, c.res)
	}
	atomic.StoreUint32(r.cqHead, head)
}

// close releases the ring; nothing may be in flight.
func (r *ioRing) close() {
	unix.Munmap(r.sqeMem)
	unix.Munmap(r.rings)
	unix.Close(r.fd)
}
