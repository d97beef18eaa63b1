package engine

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// listener is one listening socket. Every loop polls it, or only its own
// loop when an address has a SO_REUSEPORT socket per loop
// (assignListeners), and accepts from it itself, so a connection lives on
// the loop that accepted it from its first byte to its close: no hand-off
// between threads, no event loop in between.
//
// Why not netpoll, which DESIGN.md planned for accept and head reading:
// measured on this machine, its head phase cost 34 syscalls, 2 futex
// wake-ups and a cross-thread hand-off per handshake (its own epoll
// registration, a worker goroutine, Detach, an eventfd to reach a loop),
// about 150 µs of CPU per upgrade against nginx's 99 µs. Reading the head
// in the loop that will carry the tunnel needs none of that.
type listener struct {
	srv   *Server
	idx   int // position in Server.listeners: epoll events carry it
	owner int // the one loop that polls it; -1: every loop
	fd    int
	addr  net.Addr
	name  string

	proxy          bool        // a PROXY v1/v2 header comes first
	tls            *tls.Config // nil: plain
	keepaliveTicks uint32

	mu     sync.Mutex
	paused bool // shutdown(SHUT_RD): refusing connections, still bound
	closed bool
}

// ListenerConfig is one listening address and what its clients get.
type ListenerConfig struct {
	Address string
	// ReusePort opens this many sockets with SO_REUSEPORT, each with its
	// own accept queue (0 or 1: one socket).
	ReusePort int
	// ProxyProtocol expects a PROXY v1 or v2 header before the request
	// (the L4 balancer in front sends it); a connection without a valid
	// one is closed. The address it carries is the client's.
	ProxyProtocol bool
	// TLS, when set, terminates TLS (wss) on this listener.
	TLS *tls.Config
	// Keepalive overrides Config.Keepalive for this listener's tunnels.
	Keepalive time.Duration
	// Inherited are listening sockets for this address passed down by the
	// process that started this one (a binary upgrade): they are used
	// instead of new ones, so no connection is refused in between.
	Inherited []int
}

// maxListeners bounds the listening sockets: a tunnel records its
// listener in one byte.
const maxListeners = 255

// openListener opens (or takes over) the sockets of one ListenerConfig.
func (s *Server) openListener(lc ListenerConfig) error {
	keepalive := lc.Keepalive
	if keepalive == 0 {
		keepalive = s.cfg.Keepalive
	}
	add := func(fd int, a net.Addr) error {
		if len(s.listeners) >= maxListeners {
			unix.Close(fd)
			return fmt.Errorf("listen %s: more than %d listening sockets", lc.Address, maxListeners)
		}
		s.listeners = append(s.listeners, &listener{
			srv: s, idx: len(s.listeners), fd: fd, addr: a, name: lc.Address,
			proxy: lc.ProxyProtocol, tls: lc.TLS, keepaliveTicks: ticks(keepalive),
		})
		return nil
	}
	first := len(s.listeners)
	defer func() { s.assignListeners(first) }()
	if len(lc.Inherited) > 0 {
		for _, fd := range lc.Inherited {
			a, err := inheritListener(fd, lc.Address)
			if err != nil {
				return err
			}
			if err := add(fd, a); err != nil {
				return err
			}
		}
		return nil
	}
	n := max(1, lc.ReusePort)
	for k := 0; k < n; k++ {
		fd, a, err := listen(lc.Address, n > 1)
		if err != nil {
			return err
		}
		if err := add(fd, a); err != nil {
			return err
		}
	}
	return nil
}

// assignListeners gives each of the sockets of one address opened from
// s.listeners[first] on its own loop when there are as many as loops.
//
// The loops wait in the Go runtime's poller, so an epoll fd of theirs has
// no task asleep in epoll_wait, and EPOLLEXCLUSIVE — which stops a
// listener's wake-up at the first epoll with one — wakes them all: with
// one socket polled by every loop, each new connection wakes every idle
// loop, and all but one find nothing to accept. With SO_REUSEPORT
// sockets, one per loop, the kernel picks the socket, and so the loop.
func (s *Server) assignListeners(first int) {
	lns := s.listeners[first:]
	for k, ln := range lns {
		ln.owner = -1
		if len(lns) >= s.cfg.Loops {
			ln.owner = k % s.cfg.Loops
		}
	}
}

// inheritListener checks that fd is a listening TCP socket and makes it
// non-blocking and close-on-exec.
func inheritListener(fd int, addr string) (net.Addr, error) {
	v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if err != nil || v == 0 {
		return nil, fmt.Errorf("listen %s: inherited fd %d is not a listening socket (%v)", addr, fd, err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return nil, fmt.Errorf("listen %s: inherited fd %d: %w", addr, fd, err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return nil, fmt.Errorf("listen %s: inherited fd %d: %w", addr, fd, err)
	}
	unix.CloseOnExec(fd)
	return tcpAddr(sa), nil
}

// ListenerFDs returns, by listening address, the sockets a new process
// can take over (ListenerConfig.Inherited), in the order they were opened.
func (s *Server) ListenerFDs() map[string][]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]int{}
	for _, ln := range s.listeners {
		out[ln.name] = append(out[ln.name], ln.fd)
	}
	return out
}

// listenBacklog is the accept queue length asked for; the kernel caps it
// at net.core.somaxconn (deploy/TUNING.md).
const listenBacklog = 65535

// deferAcceptSeconds is TCP_DEFER_ACCEPT: the kernel queues a connection
// for accept only once its first bytes arrived (or after about this long),
// so the loop's first read finds the head instead of EAGAIN. The prototype
// found 38% of first reads empty without it (DESIGN.md). nginx's
// "deferred" and HAProxy's "defer-accept" set the same option.
const deferAcceptSeconds = 1

// listen opens a TCP listening socket on addr. reusePort lets several
// sockets share the address, each with its own accept queue.
func listen(addr string, reusePort bool) (int, net.Addr, error) {
	ap, err := resolveListen(addr)
	if err != nil {
		return -1, nil, err
	}
	family := unix.AF_INET6
	if ap.Addr().Is4() {
		family = unix.AF_INET
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, nil, fmt.Errorf("listen %s: socket: %w", addr, err)
	}
	fail := func(what string, err error) (int, net.Addr, error) {
		unix.Close(fd)
		return -1, nil, fmt.Errorf("listen %s: %s: %w", addr, what, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fail("SO_REUSEADDR", err)
	}
	if reusePort {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return fail("SO_REUSEPORT", err)
		}
	}
	if family == unix.AF_INET6 && ap.Addr().IsUnspecified() {
		unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0)
	}
	// Accepted sockets inherit TCP_NODELAY from the listener: one
	// setsockopt here instead of one per connection.
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, deferAcceptSeconds)
	if err := unix.Bind(fd, sockaddr(ap)); err != nil {
		return fail("bind", err)
	}
	if err := unix.Listen(fd, listenBacklog); err != nil {
		return fail("listen", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return fail("getsockname", err)
	}
	return fd, tcpAddr(sa), nil
}

// resolveListen turns ":8080", "127.0.0.1:8080" or "[::]:8080" into an
// address; an empty host listens on every address (IPv6 dual-stack).
func resolveListen(addr string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("listen address %q: %w", addr, err)
	}
	if host == "" {
		host = "::"
	}
	ta, err := net.ResolveTCPAddr("tcp", net.JoinHostPort(host, port))
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("listen address %q: %w", addr, err)
	}
	ap := ta.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// pause makes the socket refuse new connections while keeping it bound:
// shutdown(SHUT_RD) on a listening socket stops listening (connections
// still queued are reset), and a later listen(2) on it resumes. The loops
// have stopped polling it before.
func (ln *listener) pause() error {
	ln.mu.Lock()
	defer ln.mu.Unlock()
	if ln.closed || ln.paused {
		return nil
	}
	ln.paused = true
	return unix.Shutdown(ln.fd, unix.SHUT_RD)
}

// resume listens again on a paused socket.
func (ln *listener) resume() error {
	ln.mu.Lock()
	defer ln.mu.Unlock()
	if ln.closed || !ln.paused {
		return nil
	}
	// A socket bound to port 0 loses its port when it stops listening
	// (the kernel only keeps ports bound explicitly): bind it to the port
	// it had. One bound explicitly still has it, and says EINVAL.
	if err := unix.Bind(ln.fd, sockaddr(ln.addr.(*net.TCPAddr).AddrPort())); err != nil && err != unix.EINVAL {
		return fmt.Errorf("listen %s again: bind %s: %w", ln.name, ln.addr, err)
	}
	if err := unix.Listen(ln.fd, listenBacklog); err != nil {
		return fmt.Errorf("listen %s again: %w", ln.name, err)
	}
	ln.paused = false
	return nil
}

// close closes the socket; the loops have stopped polling it before.
func (ln *listener) close() {
	ln.mu.Lock()
	defer ln.mu.Unlock()
	if !ln.closed {
		ln.closed = true
		unix.Close(ln.fd)
	}
}

// Listener events carry a negative index in the epoll event's Fd field
// (tunnels carry theirs, which is never negative; the wake eventfd -1).
func listenerIndex(ln int) int32       { return int32(-2 - ln) }
func listenerOf(index int32) int       { return int(-2 - index) }
func isListenerIndex(i int32) bool     { return i <= -2 }
func (ln *listener) eventIndex() int32 { return listenerIndex(ln.idx) }

// acceptBatch bounds the connections one loop accepts per readiness, so
// that a connection storm does not starve the tunnels it already carries;
// the listener is level-triggered and reports the rest at the next
// epoll_wait.
const acceptBatch = 16

// pollListeners starts or stops this loop's polling of the listeners.
func (l *loop) pollListeners(on bool) {
	if l.listening == on {
		return
	}
	for _, ln := range l.srv.listeners {
		if ln.owner >= 0 && ln.owner != l.id {
			continue
		}
		if on {
			ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLEXCLUSIVE, Fd: ln.eventIndex()}
			if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, ln.fd, &ev); err != nil {
				l.srv.log.Error("epoll_ctl add listener failed", "listener", ln.name, "err", err)
			}
		} else {
			unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, ln.fd, nil)
		}
	}
	l.listening = on
}

// accept takes up to acceptBatch connections from ln and starts reading
// their heads. At the fd limit it stops polling the listeners for a
// moment instead of spinning: the listener stays readable while clients
// wait in its queue, so level-triggered epoll would report it again at
// once (DESIGN.md, "pitfalls").
func (l *loop) accept(ln *listener) {
	for k := 0; k < acceptBatch; k++ {
		limited := l.srv.acceptRate.Load() > 0
		if limited && l.tokens < 1 {
			// Over the accept rate: the rest wait in the kernel's queue
			// until the next tick refills the bucket.
			l.pollListeners(false)
			l.acceptBackoff = l.now + 1
			return
		}
		fd, peer, err := accept4(ln.fd)
		if err != nil {
			switch err {
			case unix.EAGAIN, unix.EINTR, unix.ECONNABORTED:
				if err == unix.EAGAIN {
					return
				}
				continue
			}
			l.srv.c.acceptErrors.Add(1)
			if err == unix.EMFILE || err == unix.ENFILE {
				l.srv.fdLimit(err, "accept")
			} else {
				l.srv.log.Warn("accept failed; backing off", "listener", ln.name, "err", err)
			}
			l.pollListeners(false)
			l.acceptBackoff = l.now + acceptBackoffTicks
			return
		}
		if limited {
			l.tokens-- // never below 0: only a whole token is taken
		}
		if ln.tls != nil {
			l.srv.startTLS(l, ln, fd, peer)
			continue
		}
		l.newClient(ln, fd, peer, netip.AddrPort{}, false)
	}
}

// refillTokens refills the loop's accept-rate bucket, every tick, up to
// one tick's worth: each loop has its share of Server's rate. While the
// rate is 0 the bucket is neither used nor refilled.
func (l *loop) refillTokens() {
	rate := l.srv.acceptRate.Load()
	if rate == 0 {
		return
	}
	per := float64(rate) / float64(len(l.srv.loops)) * tick.Seconds()
	l.tokens = min(l.tokens+per, max(per, 1))
}

// acceptBackoffTicks is how long a loop stops accepting after EMFILE or
// another accept error: long enough not to spin, short enough that a node
// recovers at once when fds free up.
const acceptBackoffTicks = 1

func tcpAddr(sa unix.Sockaddr) *net.TCPAddr {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}
	}
	return &net.TCPAddr{}
}

// accept4 accepts a connection, non-blocking and close-on-exec, and
// returns the peer's address. unix.Accept4 is not used: for every IPv4
// peer it asks the socket for its protocol (a getsockopt, to tell L2TP
// apart) and allocates the address it returns.
func accept4(lfd int) (int, netip.AddrPort, error) {
	var rsa unix.RawSockaddrAny
	n := uint32(unix.SizeofSockaddrAny)
	fd, _, e := unix.RawSyscall6(unix.SYS_ACCEPT4, uintptr(lfd), uintptr(unsafe.Pointer(&rsa)),
		uintptr(unsafe.Pointer(&n)), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
	if e != 0 {
		return -1, netip.AddrPort{}, e
	}
	return int(fd), rawAddrPort(&rsa), nil
}

// rawAddrPort decodes an IPv4 or IPv6 socket address (IPv4-mapped IPv6
// addresses as IPv4).
func rawAddrPort(rsa *unix.RawSockaddrAny) netip.AddrPort {
	switch rsa.Addr.Family {
	case unix.AF_INET:
		a := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), netPort(a.Port))
	case unix.AF_INET6:
		a := (*unix.RawSockaddrInet6)(unsafe.Pointer(rsa))
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr).Unmap(), netPort(a.Port))
	}
	return netip.AddrPort{}
}

// netPort reads a port stored in network byte order.
func netPort(p uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(&p))
	return uint16(b[0])<<8 | uint16(b[1])
}

// addrPort converts a socket address.
func addrPort(sa unix.Sockaddr) netip.AddrPort {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr).Unmap(), uint16(a.Port))
	}
	return netip.AddrPort{}
}

func sockaddr(ap netip.AddrPort) unix.Sockaddr {
	a := ap.Addr()
	if a.Is4() || a.Is4In6() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.Unmap().As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16()}
}
