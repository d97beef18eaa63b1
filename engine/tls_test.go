package engine

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/wsgate/wsgate/internal/testutil"
)

// selfSigned returns a server TLS config with a fresh self-signed ECDSA
// certificate for 127.0.0.1 and a client config that trusts only it.
func selfSigned(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "wsgate test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	server = &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"http/1.1"},
	}
	client = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	return server, client
}

// startTLSProxy starts an engine whose one listener terminates TLS.
func startTLSProxy(t *testing.T, backends []string, mutate func(*Config)) (*Server, string, *tls.Config) {
	t.Helper()
	scfg, ccfg := selfSigned(t)
	srv, addr := startProxy(t, backends, func(c *Config) {
		c.Listen = nil
		c.Listeners = []ListenerConfig{{Address: "127.0.0.1:0", TLS: scfg}}
		if mutate != nil {
			mutate(c)
		}
	})
	return srv, addr, ccfg
}

func dialWSS(t testing.TB, addr, path string, cfg *tls.Config) (net.Conn, *bufio.Reader) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d := ws.Dialer{TLSConfig: cfg}
	conn, br, _, err := d.Dial(ctx, "wss://"+addr+path)
	if err != nil {
		t.Fatalf("dial wss://%s%s: %v", addr, path, err)
	}
	t.Cleanup(func() { conn.Close() })
	if br == nil {
		br = bufio.NewReader(conn)
	}
	return conn, br
}

// TestWSS: a wss tunnel echoes small and 1 MB messages, the backend is
// told the client came over https, a plain https request is answered,
// and the TLS connection count follows the tunnels.
func TestWSS(t *testing.T) {
	testutil.CheckLeaks(t)
	b := startEcho(t, "a")
	srv, addr, ccfg := startTLSProxy(t, []string{b.Addr()}, nil)

	c, br := dialWSS(t, addr, "/?headers=1", ccfg)
	msg, err := wsutil.ReadServerText(wsConn{c, br})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"X-Forwarded-Proto: https\n", "X-Real-Ip: 127.0.0.1\n", "Upgrade: websocket\n"} {
		if !strings.Contains(string(msg), want) {
			t.Errorf("backend head lacks %q:\n%s", want, msg)
		}
	}
	echoOnce(t, c, br, []byte("hello over TLS"))
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	echoOnce(t, c, br, big)

	c2, br2 := dialWSS(t, addr, "/", ccfg)
	echoOnce(t, c2, br2, []byte("second"))
	if st := srv.Stats(); st.TLSConnections != 2 || st.TunnelsActive != 2 {
		t.Errorf("TLS connections %d, tunnels %d; want 2, 2", st.TLSConnections, st.TunnelsActive)
	}

	hc, err := tls.Dial("tcp", addr, ccfg)
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Close()
	hc.SetDeadline(time.Now().Add(10 * time.Second))
	if proto := hc.ConnectionState().NegotiatedProtocol; proto != "" && proto != "http/1.1" {
		t.Errorf("ALPN %q", proto)
	}
	io.WriteString(hc, getHead("x", "/plain"))
	ans := readAnswer(t, bufio.NewReader(hc))
	if ans.StatusCode != 200 || !strings.Contains(ans.Body, "X-Forwarded-Proto: https\n") {
		t.Errorf("https GET: %d\n%s", ans.StatusCode, ans.Body)
	}
	hc.Close()

	c.Close()
	c2.Close()
	waitFor(t, func() bool {
		st := srv.Stats()
		return st.TLSConnections == 0 && st.TunnelsActive == 0
	})
	if st := srv.Stats(); st.TLSFailures != 0 || st.HandshakesOK != 2 {
		t.Errorf("TLS failures %d, handshakes %d; want 0, 2", st.TLSFailures, st.HandshakesOK)
	}
}

// TestWSSStalledHandshake: a client that starts a TLS handshake and never
// finishes it is dropped after the header timeout and counted; wss
// clients meanwhile are served, and a client that speaks plain HTTP to
// the TLS port gets nothing it could take for an answer.
func TestWSSStalledHandshake(t *testing.T) {
	testutil.CheckLeaks(t)
	b := startEcho(t, "a")
	const timeout = 500 * time.Millisecond
	srv, addr, ccfg := startTLSProxy(t, []string{b.Addr()}, func(c *Config) { c.HeaderTimeout = timeout })

	stalled, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	start := time.Now()
	// The first bytes of a ClientHello record, then nothing.
	if _, err := stalled.Write([]byte{0x16, 0x03, 0x01, 0x00, 0xa5}); err != nil {
		t.Fatal(err)
	}

	c, br := dialWSS(t, addr, "/", ccfg)
	echoOnce(t, c, br, []byte("served while another client stalls"))

	stalled.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, _ := io.ReadAll(stalled)
	d := time.Since(start)
	if d < timeout-50*time.Millisecond || d > timeout+3*time.Second {
		t.Errorf("stalled TLS client dropped after %v, want about %v", d, timeout)
	}
	if len(got) > 0 {
		t.Errorf("stalled client got %d bytes", len(got))
	}
	waitFor(t, func() bool { return srv.Stats().TLSFailures == 1 })

	plain, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	io.WriteString(plain, getHead("x", "/"))
	plain.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, _ = io.ReadAll(plain)
	if strings.HasPrefix(string(got), "HTTP/") {
		t.Errorf("plain HTTP on the TLS port answered %q", got)
	}
	waitFor(t, func() bool { return srv.Stats().TLSFailures == 2 })
	echoOnce(t, c, br, []byte("still served"))
}

// TestWSSServerClose: closing the server ends wss tunnels, those in the
// TLS handshake included, and leaves no goroutine or fd behind.
func TestWSSServerClose(t *testing.T) {
	testutil.CheckLeaks(t)
	b := startEcho(t, "a")
	srv, addr, ccfg := startTLSProxy(t, []string{b.Addr()}, nil)
	var conns []net.Conn
	var readers []*bufio.Reader
	for i := 0; i < 5; i++ {
		c, br := dialWSS(t, addr, "/", ccfg)
		echoOnce(t, c, br, []byte("x"))
		conns, readers = append(conns, c), append(readers, br)
	}
	inHandshake, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer inHandshake.Close()
	inHandshake.Write([]byte{0x16, 0x03, 0x01})
	waitFor(t, func() bool { return tlsClients(srv) == 6 }) // accepted, its handshake waiting
	if st := srv.Stats(); st.TLSConnections != 5 {
		t.Fatalf("TLS connections %d, want 5", st.TLSConnections)
	}

	done := make(chan struct{})
	go func() {
		srv.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return within 5s")
	}
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadAll(readers[i]); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Errorf("tunnel %d still open after Close", i)
			}
		}
	}
	inHandshake.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(inHandshake); err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Error("connection in its TLS handshake still open after Close")
		}
	}
	if st := srv.Stats(); st.TLSConnections != 0 || tlsClients(srv) != 0 {
		t.Errorf("TLS connections %d (%d held) after Close", st.TLSConnections, tlsClients(srv))
	}
}

// tlsClients counts the TLS connections the server holds, in their
// handshake or past it.
func tlsClients(s *Server) int {
	s.tlsMu.Lock()
	defer s.tlsMu.Unlock()
	return len(s.tls)
}

// TestWSSBehindProxyProtocol: on a TLS listener that expects PROXY
// headers the balancer sends the header in clear before the TLS
// handshake (as HAProxy's send-proxy and AWS NLB do): the address it
// carries reaches the backend, and a connection without a valid header
// is closed without an answer and counted, as on a plain listener.
func TestWSSBehindProxyProtocol(t *testing.T) {
	testutil.CheckLeaks(t)
	b := startEcho(t, "a")
	srv, addr, ccfg := startTLSProxy(t, []string{b.Addr()}, func(c *Config) {
		c.Listeners[0].ProxyProtocol = true
		c.HeaderTimeout = time.Second
	})
	viaBalancer := func(hdr string) *tls.Conn {
		t.Helper()
		raw := sendPieces(t, addr, hdr)
		cfg := ccfg.Clone()
		cfg.ServerName = "127.0.0.1"
		tc := tls.Client(raw, cfg)
		if err := tc.Handshake(); err != nil {
			t.Fatalf("TLS after %q: %v", hdr, err)
		}
		return tc
	}
	for _, hdr := range []string{
		"PROXY TCP4 203.0.113.7 192.0.2.1 40000 443\r\n",
		proxyV2("203.0.113.7:40000", "192.0.2.1:443"),
	} {
		tc := viaBalancer(hdr)
		io.WriteString(tc, getHead("x", "/"))
		ans := readAnswer(t, bufio.NewReader(tc))
		tc.Close()
		for _, want := range []string{"X-Real-Ip: 203.0.113.7\n", "X-Forwarded-Proto: https\n"} {
			if ans.StatusCode != 200 || !strings.Contains(ans.Body, want) {
				t.Errorf("GET after %q: %d, backend head lacks %q:\n%s", hdr, ans.StatusCode, want, ans.Body)
			}
		}
	}

	// A wss tunnel through the balancer.
	d := ws.Dialer{
		TLSConfig: ccfg,
		NetDial: func(ctx context.Context, network, a string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, a)
			if err == nil {
				_, err = io.WriteString(c, proxyV2("198.51.100.9:5555", "192.0.2.1:443"))
			}
			return c, err
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, br, _, err := d.Dial(ctx, "wss://"+addr+"/?headers=1")
	if err != nil {
		t.Fatalf("wss behind a balancer: %v", err)
	}
	defer c.Close()
	if br == nil {
		br = bufio.NewReader(c)
	}
	msg, err := wsutil.ReadServerText(wsConn{c, br})
	if err != nil || !strings.Contains(string(msg), "X-Real-Ip: 198.51.100.9\n") {
		t.Errorf("wss behind a balancer: backend saw %q, %v", msg, err)
	}
	echoOnce(t, c, br, []byte("hello"))

	for _, tc := range []struct {
		name, send, counter string
	}{
		{"no header", "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", "proxy_missing"},
		{"bad v1", "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", "proxy_bad_v1"},
	} {
		before := srv.Stats().Rejects[tc.counter]
		raw := sendPieces(t, addr, tc.send)
		expectNoAnswer(t, raw, tc.name)
		waitFor(t, func() bool { return srv.Stats().Rejects[tc.counter] == before+1 })
	}
	echoOnce(t, c, br, []byte("still open"))

	// A PROXY header from a peer outside trusted_proxies is refused before
	// any TLS work.
	srv2, addr2, _ := startTLSProxy(t, []string{b.Addr()}, func(c *Config) {
		c.Listeners[0].ProxyProtocol = true
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	})
	raw := sendPieces(t, addr2, "PROXY TCP4 203.0.113.7 192.0.2.1 40000 443\r\n\x16\x03\x01\x00\xa5\x01")
	expectNoAnswer(t, raw, "untrusted balancer")
	waitFor(t, func() bool { return srv2.Stats().Rejects["proxy_untrusted"] == 1 })
	if n := srv2.Stats().TLSFailures; n != 0 {
		t.Errorf("%d TLS handshakes tried for an untrusted balancer", n)
	}
}
