package interop

import (
	"testing"

	"github.com/wsgate/wsgate/balance"
	"github.com/wsgate/wsgate/internal/testutil"
)

// TestNodeWS: node's ws client against a ws echo server: subprotocol,
// text, binary, fragments, a burst, 1 MiB, ping/pong, a close code and
// reason each way, permessage-deflate (ws-client.js lists the steps).
func TestNodeWS(t *testing.T) {
	testutil.CheckLeaks(t)
	needNode(t)
	b := startBackend(t, "ws-echo-server.js", "ws-echo")
	g := startGate(t, balance.Config{}, b)
	for _, r := range routes(b.addr, g) {
		t.Run(r.name, func(t *testing.T) {
			path := "/node-ws/" + r.name
			res := runNode(t, "ws-client.js", "--url", "ws://"+r.addr+path)
			requireOK(t, "ws-client.js", res)
			if evs := res.events(); len(evs) == 0 || evs[len(evs)-1].str("event") != "done" {
				t.Fatalf("ws-client.js exited 0 without finishing:\n%s", res.stdout)
			}
			t.Logf("ws-client.js took %v", res.took)

			conns := b.find("connection", func(e event) bool { return e.str("url") == path })
			if len(conns) != 2 {
				t.Fatalf("backend saw %d connections on %s, want 2:\n%s", len(conns), path, b.output())
			}
			for _, c := range conns {
				checkForwarded(t, r, c)
			}
			plain, deflate := conns[0].num("id"), conns[1].num("id")
			if got := conns[0].str("protocol"); got != "wsgate.interop" {
				t.Errorf("backend chose subprotocol %q, want wsgate.interop", got)
			}
			if got := conns[1].str("extensions"); got != "permessage-deflate" {
				t.Errorf("backend negotiated extensions %q, want permessage-deflate", got)
			}
			b.waitEvent(t, eventTimeout, "ping", func(e event) bool {
				return e.num("id") == plain && e.str("data") == "wsgate-ping"
			})
			// The close code and reason the client sent, as the server saw them.
			b.waitEvent(t, eventTimeout, "close", func(e event) bool {
				return e.num("id") == plain && e.num("code") == 4001 && e.str("reason") == "interop done"
			})
			b.waitEvent(t, eventTimeout, "close", func(e event) bool {
				return e.num("id") == deflate && e.num("code") == 4002 && e.str("reason") == "server says bye"
			})

			if r.gate != nil {
				st := r.gate.srv.Stats()
				if st.HandshakesOK != 2 || st.BytesUp < 2<<20 || st.BytesDown < 2<<20 {
					t.Errorf("wsgate counted %d upgrades, %d bytes up, %d down; want 2 and over 2 MiB each way",
						st.HandshakesOK, st.BytesUp, st.BytesDown)
				}
			}
		})
	}
}

// TestWscat: wscat --execute sends two messages (one not ASCII) and
// prints their echoes, then closes.
func TestWscat(t *testing.T) {
	testutil.CheckLeaks(t)
	needNode(t)
	b := startBackend(t, "ws-echo-server.js", "ws-echo")
	g := startGate(t, balance.Config{}, b)
	for _, r := range routes(b.addr, g) {
		t.Run(r.name, func(t *testing.T) {
			path := "/wscat/" + r.name
			res := runNode(t, "node_modules/wscat/bin/wscat", "--connect", "ws://"+r.addr+path,
				"--execute", "hello wscat ✓", "--execute", "second", "--wait", "1")
			requireOK(t, "wscat", res)
			if got, want := res.stdout, "hello wscat ✓\nsecond\n"; got != want {
				t.Fatalf("wscat printed %q, want %q (stderr %q)", got, want, res.stderr)
			}
			c := b.waitEvent(t, eventTimeout, "connection", func(e event) bool { return e.str("url") == path })
			checkForwarded(t, r, c)
			// wscat closes without a status code: the server sees 1005.
			b.waitEvent(t, eventTimeout, "close", func(e event) bool {
				return e.num("id") == c.num("id") && e.num("code") == 1005
			})
		})
	}
}

// sioSessions is how many socket.io sessions a case runs; each does
// sioEmits emit/ack round trips after its upgrade.
const (
	sioSessions = 3
	sioEmits    = 20
)

// TestSocketIO: socket.io-client in its default transport mode against a
// socket.io server behind wsgate with one backend: long-polling (each
// poll a plain request that wsgate answers with Connection: close), the
// upgrade to websocket, then emit/ack over it.
func TestSocketIO(t *testing.T) {
	testutil.CheckLeaks(t)
	needNode(t)
	b := startBackend(t, "sio-server.js", "sio")
	g := startGate(t, balance.Config{}, b)
	for _, r := range routes(b.addr, g) {
		t.Run(r.name, func(t *testing.T) {
			res := runNode(t, "sio-client.js", "--url", "http://"+r.addr,
				"--sessions", itoa(sioSessions), "--emits", itoa(sioEmits))
			requireOK(t, "sio-client.js", res)
			t.Logf("sio-client.js took %v", res.took)
			var sessions int
			for _, e := range res.events() {
				if e.str("event") != "session" {
					continue
				}
				sessions++
				sid := e.str("sid")
				if e["ok"] != true || e.str("firstTransport") != "polling" || e.str("upgradedTo") != "websocket" || e.num("acks") != sioEmits {
					t.Errorf("session %v", e)
				}
				c := b.waitEvent(t, eventTimeout, "connection", func(e event) bool { return e.str("sid") == sid })
				checkForwarded(t, r, c)
				b.waitEvent(t, eventTimeout, "upgrade", func(e event) bool {
					return e.str("sid") == sid && e.str("transport") == "websocket"
				})
			}
			if sessions != sioSessions {
				t.Fatalf("sio-client.js reported %d sessions, want %d:\n%s", sessions, sioSessions, res.stdout)
			}
			if errs := b.find("connection_error", func(event) bool { return true }); len(errs) > 0 {
				t.Errorf("backend refused requests: %v", errs)
			}
			if r.gate != nil {
				st := r.gate.srv.Stats()
				if st.HandshakesOK != sioSessions || st.PlainOK < 2*sioSessions {
					t.Errorf("wsgate counted %d upgrades and %d plain requests, want %d and at least %d",
						st.HandshakesOK, st.PlainOK, sioSessions, 2*sioSessions)
				}
			}
		})
	}
}
