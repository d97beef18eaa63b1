package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/cloudwego/netpoll"
	"golang.org/x/sys/unix"
)

// listener is one listening socket served by a netpoll event loop. wsgate
// owns the socket and does its own accept4 (netpoll.Listener is an
// interface), so that it can count and log accept errors, mark accepted
// sockets non-blocking and close-on-exec in the same syscall, and pause
// accepting without closing the socket (node drain, then undrain).
type listener struct {
	srv  *Server
	fd   int
	addr net.Addr
	name string

	mu      sync.Mutex
	evl     netpoll.EventLoop
	served  chan struct{} // closed when the current Serve returns
	pausing bool          // Close from netpoll's Shutdown only stops listening
	closed  bool
}

// listenBacklog is the accept queue length asked for; the kernel caps it
// at net.core.somaxconn (deploy/TUNING.md).
const listenBacklog = 65535

// listen opens a TCP listening socket on addr. reusePort lets several
// sockets share the address, each with its own accept queue and loop.
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

func (ln *listener) Addr() net.Addr { return ln.addr }
func (ln *listener) Fd() int        { return ln.fd }

// Accept is netpoll's: it returns (nil, nil) when the queue is empty.
// EMFILE/ENFILE come back as the raw errno so that netpoll backs off
// (it detaches the listener and retries after 10 ms … 1 s) instead of
// spinning on a level-triggered listener.
func (ln *listener) Accept() (net.Conn, error) {
	fd, sa, err := unix.Accept4(ln.fd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
	if err != nil {
		if err == unix.EAGAIN || err == unix.EINTR || err == unix.ECONNABORTED {
			return nil, nil
		}
		ln.srv.c.acceptErrors.Add(1)
		if err == unix.EMFILE || err == unix.ENFILE {
			ln.srv.fdLimit(err, "accept")
		} else {
			ln.srv.log.Warn("accept failed", "listener", ln.name, "err", err)
		}
		return nil, err
	}
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	return &acceptedConn{fd: fd, local: ln.addr, remote: tcpAddr(sa)}, nil
}

// Close is called by netpoll's Shutdown. Pausing keeps the socket and only
// stops listening: shutdown(SHUT_RD) on a listening socket makes the
// kernel refuse new connections (and reset queued ones), and a later
// listen(2) on the same socket resumes.
func (ln *listener) Close() error {
	ln.mu.Lock()
	defer ln.mu.Unlock()
	if ln.pausing {
		return unix.Shutdown(ln.fd, unix.SHUT_RD)
	}
	if ln.closed {
		return nil
	}
	ln.closed = true
	return unix.Close(ln.fd)
}

// serve starts a netpoll event loop on the socket.
func (ln *listener) serve() error {
	evl, err := netpoll.NewEventLoop(ln.srv.onRequest, netpoll.WithOnPrepare(ln.srv.onPrepare(ln)))
	if err != nil {
		return err
	}
	served := make(chan struct{})
	ln.mu.Lock()
	ln.evl, ln.served = evl, served
	ln.mu.Unlock()
	go func() {
		defer close(served)
		if err := evl.Serve(ln); err != nil && !errors.Is(err, net.ErrClosed) {
			ln.srv.log.Debug("netpoll serve returned", "listener", ln.name, "err", err)
		}
	}()
	return nil
}

// stop stops accepting. With pause the socket stays bound (refusing
// connections) so that resume can listen again; otherwise it is closed.
// Connections still sending their heads that netpoll considers idle are
// closed by netpoll's Shutdown; heads being processed complete.
func (ln *listener) stop(pause bool) error {
	ln.mu.Lock()
	evl, served := ln.evl, ln.served
	ln.evl = nil
	ln.pausing = pause
	ln.mu.Unlock()
	if evl == nil {
		if !pause {
			return ln.Close()
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// netpoll's Shutdown does nothing when its Serve goroutine has not yet
	// registered the listener, and that Serve then waits forever: call it
	// again until Serve has returned.
	var err error
	for done := false; !done; {
		err = evl.Shutdown(ctx)
		select {
		case <-served:
			done = true
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			done = true
		}
	}
	ln.mu.Lock()
	ln.pausing = false
	ln.mu.Unlock()
	return err
}

// resume listens again on a paused socket and serves it.
func (ln *listener) resume() error {
	ln.mu.Lock()
	if ln.closed || ln.evl != nil {
		ln.mu.Unlock()
		return nil
	}
	ln.mu.Unlock()
	// A socket bound to port 0 loses its port when it stops listening
	// (the kernel only keeps ports bound explicitly): bind it to the port
	// it had. One bound explicitly still has it, and says EINVAL.
	if err := unix.Bind(ln.fd, sockaddr(ln.addr.(*net.TCPAddr).AddrPort())); err != nil && err != unix.EINVAL {
		return fmt.Errorf("listen %s again: bind %s: %w", ln.name, ln.addr, err)
	}
	if err := unix.Listen(ln.fd, listenBacklog); err != nil {
		return fmt.Errorf("listen %s again: %w", ln.name, err)
	}
	return ln.serve()
}

// acceptedConn carries an accepted socket to netpoll, which copies its fd
// and addresses into its own connection; nothing else of it is used.
type acceptedConn struct {
	fd            int
	local, remote net.Addr
}

var errNotUsed = errors.New("wsgate: acceptedConn is only a carrier for netpoll")

func (c *acceptedConn) Fd() int                          { return c.fd }
func (c *acceptedConn) Read([]byte) (int, error)         { return 0, errNotUsed }
func (c *acceptedConn) Write([]byte) (int, error)        { return 0, errNotUsed }
func (c *acceptedConn) Close() error                     { return unix.Close(c.fd) }
func (c *acceptedConn) LocalAddr() net.Addr              { return c.local }
func (c *acceptedConn) RemoteAddr() net.Addr             { return c.remote }
func (c *acceptedConn) SetDeadline(time.Time) error      { return errNotUsed }
func (c *acceptedConn) SetReadDeadline(time.Time) error  { return errNotUsed }
func (c *acceptedConn) SetWriteDeadline(time.Time) error { return errNotUsed }

func tcpAddr(sa unix.Sockaddr) *net.TCPAddr {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}
	}
	return &net.TCPAddr{}
}

func sockaddr(ap netip.AddrPort) unix.Sockaddr {
	a := ap.Addr()
	if a.Is4() || a.Is4In6() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.Unmap().As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16()}
}
