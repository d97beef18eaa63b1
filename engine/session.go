package engine

import (
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wsgate/wsgate/handshake"
)

// The head phase: a client connection from accept until its head is read.
// It is a tunnel in state stHead in the loop that accepted it, reading into
// its exchange's head chunk (1 KiB, grown only for a large head) as bytes
// arrive. A half-sent head parks no goroutine and holds no thread: 5,000
// slowloris clients are 5,000 small entries, and the header timeout is the
// loop's timer wheel (DESIGN.md, netpoll notes, "Two ways to wait").

// headChunk is the head buffer a connection starts with: a browser's
// upgrade head is 400-700 bytes. The prototype measured that a 16 KiB one
// left 548 B of retained heap per idle tunnel after a burst, 1 KiB 48 B.
const headChunk = 1 << 10

// newClient starts the head phase of an accepted socket (or of a TLS
// bridge's socket, whose client is peer).
func (l *loop) newClient(ln *listener, fd int, peer, local netip.AddrPort, tls bool) {
	srv := l.srv
	i, err := l.tabs.alloc()
	if err != nil {
		srv.log.Error("no memory for a new connection; closing it", "client", peer, "err", err)
		srv.c.acceptErrors.Add(1)
		if tls {
			srv.closeBridge(fd)
		}
		sysClose(fd)
		return
	}
	t := l.tabs.at(i)
	t.fd[sideClient] = int32(fd)
	t.ln = uint8(ln.idx)
	t.tls = tls
	t.started = time.Now().UnixNano()
	t.peer = makePeer(peer)
	t.active = l.now
	t.state = stHead
	ex := getExchange()
	ex.peer, ex.direct = peer, peer.Addr()
	ex.accepted = t.started
	ex.tls = tls
	ex.local = local
	ex.proxied = !ln.proxy
	l.setEx(t, ex)
	l.c.accepted.Add(1)
	l.c.heads.Add(1)
	if err := l.watch(i, sideClient, fd); err != nil {
		srv.log.Error("epoll_ctl add client failed", "err", err)
		l.finish(i, causeInternal)
		return
	}
	l.wheel.arm(i, l.now+srv.headerTicks)
	// With TCP_DEFER_ACCEPT the head has usually arrived already: read it
	// now rather than after a round through epoll.
	t.io[sideClient] = canRead | canWrite
	l.stepHead(i, t)
}

// stepHead reads what the client sent into the head chunk until the head
// is complete, then parses it and starts the exchange. Reads are bounded
// by the head limit: the client cannot make wsgate buffer more than one
// head (plus what arrived with its last part) however much it sends.
func (l *loop) stepHead(i int32, t *tunnel) {
	ex := l.exOf(t)
	srv := l.srv
	limit := srv.limits.MaxHeadBytes
	fd := int(t.fd[sideClient])
	for ops := 0; ops < maxOps; ops++ {
		if t.io[sideClient]&canRead == 0 {
			return
		}
		if ex.head == nil {
			ex.head = getChunk(headChunk)
		} else if len(ex.head.b) == cap(ex.head.b) {
			// Room for the rest of a head up to the limit, and one byte
			// more to see that it went over (431).
			ex.head = growChunk(ex.head, min(cap(ex.head.b), limit+1-len(ex.head.b)))
		}
		b := ex.head.b
		n, err := sysRead(fd, b[len(b):cap(b)])
		if err != nil {
			if err == unix.EAGAIN {
				t.io[sideClient] &^= canRead
				return
			}
			if err == unix.EINTR {
				continue
			}
			l.headGone(i)
			return
		}
		if n == 0 {
			l.headGone(i)
			return
		}
		ex.head.b = b[:len(b)+n]
		t.active = l.now
		if n < cap(b)-len(b) && t.io[sideClient]&peerShut == 0 {
			t.io[sideClient] &^= canRead // drained (see pump)
		}
		if !ex.proxied {
			if !l.proxyHeader(i, t, ex) {
				return
			}
			if !ex.proxied || len(ex.head.b) == 0 {
				continue
			}
		}
		end, err := ex.scan.Scan(ex.head.b, limit)
		if err != nil {
			l.headDone(t)
			l.answer(i, t, asReject(err))
			return
		}
		if end > 0 {
			ex.headLen = end
			ex.scan.Reset() // for the backend's answer
			l.headDone(t)
			l.request(i, t)
			return
		}
	}
	l.requeue(i, t)
}

// proxyHeader reads the PROXY protocol header at the front of the head
// buffer of a client on a proxy_protocol listener, takes the client
// address from it and removes it. It reports false when the connection
// was closed: a malformed header, or one from a peer not in
// trusted_proxies (when that is set), is counted and closed without an
// answer — the peer is a balancer, not an HTTP client.
func (l *loop) proxyHeader(i int32, t *tunnel, ex *exchange) bool {
	srv := l.srv
	var h handshake.ProxyHeader
	n, err := handshake.ParseProxy(ex.head.b, &h)
	if rt := srv.routes.Load(); err == nil && n > 0 && len(rt.trusted) > 0 && !rt.trusts(ex.direct) {
		err = errProxyUntrusted
	}
	if err != nil {
		if r, ok := err.(*handshake.Reject); ok {
			srv.c.reject(r)
		}
		srv.log.Debug("closing client: bad PROXY header", "client", ex.peer, "err", err)
		l.headDone(t)
		l.finish(i, causeRejected)
		return false
	}
	if n == 0 {
		return true // more to come
	}
	if h.Src.IsValid() {
		ex.peer = netip.AddrPortFrom(h.Src.Addr().Unmap(), h.Src.Port())
		// The balancer is transparent: trust decisions about
		// X-Forwarded-* concern the client it speaks for.
		ex.direct = ex.peer.Addr()
		t.peer = makePeer(ex.peer)
	}
	rest := copy(ex.head.b, ex.head.b[n:])
	ex.head.b = ex.head.b[:rest]
	ex.proxied = true
	return true
}

// errProxyUntrusted: a PROXY header from a peer trusted_proxies does not
// list, on a node that lists them: a client pretending to be a balancer.
var errProxyUntrusted = handshake.ErrProxyUntrusted

// headDone ends the head phase's accounting.
func (l *loop) headDone(t *tunnel) {
	l.c.heads.Add(-1)
}

// headGone closes a client that left (or failed) before its head was
// complete. One that sent nothing at all — an L4 balancer's TCP health
// check, a port scan — is not a session: it gets no access-log line (nginx
// logs none either).
func (l *loop) headGone(i int32) {
	l.headDone(l.tabs.at(i))
	l.finish(i, causeClientGone) // quietly, when not a byte came (see finish)
}

// headTimedOut answers 408 to a client that did not send a whole head
// within the header timeout: a slow client never holds a slot beyond it.
func (l *loop) headTimedOut(i int32, t *tunnel) {
	l.headDone(t)
	l.answer(i, t, handshake.ErrHeaderTimeout)
}

// request parses the complete head and either answers the rejection or
// dials a backend.
func (l *loop) request(i int32, t *tunnel) {
	ex := l.exOf(t)
	req := getRequest()
	if err := handshake.ParseRequest(ex.head.b[:ex.headLen], req, &l.srv.limits); err != nil {
		putRequest(req)
		l.answer(i, t, asReject(err))
		return
	}
	ex.req = req
	// handshake guarantees an upgrade carries no body (it rejects one
	// that does), so an upgrade forwards nothing before the 101.
	ex.upgrade = req.IsUpgrade
	if !ex.upgrade {
		ex.body.Init(req.Body, req.ContentLength)
	}
	ex.route = l.srv.routes.Load().find(req)
	if ex.route == nil {
		l.answer(i, t, handshake.ErrNoRoute)
		return
	}
	if r := ex.route.admit(req); r != nil {
		l.answer(i, t, r)
		return
	}
	if r := l.admitTunnel(t, ex.peer.Addr()); r != nil {
		l.answer(i, t, r)
		return
	}
	t.state = stConnecting
	l.dial(i, t)
}
