package engine

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wsgate/wsgate/handshake"
)

// wss: TLS termination.
//
// crypto/tls is not event-driven, so a TLS client is served by two
// goroutines that copy between its tls.Conn and one end of a socketpair;
// the loop holds the other end as the client socket. Everything after the
// TLS layer — the head phase, routing, balancing, the frame-aware tunnel,
// drain and graceful close — is then the same code as for plain clients.
// The price is per tunnel: two goroutines, TLS record buffers, two copy
// buffers and two more fds (bench/RESULTS.md measures it). Kernel TLS
// would put wss tunnels back into the splice loops; it is a later step.

// tlsBufSize is each direction's copy buffer: a TLS record holds at most
// 16 KiB of plaintext; half of that keeps an idle tunnel smaller at the
// cost of a second read for the largest records.
const tlsBufSize = 8 << 10

var tlsBufs = sync.Pool{New: func() any { b := make([]byte, tlsBufSize); return &b }}

// tlsBridge is one TLS client's connection and its socketpair end.
type tlsBridge struct {
	conn  *tls.Conn
	tcp   net.Conn
	outer net.Conn // the socketpair end the goroutines use
	once  sync.Once
}

func (b *tlsBridge) close() {
	b.once.Do(func() {
		b.tcp.Close()
		if b.outer != nil {
			b.outer.Close()
		}
	})
}

// startTLS takes over an accepted socket of a TLS listener: the handshake
// and the copying run on their own goroutine, the loop goes on at once.
func (s *Server) startTLS(l *loop, ln *listener, fd int, peer netip.AddrPort) {
	f := os.NewFile(uintptr(fd), "wss client")
	nc, err := net.FileConn(f) // dups the fd into Go's poller
	f.Close()
	if err != nil {
		s.log.Warn("wss: cannot serve accepted socket", "err", err)
		s.fdLimit(errors.Unwrap(err), "tls")
		return
	}
	b := &tlsBridge{conn: tls.Server(nc, ln.tls), tcp: nc}
	s.tlsMu.Lock()
	if s.tlsClosed {
		s.tlsMu.Unlock()
		nc.Close()
		return
	}
	s.tls[b] = struct{}{}
	s.tlsWG.Add(1)
	s.tlsMu.Unlock()
	go s.serveTLS(l, ln, b, peer)
}

func (s *Server) serveTLS(l *loop, ln *listener, b *tlsBridge, peer netip.AddrPort) {
	defer s.tlsWG.Done()
	defer func() {
		b.close()
		s.tlsMu.Lock()
		delete(s.tls, b)
		s.tlsMu.Unlock()
	}()
	b.tcp.SetDeadline(time.Now().Add(s.cfg.HeaderTimeout))
	var proxyHdr []byte
	if ln.proxy {
		// A balancer sends its PROXY header in clear before the TLS
		// handshake (HAProxy's send-proxy, AWS NLB): read it here, then
		// pass it on into the bridge ahead of the decrypted bytes, so the
		// head phase takes the client's address from it as on a plain
		// listener.
		hdr, rest, err := s.readProxyHeader(b.tcp, peer)
		if err != nil {
			if r, ok := err.(*handshake.Reject); ok {
				s.c.reject(r)
			}
			s.log.Debug("closing client: bad PROXY header", "client", peer, "err", err)
			return
		}
		proxyHdr = hdr
		b.conn = tls.Server(&prefixConn{Conn: b.tcp, pre: rest}, ln.tls)
	}
	if err := b.conn.Handshake(); err != nil {
		s.c.tlsFailures.Add(1)
		s.log.Debug("wss: TLS handshake failed", "client", peer, "err", err)
		return
	}
	b.conn.SetDeadline(time.Time{})
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		s.fdLimit(err, "socketpair")
		return
	}
	of := os.NewFile(uintptr(pair[1]), "wss bridge")
	outer, err := net.FileConn(of)
	of.Close()
	if err != nil {
		unix.Close(pair[0])
		return
	}
	b.outer = outer
	if len(proxyHdr) > 0 {
		// A socketpair's buffer takes a whole header: this never blocks.
		if _, err := outer.Write(proxyHdr); err != nil {
			unix.Close(pair[0])
			return
		}
	}
	s.c.tlsTunnels.Add(1)
	defer s.c.tlsTunnels.Add(-1)
	local := netip.AddrPort{}
	if ta, ok := b.tcp.LocalAddr().(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		local = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	inner := pair[0]
	s.bridges.Store(inner, b)
	if !l.post(func(l *loop) { l.newClient(ln, inner, peer, local, true) }) {
		s.bridges.Delete(inner)
		unix.Close(inner)
		return
	}
	// Client → loop here, loop → client on a second goroutine; either
	// side's end is passed on as a half-close.
	done := make(chan struct{})
	go func() {
		defer close(done)
		if copyHalf(b.conn, outer) == nil {
			b.conn.CloseWrite() // close_notify
			if cw, ok := b.tcp.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			}
		}
	}()
	if copyHalf(outer, b.conn) == nil {
		if cw, ok := outer.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
	}
	<-done
}

// readProxyHeader reads the PROXY header at the start of a TLS client's
// connection, refusing it as the head phase would (malformed, or from a
// peer trusted_proxies does not list), and returns it with the bytes read
// after it (the start of the ClientHello).
func (s *Server) readProxyHeader(c net.Conn, peer netip.AddrPort) (hdr, rest []byte, err error) {
	var h handshake.ProxyHeader
	buf := make([]byte, 0, 256)
	for {
		if len(buf) == cap(buf) {
			if len(buf) >= handshake.MaxProxyHeaderBytes {
				return nil, nil, handshake.ErrProxyTooLong // ParseProxy never lets it come to this
			}
			buf = slices.Grow(buf, min(cap(buf), handshake.MaxProxyHeaderBytes-len(buf)))
		}
		n, rerr := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		k, perr := handshake.ParseProxy(buf, &h)
		if perr != nil {
			return nil, nil, perr
		}
		if k > 0 {
			if rt := s.routes.Load(); len(rt.trusted) > 0 && !rt.trusts(peer.Addr()) {
				return nil, nil, errProxyUntrusted
			}
			return buf[:k], buf[k:], nil
		}
		if rerr != nil {
			return nil, nil, rerr
		}
	}
}

// prefixConn reads pre before the connection's own bytes.
type prefixConn struct {
	net.Conn
	pre []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// copyHalf copies src to dst until src ends (nil) or either fails.
func copyHalf(dst io.Writer, src io.Reader) error {
	bp := tlsBufs.Get().(*[]byte)
	defer tlsBufs.Put(bp)
	_, err := io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, *bp)
	return err
}

// closeBridge ends the TLS side of a tunnel whose loop socket fd is being
// closed: its goroutines return, the TLS connection closes.
func (s *Server) closeBridge(fd int) {
	if v, ok := s.bridges.LoadAndDelete(fd); ok {
		v.(*tlsBridge).close()
	}
}

// closeTLS ends every TLS connection (Close), those still in their
// handshake included, and waits for their goroutines.
func (s *Server) closeTLS() {
	s.tlsMu.Lock()
	s.tlsClosed = true
	for b := range s.tls {
		b.close()
	}
	s.tlsMu.Unlock()
	s.tlsWG.Wait()
}
