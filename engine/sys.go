package engine

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The loops' system calls.
//
// Every fd a loop uses is non-blocking, so its read, write, splice,
// accept, connect, close and epoll_ctl calls return at once; the loops make
// them without telling the Go scheduler (RawSyscall) instead of through
// unix.Read and friends (Syscall). A Syscall hands the goroutine's P to
// the scheduler for its duration, and on loopback a write can take tens
// of microseconds (it runs the receiver's TCP input too): the runtime's
// monitor then takes the P away, wakes another thread to run it, and the
// loop must get one back afterwards. Measured in the echo benchmark
// (1,000 tunnels × 64 B): per message 0.07 futex calls, 0.12 of the
// monitor's nanosleeps and 0.34 context switches, none of them doing
// work. The one call that blocks, epoll_wait with a timeout, goes through
// the scheduler as before.

func errnoErr(e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// sysRead is recv(2) on a non-blocking socket: recvfrom rather than read
// goes to the socket layer without passing through the VFS (file
// position lock, rw_verify_area, fsnotify), as nginx does.
func sysRead(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// sysWrite is send(2) on a non-blocking socket (sendto, for the reason
// sysRead gives). MSG_NOSIGNAL: a peer's reset is an EPIPE to handle, not
// a SIGPIPE.
func sysWrite(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), unix.MSG_NOSIGNAL, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// sysSplice is splice(2) without offsets, with SPLICE_F_NONBLOCK.
func sysSplice(in, out, n int) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_SPLICE, uintptr(in), 0, uintptr(out), 0, uintptr(n), spliceFlags)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// sysPeek reads without consuming (MSG_PEEK).
func sysPeek(fd int, p []byte) (int, error) {
	n, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), unix.MSG_PEEK, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// sysClose is close(2) of a socket or pipe: without SO_LINGER it does not
// wait for anything.
func sysClose(fd int) error {
	_, _, e := unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
	return errnoErr(e)
}

func sysShutdown(fd, how int) error {
	_, _, e := unix.RawSyscall(unix.SYS_SHUTDOWN, uintptr(fd), uintptr(how), 0)
	return errnoErr(e)
}

func sysEpollCtl(epfd, op, fd int, ev *unix.EpollEvent) error {
	_, _, e := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(ev)), 0, 0)
	return errnoErr(e)
}

// sysEpollPoll is epoll_wait(2) with a zero timeout: it never blocks.
func sysEpollPoll(epfd int, events []unix.EpollEvent) (int, error) {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// sysSocket opens a non-blocking, close-on-exec TCP socket.
func sysSocket(family int) (int, error) {
	fd, _, e := unix.RawSyscall(unix.SYS_SOCKET, uintptr(family), unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if e != 0 {
		return -1, e
	}
	return int(fd), nil
}

// sysConnect starts a non-blocking connect to a raw socket address.
func sysConnect(fd int, sa *unix.RawSockaddrAny, n uint32) error {
	_, _, e := unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(sa)), uintptr(n))
	return errnoErr(e)
}

func sysSetsockoptInt(fd, level, opt, value int) error {
	v := int32(value)
	_, _, e := unix.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt), uintptr(unsafe.Pointer(&v)), 4, 0)
	return errnoErr(e)
}

// rawSockaddr is a backend's socket address in the form connect(2) takes,
// made once: unix.Connect converts a Sockaddr on every call, writing into
// it, so a shared one is a data race and a fresh one an allocation.
type rawSockaddr struct {
	sa unix.RawSockaddrAny
	n  uint32
}

func makeRawSockaddr(sa unix.Sockaddr) rawSockaddr {
	var r rawSockaddr
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		p := (*unix.RawSockaddrInet4)(unsafe.Pointer(&r.sa))
		p.Family = unix.AF_INET
		b := (*[2]byte)(unsafe.Pointer(&p.Port))
		b[0], b[1] = byte(a.Port>>8), byte(a.Port)
		p.Addr = a.Addr
		r.n = unix.SizeofSockaddrInet4
	case *unix.SockaddrInet6:
		p := (*unix.RawSockaddrInet6)(unsafe.Pointer(&r.sa))
		p.Family = unix.AF_INET6
		b := (*[2]byte)(unsafe.Pointer(&p.Port))
		b[0], b[1] = byte(a.Port>>8), byte(a.Port)
		p.Addr = a.Addr
		p.Scope_id = a.ZoneId
		r.n = unix.SizeofSockaddrInet6
	}
	return r
}
