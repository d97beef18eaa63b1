package engine

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudwego/netpoll"

	"github.com/wsgate/wsgate/handshake"
)

// session is one client connection while netpoll reads its head. It moves
// whatever arrives into its own small head buffer and returns at once, so a
// half-sent head parks no goroutine (5,000 slowloris clients would park
// 5,000 of them otherwise, DESIGN.md); the header timeout lives in the
// server's head watch list, not in a blocked read.
//
// Ownership of the connection passes exactly once, decided by a CAS on
// state: to a loop (head complete, valid or not), or to the head watcher
// (timeout), or back to netpoll (the client left first).
type session struct {
	context.Context // netpoll hands it back to OnRequest; embedding saves an allocation
	srv             *Server
	ln              *listener
	conn            netpoll.Connection
	state           atomic.Int32
	head            *chunk
	headLen         int // 0 until the head's end is found
	scan            handshake.HeadScanner
	peer            netip.AddrPort
	accepted        int64
	ex              *exchange

	// head watch list, under Server.heads.mu
	prev, next *session
	deadline   int64
	watched    bool
}

const (
	sReading  int32 = iota // netpoll is reading the head
	sHandoff               // head complete: going to a loop
	sTimedOut              // the header timeout passed: 408 and close
	sGone                  // the client closed first
)

func (s *Server) onPrepare(ln *listener) netpoll.OnPrepare {
	return func(conn netpoll.Connection) context.Context {
		ss := &session{
			Context:  context.Background(),
			srv:      s,
			ln:       ln,
			conn:     conn,
			accepted: time.Now().UnixNano(),
		}
		if ta, ok := conn.RemoteAddr().(*net.TCPAddr); ok {
			ap := ta.AddrPort()
			ss.peer = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		}
		conn.AddCloseCallback(ss.closed)
		s.c.accepted.Add(1)
		s.c.headsPending.Add(1)
		s.heads.add(ss, s.headerTimeout)
		return ss
	}
}

// onRequest runs on a netpoll goroutine whenever bytes arrived. It must
// consume them all (netpoll calls it again at once otherwise).
func (s *Server) onRequest(ctx context.Context, conn netpoll.Connection) error {
	ss := ctx.(*session)
	r := conn.Reader()
	n := r.Len()
	if n == 0 {
		return nil
	}
	if ss.state.Load() != sReading {
		r.Skip(n)
		r.Release()
		return nil
	}
	if ss.head == nil {
		ss.head = getChunk(n)
	}
	p, err := r.Next(n)
	if err != nil {
		return nil
	}
	ss.head = growChunk(ss.head, n)
	ss.head.b = append(ss.head.b, p...)
	r.Release()
	if ss.headLen == 0 {
		end, err := ss.scan.Scan(ss.head.b, s.limits.MaxHeadBytes)
		if err != nil {
			ss.reject(asReject(err))
			return nil
		}
		if end == 0 {
			return nil
		}
		ss.headLen = end
	}
	ss.complete()
	return nil
}

// complete parses the head and hands the connection to a loop with either
// the parsed request or the rejection to answer.
func (ss *session) complete() {
	if !ss.state.CompareAndSwap(sReading, sHandoff) {
		return
	}
	srv := ss.srv
	srv.heads.remove(ss)
	ex := &exchange{
		peer:     ss.peer,
		direct:   ss.peer.Addr(),
		accepted: ss.accepted,
		head:     ss.head,
		headLen:  ss.headLen,
		route:    srv.route,
	}
	ss.head = nil
	req := getRequest()
	if err := handshake.ParseRequest(ex.head.b[:ex.headLen], req, &srv.limits); err != nil {
		putRequest(req)
		ex.reject = asReject(err)
	} else {
		ex.req = req
		// handshake guarantees an upgrade carries no body (it rejects one
		// that does), so an upgrade forwards nothing before the 101.
		ex.upgrade = req.IsUpgrade
		if !ex.upgrade {
			ex.body.Init(req.Body, req.ContentLength)
		}
	}
	ss.ex = ex
	ss.detach() // the close callback, run after onRequest returns, hands over
}

// reject answers one of the head's errors through a loop, which writes it
// and lingers.
func (ss *session) reject(r *handshake.Reject) {
	if !ss.state.CompareAndSwap(sReading, sHandoff) {
		return
	}
	ss.srv.heads.remove(ss)
	ss.ex = &exchange{
		peer:     ss.peer,
		direct:   ss.peer.Addr(),
		accepted: ss.accepted,
		head:     ss.head,
		reject:   r,
		route:    ss.srv.route,
	}
	ss.head = nil
	ss.detach()
}

// closed is netpoll's close callback: after a Detach it hands the socket
// over; otherwise it releases what the session held.
func (ss *session) closed(conn netpoll.Connection) error {
	srv := ss.srv
	srv.c.headsPending.Add(-1)
	if ss.state.Load() != sHandoff {
		ss.state.Store(sGone)
		srv.heads.remove(ss)
		putChunk(ss.head)
		ss.head = nil
		return nil
	}
	ex := ss.ex
	ss.ex = nil
	// Bytes netpoll read after our last onRequest follow the head: early
	// data of an upgrade, or the start of a plain request's body. netpoll
	// has read them from the socket, so they are kept, all of them.
	if r := conn.Reader(); r.Len() > 0 && ex.reject == nil {
		n := r.Len()
		if p, err := r.Next(n); err == nil {
			ex.head = growChunk(ex.head, n)
			ex.head.b = append(ex.head.b, p...)
		}
	}
	fc, ok := conn.(interface{ Fd() int })
	if !ok {
		ex.release()
		return nil
	}
	if ex.upgrade && len(ex.head.b)-ex.headLen > srv.earlyData {
		// WebSocket clients wait for the 101 before sending frames; one
		// that sends this much first would make wsgate buffer it all.
		srv.log.Debug("closing client: early data over the limit", "client", ex.peer, "bytes", len(ex.head.b)-ex.headLen)
		closeFD(fc.Fd())
		ex.release()
		return nil
	}
	ex.fd = fc.Fd()
	ex.tls = false
	if !srv.nextLoop().post(func(l *loop) { l.adopt(ex) }) {
		closeFD(ex.fd)
		ex.release()
	}
	return nil
}

// headWatch holds the sessions still reading their heads, oldest first: all
// share one header timeout, so insertion order is deadline order and the
// watcher only ever looks at the front.
type headWatch struct {
	mu         sync.Mutex
	head, tail *session
	n          int
}

func (w *headWatch) add(ss *session, timeout time.Duration) {
	w.mu.Lock()
	ss.deadline = time.Now().Add(timeout).UnixNano()
	ss.prev, ss.next = w.tail, nil
	if w.tail != nil {
		w.tail.next = ss
	} else {
		w.head = ss
	}
	w.tail = ss
	ss.watched = true
	w.n++
	w.mu.Unlock()
}

func (w *headWatch) remove(ss *session) {
	w.mu.Lock()
	w.removeLocked(ss)
	w.mu.Unlock()
}

func (w *headWatch) removeLocked(ss *session) {
	if !ss.watched {
		return
	}
	if ss.prev != nil {
		ss.prev.next = ss.next
	} else {
		w.head = ss.next
	}
	if ss.next != nil {
		ss.next.prev = ss.prev
	} else {
		w.tail = ss.prev
	}
	ss.prev, ss.next, ss.watched = nil, nil, false
	w.n--
}

// expire takes every session past its deadline off the list.
func (w *headWatch) expire(now int64, out []*session) []*session {
	w.mu.Lock()
	for ss := w.head; ss != nil && ss.deadline <= now; ss = w.head {
		w.removeLocked(ss)
		out = append(out, ss)
	}
	w.mu.Unlock()
	return out
}

// watchHeads closes clients that have not sent a whole head within the
// header timeout, with 408 when the socket takes it: a slow client never
// holds a slot beyond the timeout.
func (s *Server) watchHeads() {
	defer s.wg.Done()
	t := time.NewTicker(tick)
	defer t.Stop()
	var expired []*session
	timeout := handshake.AppendReject(nil, handshake.ErrHeaderTimeout)
	for {
		select {
		case <-s.quit:
			return
		case <-t.C:
		}
		expired = s.heads.expire(time.Now().UnixNano(), expired[:0])
		for _, ss := range expired {
			if !ss.state.CompareAndSwap(sReading, sTimedOut) {
				continue
			}
			s.c.reject(handshake.ErrHeaderTimeout)
			s.c.observeHandshake(ss.accepted)
			// onRequest never writes, so this is the only writer; the
			// socket's send buffer is empty, so the write cannot block.
			ss.conn.Write(timeout)
			ss.conn.Close()
		}
		clear(expired)
	}
}

// detach takes the connection out of netpoll's poller without closing its
// socket: netpoll's concrete connection has Detach (DESIGN.md, netpoll
// notes). Its close callbacks then run, ours handing the socket over.
func (ss *session) detach() {
	if d, ok := ss.conn.(interface{ Detach() error }); ok {
		d.Detach()
		return
	}
	// Not netpoll's connection type: the socket cannot be taken over.
	ss.srv.log.Error("netpoll connection cannot be detached; closing it")
	ss.state.Store(sGone)
	ss.conn.Close()
}
