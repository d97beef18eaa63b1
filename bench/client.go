package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"
)

// ParseAddrRange reads "127.0.0.2-127.0.0.40" or a comma list of
// addresses and ranges; "" is no addresses. A range is capped at 65,536
// addresses.
func ParseAddrRange(s string) ([]netip.Addr, error) {
	if s == "" {
		return nil, nil
	}
	var out []netip.Addr
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := netip.ParseAddr(lo)
		if err != nil {
			return nil, err
		}
		if !isRange {
			out = append(out, a)
			continue
		}
		b, err := netip.ParseAddr(hi)
		if err != nil {
			return nil, err
		}
		if b.Less(a) || a.Is4() != b.Is4() {
			return nil, fmt.Errorf("range %s: want low-high of one family", part)
		}
		for x := a; ; x = x.Next() {
			out = append(out, x)
			if x == b || len(out) > 1<<16 {
				break
			}
		}
	}
	return out, nil
}

// dialTimeout bounds one connect plus upgrade.
const dialTimeout = 10 * time.Second

// netDialer connects from src when it is set. The source port is then
// left to connect(2) (IP_BIND_ADDRESS_NO_PORT), which picks it per
// destination: bind(2) would pick one unique across every destination and
// run out of ports after ~28k connections per source address.
func netDialer(src netip.Addr) *net.Dialer {
	d := &net.Dialer{Timeout: dialTimeout}
	if !src.IsValid() {
		return d
	}
	d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
	d.Control = func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}
	return d
}

// dialWS opens one WebSocket to target, from src when set, and returns it
// with a reader of rbuf bytes for the frames that follow.
func dialWS(ctx context.Context, target string, src netip.Addr, rbuf int) (net.Conn, *bufio.Reader, error) {
	nd := netDialer(src)
	d := ws.Dialer{
		Timeout: dialTimeout,
		NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return nd.DialContext(ctx, network, addr)
		},
		// wss:// targets are the operator's own proxy under test, often
		// with a self-signed certificate (wsgate demo --tls): the bench
		// measures it, it does not authenticate it.
		TLSConfig: &tls.Config{InsecureSkipVerify: true},
	}
	c, br, _, err := d.Dial(ctx, target)
	if err != nil {
		return nil, nil, err
	}
	if br != nil {
		// The target sent bytes right behind its 101: no mode here expects
		// any, and they would be lost with the dialer's reader.
		n := br.Buffered()
		ws.PutReader(br)
		if n > 0 {
			c.Close()
			return nil, nil, fmt.Errorf("target sent %d unexpected bytes right after its 101", n)
		}
	}
	if rbuf <= 0 {
		return c, nil, nil
	}
	return c, bufio.NewReaderSize(c, rbuf), nil
}

// dial opens one WebSocket, from src when set.
func dial(ctx context.Context, target string, src netip.Addr) (net.Conn, error) {
	c, _, err := dialWS(ctx, target, src, 0)
	return c, err
}

func sourceFor(addrs []netip.Addr, i int) netip.Addr {
	if len(addrs) == 0 {
		return netip.Addr{}
	}
	return addrs[i%len(addrs)]
}

// wsConn is one open WebSocket of a run and the reader of its frames.
type wsConn struct {
	net.Conn
	br *bufio.Reader
}

// openAll opens n WebSockets, up to 128 handshakes at a time, and fails
// with the first error (closing what it opened): echo and bulk measure
// tunnels, so a run with fewer than asked would measure something else.
func openAll(ctx context.Context, target string, n int, srcs []netip.Addr, rbuf int) ([]wsConn, error) {
	conns := make([]wsConn, n)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
		sem      = make(chan struct{}, 128)
	)
	for i := 0; i < n && ctx.Err() == nil; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			c, br, err := dialWS(ctx, target, sourceFor(srcs, i), rbuf)
			if err != nil {
				once.Do(func() {
					firstErr = fmt.Errorf("open tunnel %d of %d: %s", i+1, n, describeDialError(err))
					cancel()
				})
				return
			}
			conns[i] = wsConn{c, br}
		}(i)
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = fmt.Errorf("open %d tunnels: %w", n, ctx.Err())
	}
	if firstErr != nil {
		closeAll(conns)
		return nil, firstErr
	}
	return conns, nil
}

func closeAll(conns []wsConn) {
	for _, c := range conns {
		if c.Conn != nil {
			c.Close()
		}
	}
}

// describeDialError names the limit a failure hit, when it is one, with
// the number reached.
func describeDialError(err error) string {
	var se ws.StatusError
	switch {
	case errors.Is(err, syscall.EMFILE):
		return fmt.Sprintf("%v (%s)", err, fdLimitReached())
	case errors.Is(err, syscall.ENFILE):
		return fmt.Sprintf("%v (the system-wide fd limit, fs.file-max = %s, is reached)", err, readTrim("/proc/sys/fs/file-max"))
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return fmt.Sprintf("%v (no free local port: the ephemeral range %s is used up for this source address; add --source-addrs such as 127.0.0.2-127.0.0.40)",
			err, strings.ReplaceAll(readTrim("/proc/sys/net/ipv4/ip_local_port_range"), "\t", "-"))
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("%v (the target refused the connection: is it listening?)", err)
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Sprintf("%v (the target closed the connection during the upgrade; it may have reached its own connection or fd limit)", err)
	case errors.As(err, &se):
		return fmt.Sprintf("the target answered %d instead of 101 Switching Protocols", int(se))
	}
	return err.Error()
}

// fdLimitReached says which fd limit this process hit and how many fds
// it has open.
func fdLimitReached() string {
	var rl unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_NOFILE, &rl)
	return fmt.Sprintf("this process's fd limit RLIMIT_NOFILE is reached: %d fds open, soft limit %d, hard limit %d", openFDs(), rl.Cur, rl.Max)
}

func openFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents) - 1 // the directory handle used to read it
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// checkFDs fails before a run that needs n more fds than this process may
// open, naming the limit, instead of failing half-way.
func checkFDs(n int) error {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return nil
	}
	open := openFDs()
	if need := uint64(open + n + fdSlack); need > rl.Cur {
		return fmt.Errorf("%d tunnels need about %d fds, but this process's RLIMIT_NOFILE is %d (hard limit %d, %d fds already open): lower --conns or raise the limit (ulimit -n)",
			n, need, rl.Cur, rl.Max, open)
	}
	return nil
}

// fdSlack is the fds a run needs besides one per tunnel (runtime, stdio,
// /proc reads).
const fdSlack = 32

// every calls f every d until ctx is done, then once more.
func every(ctx context.Context, d time.Duration, f func()) {
	if f == nil {
		return
	}
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			f()
		case <-ctx.Done():
			f()
			return
		}
	}
}
