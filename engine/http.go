package engine

import (
	"bytes"

	"golang.org/x/sys/unix"

	"github.com/wsgate/wsgate/handshake"
)

// Plain requests — anything that is not an allowed upgrade: socket.io's
// long-polling, health checks, a backend refusing an upgrade — pass through
// once, exactly: the declared request body and nothing after it goes up,
// the answer comes down with Connection: close, and the connection closes
// after it. A pipelined second request is never forwarded, so no byte the
// backend sees is ever framed differently by wsgate and by the backend.

// statusClientClosed is nginx's 499: the client went away before the answer.
const statusClientClosed = 499

func (l *loop) stepHTTP(i int32, t *tunnel) {
	ex := l.exOf(t)
	if side, err := l.pumpBody(i, t, dirUp, &ex.body); err != nil {
		l.httpFailed(i, t, side)
		return
	}
	if t.state != stHTTP {
		return
	}
	if !ex.answered {
		// Interim answers (wsgate's own 100 Continue, a backend's 103)
		// go to the client as they come.
		if side, err := l.flush(i, t, dirDown); err != nil {
			l.httpFailed(i, t, side)
			return
		}
		done, err := l.readAnswer(i, t)
		if err != nil {
			l.badAnswer(i, t, err)
			return
		}
		if !done {
			if t.io[sideClient]&peerShut != 0 && ex.body.Done() {
				// The client closed while waiting, as a browser does when
				// the user navigates away: nginx's 499, and the backend's
				// work is abandoned.
				t.status = statusClientClosed
				l.finish(i, causeClientGone)
			}
			return
		}
		l.forwardAnswer(i, t)
		return
	}
	if side, err := l.pumpBody(i, t, dirDown, &ex.rbody); err != nil {
		l.httpFailed(i, t, side)
		return
	}
	down := &t.dir[dirDown]
	if down.chunk != 0 {
		return
	}
	if ex.rbody.Done() || down.flags&dEOF != 0 {
		if !ex.rbody.Done() && !ex.untilClose {
			l.finish(i, causeBackendReset) // truncated: the client must see it
			return
		}
		l.linger(i, t, causeDone)
	}
}

// forwardAnswer sends the final answer head, rewritten to close the
// connection, and the body bytes that came with it.
func (l *loop) forwardAnswer(i int32, t *tunnel) {
	ex := l.exOf(t)
	resp := ex.resp
	t.status = uint16(resp.Status)
	kind, n := resp.Body, resp.ContentLength
	// RFC 9112 6.3: these answers have no body whatever their headers say.
	if bytes.Equal(ex.req.Method, []byte("HEAD")) || resp.Status == 204 || resp.Status == 304 {
		kind, n = handshake.BodyNone, 0
	}
	ex.untilClose = kind == handshake.BodyUntilClose
	ex.rbody.Init(kind, n)
	rest := ex.ans.b[ex.ansLen:]
	m, _, err := ex.rbody.Advance(rest)
	if err != nil {
		l.badAnswer(i, t, handshake.ErrBackendBadResponse)
		return
	}
	c := getChunk(ex.ansLen + 64 + m)
	c.b = handshake.AppendResponseClose(c.b, resp)
	if ex.cookie {
		c = l.withCookie(ex, l.backendOf(t).Addr(), c, len(c.b))
	}
	if m > 0 {
		c = growChunk(c, m)
		c.b = append(c.b, rest[:m]...)
	}
	l.attach(&t.dir[dirDown], c)
	putChunk(ex.ans)
	ex.ans = nil
	ex.answered = true
	l.srv.c.plainOK.Add(1)
	l.srv.c.observeHandshake(ex.accepted)
	l.armIdle(i, t)
	l.stepHTTP(i, t)
}

// httpFailed handles a syscall error on one side of a plain request.
func (l *loop) httpFailed(i int32, t *tunnel, side int) {
	ex := l.exOf(t)
	if side == sideBackend {
		if !ex.answered {
			l.badAnswer(i, t, handshake.ErrBackendBadResponse)
			return
		}
		l.finish(i, causeBackendReset)
		return
	}
	if !ex.answered {
		t.status = statusClientClosed
	}
	l.finish(i, causeClientGone)
}

// pumpBody copies one message body along direction d, exactly as tr frames
// it: bytes after its end are not forwarded. Copy path only: the framing
// (chunked) is read from the bytes as they pass.
func (l *loop) pumpBody(i int32, t *tunnel, d int, tr *handshake.BodyTracker) (int, error) {
	dr := &t.dir[d]
	src, dst := d, 1-d
	for ops := 0; ops < maxOps; ops++ {
		if side, err := l.flush(i, t, d); err != nil {
			return side, err
		}
		if dr.chunk != 0 || tr.Done() || dr.flags&dEOF != 0 {
			return -1, nil
		}
		if t.io[src]&canRead == 0 || t.io[dst]&canWrite == 0 {
			return -1, nil
		}
		if l.parked+copyBufSize > l.srv.parkLimit {
			l.wait(i, t, d)
			return -1, nil
		}
		n, err := sysRead(int(t.fd[src]), l.buf)
		if err != nil {
			if err == unix.EAGAIN {
				t.io[src] &^= canRead
				return -1, nil
			}
			if err == unix.EINTR {
				continue
			}
			return src, err
		}
		if n == 0 {
			dr.flags |= dEOF
			if d == dirUp {
				return src, errClientEOF // ended in the middle of its body
			}
			return -1, nil
		}
		t.active = l.now
		if n < len(l.buf) && t.io[src]&peerShut == 0 {
			t.io[src] &^= canRead
		}
		m, _, err := tr.Advance(l.buf[:n])
		if err != nil {
			return src, err
		}
		if side, err := l.write(t, d, l.buf[:m]); err != nil {
			return side, err
		}
		if dr.chunk != 0 {
			return -1, nil
		}
	}
	l.requeue(i, t)
	return -1, nil
}
