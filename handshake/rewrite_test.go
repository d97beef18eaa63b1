package handshake

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var loopback = &ClientInfo{IP: netip.MustParseAddr("127.0.0.1")}

// TestRewriteGolden checks AppendRewritten against what nginx itself sent
// upstream for real client requests (testdata/golden/README.md;
// TestRewriteGoldenNginx re-captures them from a live nginx):
//
//   - NAME.golden: the DESIGN.md recipe plus "proxy_set_header
//     X-Forwarded-Proto $scheme;", which is what wsgate always sends;
//   - NAME.recipe: the DESIGN.md recipe exactly; wsgate's head minus its
//     X-Forwarded-Proto line must equal it byte for byte.
//
// nginx's recipe trusts the client's X-Forwarded-For, so the client is
// Trusted; for the requests without forwarding fields (every real client),
// wsgate's default, an untrusted client, must give the same bytes.
func TestRewriteGolden(t *testing.T) {
	ins, err := filepath.Glob("testdata/golden/*.in")
	if err != nil || len(ins) < 7 {
		t.Fatalf("golden inputs: %v %v", ins, err)
	}
	for _, in := range ins {
		name := strings.TrimSuffix(filepath.Base(in), ".in")
		t.Run(name, func(t *testing.T) {
			raw := readFile(t, in)
			want := readFile(t, strings.TrimSuffix(in, ".in")+".golden")
			recipe := readFile(t, strings.TrimSuffix(in, ".in")+".recipe")
			var req Request
			if err := ParseRequest(raw, &req, nil); err != nil {
				t.Fatalf("parse: %v", err)
			}
			forwarded := false
			for i := range req.Headers {
				switch req.kinds[i] {
				case fieldXRealIP, fieldXForwardedFor, fieldXForwardedProto, fieldXForwardedHost, fieldForwarded:
					forwarded = true
				}
			}
			ip := netip.MustParseAddr("127.0.0.1")
			clients := []*ClientInfo{{IP: ip, Trusted: true}}
			if !forwarded {
				clients = append(clients, &ClientInfo{IP: ip})
			}
			for _, c := range clients {
				for _, mode := range []HostMode{HostPreserve, HostNginx} {
					got := AppendRewritten(nil, &req, c, &RewriteOptions{HostMode: mode})
					if !bytes.Equal(got, want) {
						t.Errorf("trusted %v, host mode %d: got\n%s\nwant (nginx)\n%s", c.Trusted, mode, got, want)
					}
					got = bytes.Replace(got, []byte("\r\nX-Forwarded-Proto: http\r\n"), []byte("\r\n"), 1)
					if !bytes.Equal(got, recipe) {
						t.Errorf("trusted %v, host mode %d, without X-Forwarded-Proto: got\n%s\nwant (nginx, DESIGN.md recipe)\n%s",
							c.Trusted, mode, got, recipe)
					}
				}
			}
			// The rewritten head is itself a valid request for wsgate.
			var again Request
			if err := ParseRequest(want, &again, nil); err != nil {
				t.Errorf("nginx output does not parse: %v", err)
			}
		})
	}
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func rewrite(t *testing.T, in []byte, c *ClientInfo, o *RewriteOptions) string {
	t.Helper()
	var req Request
	if err := ParseRequest(in, &req, nil); err != nil {
		t.Fatalf("parse: %v", err)
	}
	return string(AppendRewritten(nil, &req, c, o))
}

func TestRewriteForwarding(t *testing.T) {
	in := head("GET /x HTTP/1.1", "Host: a.example", "X-Forwarded-For: 1.1.1.1", "X-Real-IP: 1.1.1.1",
		"X-Forwarded-Proto: https", "X-Forwarded-Host: evil", "Forwarded: for=1.1.1.1", "X-Forwarded-For: 2.2.2.2")
	client := netip.MustParseAddr("192.0.2.9")

	untrusted := rewrite(t, in, &ClientInfo{IP: client}, nil)
	want := "GET /x HTTP/1.1\r\nHost: a.example\r\nX-Real-IP: 192.0.2.9\r\nX-Forwarded-For: 192.0.2.9\r\n" +
		"Connection: close\r\nX-Forwarded-Proto: http\r\n\r\n"
	if untrusted != want {
		t.Errorf("untrusted: got\n%q\nwant\n%q", untrusted, want)
	}

	trusted := rewrite(t, in, &ClientInfo{IP: client, Trusted: true, TLS: true}, nil)
	want = "GET /x HTTP/1.1\r\nHost: a.example\r\nX-Real-IP: 1.1.1.1\r\nX-Forwarded-For: 1.1.1.1, 2.2.2.2, 192.0.2.9\r\n" +
		"Connection: close\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\nForwarded: for=1.1.1.1\r\n\r\n"
	if trusted != want {
		t.Errorf("trusted: got\n%q\nwant\n%q", trusted, want)
	}

	fwd := rewrite(t, in, &ClientInfo{IP: netip.MustParseAddr("2001:db8::1"), Trusted: true},
		&RewriteOptions{Forwarded: true})
	if !strings.Contains(fwd, "\r\nForwarded: for=1.1.1.1, for=\"[2001:db8::1]\";host=a.example;proto=http\r\n") ||
		strings.Count(fwd, "Forwarded:") != 1 {
		t.Errorf("trusted Forwarded: %q", fwd)
	}
	fwd = rewrite(t, head("GET / HTTP/1.1", "Host: a:8080", "Forwarded: for=evil"),
		&ClientInfo{IP: netip.MustParseAddr("::ffff:10.0.0.1"), TLS: true}, &RewriteOptions{Forwarded: true})
	if !strings.Contains(fwd, "\r\nX-Real-IP: 10.0.0.1\r\n") ||
		!strings.Contains(fwd, "\r\nForwarded: for=10.0.0.1;host=\"a:8080\";proto=https\r\n") ||
		strings.Contains(fwd, "evil") {
		t.Errorf("untrusted Forwarded: %q", fwd)
	}

	// No client address: no X-Real-IP, no X-Forwarded-For.
	none := rewrite(t, head("GET / HTTP/1.1", "Host: a"), nil, nil)
	if none != "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nX-Forwarded-Proto: http\r\n\r\n" {
		t.Errorf("nil client: %q", none)
	}
}

func TestRewriteHopByHop(t *testing.T) {
	in := head("GET /chat HTTP/1.1", "Host: a", "Connection: keep-alive, Upgrade, X-Hop", "Upgrade: websocket",
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13", "Keep-Alive: 5",
		"Proxy-Connection: keep-alive", "TE: trailers", "Trailer: X", "X-Hop: 1", "Expect: 100-continue", "X-Keep: 2")
	got := rewrite(t, in, loopback, nil)
	want := "GET /chat HTTP/1.1\r\nHost: a\r\nX-Real-IP: 127.0.0.1\r\nX-Forwarded-For: 127.0.0.1\r\n" +
		"Upgrade: websocket\r\nConnection: upgrade\r\nX-Forwarded-Proto: http\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-Keep: 2\r\n\r\n"
	if got != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}

	// h2c is not honoured: Upgrade and HTTP2-Settings (named by Connection)
	// are dropped and the backend is told to close, unlike nginx's recipe
	// which would pass "Upgrade: h2c" on.
	got = rewrite(t, head("GET / HTTP/1.1", "Host: a", "Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c",
		"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"), loopback, nil)
	if strings.Contains(strings.ToLower(got), "h2c") || strings.Contains(got, "HTTP2-Settings") ||
		!strings.Contains(got, "\r\nConnection: close\r\n") {
		t.Errorf("h2c: %q", got)
	}

}

// TestRewriteFieldNames: names nginx refuses by default are dropped (the
// odd-names golden holds nginx's own output), unless KeepAllNames.
func TestRewriteFieldNames(t *testing.T) {
	in := head("GET / HTTP/1.1", "Host: a", "X_Forwarded_For: 6.6.6.6", "X.B: 1", "X~C: 2", "x-d-9: 3", "X!E: 4")
	got := rewrite(t, in, loopback, nil)
	want := "GET / HTTP/1.1\r\nHost: a\r\nX-Real-IP: 127.0.0.1\r\nX-Forwarded-For: 127.0.0.1\r\n" +
		"Connection: close\r\nX-Forwarded-Proto: http\r\nx-d-9: 3\r\n\r\n"
	if got != want {
		t.Errorf("default: got\n%q\nwant\n%q", got, want)
	}
	got = rewrite(t, in, loopback, &RewriteOptions{KeepAllNames: true})
	want = "GET / HTTP/1.1\r\nHost: a\r\nX-Real-IP: 127.0.0.1\r\nX-Forwarded-For: 127.0.0.1\r\n" +
		"Connection: close\r\nX-Forwarded-Proto: http\r\n" +
		"X_Forwarded_For: 6.6.6.6\r\nX.B: 1\r\nX~C: 2\r\nx-d-9: 3\r\nX!E: 4\r\n\r\n"
	if got != want {
		t.Errorf("KeepAllNames: got\n%q\nwant\n%q", got, want)
	}
	for c := 0; c < 256; c++ {
		want := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-'
		if got := isNginxFieldName([]byte{'X', byte(c)}); got != want {
			t.Errorf("isNginxFieldName(%q) = %v", []byte{'X', byte(c)}, got)
		}
	}
}

func TestRewriteBodyAndTarget(t *testing.T) {
	got := rewrite(t, head("POST /api/x?y=1 HTTP/1.0", "Content-Length: 000012", "X-A: b"), loopback,
		&RewriteOptions{HostMode: HostBackend, BackendAddr: "10.0.0.2:8010", Target: []byte("/x?y=1")})
	want := "POST /x?y=1 HTTP/1.1\r\nHost: 10.0.0.2:8010\r\nX-Real-IP: 127.0.0.1\r\nX-Forwarded-For: 127.0.0.1\r\n" +
		"Connection: close\r\nX-Forwarded-Proto: http\r\nContent-Length: 12\r\nX-A: b\r\n\r\n"
	if got != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
	got = rewrite(t, head("PUT http://A.example:81?q HTTP/1.1", "Host: a.example:81", "Transfer-Encoding: chunked"), loopback,
		&RewriteOptions{HostMode: HostNginx, ExtraHeaders: []Header{{Name: []byte("X-Sticky"), Value: []byte("b1")}}})
	want = "PUT /?q HTTP/1.1\r\nHost: a.example\r\nX-Real-IP: 127.0.0.1\r\nX-Forwarded-For: 127.0.0.1\r\n" +
		"Connection: close\r\nX-Forwarded-Proto: http\r\nTransfer-Encoding: chunked\r\nX-Sticky: b1\r\n\r\n"
	if got != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
	for _, tc := range []struct {
		host string
		o    RewriteOptions
		want string
	}{
		{"Chat.Example.com.:8080", RewriteOptions{HostMode: HostNginx}, "chat.example.com"},
		{"[::1]:8080", RewriteOptions{HostMode: HostNginx}, "[::1]"},
		{"Chat.Example.com:8080", RewriteOptions{}, "Chat.Example.com:8080"},
		{"a", RewriteOptions{HostMode: HostLiteral, HostLiteral: "internal"}, "internal"},
		{"", RewriteOptions{BackendAddr: "b:1"}, "b:1"},
		{"", RewriteOptions{HostMode: HostNginx, BackendAddr: "b:1"}, "b:1"},
	} {
		got := rewrite(t, head("GET / HTTP/1.1", "Host: "+tc.host), loopback, &tc.o)
		if !strings.Contains(got, "\r\nHost: "+tc.want+"\r\n") {
			t.Errorf("Host %q mode %d: %q", tc.host, tc.o.HostMode, got)
		}
	}
	if got := rewrite(t, head("GET / HTTP/1.1", "Host: a"), loopback, &RewriteOptions{Target: []byte{}}); !strings.HasPrefix(got, "GET / HTTP/1.1\r\n") {
		t.Errorf("empty Target: %q", got)
	}
}

func TestRewriteZeroAlloc(t *testing.T) {
	ins, _ := filepath.Glob("testdata/golden/*.in")
	for _, name := range ins {
		var req Request
		if err := ParseRequest(readFile(t, name), &req, nil); err != nil {
			t.Fatal(err)
		}
		c := &ClientInfo{IP: netip.MustParseAddr("2001:db8::7"), Trusted: true}
		for _, o := range []*RewriteOptions{nil, {Forwarded: true, HostMode: HostNginx}} {
			dst := make([]byte, 0, 2048)
			if n := testing.AllocsPerRun(200, func() { dst = AppendRewritten(dst[:0], &req, c, o) }); n != 0 {
				t.Errorf("AppendRewritten(%s, %+v) allocates %v times", name, o, n)
			}
		}
	}
}
