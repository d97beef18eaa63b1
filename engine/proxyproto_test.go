package engine

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws/wsutil"

	"github.com/wsgate/wsgate/handshake"
	"github.com/wsgate/wsgate/internal/testutil"
)

// proxyListener makes startProxy's listener expect PROXY headers.
func proxyListener(c *Config) {
	c.Listen = nil
	c.Listeners = []ListenerConfig{{Address: "127.0.0.1:0", ProxyProtocol: true}}
}

// sendPieces dials addr and writes the pieces one by one, pausing between
// them so that each arrives in its own segment (and its own read).
func sendPieces(t testing.TB, addr string, pieces ...string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	for k, p := range pieces {
		if k > 0 {
			time.Sleep(30 * time.Millisecond)
		}
		if _, err := io.WriteString(c, p); err != nil {
			t.Fatal(err)
		}
	}
	return c.(*net.TCPConn)
}

func proxyV2(src, dst string) string {
	return string(handshake.AppendProxyV2(nil, netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst)))
}

// TestProxyProtocolListener: the client address a PROXY v1 or v2 header
// carries is the one the backend is told (X-Real-IP, X-Forwarded-For, in
// place of what the client claims), whether the header comes in one
// segment or several; a v2 LOCAL header (a balancer's own health check)
// keeps the connection's address; per-address limits count the carried
// address, not the balancer's.
func TestProxyProtocolListener(t *testing.T) {
	testutil.CheckLeaks(t)
	b := startEcho(t, "a")
	srv, addr := startProxy(t, []string{b.Addr()}, func(c *Config) {
		proxyListener(c)
		c.MaxTunnelsPerIP = 1
	})
	spoof := "X-Forwarded-For: 6.6.6.6"
	v2 := proxyV2("198.51.100.9:5555", "192.0.2.1:443")
	v2six := proxyV2("[2001:db8::9]:5555", "[2001:db8::1]:443")
	get := getHead("x", "/", spoof)
	local := "\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00" // v2, LOCAL, UNSPEC, no addresses
	for _, tc := range []struct {
		name   string
		pieces []string
		client string
	}{
		{"v1 TCP4", []string{"PROXY TCP4 203.0.113.7 192.0.2.1 40000 443\r\n" + get}, "203.0.113.7"},
		{"v1 TCP6", []string{"PROXY TCP6 2001:db8::7 2001:db8::1 40000 443\r\n" + get}, "2001:db8::7"},
		{"v1 UNKNOWN", []string{"PROXY UNKNOWN\r\n" + get}, "127.0.0.1"},
		{"v2 TCP4", []string{v2 + get}, "198.51.100.9"},
		{"v2 TCP6", []string{v2six + get}, "2001:db8::9"},
		{"v2 LOCAL", []string{local + get}, "127.0.0.1"},
		{"v1 split", []string{"PROX", "Y TCP4 203.0.113.8 192.0.2.1 4", "0000 443\r", "\n", get[:10], get[10:]}, "203.0.113.8"},
		{"v2 split", []string{v2[:3], v2[3:13], v2[13:16], v2[16:20], v2[20:] + get[:5], get[5:]}, "198.51.100.9"},
		{"v2 then head apart", []string{v2, get}, "198.51.100.9"},
	} {
		c := sendPieces(t, addr, tc.pieces...)
		ans := readAnswer(t, bufio.NewReader(c))
		c.Close()
		if ans.StatusCode != 200 {
			t.Errorf("%s: %d %q", tc.name, ans.StatusCode, ans.Body)
			continue
		}
		for _, want := range []string{"X-Real-Ip: " + tc.client + "\n", "X-Forwarded-For: " + tc.client + "\n"} {
			if !strings.Contains(ans.Body, want) {
				t.Errorf("%s: backend head lacks %q:\n%s", tc.name, want, ans.Body)
			}
		}
		if strings.Contains(ans.Body, "6.6.6.6") || strings.Contains(ans.Body, "PROXY") {
			t.Errorf("%s: backend head:\n%s", tc.name, ans.Body)
		}
	}

	// Two WebSocket tunnels from one TCP peer for two carried clients: the
	// per-IP limit of 1 sees two addresses; a second tunnel for one of
	// them is refused 429.
	open := func(src string) (net.Conn, *bufio.Reader, string) {
		c := sendPieces(t, addr, proxyV2(src, "192.0.2.1:443")+upgradeHead("x", "/ws?headers=1"))
		br := bufio.NewReader(c)
		ans, err := readHead(br)
		if err != nil {
			t.Fatalf("for %s: %v", src, err)
		}
		return c, br, ans
	}
	for _, src := range []string{"198.51.100.1:1000", "198.51.100.2:1000"} {
		c, br, ans := open(src)
		if statusOf(ans) != 101 {
			t.Fatalf("tunnel for %s: %q", src, ans)
		}
		msg, err := wsutil.ReadServerText(struct {
			io.Reader
			io.Writer
		}{br, c})
		if ip := netip.MustParseAddrPort(src).Addr().String(); err != nil || !strings.Contains(string(msg), "X-Real-Ip: "+ip+"\n") {
			t.Errorf("tunnel for %s: backend saw %q, %v", src, msg, err)
		}
		echoOnce(t, c, br, []byte("hello"))
	}
	if _, _, ans := open("198.51.100.1:2000"); statusOf(ans) != 429 {
		t.Errorf("second tunnel for 198.51.100.1: %q, want 429", ans)
	}
	if n := srv.Stats().Rejects["too_many_per_ip"]; n != 1 {
		t.Errorf("too_many_per_ip %d, want 1", n)
	}
}

// TestProxyProtocolBadHeaders: on a PROXY listener, a connection whose
// header is malformed, missing or cut short is closed without an HTTP
// answer (the peer is a balancer, not a browser) and counted; tunnels
// already open carry on.
func TestProxyProtocolBadHeaders(t *testing.T) {
	testutil.CheckLeaks(t)
	b := startEcho(t, "a")
	srv, addr := startProxy(t, []string{b.Addr()}, proxyListener)
	good := sendPieces(t, addr, proxyV2("198.51.100.9:5555", "192.0.2.1:443")+upgradeHead("x", "/"))
	gbr := bufio.NewReader(good)
	if ans, err := readHead(gbr); err != nil || statusOf(ans) != 101 {
		t.Fatalf("tunnel through the PROXY listener: %q, %v", ans, err)
	}
	good.SetDeadline(time.Time{})

	v2 := proxyV2("198.51.100.9:5555", "192.0.2.1:443")
	badVersion := "\r\n\r\n\x00\r\nQUIT\n\x31" + v2[13:]
	tooLong := "\r\n\r\n\x00\r\nQUIT\n\x21\x11\xff\xff"
	for _, tc := range []struct {
		name    string
		send    string
		hangUp  bool   // the client half-closes after sending
		counter string // Rejects key, or "close:" + Closes key
	}{
		{"no header", getHead("x", "/"), false, "proxy_missing"},
		{"garbage line", "HELLO WORLD\r\n\r\n", false, "proxy_missing"},
		{"TLS instead", "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", false, "proxy_missing"},
		{"v1 bad protocol", "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n" + getHead("x", "/"), false, "proxy_bad_v1"},
		{"v1 bad address", "PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n" + getHead("x", "/"), false, "proxy_bad_v1"},
		{"v1 leading zero port", "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n" + getHead("x", "/"), false, "proxy_bad_v1"},
		{"v1 bare LF", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n" + getHead("x", "/"), false, "proxy_bad_v1"},
		{"v1 without CRLF", "PROXY TCP4 " + strings.Repeat("1", 120), false, "proxy_too_long"},
		{"v2 bad version", badVersion + getHead("x", "/"), false, "proxy_bad_v2"},
		{"v2 declares 64 KiB", tooLong, false, "proxy_too_long"},
		{"v1 cut short", "PROXY TCP4 203.0.113.7 19", true, "close:client_gone"},
		{"v2 cut short", v2[:20], true, "close:client_gone"},
	} {
		before := srv.Stats()
		c := sendPieces(t, addr, tc.send)
		if tc.hangUp {
			c.CloseWrite()
		}
		expectNoAnswer(t, c, tc.name)
		waitFor(t, func() bool {
			st := srv.Stats()
			if k, ok := strings.CutPrefix(tc.counter, "close:"); ok {
				return st.Closes[k] == before.Closes[k]+1
			}
			return st.Rejects[tc.counter] == before.Rejects[tc.counter]+1
		})
		if st := srv.Stats(); st.HandshakesOK != before.HandshakesOK || st.PlainOK != before.PlainOK {
			t.Errorf("%s: reached a backend", tc.name)
		}
	}
	echoOnce(t, good, gbr, []byte("the open tunnel carries on"))
	if st := srv.Stats(); st.TunnelsActive != 1 {
		t.Errorf("%d tunnels active, want 1", st.TunnelsActive)
	}
}

// TestProxyProtocolUntrusted: with trusted_proxies set, a well-formed
// PROXY header from a peer outside them — a client spoofing its address —
// is refused (proxy_untrusted) without an answer; from a trusted peer the
// same header is honoured.
func TestProxyProtocolUntrusted(t *testing.T) {
	testutil.CheckLeaks(t)
	b := startEcho(t, "a")
	srv, addr := startProxy(t, []string{b.Addr()}, func(c *Config) {
		proxyListener(c)
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	})
	for _, hdr := range []string{
		"PROXY TCP4 203.0.113.7 192.0.2.1 40000 443\r\n",
		proxyV2("203.0.113.7:40000", "192.0.2.1:443"),
	} {
		c := sendPieces(t, addr, hdr+getHead("x", "/"))
		expectNoAnswer(t, c, "header from 127.0.0.1")
	}
	waitFor(t, func() bool { return srv.Stats().Rejects["proxy_untrusted"] == 2 })
	if st := srv.Stats(); st.PlainOK != 0 {
		t.Errorf("%d requests reached the backend", st.PlainOK)
	}

	_, trusted := startProxy(t, []string{b.Addr()}, func(c *Config) {
		proxyListener(c)
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	c := sendPieces(t, trusted, "PROXY TCP4 203.0.113.7 192.0.2.1 40000 443\r\n"+getHead("x", "/"))
	ans := readAnswer(t, bufio.NewReader(c))
	if ans.StatusCode != 200 || !strings.Contains(ans.Body, "X-Real-Ip: 203.0.113.7\n") {
		t.Errorf("trusted balancer: %d\n%s", ans.StatusCode, ans.Body)
	}
}

// proxyBackend accepts connections, reads a PROXY v2 header if one comes
// first, then the request head, and answers it (101 to an upgrade, a
// small 200 otherwise). What it read is sent on got.
type proxyBackend struct {
	ln  net.Listener
	got chan proxySeen
}

type proxySeen struct {
	header bool
	h      handshake.ProxyHeader
	head   string
	err    error
}

func startProxyBackend(t *testing.T) *proxyBackend {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pb := &proxyBackend{ln: ln, got: make(chan proxySeen, 16)}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				s := pb.read(c)
				pb.got <- s
				if s.err != nil {
					return
				}
				if strings.Contains(s.head, "Upgrade: websocket") {
					io.WriteString(c, switchHead(s.head))
					io.Copy(io.Discard, c)
					return
				}
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return pb
}

func (pb *proxyBackend) read(c net.Conn) proxySeen {
	var s proxySeen
	br := bufio.NewReader(c)
	first, err := br.Peek(1)
	if err != nil {
		return proxySeen{err: err}
	}
	if first[0] == '\r' {
		fixed := make([]byte, 16)
		if _, err := io.ReadFull(br, fixed); err != nil {
			return proxySeen{err: err}
		}
		rest := make([]byte, binary.BigEndian.Uint16(fixed[14:]))
		if _, err := io.ReadFull(br, rest); err != nil {
			return proxySeen{err: err}
		}
		all := append(fixed, rest...)
		n, err := handshake.ParseProxy(all, &s.h)
		if err != nil || n != len(all) {
			return proxySeen{err: err}
		}
		s.header = true
	}
	s.head, s.err = readHead(br)
	return s
}

// TestProxyProtocolToBackend: a route with ProxyProtocol sends the
// backend a PROXY v2 header naming the client's address and port and the
// address it connected to, before the request head; other routes do not.
func TestProxyProtocolToBackend(t *testing.T) {
	testutil.CheckLeaks(t)
	pb := startProxyBackend(t)
	pool := newTestPool(t, pb.ln.Addr().String())
	rt, err := NewRoutes([]RouteConfig{
		{Name: "/pp/", Pool: pool, ProxyProtocol: true},
		{Name: "/", Pool: pool},
	}, func(host, path []byte) int {
		if strings.HasPrefix(string(path), "/pp/") {
			return 0
		}
		return 1
	}, RewriteConfig{})
	if err != nil {
		t.Fatal(err)
	}
	_, addr := startProxy(t, []string{pb.ln.Addr().String()}, func(c *Config) { c.Routes = rt })
	proxyAddr := netip.MustParseAddrPort(addr)

	for _, tc := range []struct {
		head   string
		header bool
	}{
		{upgradeHead("x", "/pp/ws"), true},
		{getHead("x", "/pp/plain"), true},
		{upgradeHead("x", "/ws"), false},
		{getHead("x", "/plain"), false},
	} {
		c, br, ans := rawUpgrade(t, addr, tc.head, nil)
		if code := statusOf(ans); code != 101 && code != 200 {
			t.Fatalf("%q: answer %q", tc.head, ans)
		}
		_ = br
		var s proxySeen
		select {
		case s = <-pb.got:
		case <-time.After(5 * time.Second):
			t.Fatal("backend saw nothing")
		}
		if s.err != nil {
			t.Fatalf("%q: backend: %v", tc.head, s.err)
		}
		line := tc.head[:strings.Index(tc.head, "\r\n")]
		if !strings.HasPrefix(s.head, line+"\r\n") {
			t.Errorf("%s: head after the header is %q", line, s.head)
		}
		if s.header != tc.header {
			t.Errorf("%s: PROXY header sent %v, want %v", line, s.header, tc.header)
			continue
		}
		if !tc.header {
			continue
		}
		client := c.LocalAddr().(*net.TCPAddr).AddrPort()
		if s.h.Version != 2 || s.h.Command != handshake.ProxyProxy || s.h.Family != handshake.ProxyInet ||
			s.h.Src != client || s.h.Dst != proxyAddr {
			t.Errorf("%s: header %+v, want PROXY %v → %v", line, s.h, client, proxyAddr)
		}
		c.Close()
	}
}
