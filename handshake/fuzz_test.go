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
// and for net/http), has exactly one Host and one Connection, carries none
// of the client's hop-by-hop fields, and keeps method, upgrade and framing.
func FuzzRewrite(f *testing.F) {
	addGoldenSeeds(f, func(b []byte) {
		f.Add(b, false, false, uint8(0), false)
		f.Add(b, true, true, uint8(3), true)
	})
	f.Add(head("GET / HTTP/1.1", "Host: a", "Connection: x-a, keep-alive", "X-A: 1", "TE: trailers", "Forwarded: for=x"), true, false, uint8(1), true)
	f.Add(head("PUT http://a:1 HTTP/1.0", "Content-Length: 3"), false, true, uint8(2), false)
	var req, out Request
	c := &ClientInfo{IP: netip.MustParseAddr("2001:db8::2")}
	o := &RewriteOptions{BackendAddr: "10.0.0.1:8080", HostLiteral: "literal.example"}
	f.Fuzz(func(t *testing.T, data []byte, trusted, tls bool, mode uint8, forwarded bool) {
		if ParseRequest(data, &req, nil) != nil {
			return
		}
		c.Trusted, c.TLS = trusted, tls
		o.HostMode, o.Forwarded = HostMode(mode%4), forwarded
		w := AppendRewritten(nil, &req, c, o)
		if err := ParseRequest(w, &out, nil); err != nil {
			t.Fatalf("rewritten head does not parse (%v):\n%s", err, w)
		}
		if _, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(w))); err != nil {
			t.Fatalf("net/http refuses the rewritten head (%v):\n%s", err, w)
		}
		hosts, conns := 0, 0
		for i, h := range out.Headers {
			switch out.kinds[i] &^ fieldNamedByConnection {
			case fieldHost:
				hosts++
			case fieldConnection:
				conns++
			case fieldKeepAlive, fieldProxyConnection, fieldTE, fieldTrailer, fieldExpect:
				t.Fatalf("hop-by-hop %s forwarded:\n%s", h.Name, w)
			}
			if generated[strings.ToLower(string(h.Name))] {
				continue
			}
			for _, tok := range req.Connection {
				if equalFoldBytes(tok, h.Name) {
					t.Fatalf("%s, named by the client's Connection, forwarded:\n%s", h.Name, w)
				}
			}
		}
		if hosts != 1 || conns != 1 {
			t.Fatalf("%d Host, %d Connection lines:\n%s", hosts, conns, w)
		}
		if out.IsUpgrade != req.IsUpgrade || out.IsWebSocket != req.IsWebSocket ||
			!bytes.Equal(out.Method, req.Method) || !bytes.Equal(out.Upgrade, req.Upgrade) && req.IsUpgrade ||
			out.Body != req.Body || out.ContentLength != req.ContentLength {
			t.Fatalf("rewrite changed the request:\n%q\n%s", data, w)
		}
		if !out.IsUpgrade && out.Upgrade != nil {
			t.Fatalf("Upgrade forwarded on a plain request:\n%s", w)
		}
		if !out.ConnectionClose && !out.IsUpgrade {
			t.Fatalf("plain request without Connection: close:\n%s", w)
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
