package handshake

import (
	"bufio"
	"bytes"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// addGoldenSeeds adds the real client requests as seeds.
func addGoldenSeeds(f *testing.F, add func([]byte)) {
	ins, _ := filepath.Glob("testdata/golden/*.in")
	for _, in := range ins {
		b, err := os.ReadFile(in)
		if err != nil {
			f.Fatal(err)
		}
		add(b)
	}
}

// FuzzParseRequest checks that ParseRequest never panics and that whatever
// it accepts, Go's net/http reads the same way: same method, target and
// Host, and the same body framing. A head two parsers frame differently is
// how requests are smuggled; wsgate must only accept heads that leave no
// room for that.
func FuzzParseRequest(f *testing.F) {
	addGoldenSeeds(f, func(b []byte) { f.Add(b) })
	f.Add(head("POST / HTTP/1.1", "Host: a", "Content-Length: 3", "Transfer-Encoding: chunked"))
	f.Add(head("GET http://a/ HTTP/1.1", "Host: a"))
	var req Request
	f.Fuzz(func(t *testing.T, data []byte) {
		err := ParseRequest(data, &req, nil)
		if err != nil {
			if _, ok := err.(*Reject); !ok {
				t.Fatalf("error %T is not a *Reject", err)
			}
			return
		}
		// HeadScanner agrees on where the head ends.
		var s HeadScanner
		end, serr := s.Scan(data, 0)
		if serr != nil || end == 0 {
			t.Fatalf("ParseRequest accepted, HeadScanner says %d %v", end, serr)
		}
		var again Request
		if err := ParseRequest(data[:end], &again, nil); err != nil {
			t.Fatalf("head alone rejected: %v", err)
		}

		hreq, herr := http.ReadRequest(bufio.NewReader(bytes.NewReader(data)))
		if herr != nil {
			t.Fatalf("wsgate accepts, net/http refuses (%v):\n%q", herr, data)
		}
		if hreq.Method != string(req.Method) || hreq.RequestURI != string(req.Target) {
			t.Fatalf("method/target: net/http %q %q, wsgate %q %q", hreq.Method, hreq.RequestURI, req.Method, req.Target)
		}
		if req.Authority != nil {
			if !strings.EqualFold(hreq.Host, string(req.Host)) {
				t.Fatalf("host: net/http %q, wsgate %q", hreq.Host, req.Host)
			}
		} else if hreq.Host != string(req.Host) {
			t.Fatalf("host: net/http %q, wsgate %q", hreq.Host, req.Host)
		}
		switch req.Body {
		case BodyChunked:
			if len(hreq.TransferEncoding) != 1 || hreq.TransferEncoding[0] != "chunked" {
				t.Fatalf("framing: wsgate chunked, net/http %v %d", hreq.TransferEncoding, hreq.ContentLength)
			}
		case BodyLength:
			if hreq.ContentLength != req.ContentLength || len(hreq.TransferEncoding) != 0 {
				t.Fatalf("framing: wsgate length %d, net/http %v %d", req.ContentLength, hreq.TransferEncoding, hreq.ContentLength)
			}
		default:
			if hreq.ContentLength != 0 || len(hreq.TransferEncoding) != 0 {
				t.Fatalf("framing: wsgate none, net/http %v %d", hreq.TransferEncoding, hreq.ContentLength)
			}
		}
	})
}

// generated lists the header names AppendRewritten writes itself.
var generated = map[string]bool{
	"host": true, "x-real-ip": true, "x-forwarded-for": true, "upgrade": true, "connection": true,
	"x-forwarded-proto": true, "forwarded": true, "content-length": true, "transfer-encoding": true,
}

// FuzzRewrite checks that a rewritten head always parses again (for wsgate
// and for net/http) as the same request: the same method, origin-form
// target, upgrade and framing; exactly one Host, with the value HostMode
// asks for, and one Connection; none of the client's hop-by-hop fields
// (RFC 9110 7.6.1), an Upgrade only for an honoured upgrade; from an
// untrusted peer only wsgate's own forwarding fields, naming the client; and
// every other client field, in order.
func FuzzRewrite(f *testing.F) {
	addGoldenSeeds(f, func(b []byte) {
		f.Add(b, false, false, uint8(0), false)
		f.Add(b, true, true, uint8(3), true)
	})
	f.Add(head("GET / HTTP/1.1", "Host: a", "Connection: x-a, keep-alive", "X-A: 1", "TE: trailers", "Forwarded: for=x"), true, false, uint8(1), true)
	f.Add(head("PUT http://a:1 HTTP/1.0", "Content-Length: 3"), false, true, uint8(2), false)
	f.Add(head("GET / HTTP/1.1", "Host: a", "Connection: Upgrade", "Upgrade: h2c", "X-Real-IP: 1.2.3.4", "X-Forwarded-Host: e"), false, false, uint8(0), false)
	f.Add(head("GET / HTTP/1.1", "Host: a", "X_Forwarded_For: 1.2.3.4", "X.Y: 1", "X-Z: 2"), false, false, uint8(4), false)
	var req, out Request
	const clientIP = "2001:db8::2"
	c := &ClientInfo{IP: netip.MustParseAddr(clientIP)}
	o := &RewriteOptions{BackendAddr: "10.0.0.1:8080", HostLiteral: "literal.example"}
	f.Fuzz(func(t *testing.T, data []byte, trusted, tls bool, mode uint8, forwarded bool) {
		if ParseRequest(data, &req, nil) != nil {
			return
		}
		c.Trusted, c.TLS = trusted, tls
		o.HostMode, o.Forwarded, o.KeepAllNames = HostMode(mode%4), forwarded, mode&4 != 0
		w := AppendRewritten(nil, &req, c, o)
		if err := ParseRequest(w, &out, nil); err != nil {
			t.Fatalf("rewritten head does not parse (%v):\n%s", err, w)
		}
		hreq, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(w)))
		if err != nil {
			t.Fatalf("net/http refuses the rewritten head (%v):\n%s", err, w)
		}
		if hreq.Host != string(out.Host) || hreq.Method != string(req.Method) {
			t.Fatalf("net/http reads Host %q method %q, wsgate %q %q:\n%s", hreq.Host, hreq.Method, out.Host, req.Method, w)
		}

		count := map[fieldKind]int{}
		value := map[fieldKind]string{}
		var rest []Header // the fields AppendRewritten does not write itself
		for i, h := range out.Headers {
			k := out.kinds[i] &^ fieldNamedByConnection
			count[k]++
			value[k] = string(h.Value)
			switch k {
			case fieldKeepAlive, fieldProxyConnection, fieldTE, fieldTrailer, fieldExpect:
				t.Fatalf("hop-by-hop %s forwarded:\n%s", h.Name, w)
			}
			if generated[strings.ToLower(string(h.Name))] {
				continue
			}
			rest = append(rest, h)
			for _, tok := range req.Connection {
				if equalFoldBytes(tok, h.Name) {
					t.Fatalf("%s, named by the client's Connection, forwarded:\n%s", h.Name, w)
				}
			}
		}
		if count[fieldHost] != 1 || count[fieldConnection] != 1 {
			t.Fatalf("%d Host, %d Connection lines:\n%s", count[fieldHost], count[fieldConnection], w)
		}
		wantHost := string(req.Host)
		switch o.HostMode {
		case HostBackend:
			wantHost = o.BackendAddr
		case HostLiteral:
			wantHost = o.HostLiteral
		case HostPreserve:
			if wantHost == "" {
				wantHost = o.BackendAddr
			}
		}
		if o.HostMode != HostNginx && string(out.Host) != wantHost {
			t.Fatalf("Host %q, want %q (mode %d):\n%s", out.Host, wantHost, o.HostMode, w)
		}

		wantPath := string(req.Path)
		if wantPath == "" || wantPath[0] == '?' {
			wantPath = "/" + wantPath
		}
		if out.IsUpgrade != req.IsUpgrade || out.IsWebSocket != req.IsWebSocket ||
			!bytes.Equal(out.Method, req.Method) || string(out.Target) != wantPath || out.Minor != 1 ||
			out.Body != req.Body || out.ContentLength != req.ContentLength {
			t.Fatalf("rewrite changed the request:\n%q\n%s", data, w)
		}
		switch {
		case req.IsUpgrade:
			if count[fieldUpgrade] != 1 || value[fieldUpgrade] != string(req.Upgrade) {
				t.Fatalf("upgrade to %q sent %d Upgrade lines:\n%s", req.Upgrade, count[fieldUpgrade], w)
			}
		case count[fieldUpgrade] != 0 || !out.ConnectionClose:
			t.Fatalf("plain request with Upgrade or without Connection: close:\n%s", w)
		}
		framing := 0 // lines declaring a body
		if req.Body != BodyNone {
			framing = 1
		}
		if count[fieldContentLength]+count[fieldTransferEncoding] != framing {
			t.Fatalf("framing %v sent %d Content-Length, %d Transfer-Encoding lines:\n%s",
				req.Body, count[fieldContentLength], count[fieldTransferEncoding], w)
		}

		proto := "http"
		if tls {
			proto = "https"
		}
		if !trusted {
			if count[fieldXRealIP] != 1 || value[fieldXRealIP] != clientIP ||
				count[fieldXForwardedFor] != 1 || value[fieldXForwardedFor] != clientIP ||
				count[fieldXForwardedProto] != 1 || value[fieldXForwardedProto] != proto ||
				count[fieldXForwardedHost] != 0 {
				t.Fatalf("untrusted client's forwarding fields passed on:\n%q\n%s", data, w)
			}
		} else if count[fieldXForwardedFor] != 1 || !strings.HasSuffix(value[fieldXForwardedFor], clientIP) {
			t.Fatalf("X-Forwarded-For does not end with the client:\n%s", w)
		}
		switch fwd := value[fieldForwarded]; {
		case forwarded && (count[fieldForwarded] != 1 || !strings.HasSuffix(fwd, ";proto="+proto) ||
			!trusted && !strings.HasPrefix(fwd, "for=")):
			t.Fatalf("Forwarded %q:\n%q\n%s", fwd, data, w)
		case !forwarded && !trusted && count[fieldForwarded] != 0:
			t.Fatalf("untrusted client's Forwarded passed on:\n%s", w)
		}

		// Every other client field is forwarded as it came, in order.
		var want []Header
		for i, h := range req.Headers {
			k := req.kinds[i]
			if k.hopByHop() || k == fieldExpect || k == fieldXForwardedHost && !trusted ||
				generated[strings.ToLower(string(h.Name))] ||
				!o.KeepAllNames && strings.Trim(string(h.Name), "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") != "" {
				continue
			}
			want = append(want, h)
		}
		if len(rest) != len(want) {
			t.Fatalf("%d client fields forwarded, want %d:\n%q\n%s", len(rest), len(want), data, w)
		}
		for i := range want {
			if !bytes.Equal(rest[i].Name, want[i].Name) || !bytes.Equal(rest[i].Value, want[i].Value) {
				t.Fatalf("field %d is %s: %s, want %s: %s", i, rest[i].Name, rest[i].Value, want[i].Name, want[i].Value)
			}
		}
	})
}

// refChunked decodes a chunked body as Go's net/http does
// (httputil.NewChunkedReader, then the trailer section as body.readTrailer
// reads it) and returns how many bytes of data the body took.
func refChunked(data []byte) (int, bool, string) {
	rd := bytes.NewReader(data)
	br := bufio.NewReaderSize(rd, 64<<10)
	if _, err := io.Copy(io.Discard, httputil.NewChunkedReader(br)); err != nil {
		return 0, false, err.Error()
	}
	buf, _ := br.Peek(2)
	switch {
	case string(buf) == "\r\n":
		br.Discard(2)
	case len(buf) < 2:
		return 0, false, "trailer EOF"
	default:
		if _, err := textproto.NewReader(br).ReadMIMEHeader(); err != nil {
			return 0, false, err.Error()
		}
	}
	return len(data) - rd.Len() - br.Buffered(), true, ""
}

// FuzzBodyTracker checks, for any split of the input, that the tracker
// never claims a byte past the end of the body: for chunked bodies, against
// Go's decoder; for Content-Length bodies, against the length.
func FuzzBodyTracker(f *testing.F) {
	for _, s := range []string{
		"0\r\n\r\n", "5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n",
		"5;a=b\r\nhello\r\n0\r\nX-T: 1\r\n\r\n", "3\r\nabc\r\n0\r\n\n", "1\r\nx\n0\r\n\r\n",
		"0\r\nX: 1\nY: 2\r\n\r\n", "ffffffffffffffff\r\n", "5 \r\nhello\r\n0\r\n\r\n",
	} {
		f.Add([]byte(s), uint64(7), uint8(0))
	}
	f.Add([]byte("0123456789abc"), uint64(10), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, seed uint64, mode uint8) {
		kind, cl := BodyChunked, int64(0)
		if mode&1 == 1 {
			kind, cl = BodyLength, int64(seed%64)
		}
		// One call with everything, then random splits: the same answer.
		var one BodyTracker
		one.Init(kind, cl)
		n1, done1, err1 := one.Advance(data)
		rng := rand.New(rand.NewPCG(seed, uint64(mode)))
		var bt BodyTracker
		bt.Init(kind, cl)
		n, done := 0, false
		var err error
		for off := 0; off < len(data) && !done && err == nil; {
			step := 1 + rng.IntN(8)
			if rng.IntN(4) == 0 {
				step = rng.IntN(len(data)-off) + 1
			}
			p := data[off:min(off+step, len(data))]
			var k int
			k, done, err = bt.Advance(p)
			if k > len(p) {
				t.Fatalf("Advance claimed %d of %d bytes", k, len(p))
			}
			n += k
			off += k
			if !done && err == nil && k != len(p) {
				t.Fatalf("Advance stopped at %d of %d without done or error", k, len(p))
			}
		}
		if len(data) == 0 {
			n, done, err = n1, done1, err1
		}
		if len(data) > 0 && (n != n1 || done != done1 || (err == nil) != (err1 == nil)) {
			t.Fatalf("split changed the result: whole %d %v %v, split %d %v %v", n1, done1, err1, n, done, err)
		}
		if kind == BodyLength {
			want := min(cl, int64(len(data)))
			if int64(n) != want || done != (int64(len(data)) >= cl) {
				t.Fatalf("length %d over %d bytes: n=%d done=%v", cl, len(data), n, done)
			}
			return
		}
		m, ok, why := refChunked(data)
		switch {
		case done && !ok:
			t.Fatalf("tracker accepted a body net/http refuses (%s): %q", why, data[:n])
		case done && n != m:
			t.Fatalf("tracker body %d bytes, net/http %d: %q", n, m, data)
		case ok && n > m:
			t.Fatalf("tracker claimed %d bytes past the end of a %d-byte body: %q", n-m, m, data)
		case ok && !done && err == nil:
			t.Fatalf("net/http ends the body at %d, the tracker waits for more: %q", m, data)
		}
	})
}
