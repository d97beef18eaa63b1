package engine

import (
	"encoding/binary"
	"math/rand/v2"
	"time"

	"github.com/wsgate/wsgate/balance"
)

// Ending WebSocket tunnels the way the protocol intends (RFC 6455 7.1.2):
// instead of cutting the TCP connections — what nginx, HAProxy, Envoy and
// Traefik do when they drain, reload or stop, so that every client sees a
// reset at the same moment and reconnects in one storm — wsgate waits for
// each direction's next frame boundary, sends the client a Close frame
// (1001 going away, or 1012 service restart) and the backend a masked one,
// gives both a short time to answer with their own Close, and then closes
// the sockets. The callers spread these closes over a window (drain.go in
// balance, scheduleSlotCloses here), so reconnects arrive spread out too.
//
// A tunnel that reaches no boundary in time (a peer stalled in the middle
// of a frame) is closed plainly, and counted as such.

// Close status codes (RFC 6455 7.4.1; 1012 from the IANA registry).
const (
	closeGoingAway      = 1001
	closeServiceRestart = 1012
)

// closeReason is the Close frame's reason text for a cause: short, as the
// whole control frame payload must fit in 125 bytes.
func (s *Server) closeFrame(cause uint8) (code uint16, reason string) {
	code = closeGoingAway
	if s.restarting.Load() {
		code = closeServiceRestart
	}
	switch cause {
	case causeIdle:
		return closeGoingAway, "wsgate: idle timeout"
	case causeLifetime:
		return code, "wsgate: maximum lifetime"
	case causeShutdown:
		if code == closeServiceRestart {
			return code, "wsgate: restarting"
		}
		return code, "wsgate: shutting down"
	}
	return code, "wsgate: draining"
}

// beginClose starts ending tunnel i gracefully for cause. Tunnels that are
// not WebSocket tunnels, or not yet tunnels, are closed at once.
func (l *loop) beginClose(i int32, t *tunnel, cause uint8) {
	if t.state == stClosing {
		return
	}
	if t.state != stTunnel || !t.ws {
		l.c.plainCloses[cause].Add(1)
		l.finish(i, cause)
		return
	}
	t.state = stClosing
	t.cause = cause
	for d := range t.dir {
		dr := &t.dir[d]
		if dr.flags&(dEOF|dShut) != 0 {
			// This side already finished sending: nothing to end here.
			dr.flags |= dCloseSent | dPeerClose
			continue
		}
		dr.flags |= dCloseWant
	}
	l.wheel.arm(i, l.now+l.srv.closeTicks)
	l.stepTunnel(i, t)
	if t.state == stClosing {
		// A direction with a call queued in the loop's batch acts on the
		// close only once the call is made: run it again after.
		l.requeue(i, t)
	}
}

// sendClose queues wsgate's Close frame on direction d, which is at a
// frame boundary: unmasked towards the client, masked towards the backend
// (RFC 6455 5.3: a client's frames are masked, and to the backend wsgate
// is the client).
func (l *loop) sendClose(t *tunnel, d int) {
	code, reason := l.srv.closeFrame(t.cause)
	c := getChunk(2 + 4 + 2 + len(reason))
	c.b = appendCloseFrame(c.b, code, reason, d == dirUp)
	l.attach(&t.dir[d], c)
	t.dir[d].flags |= dCloseSent
}

// appendCloseFrame appends a Close frame with code and reason.
func appendCloseFrame(b []byte, code uint16, reason string, masked bool) []byte {
	n := 2 + len(reason)
	if !masked {
		b = append(b, 0x80|opClose, byte(n))
		b = binary.BigEndian.AppendUint16(b, code)
		return append(b, reason...)
	}
	var key [4]byte
	binary.LittleEndian.PutUint32(key[:], rand.Uint32())
	b = append(b, 0x80|opClose, 0x80|byte(n))
	b = append(b, key[:]...)
	start := len(b)
	b = binary.BigEndian.AppendUint16(b, code)
	b = append(b, reason...)
	for j := range b[start:] {
		b[start+j] ^= key[j&3]
	}
	return b
}

// closingDone reports that both directions have sent wsgate's Close, it
// is delivered, and each peer has answered with its own Close or ended.
func closingDone(t *tunnel) bool {
	for d := range t.dir {
		dr := &t.dir[d]
		if dr.flags&dCloseSent == 0 || dr.chunk != 0 || dr.flags&(dPeerClose|dEOF) == 0 {
			return false
		}
	}
	return true
}

// closeTimedOut ends a closing tunnel whose peers did not both answer in
// time: gracefully if both Close frames at least went out.
func (l *loop) closeTimedOut(i int32, t *tunnel) {
	l.finishClosing(i, t)
}

func (l *loop) finishClosing(i int32, t *tunnel) {
	sent := true
	for d := range t.dir {
		if t.dir[d].flags&dCloseSent == 0 || t.dir[d].chunk != 0 {
			sent = false
		}
	}
	if sent {
		l.c.gracefulCloses[t.cause].Add(1)
	} else {
		l.c.plainCloses[t.cause].Add(1)
	}
	l.finish(i, t.cause)
}

// keepalive sends the client a Ping when a WebSocket tunnel has been idle
// for the keepalive interval, so that NATs and L4 balancers in front of
// wsgate keep the connection (mobile carriers drop idle flows in minutes).
// The client's Pong goes on to the backend as an unsolicited Pong, which
// RFC 6455 5.5.3 allows. It reports whether a Ping was queued.
func (l *loop) keepalive(t *tunnel) bool {
	dr := &t.dir[dirDown]
	if !t.ws || dr.flags&(dEOF|dShut|dCloseWant|dCloseSent) != 0 || dr.chunk != 0 || t.io[sideBackend]&reading != 0 || !dr.fr.atBoundary() {
		return false
	}
	if p := l.pipeOf(dr); p != nil && p.n > 0 {
		return false
	}
	c := getChunk(len(pingFrame))
	c.b = append(c.b, pingFrame...)
	l.attach(dr, c)
	l.c.pings.Add(1)
	return true
}

// pingFrame is the keepalive Ping: unmasked, FIN, payload "wsgate".
var pingFrame = []byte{0x80 | opPing, 6, 'w', 's', 'g', 'a', 't', 'e'}

// CloseBackendTunnels ends backend b's tunnels gracefully at about rate
// tunnels per second, with jitter: an operator moving clients off a
// backend slowly. Each loop ends its share at its share of the rate.
func (s *Server) CloseBackendTunnels(b *balance.Backend, rate float64) {
	if rate <= 0 {
		rate = 1
	}
	per := rate / float64(len(s.loops))
	for _, l := range s.loops {
		l.post(func(l *loop) {
			list := l.backendTunnels(b)
			spread := time.Duration(float64(len(list)) / per * float64(time.Second))
			l.scheduleCloses(list, spread, causeDrain)
		})
	}
}
