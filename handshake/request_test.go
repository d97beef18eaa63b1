package handshake

import (
	"bytes"
	"strings"
	"testing"
)

// head joins lines with CRLF and ends the head with an empty line.
func head(lines ...string) []byte {
	return []byte(strings.Join(lines, "\r\n") + "\r\n\r\n")
}

// wsLines is a minimal valid WebSocket upgrade (RFC 6455 1.2 example key).
var wsLines = []string{
	"GET /chat HTTP/1.1",
	"Host: server.example.com",
	"Upgrade: websocket",
	"Connection: Upgrade",
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
	"Origin: http://example.com",
	"Sec-WebSocket-Protocol: chat, superchat",
	"Sec-WebSocket-Version: 13",
}

// ws returns wsLines with line i replaced by repl (or removed if repl is
// "") and extra lines appended.
func ws(i int, repl string, extra ...string) []byte {
	lines := append([]string(nil), wsLines...)
	if i >= 0 {
		if repl == "" {
			lines = append(lines[:i], lines[i+1:]...)
		} else {
			lines[i] = repl
		}
	}
	return head(append(lines, extra...)...)
}

type rejectCase struct {
	name string
	in   []byte
	want *Reject
}

// rejectCases is every rejection ParseRequest makes, with an input that
// triggers it (also the seeds of the fuzz corpora).
func rejectCases() []rejectCase {
	long := strings.Repeat("a", DefaultMaxTargetBytes)
	many := make([]string, 0, 102)
	many = append(many, "GET / HTTP/1.1", "Host: a")
	for i := 0; i < DefaultMaxHeaders; i++ {
		many = append(many, "X-A: b")
	}
	return []rejectCase{
		{"double space", head("GET  / HTTP/1.1", "Host: a"), ErrMalformedRequestLine},
		{"trailing space", head("GET / HTTP/1.1 ", "Host: a"), ErrMalformedRequestLine},
		{"no version", head("GET /", "Host: a"), ErrMalformedRequestLine},
		{"empty line first", []byte("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), ErrMalformedRequestLine},
		{"lenient minor", head("GET / HTTP/1.;", "Host: a"), ErrMalformedRequestLine},
		{"two digit major", head("GET / HTTP/11.1", "Host: a"), ErrMalformedRequestLine},
		{"lowercase proto", head("GET / http/1.1", "Host: a"), ErrMalformedRequestLine},
		{"method not token", head("G@T / HTTP/1.1", "Host: a"), ErrMalformedRequestLine},
		{"NUL in target", head("GET /\x00 HTTP/1.1", "Host: a"), ErrMalformedRequestLine},
		{"tab in target", head("GET /a\tb HTTP/1.1", "Host: a"), ErrMalformedRequestLine},
		{"DEL in target", head("GET /a\x7f HTTP/1.1", "Host: a"), ErrMalformedRequestLine},
		{"HTTP/2.0", head("GET / HTTP/2.0", "Host: a"), ErrUnsupportedVersion},
		{"HTTP/9.9", head("GET / HTTP/9.9", "Host: a"), ErrUnsupportedVersion},
		{"HTTP/0.9", head("GET / HTTP/0.9", "Host: a"), ErrUnsupportedVersion},
		{"h2 preface", head("PRI * HTTP/2.0", "", "SM"), ErrUnsupportedVersion},
		{"target too long", head("GET /"+long+" HTTP/1.1", "Host: a"), ErrTargetTooLong},
		{"CONNECT", head("CONNECT example.com:443 HTTP/1.1", "Host: example.com:443"), ErrUnsupportedMethod},
		{"TRACE", head("TRACE / HTTP/1.1", "Host: a"), ErrUnsupportedMethod},
		{"relative target", head("GET a/b HTTP/1.1", "Host: a"), ErrBadTarget},
		{"bad escape", head("GET /a%zz HTTP/1.1", "Host: a"), ErrBadTarget},
		{"short escape", head("GET /a%4 HTTP/1.1", "Host: a"), ErrBadTarget},
		{"fragment", head("GET /a#b HTTP/1.1", "Host: a"), ErrBadTarget},
		{"asterisk not OPTIONS", head("GET * HTTP/1.1", "Host: a"), ErrBadTarget},
		{"ftp scheme", head("GET ftp://a/ HTTP/1.1", "Host: a"), ErrBadTarget},
		{"userinfo", head("GET http://u@a/ HTTP/1.1", "Host: a"), ErrBadTarget},
		{"empty authority", head("GET http:///x HTTP/1.1", "Host: a"), ErrBadTarget},
		{"authority mismatch", head("GET http://b.example/ HTTP/1.1", "Host: a.example"), ErrAuthorityMismatch},
		{"authority port mismatch", head("GET http://a:81/ HTTP/1.1", "Host: a"), ErrAuthorityMismatch},
		{"head too large", head("GET / HTTP/1.1", "Host: a", "X: "+strings.Repeat("b", DefaultMaxHeadBytes)), ErrHeadTooLarge},
		{"too many headers", head(many...), ErrTooManyHeaders},
		{"incomplete", []byte("GET / HTTP/1.1\r\nHost: a\r\n"), ErrIncompleteHead},
		{"bare CR", head("GET / HTTP/1.1", "Host: a", "X: a\rb"), ErrBareCR},
		{"bare CR line end", []byte("GET / HTTP/1.1\r\nHost: a\r\rX: b\r\n\r\n"), ErrBareCR},
		{"bare LF", []byte("GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n"), ErrBareLF},
		{"bare LF end", []byte("GET / HTTP/1.1\r\nHost: a\n\n"), ErrBareLF},
		{"NUL in value", head("GET / HTTP/1.1", "Host: a", "X: a\x00b"), ErrControlByte},
		{"DEL in value", head("GET / HTTP/1.1", "Host: a", "X: a\x7fb"), ErrControlByte},
		{"ESC in value", head("GET / HTTP/1.1", "Host: a", "X: a\x1bb"), ErrControlByte},
		{"obs-fold", head("GET / HTTP/1.1", "Host: a", "X: a", " b"), ErrObsFold},
		{"obs-fold tab", head("GET / HTTP/1.1", "Host: a", "X: a", "\tb"), ErrObsFold},
		{"leading space first header", head("GET / HTTP/1.1", " Host: a"), ErrObsFold},
		{"no colon", head("GET / HTTP/1.1", "Host: a", "X-Foo bar"), ErrHeaderNoColon},
		{"empty name", head("GET / HTTP/1.1", "Host: a", ": v"), ErrBadHeaderName},
		{"space in name", head("GET / HTTP/1.1", "Host: a", "X Foo: v"), ErrBadHeaderName},
		{"non-ASCII name", head("GET / HTTP/1.1", "Host: a", "X-\xc3\xa9: v"), ErrBadHeaderName},
		{"space before colon", head("GET / HTTP/1.1", "Host : a"), ErrSpaceBeforeColon},
		{"tab before colon", head("GET / HTTP/1.1", "Host: a", "Transfer-Encoding\t: chunked"), ErrSpaceBeforeColon},
		{"missing host", head("GET / HTTP/1.1", "X: a"), ErrMissingHost},
		{"missing host absolute", head("GET http://a/ HTTP/1.1", "X: a"), ErrMissingHost},
		{"duplicate host", head("GET / HTTP/1.1", "Host: a", "Host: a"), ErrDuplicateHost},
		{"duplicate host case", head("GET / HTTP/1.0", "host: a", "HOST: b"), ErrDuplicateHost},
		{"host list", head("GET / HTTP/1.1", "Host: a, b"), ErrBadHost},
		{"host space", head("GET / HTTP/1.1", "Host: a b"), ErrBadHost},
		{"host userinfo", head("GET / HTTP/1.1", "Host: u@a"), ErrBadHost},
		{"host long port", head("GET / HTTP/1.1", "Host: a:123456"), ErrBadHost},
		{"host empty port", head("GET / HTTP/1.1", "Host: a:"), ErrBadHost},
		{"host bad ipv6", head("GET / HTTP/1.1", "Host: [zz::1]"), ErrBadHost},
		{"host slash", head("GET / HTTP/1.1", "Host: a/b"), ErrBadHost},
		{"CL and TE", head("POST / HTTP/1.1", "Host: a", "Content-Length: 5", "Transfer-Encoding: chunked"), ErrCLWithTE},
		{"TE and CL", head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: chunked", "Content-Length: 5"), ErrCLWithTE},
		{"conflicting CL", head("POST / HTTP/1.1", "Host: a", "Content-Length: 5", "Content-Length: 6"), ErrConflictingCL},
		{"CL leading zero differs", head("POST / HTTP/1.1", "Host: a", "Content-Length: 5", "Content-Length: 05"), ErrConflictingCL},
		{"CL list", head("POST / HTTP/1.1", "Host: a", "Content-Length: 5, 5"), ErrBadContentLength},
		{"CL negative", head("POST / HTTP/1.1", "Host: a", "Content-Length: -1"), ErrBadContentLength},
		{"CL plus", head("POST / HTTP/1.1", "Host: a", "Content-Length: +1"), ErrBadContentLength},
		{"CL empty", head("POST / HTTP/1.1", "Host: a", "Content-Length:"), ErrBadContentLength},
		{"CL hex", head("POST / HTTP/1.1", "Host: a", "Content-Length: 0x10"), ErrBadContentLength},
		{"CL overflow", head("POST / HTTP/1.1", "Host: a", "Content-Length: 9223372036854775808"), ErrBadContentLength},
		{"TE gzip", head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: gzip"), ErrUnsupportedTE},
		{"TE gzip chunked", head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: gzip, chunked"), ErrUnsupportedTE},
		{"TE chunked twice", head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: chunked", "Transfer-Encoding: chunked"), ErrUnsupportedTE},
		{"TE chunked list", head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: chunked, chunked"), ErrUnsupportedTE},
		{"TE Kelvin", head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: chun\u212aed"), ErrUnsupportedTE},
		{"TE identity", head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: identity"), ErrUnsupportedTE},
		{"TE on HTTP/1.0", head("POST / HTTP/1.0", "Transfer-Encoding: chunked"), ErrTEOnHTTP10},
		{"trailer names CL", head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: chunked", "Trailer: X, content-length"), ErrBadTrailer},
		{"bad connection", head("GET / HTTP/1.1", "Host: a", "Connection: upgrade;x"), ErrBadConnection},
		{"connection quoted", head("GET / HTTP/1.1", "Host: a", `Connection: "close"`), ErrBadConnection},
		{"connection names CL", head("POST / HTTP/1.1", "Host: a", "Connection: Content-Length", "Content-Length: 5"), ErrBadConnection},
		{"connection names host", head("GET / HTTP/1.1", "Host: a", "Connection: close, host"), ErrBadConnection},
		{"connection names key", ws(3, "Connection: Upgrade, Sec-WebSocket-Key"), ErrBadConnection},
		{"connection too many", head("GET / HTTP/1.1", "Host: a", "Connection: a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q"), ErrBadConnection},
		{"upgrade with CL", ws(-1, "", "Content-Length: 5"), ErrUpgradeWithBody},
		{"upgrade chunked", ws(-1, "", "Transfer-Encoding: chunked"), ErrUpgradeWithBody},
		{"key missing", ws(4, ""), ErrBadWebSocketKey},
		{"key short", ws(4, "Sec-WebSocket-Key: dGhlIHNhbXBsZQ=="), ErrBadWebSocketKey},
		{"key not base64", ws(4, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ!!"), ErrBadWebSocketKey},
		{"key 17 bytes", ws(4, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZTE="), ErrBadWebSocketKey},
		{"key twice", ws(-1, "", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="), ErrBadWebSocketKey},
		{"version 8", ws(7, "Sec-WebSocket-Version: 8"), ErrBadWebSocketVersion},
		{"version missing", ws(7, ""), ErrBadWebSocketVersion},
		{"version twice", ws(-1, "", "Sec-WebSocket-Version: 13"), ErrBadWebSocketVersion},
		{"version list", ws(7, "Sec-WebSocket-Version: 13, 8"), ErrBadWebSocketVersion},
	}
}

func TestParseRequestRejects(t *testing.T) {
	var req Request
	for _, tt := range rejectCases() {
		t.Run(tt.name, func(t *testing.T) {
			err := ParseRequest(tt.in, &req, nil)
			if err == nil {
				t.Fatalf("accepted %q", tt.in)
			}
			r, ok := err.(*Reject)
			if !ok {
				t.Fatalf("error %T %v, want *Reject", err, err)
			}
			if r != tt.want {
				t.Fatalf("got %d %s, want %d %s", r.Status, r.Reason, tt.want.Status, tt.want.Reason)
			}
		})
	}
}

func TestRejectStatuses(t *testing.T) {
	want := map[*Reject]int{
		ErrMalformedRequestLine: 400, ErrUnsupportedVersion: 505, ErrTargetTooLong: 414,
		ErrHeadTooLarge: 431, ErrTooManyHeaders: 431, ErrMissingHost: 400, ErrDuplicateHost: 400,
		ErrHeaderNoColon: 400, ErrSpaceBeforeColon: 400, ErrObsFold: 400, ErrBareCR: 400,
		ErrBareLF: 400, ErrControlByte: 400, ErrCLWithTE: 400, ErrConflictingCL: 400,
		ErrBadContentLength: 400, ErrUnsupportedTE: 501, ErrBadWebSocketKey: 400,
		ErrBadWebSocketVersion: 400, ErrAuthorityMismatch: 400, ErrHeaderTimeout: 408,
		ErrBadGateway: 502, ErrGatewayTimeout: 504, ErrNoBackend: 503, ErrBackendBadResponse: 502,
		ErrOverloaded: 503, ErrTooManyPerIP: 429, ErrForbiddenOrigin: 403, ErrBadChunked: 400,
	}
	for r, st := range want {
		if r.Status != st {
			t.Errorf("%s: status %d, want %d", r.Reason, r.Status, st)
		}
	}
	seen := map[string]bool{}
	for _, reason := range Reasons() {
		if seen[reason] {
			t.Errorf("reason %q listed twice", reason)
		}
		seen[reason] = true
		for _, c := range reason {
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
				t.Errorf("reason %q is not snake_case", reason)
			}
		}
	}
	for r := range want {
		if !seen[r.Reason] {
			t.Errorf("reason %q missing from Reasons()", r.Reason)
		}
	}
	if StatusText(ErrUnsupportedVersion.Status) == "Error" || len(Rejects()) != len(Reasons()) {
		t.Error("StatusText or Rejects incomplete")
	}
	for _, r := range Rejects() {
		if StatusText(r.Status) == "Error" {
			t.Errorf("no reason phrase for %d", r.Status)
		}
	}
}

func TestAppendReject(t *testing.T) {
	got := string(AppendReject(nil, ErrBadWebSocketVersion))
	want := "HTTP/1.1 400 Bad Request\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"Content-Length: 34\r\n" +
		"Connection: close\r\n" +
		"Sec-WebSocket-Version: 13\r\n" +
		"\r\n" +
		"unsupported Sec-WebSocket-Version\n"
	if got != want {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
	got = string(AppendReject(nil, ErrHeadTooLarge))
	if !strings.HasPrefix(got, "HTTP/1.1 431 Request Header Fields Too Large\r\n") ||
		!strings.HasSuffix(got, "\r\n\r\nrequest head too large\n") {
		t.Fatalf("got %q", got)
	}
	if e := ErrUnsupportedTE.Error(); e != "501 unsupported_transfer_encoding: unsupported Transfer-Encoding" {
		t.Fatalf("Error() = %q", e)
	}
	buf := make([]byte, 0, 512)
	if n := testing.AllocsPerRun(100, func() { buf = AppendReject(buf[:0], ErrBadWebSocketVersion) }); n != 0 {
		t.Fatalf("AppendReject allocates %v times", n)
	}
}

func TestParseRequestWebSocket(t *testing.T) {
	var req Request
	if err := ParseRequest(ws(-1, ""), &req, nil); err != nil {
		t.Fatal(err)
	}
	check := func(name string, got []byte, want string) {
		t.Helper()
		if string(got) != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	check("Method", req.Method, "GET")
	check("Target", req.Target, "/chat")
	check("Path", req.Path, "/chat")
	check("Host", req.Host, "server.example.com")
	check("Upgrade", req.Upgrade, "websocket")
	check("WSKey", req.WSKey, "dGhlIHNhbXBsZSBub25jZQ==")
	check("WSVersion", req.WSVersion, "13")
	check("WSProtocol", req.WSProtocol, "chat, superchat")
	check("Origin", req.Origin, "http://example.com")
	if !req.IsUpgrade || !req.IsWebSocket || req.Major != 1 || req.Minor != 1 || req.Body != BodyNone {
		t.Errorf("flags: %+v", req)
	}
	if len(req.Headers) != 7 || len(req.Connection) != 1 || string(req.Connection[0]) != "Upgrade" {
		t.Errorf("headers %d, connection %q", len(req.Headers), req.Connection)
	}
	if req.Authority != nil {
		t.Errorf("Authority = %q", req.Authority)
	}
}

type acceptCase struct {
	name      string
	in        []byte
	lim       *Limits
	upgrade   bool
	websocket bool
	body      BodyKind
	cl        int64
	host      string
	path      string
}

func acceptCases() []acceptCase {
	return []acceptCase{
		{name: "firefox connection list", in: ws(3, "Connection: keep-alive, Upgrade"),
			upgrade: true, websocket: true, host: "server.example.com", path: "/chat"},
		{name: "case-insensitive tokens", in: ws(2, "Upgrade: WebSocket", "CONNECTION: UPGRADE"),
			upgrade: true, websocket: true, host: "server.example.com", path: "/chat"},
		{name: "h2c is not honoured", in: head("GET / HTTP/1.1", "Host: a", "Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c", "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"),
			host: "a", path: "/"},
		{name: "h2c allowed by config", in: head("GET / HTTP/1.1", "Host: a", "Connection: Upgrade", "Upgrade: h2c"),
			lim: &Limits{Upgrades: []string{"h2c"}}, upgrade: true, host: "a", path: "/"},
		{name: "websocket not allowed by config", in: ws(-1, ""), lim: &Limits{Upgrades: []string{}},
			host: "server.example.com", path: "/chat"},
		{name: "versioned protocol", in: head("GET / HTTP/1.1", "Host: a", "Connection: Upgrade", "Upgrade: foo/2"),
			lim: &Limits{Upgrades: []string{"foo"}}, upgrade: true, host: "a", path: "/"},
		{name: "upgrade without connection", in: ws(3, "Connection: keep-alive"),
			host: "server.example.com", path: "/chat"},
		{name: "upgrade on HTTP/1.0", in: head("GET /chat HTTP/1.0", "Upgrade: websocket", "Connection: Upgrade"),
			path: "/chat"},
		{name: "websocket POST is plain", in: head("POST /chat HTTP/1.1", "Host: a", "Upgrade: websocket", "Connection: Upgrade"),
			host: "a", path: "/chat"},
		{name: "HTTP/1.0 without Host", in: head("GET / HTTP/1.0"), path: "/"},
		{name: "HTTP/1.2 as 1.1", in: head("GET / HTTP/1.2", "Host: a"), host: "a", path: "/"},
		{name: "content-length", in: head("POST /x HTTP/1.1", "Host: a", "Content-Length: 12"),
			body: BodyLength, cl: 12, host: "a", path: "/x"},
		{name: "repeated content-length", in: head("POST /x HTTP/1.1", "Host: a", "Content-Length: 3", "Content-Length: 3"),
			body: BodyLength, cl: 3, host: "a", path: "/x"},
		{name: "content-length zero upgrade", in: ws(-1, "", "Content-Length: 0"),
			upgrade: true, websocket: true, body: BodyNone, host: "server.example.com", path: "/chat"},
		{name: "content-length zero plain", in: head("POST / HTTP/1.1", "Host: a", "Content-Length: 0"),
			body: BodyLength, host: "a", path: "/"},
		{name: "chunked", in: head("POST /x HTTP/1.1", "Host: a", "Transfer-Encoding: Chunked", "Trailer: X-Sum"),
			body: BodyChunked, host: "a", path: "/x"},
		{name: "absolute form", in: head("GET HTTP://Example.com:8080?q=1 HTTP/1.1", "Host: example.COM:8080"),
			host: "example.COM:8080", path: "?q=1"},
		{name: "absolute form 1.0 no host", in: head("GET https://a.example/x HTTP/1.0"),
			host: "a.example", path: "/x"},
		{name: "asterisk", in: head("OPTIONS * HTTP/1.1", "Host: a"), host: "a", path: "*"},
		{name: "ipv6 host", in: head("GET / HTTP/1.1", "Host: [2001:db8::1]:8080"), host: "[2001:db8::1]:8080", path: "/"},
		{name: "empty host", in: head("GET / HTTP/1.1", "Host:"), path: "/"},
		{name: "query percent", in: head("GET /a%2Fb?q=100% HTTP/1.1", "Host: a"), host: "a", path: "/a%2Fb?q=100%"},
		{name: "obs-text value and tab", in: head("GET / HTTP/1.1", "Host: a", "X-Name:\t\xe9t\xe9 \t"), host: "a", path: "/"},
		{name: "empty connection", in: head("GET / HTTP/1.1", "Host: a", "Connection: , ,"), host: "a", path: "/"},
		{name: "many headers allowed", in: head(append([]string{"GET / HTTP/1.1", "Host: a"}, strings.Split(strings.Repeat("X: y\n", 150), "\n")[:150]...)...),
			lim: &Limits{MaxHeaders: 200}, host: "a", path: "/"},
		{name: "trailing bytes ignored", in: append(head("POST / HTTP/1.1", "Host: a", "Content-Length: 3"), "abc\nGET"...),
			host: "a", path: "/", body: BodyLength, cl: 3},
	}
}

func TestParseRequestAccepts(t *testing.T) {
	var req Request
	for _, tt := range acceptCases() {
		t.Run(tt.name, func(t *testing.T) {
			if err := ParseRequest(tt.in, &req, tt.lim); err != nil {
				t.Fatalf("rejected: %v", err)
			}
			if req.IsUpgrade != tt.upgrade || req.IsWebSocket != tt.websocket {
				t.Errorf("IsUpgrade %v IsWebSocket %v, want %v %v", req.IsUpgrade, req.IsWebSocket, tt.upgrade, tt.websocket)
			}
			if req.Body != tt.body || req.ContentLength != tt.cl {
				t.Errorf("body %v %d, want %v %d", req.Body, req.ContentLength, tt.body, tt.cl)
			}
			if string(req.Host) != tt.host || string(req.Path) != tt.path {
				t.Errorf("host %q path %q, want %q %q", req.Host, req.Path, tt.host, tt.path)
			}
		})
	}
}

func TestParseRequestConnectionNamed(t *testing.T) {
	var req Request
	in := head("GET / HTTP/1.1", "Host: a", "Connection: close, X-Secret", "X-Secret: 1", "x-secret: 2", "X-Other: 3")
	if err := ParseRequest(in, &req, nil); err != nil {
		t.Fatal(err)
	}
	if !req.ConnectionClose {
		t.Error("ConnectionClose not set")
	}
	for i, h := range req.Headers {
		named := req.kinds[i]&fieldNamedByConnection != 0
		if named != bytes.EqualFold(h.Name, []byte("x-secret")) {
			t.Errorf("%s: named=%v", h.Name, named)
		}
	}
}

func TestParseRequestReuse(t *testing.T) {
	var req Request
	if err := ParseRequest(ws(-1, ""), &req, nil); err != nil {
		t.Fatal(err)
	}
	if err := ParseRequest(head("GET /x HTTP/1.0"), &req, nil); err != nil {
		t.Fatal(err)
	}
	if req.IsUpgrade || req.WSKey != nil || req.Host != nil || len(req.Headers) != 0 || len(req.Connection) != 0 {
		t.Fatalf("state left from the previous parse: %+v", req)
	}
	req.Reset()
	for _, h := range req.hdrArr {
		if h.Name != nil {
			t.Fatal("Reset left a reference")
		}
	}
}

func TestParseRequestZeroAlloc(t *testing.T) {
	var req Request
	in := chromeRequest
	n := testing.AllocsPerRun(200, func() {
		if err := ParseRequest(in, &req, nil); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Fatalf("ParseRequest allocates %v times", n)
	}
	// Rejections allocate nothing either.
	bad := head("GET / HTTP/1.1", "Host: a", "Transfer-Encoding: gzip")
	if n := testing.AllocsPerRun(200, func() { _ = ParseRequest(bad, &req, nil) }); n != 0 {
		t.Fatalf("rejecting allocates %v times", n)
	}
}

func TestHeadScanner(t *testing.T) {
	full := append(append([]byte(nil), chromeRequest...), "early data"...)
	want := len(chromeRequest)
	// Any split of the arrival gives the same end, looking at each byte once.
	for step := 1; step <= 64; step *= 2 {
		var s HeadScanner
		end := 0
		for n := step; end == 0; n += step {
			var err error
			end, err = s.Scan(full[:min(n, len(full))], 0)
			if err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
		}
		if end != want {
			t.Fatalf("step %d: end %d, want %d", step, end, want)
		}
		if again, _ := s.Scan(full, 0); again != want {
			t.Fatalf("second Scan after end = %d", again)
		}
	}

	var s HeadScanner
	if _, err := s.Scan([]byte("GET / HTTP/1.1\r\nHost: a\nX"), 0); err != ErrBareLF {
		t.Fatalf("bare LF: %v", err)
	}
	s.Reset()
	if _, err := s.Scan([]byte("\nGET"), 0); err != ErrBareLF {
		t.Fatalf("leading LF: %v", err)
	}

	// A head of exactly the limit fits; one byte more does not, and the
	// scanner says so as soon as the limit is reached without an end.
	h := head("GET / HTTP/1.1", "Host: a", "X: "+strings.Repeat("b", 100))
	s.Reset()
	if end, err := s.Scan(h, len(h)); end != len(h) || err != nil {
		t.Fatalf("exact limit: %d %v", end, err)
	}
	s.Reset()
	if _, err := s.Scan(h[:len(h)-1], len(h)-1); err != ErrHeadTooLarge {
		t.Fatalf("over limit: %v", err)
	}
	s.Reset()
	if end, err := s.Scan(h[:len(h)-2], len(h)); end != 0 || err != nil {
		t.Fatalf("below limit: %d %v", end, err)
	}
	s.Reset()
	if _, err := s.Scan(bytes.Repeat([]byte("a"), DefaultMaxHeadBytes), 0); err != ErrHeadTooLarge {
		t.Fatalf("default limit: %v", err)
	}
}
