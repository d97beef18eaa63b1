package engine

import (
	"net"
	"net/netip"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/wsgate/wsgate/balance"
	"github.com/wsgate/wsgate/handshake"
)

// exchange is what a tunnel needs between the client's head and the start
// of the byte tunnel: the parsed request, the dial attempts, the rewritten
// head and the backend's answer. It is dropped as soon as the tunnel
// starts, so an idle tunnel keeps none of it.
type exchange struct {
	peer     netip.AddrPort // the client (from the socket or a PROXY header)
	direct   netip.Addr     // the immediate peer, for trusted_proxies
	local    netip.AddrPort // the address the client connected to, when known
	tls      bool
	accepted int64 // unix nanoseconds

	head    *chunk // the client's head followed by early data
	headLen int
	req     *handshake.Request

	route   *Route
	proxied bool // the PROXY header is read, or the listener expects none
	upgrade bool // the request asks for an allowed upgrade
	cookie  bool // the answer gets a sticky Set-Cookie
	tries   int
	tried   [maxTries]*balance.Backend
	failure balance.FailKind // the last dial failure, for 502 vs 504

	ans        *chunk // the backend's answer as it arrives
	ansLen     int    // length of its final head in ans
	scan       handshake.HeadScanner
	resp       *handshake.Response
	answered   bool // the final (non-1xx) answer head has been forwarded
	untilClose bool // the answer's body ends when the backend closes
	body       handshake.BodyTracker
	rbody      handshake.BodyTracker
}

const maxTries = 8

const continue100 = "HTTP/1.1 100 Continue\r\n\r\n"

var exchangePool = sync.Pool{New: func() any { return new(exchange) }}

func getExchange() *exchange { return exchangePool.Get().(*exchange) }

// putExchange returns ex, with its pooled parts, to the pool.
func putExchange(ex *exchange) {
	ex.release()
	*ex = exchange{}
	exchangePool.Put(ex)
}

// release returns the exchange's pooled parts.
func (ex *exchange) release() {
	putChunk(ex.head)
	putChunk(ex.ans)
	ex.head, ex.ans = nil, nil
	if ex.req != nil {
		putRequest(ex.req)
		ex.req = nil
	}
	if ex.resp != nil {
		putResponse(ex.resp)
		ex.resp = nil
	}
}

// dial picks a backend and starts a non-blocking connect to it, moving on
// to the next backend when one refuses at once. The connect's outcome is
// read from SO_ERROR when the socket turns writable, so a refusal (502)
// and a timeout (504) stay apart.
func (l *loop) dial(i int32, t *tunnel) {
	ex := l.exOf(t)
	srv := l.srv
	for {
		if ex.tries >= srv.tries {
			l.answer(i, t, failureReject(ex.failure))
			return
		}
		lease, err := l.pick(ex)
		if err != nil {
			if ex.tries == 0 {
				l.answer(i, t, handshake.ErrNoBackend)
			} else {
				l.answer(i, t, failureReject(ex.failure))
			}
			return
		}
		b := lease.Backend()
		ex.tried[ex.tries] = b
		ex.tries++
		l.takeLease(t, lease)

		r, err := l.resolve(b.Addr())
		if err != nil {
			srv.log.Warn("backend address does not resolve", "backend", b.Addr(), "err", err)
			l.failDial(t, balance.FailError)
			continue
		}
		fd, err := sysSocket(r.family)
		if err != nil {
			srv.fdLimit(err, "socket")
			l.releaseLease(t, false, 0, true) // not the backend's fault
			l.answer(i, t, handshake.ErrOverloaded)
			return
		}
		sysSetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		if src := srv.sourceAddr(r.family); src != nil {
			sysSetsockoptInt(fd, unix.SOL_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
			if err := unix.Bind(fd, src); err != nil {
				srv.log.Warn("bind source address failed", "err", err)
			}
		}
		err = sysConnect(fd, &r.raw.sa, r.raw.n)
		if err == unix.EADDRNOTAVAIL {
			// No local port left towards this backend: wsgate's limit,
			// not the backend's fault, so it must not count as a failure
			// that marks a healthy backend down. More source addresses
			// (tunnel.source_addrs) lift it; deploy/TUNING.md.
			sysClose(fd)
			srv.portsExhausted(b.Addr())
			l.releaseLease(t, false, 0, true)
			l.answer(i, t, handshake.ErrOverloaded)
			return
		}
		if err != nil && err != unix.EINPROGRESS {
			sysClose(fd)
			l.failDial(t, balance.FailRefused)
			continue
		}
		t.fd[sideBackend] = int32(fd)
		if ex.tries > 1 {
			// A new backend socket: bump the generation so that no event
			// queued for the previous one can be taken for this one.
			t.gen++
			if err := l.rewatch(i, sideClient); err != nil {
				l.finish(i, causeInternal)
				return
			}
		}
		t.io[sideBackend] = 0
		if err := l.watch(i, sideBackend, fd); err != nil {
			l.srv.log.Error("epoll_ctl add backend failed", "err", err)
			l.finish(i, causeInternal)
			return
		}
		t.state = stConnecting
		l.wheel.arm(i, l.now+srv.connectTicks)
		return
	}
}

// pick chooses the backend for ex's next attempt: the one its sticky
// cookie names while that one is eligible, else the pool's choice (and
// the answer will carry a cookie naming it).
func (l *loop) pick(ex *exchange) (balance.Lease, error) {
	r := ex.route
	exclude := ex.tried[:ex.tries]
	if r.sticky != nil {
		if b := r.sticky.backend(r.Pool, ex.req); b != nil {
			if lease, ok := r.Pool.PickBackend(b, exclude); ok {
				ex.cookie = false
				return lease, nil
			}
		}
		ex.cookie = true
	}
	return r.Pool.Pick(l.hashKey(ex), exclude)
}

// failDial records a failed attempt on the current lease.
func (l *loop) failDial(t *tunnel, kind balance.FailKind) {
	l.releaseLease(t, true, kind, true)
	l.exOf(t).failure = kind
	l.srv.c.dialFailures[kind].Add(1)
}

// failureReject maps the last dial failure to the client's answer: a
// timeout is 504, anything else 502 (nginx answers the same way).
func failureReject(kind balance.FailKind) *handshake.Reject {
	if kind == balance.FailTimeout {
		return handshake.ErrGatewayTimeout
	}
	return handshake.ErrBadGateway
}

// closeBackend closes the backend socket of a tunnel still in its
// handshake, before a retry or an answer.
func (l *loop) closeBackend(t *tunnel) {
	if fd := t.fd[sideBackend]; fd >= 0 {
		l.closeLater(fd)
		t.fd[sideBackend] = -1
		t.io[sideBackend] = 0
	}
}

func (l *loop) stepConnect(i int32, t *tunnel) {
	if t.io[sideBackend]&canWrite == 0 {
		return // a client event; its bytes wait in its socket until the answer
	}
	if t.io[sideBackend]&peerShut == 0 {
		// Writable without a hang-up: connected. A failed connect always
		// comes with EPOLLERR|EPOLLHUP, so SO_ERROR is only read then.
		l.connected(i, t)
		return
	}
	errno, err := unix.GetsockoptInt(int(t.fd[sideBackend]), unix.SOL_SOCKET, unix.SO_ERROR)
	if err == nil && errno == 0 {
		l.connected(i, t)
		return
	}
	kind := balance.FailRefused
	if unix.Errno(errno) == unix.ETIMEDOUT {
		kind = balance.FailTimeout
	}
	l.closeBackend(t)
	l.failDial(t, kind)
	l.dial(i, t)
}

func (l *loop) connectTimedOut(i int32, t *tunnel) {
	l.closeBackend(t)
	l.failDial(t, balance.FailTimeout)
	l.dial(i, t)
}

// connected writes the rewritten head (and, for a plain request, the body
// bytes already here) into the upward direction and moves on.
func (l *loop) connected(i int32, t *tunnel) {
	l.backends[t.be-1].lease.Connected()
	ex := l.exOf(t)
	srv := l.srv
	ci := handshake.ClientInfo{IP: ex.peer.Addr(), TLS: ex.tls, Trusted: ex.route.table.trusts(ex.direct)}
	opt := ex.route.rewrite
	opt.BackendAddr = l.backendOf(t).Addr()
	l.target = ex.route.target(l.target, ex.req)
	opt.Target = l.target
	early := ex.head.b[ex.headLen:]
	c := getChunk(ex.headLen + 1024 + len(early))
	if ex.route.proxyV2 {
		c.b = handshake.AppendProxyV2(c.b, ex.peer, l.localAddr(t))
	}
	c.b = handshake.AppendRewritten(c.b, ex.req, &ci, &opt)
	if !ex.upgrade {
		n, _, err := ex.body.Advance(early)
		if err != nil {
			putChunk(c)
			l.closeBackend(t)
			l.releaseLease(t, false, 0, false)
			l.answer(i, t, asReject(err))
			return
		}
		if n > 0 {
			c = growChunk(c, n)
			c.b = append(c.b, early[:n]...)
		}
		// What follows the body is a pipelined request; wsgate answers
		// with Connection: close, so it is dropped, never forwarded.
		ex.head.b = ex.head.b[:ex.headLen]
		if ex.req.Expect100Continue && !ex.body.Done() {
			// handshake drops Expect (as nginx does), so the backend will
			// not say 100 Continue; wsgate says it, as nginx does, so that
			// a client like curl sends its body now instead of in 1 s.
			c := getChunk(len(continue100))
			c.b = append(c.b, continue100...)
			l.attach(&t.dir[dirDown], c)
		}
	}
	l.attach(&t.dir[dirUp], c)
	t.active = l.now
	if ex.upgrade {
		t.state = stExchange
		l.wheel.arm(i, l.now+srv.answerTicks)
		l.stepExchange(i, t)
		return
	}
	t.state = stHTTP
	l.wheel.arm(i, l.now+srv.answerTicks)
	l.stepHTTP(i, t)
}

// stepExchange sends an upgrade request's head, then reads the answer. The
// client is not read meanwhile: its bytes after the head reach the backend
// only after the backend has agreed to switch protocols (a 101), so a
// backend that refuses the upgrade never sees WebSocket frames as HTTP.
func (l *loop) stepExchange(i int32, t *tunnel) {
	if side, err := l.flush(i, t, dirUp); err != nil {
		l.failed(i, t, side)
		return
	}
	if t.dir[dirUp].chunk != 0 {
		return
	}
	if side, err := l.flush(i, t, dirDown); err != nil {
		l.failed(i, t, side)
		return
	}
	done, err := l.readAnswer(i, t)
	if err != nil {
		l.badAnswer(i, t, err)
		return
	}
	if !done {
		return
	}
	ex := l.exOf(t)
	if ex.resp.Status == 101 {
		if !ex.resp.SwitchesTo(ex.req) {
			l.badAnswer(i, t, handshake.ErrBackendBadResponse)
			return
		}
		l.startTunnel(i, t)
		return
	}
	// The backend declined the upgrade (403, 404, a redirect…): pass its
	// answer on as a plain response and close after it. The client's early
	// bytes were meant for a protocol that never started: dropped.
	ex.head.b = ex.head.b[:ex.headLen]
	ex.body.Init(handshake.BodyNone, 0)
	t.state = stHTTP
	l.forwardAnswer(i, t)
}

// startTunnel forwards the 101 and whatever the backend sent after it to
// the client, the held early data to the backend, and lets the bytes flow.
func (l *loop) startTunnel(i int32, t *tunnel) {
	ex := l.exOf(t)
	srv := l.srv
	t.status = 101
	t.ws = ex.req.IsWebSocket && !srv.cfg.frameless
	if t.ws {
		// The frame trackers start after the heads: the backend's bytes
		// after its 101, the client's early bytes, are frames already.
		t.dir[dirDown].fr.scan(ex.ans.b[ex.ansLen:], false)
		t.dir[dirUp].fr.scan(ex.head.b[ex.headLen:], false)
	}
	// The answer chunk already holds the 101 head and any bytes after it,
	// in order: it becomes the downward direction's bytes in flight.
	if ex.cookie {
		ex.ans = l.withCookie(ex, l.backendOf(t).Addr(), ex.ans, ex.ansLen)
	}
	l.attach(&t.dir[dirDown], ex.ans)
	ex.ans = nil
	if len(ex.head.b) > ex.headLen {
		ex.head.off = ex.headLen
		l.attach(&t.dir[dirUp], ex.head)
		ex.head = nil
	}
	srv.c.handshakeOK.Add(1)
	srv.c.observeHandshake(ex.accepted)
	lifetime := ex.route.lifetimeTicks()
	l.dropEx(t)
	t.state = stTunnel
	l.c.tunnelsActive.Add(1)
	l.c.tunnelsTotal.Add(1)
	l.link(i, t)
	if lifetime > 0 {
		t.closeAt = l.now + lifetime
		t.cause = causeLifetime
	}
	l.armIdle(i, t)
	l.stepTunnel(i, t)
}

// localAddr returns the address tunnel t's client connected to, for the
// PROXY header towards the backend.
func (l *loop) localAddr(t *tunnel) netip.AddrPort {
	ex := l.exOf(t)
	if ex.local.IsValid() {
		return ex.local
	}
	if ln := l.srv.listeners[t.ln]; !ln.addr.(*net.TCPAddr).IP.IsUnspecified() {
		return ln.addr.(*net.TCPAddr).AddrPort()
	}
	if sa, err := unix.Getsockname(int(t.fd[sideClient])); err == nil {
		return addrPort(sa)
	}
	return netip.AddrPort{}
}

// withCookie returns chunk c, whose first headLen bytes are an answer
// head, with the sticky Set-Cookie naming the tunnel's backend added as
// the head's last field.
func (l *loop) withCookie(ex *exchange, addr string, c *chunk, headLen int) *chunk {
	r := ex.route
	n := getChunk(len(c.b) + 128)
	n.b = append(n.b, c.b[:headLen-2]...) // without the empty line
	n.b = r.sticky.appendSetCookie(n.b, r.Pool, addr)
	n.b = append(n.b, "\r\n"...)
	n.b = append(n.b, c.b[headLen:]...)
	putChunk(c)
	return n
}

// readAnswer reads the backend's answer head into ex.ans. Interim 1xx
// answers other than 101 (100 Continue, 103 Early Hints) are passed to the
// client as they come. It reports true when the final head is parsed into
// ex.resp.
func (l *loop) readAnswer(i int32, t *tunnel) (bool, error) {
	ex := l.exOf(t)
	fd := int(t.fd[sideBackend])
	limit := l.srv.limits.MaxHeadBytes
	for ops := 0; ops < maxOps; ops++ {
		if ex.ans == nil {
			ex.ans = getChunk(4 << 10)
		}
		if len(ex.ans.b) > 0 {
			end, err := ex.scan.Scan(ex.ans.b, limit)
			if err != nil {
				return false, handshake.ErrBackendBadResponse
			}
			if end > 0 {
				if ex.resp == nil {
					ex.resp = getResponse()
				}
				if err := handshake.ParseResponse(ex.ans.b[:end], ex.resp); err != nil {
					return false, err
				}
				if s := ex.resp.Status; s >= 100 && s < 200 && s != 101 {
					l.interim(t, ex, end)
					continue
				}
				ex.ansLen = end
				return true, nil
			}
		}
		if t.io[sideBackend]&canRead == 0 {
			return false, nil
		}
		if len(ex.ans.b) == cap(ex.ans.b) {
			if len(ex.ans.b) >= limit+(4<<10) {
				return false, handshake.ErrBackendBadResponse
			}
			ex.ans = growChunk(ex.ans, 4<<10)
		}
		n, err := sysRead(fd, ex.ans.b[len(ex.ans.b):cap(ex.ans.b)])
		if err != nil {
			if err == unix.EAGAIN {
				t.io[sideBackend] &^= canRead
				return false, nil
			}
			if err == unix.EINTR {
				continue
			}
			return false, handshake.ErrBackendBadResponse
		}
		if n == 0 {
			// Closed before a complete head: nginx's "upstream prematurely
			// closed connection while reading response header", a 502.
			return false, handshake.ErrBackendBadResponse
		}
		room := cap(ex.ans.b) - len(ex.ans.b)
		ex.ans.b = ex.ans.b[:len(ex.ans.b)+n]
		t.active = l.now
		if n < room && t.io[sideBackend]&peerShut == 0 {
			// A short read drained the socket (see pump): the next read
			// would say EAGAIN, and a new byte raises a new edge.
			t.io[sideBackend] &^= canRead
		}
	}
	l.requeue(i, t)
	return false, nil
}

// interim moves a 1xx head of end bytes from the answer buffer to the
// client's side and resets the scanner for the next head.
func (l *loop) interim(t *tunnel, ex *exchange, end int) {
	c := getChunk(end)
	c.b = append(c.b, ex.ans.b[:end]...)
	l.attach(&t.dir[dirDown], c)
	n := copy(ex.ans.b, ex.ans.b[end:])
	ex.ans.b = ex.ans.b[:n]
	ex.scan.Reset()
}

func (l *loop) answerTimedOut(i int32, t *tunnel) {
	if int32(l.now-(t.active+l.srv.answerTicks)) < 0 {
		l.wheel.arm(i, t.active+l.srv.answerTicks)
		return
	}
	l.closeBackend(t)
	l.releaseLease(t, true, balance.FailTimeout, false)
	l.srv.c.dialFailures[balance.FailTimeout].Add(1)
	l.answer(i, t, handshake.ErrGatewayTimeout)
}

// badAnswer answers 502 for a backend whose answer could not be used.
func (l *loop) badAnswer(i int32, t *tunnel, err error) {
	l.closeBackend(t)
	l.releaseLease(t, true, balance.FailResponse, false)
	l.srv.c.dialFailures[balance.FailResponse].Add(1)
	l.answer(i, t, asReject(err))
}

// failed handles a syscall error on one side during the exchange.
func (l *loop) failed(i int32, t *tunnel, side int) {
	if side == sideBackend {
		l.badAnswer(i, t, handshake.ErrBackendBadResponse)
		return
	}
	l.finish(i, causeClientGone)
}

// answer sends the client one of wsgate's own error responses and lingers.
func (l *loop) answer(i int32, t *tunnel, r *handshake.Reject) {
	l.closeBackend(t)
	l.releaseLease(t, false, 0, false)
	l.srv.c.reject(r)
	if ex := l.exOf(t); ex != nil {
		l.srv.c.observeHandshake(ex.accepted)
	}
	for d := range t.dir {
		l.unpark(&t.dir[d])
		l.dropPipe(&t.dir[d])
	}
	c := getChunk(512)
	c.b = handshake.AppendReject(c.b, r)
	l.attach(&t.dir[dirDown], c)
	t.status = uint16(r.Status)
	l.linger(i, t, causeRejected)
}

func asReject(err error) *handshake.Reject {
	if r, ok := err.(*handshake.Reject); ok {
		return r
	}
	return handshake.ErrBackendBadResponse
}
