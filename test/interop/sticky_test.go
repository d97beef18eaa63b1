package interop

import (
	"slices"
	"strings"
	"testing"

	"github.com/wsgate/wsgate/balance"
	"github.com/wsgate/wsgate/engine"
	"github.com/wsgate/wsgate/internal/testutil"
)

// Two socket.io servers behind one wsgate. In its default transport mode
// a socket.io session is several HTTP requests before it is a tunnel:
// the handshake poll (no sid yet: the backend that answers makes one up),
// then polls and POSTs carrying that sid, then the websocket upgrade, also
// with the sid. Each must reach the backend that issued the sid; another
// backend answers 400 {"code":1,"message":"Session ID unknown"}. wsgate's
// sticky cookie does this: the handshake poll is balanced as usual and its
// answer sets the cookie, which names the backend for the rest.
//
// The client keeps sticky sessions concurrent (stickyParallel at a time)
// so that sessions' requests interleave and least_conn has live tunnels to
// balance over.
const (
	stickySessions = 20
	stickyParallel = 4
	stickyCookie   = "wsgate_sticky"
)

var stickyKey = []byte("wsgate interop sticky key")

// sioRun is how one sio-client.js run through wsgate went: the client, its
// sessions' events, and the requests each backend refused.
type sioRun struct {
	res      result
	sessions []event
	refused  map[string][]event // backend name → its connection_error events
}

// runSIO runs sio-client.js with stickySessions sessions against g, whose
// backends are bs, with extra arguments.
func runSIO(t *testing.T, g *gate, bs []*backend, extra ...string) sioRun {
	t.Helper()
	args := append([]string{"sio-client.js", "--url", "http://" + g.addr,
		"--sessions", itoa(stickySessions), "--parallel", itoa(stickyParallel), "--emits", itoa(sioEmits)}, extra...)
	r := sioRun{res: runNode(t, args...), refused: map[string][]event{}}
	for _, e := range r.res.events() {
		if e.str("event") == "session" {
			r.sessions = append(r.sessions, e)
		}
	}
	if len(r.sessions) != stickySessions {
		t.Fatalf("sio-client.js reported %d sessions, want %d (%v):\nstdout:\n%s\nstderr:\n%s",
			len(r.sessions), stickySessions, r.res.err, r.res.stdout, r.res.stderr)
	}
	for _, b := range bs {
		r.refused[b.name] = b.find("connection_error", func(event) bool { return true })
	}
	return r
}

// failed returns the sessions that did not pass.
func (r sioRun) failed() []event {
	var out []event
	for _, e := range r.sessions {
		if e["ok"] != true {
			out = append(out, e)
		}
	}
	return out
}

// refusedSid reports whether a backend refused a request of session sid
// as "Session ID unknown".
func (r sioRun) refusedSid(sid string) bool {
	for _, es := range r.refused {
		for _, e := range es {
			if e.str("message") == "Session ID unknown" && strings.Contains(e.str("url"), "sid="+sid) {
				return true
			}
		}
	}
	return false
}

// unknownSid counts the requests backends refused with "Session ID unknown".
func (r sioRun) unknownSid() int {
	n := 0
	for _, es := range r.refused {
		for _, e := range es {
			if e.str("message") == "Session ID unknown" {
				n++
			}
		}
	}
	return n
}

// TestSocketIOSticky: least_conn over two socket.io backends with a
// sticky cookie; socket.io-client in its default transport mode (polling,
// then the upgrade), each session with its own cookie jar like a browser.
// Every session connects, upgrades to websocket and gets its emits acked,
// all by the backend that welcomed it; the sessions spread over both
// backends, and no backend refuses a request.
func TestSocketIOSticky(t *testing.T) {
	testutil.CheckLeaks(t)
	needNode(t)
	a := startBackend(t, "sio-server.js", "a")
	b := startBackend(t, "sio-server.js", "b")
	bs := []*backend{a, b}
	g := startStickyGate(t, balance.Config{Policy: balance.LeastConn},
		&engine.Sticky{Cookie: stickyCookie, Key: stickyKey}, a, b)
	r := runSIO(t, g, bs)
	requireOK(t, "sio-client.js", r.res)
	t.Logf("sio-client.js took %v", r.res.took)

	on := map[string]int{}
	for _, e := range r.sessions {
		sid, name := e.str("sid"), e.str("backend")
		if e.str("firstTransport") != "polling" || e.str("upgradedTo") != "websocket" || e.num("acks") != sioEmits {
			t.Errorf("session %v", e)
		}
		// engine.io-client keeps the cookie wsgate set, and sends it;
		// socket.io sets none of its own (its cookie option is off by
		// default).
		if cs, _ := e["cookies"].([]any); !slices.Equal(cs, []any{stickyCookie}) {
			t.Errorf("session %d (%s) holds cookies %v, want [%s]", e.num("session"), sid, e["cookies"], stickyCookie)
		}
		var home, other *backend
		switch name {
		case a.name:
			home, other = a, b
		case b.name:
			home, other = b, a
		default:
			t.Errorf("session %d (%s) welcomed by backend %q", e.num("session"), sid, name)
			continue
		}
		on[name]++
		home.waitEvent(t, eventTimeout, "connection", func(e event) bool { return e.str("sid") == sid })
		home.waitEvent(t, eventTimeout, "upgrade", func(e event) bool {
			return e.str("sid") == sid && e.str("transport") == "websocket"
		})
		if es := other.find("connection", func(e event) bool { return e.str("sid") == sid }); len(es) > 0 {
			t.Errorf("session %s is on %s, but %s also saw it: %v", sid, name, other.name, es)
		}
	}
	t.Logf("sessions per backend: %v", on)
	if on[a.name] == 0 || on[b.name] == 0 {
		t.Errorf("sessions per backend %v: want them spread over both", on)
	}
	for name, es := range r.refused {
		for _, e := range es {
			t.Errorf("backend %s refused %s %s: %s", name, e.str("method"), e.str("url"), e.str("message"))
		}
	}
	if st := g.srv.Stats(); st.HandshakesOK != stickySessions {
		t.Errorf("wsgate counted %d upgrades, want %d", st.HandshakesOK, stickySessions)
	}
}

// TestSocketIOStickyControls runs TestSocketIOSticky's client where it
// cannot work, to show that the test fails when stickiness is missing:
//
//   - least_conn: no sticky cookie. A session's first request after its
//     handshake poll goes to the other backend (the less loaded one, or
//     the least recently picked of a tie), which refuses it.
//   - no_cookie_jar: the sticky route, but the client keeps no cookies
//     (withCredentials false, socket.io-client's default in Node), so
//     wsgate balances each request afresh, as without the cookie.
//   - hash_sid: hash on query:sid (what TestSocketIOHashBySid tried before
//     the cookie existed). The handshake poll has no sid yet and is hashed
//     by client address; the later requests are hashed by a sid that maps
//     to the other backend about half the time.
//
// Each must leave at least minFail sessions failing, each because a
// backend refused one of its requests as "Session ID unknown".
func TestSocketIOStickyControls(t *testing.T) {
	testutil.CheckLeaks(t)
	needNode(t)
	sticky := &engine.Sticky{Cookie: stickyCookie, Key: stickyKey}
	for _, c := range []struct {
		name    string
		pool    balance.Config
		sticky  *engine.Sticky
		args    []string
		minFail int // sessions that must fail, of stickySessions
	}{
		{"least_conn", balance.Config{Policy: balance.LeastConn}, nil, nil, stickySessions / 2},
		{"no_cookie_jar", balance.Config{Policy: balance.LeastConn}, sticky, []string{"--with-credentials", "false"}, stickySessions / 2},
		// A session fails when its sid hashes to the backend that did not
		// issue it: half of them, 0 of 20 with probability 2^-20.
		{"hash_sid", balance.Config{Policy: balance.Hash, HashKey: "query:sid"}, nil, nil, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := startBackend(t, "sio-server.js", "a")
			b := startBackend(t, "sio-server.js", "b")
			bs := []*backend{a, b}
			g := startStickyGate(t, c.pool, c.sticky, a, b)
			r := runSIO(t, g, bs, c.args...)
			failed := r.failed()
			t.Logf("%d of %d sessions failed, %d requests refused as Session ID unknown (a %d, b %d), in %v",
				len(failed), stickySessions, r.unknownSid(), len(r.refused[a.name]), len(r.refused[b.name]), r.res.took)
			if len(failed) > 0 {
				t.Logf("first failure: %s: %s", failed[0].str("at"), failed[0].str("error"))
			}
			if r.res.err == nil {
				t.Errorf("sio-client.js passed; this control must fail")
			}
			if len(failed) < c.minFail {
				t.Errorf("%d sessions failed, want at least %d", len(failed), c.minFail)
			}
			// Each failure is the one stickiness prevents: a backend
			// refused one of the session's requests (a poll, a POST or
			// the upgrade, which the client reports as a bare "probe
			// error") because another backend issued its sid.
			for _, e := range failed {
				if sid := e.str("sid"); sid == "" || !r.refusedSid(sid) {
					t.Errorf("session %d (sid %q) failed at %s (%s), but no backend refused its sid as unknown",
						e.num("session"), sid, e.str("at"), e.str("error"))
				}
			}
		})
	}
}
