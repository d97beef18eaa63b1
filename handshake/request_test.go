package handshake

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
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
	name   string
	in     []byte
	status int    // the HTTP status to answer with
	reason string // the metric label
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
		{"double space", head("GET  / HTTP/1.1", "Host: a"), 400, "malformed_request_line"},
		{"trailing space", head("GET / HTTP/1.1 ", "Host: a"), 400, "malformed_request_line"},
		{"no version", head("GET /", "Host: a"), 400, "malformed_request_line"},
		{"empty line first", []byte("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "malformed_request_line"},
		{"lenient minor", head("GET / HTTP/1.;", "Host: a"), 400, "malformed_request_line"},
		{"two digit major", head("GET / HTTP/11.1", "Host: a"), 400, "malformed_request_line"},
		{"lowercase proto", head("GET / http/1.1", "Host: a"), 400, "malformed_request_line"},
		{"method not token", head("G@T / HTTP/1.1", "Host: a"), 400, "malformed_request_line"},
		{"NUL in target", head("GET /\x00 HTTP/1.1", "Host: a"), 400, "malformed_request_line"},
		{"tab in target", head("GET /a\tb HTTP/1.1", "Host: a"), 400, "malformed_request_line"},
		{"DEL in target", head("GET /a\x7f HTTP/1.1", "Host: a"), 400, "malformed_request_line"},
		{"HTTP/2.0", head("GET / HTTP/2.0", "Host: a"), 505, "unsupported_version"},
		{"HTTP/9.9", head("GET / HTTP/9.9", "Host: a"), 505, "unsupported_version"},
		{"HTTP/0.9", head("GET / HTTP/0.9", "Host: a"), 505, "unsupported_version"},
		{"h2 preface", head("PRI * HTTP/2.0", "", "SM"), 505, "unsupported_version"},
		{"target too long", head("GET /"+long+" HTTP/1.1", "Host: a"), 414, "target_too_long"},
		{"CONNECT", head("CONNECT example.com:443 HTTP/1.1", "Host: example.com:443"), 501, "unsupported_method"},
		{"TRACE", head("TRACE / HTTP/1.1", "Host: a"), 501, "unsupported_method"},
		{"relative target", head("GET a/b HTTP/1.1", "Host: a"), 400, "bad_target"},
		{"bad escape", head("GET /a%zz HTTP/1.1", "Host: a"), 400, "bad_target"},
		{"short escape", head("GET /a%4 HTTP/1.1", "Host: a"), 400, "bad_target"},
		{"fragment", head("GET /a#b HTTP/1.1", "Host: a"), 400, "bad_target"},
		{"asterisk not OPTIONS", head("GET * HTTP/1.1", "Host: a"), 400, "bad_target"},
		{"ftp scheme", head("GET ftp://a/ HTTP/1.1", "Host: a"), 400, "bad_target"},
		{"userinfo", head("GET http://u@a/ HTTP/1.1", "Host: a"), 400, "bad_target"},
		{"empty authority", head("GET http:///x HTTP/1.1", "Host: a"), 400, "bad_target"},
		{"authority mismatch", head("GET http://b.example/ HTTP/1.1", "Host: a.example"), 400, "authority_mismatch"},
		{"authority port mismatch", head("GET http://a:81/ HTTP/1.1", "Host: a"), 400, "authority_mismatch"},
		{"head too large", head("GET / HTTP/1.1", "Host: a", "X: "+strings.Repeat("b", DefaultMaxHeadBytes)), 431, "head_too_large"},
		{"head one byte over", sized(DefaultMaxHeadBytes+1, "GET / HTTP/1.1", "Host: a"), 431, "head_too_large"},
		{"too many headers", head(many...), 431, "too_many_headers"},
		{"incomplete", []byte("GET / HTTP/1.1\r\nHost: a\r\n"), 400, "incomplete_head"},
		{"bare CR", head("GET / HTTP/1.1", "Host: a", "X: a\rb"), 400, "bare_cr"},
		{"bare CR line end", []byte("GET / HTTP/1.1\r\nHost: a\r\rX: b\r\n\r\n"), 400, "bare_cr"},
		{"bare LF", []byte("GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n"), 400, "bare_lf"},
		{"bare LF end", []byte("GET / HTTP/1.1\r\nHost: a\n\n"), 400, "bare_lf"},
		{"NUL in value", head("GET / HTTP/1.1", "Host: a", "X: a\x00b"), 400, "control_byte"},
		{"NUL in name", head("GET / HTTP/1.1", "Host: a", "X\x00: b"), 400, "control_byte"},
		{"NUL in method", head("G\x00T / HTTP/1.1", "Host: a"), 400, "malformed_request_line"},
		{"CR before LF in request line", []byte("GET / HTTP/1.1\r\r\nHost: a\r\n\r\n"), 400, "bare_cr"},
		{"DEL in value", head("GET / HTTP/1.1", "Host: a", "X: a\x7fb"), 400, "control_byte"},
		{"ESC in value", head("GET / HTTP/1.1", "Host: a", "X: a\x1bb"), 400, "control_byte"},
		{"obs-fold", head("GET / HTTP/1.1", "Host: a", "X: a", " b"), 400, "obs_fold"},
		{"obs-fold tab", head("GET / HTTP/1.1", "Host: a", "X: a", "\tb"), 400, "obs_fold"},
		{"leading space first header", head("GET / HTTP/1.1", " Host: a"), 400, "obs_fold"},
		{"no colon", head("GET / HTTP/1.1", "Host: a", "X-Foo bar"), 400, "header_no_colon"},
		{"empty name", head("GET / HTTP/1.1", "Host: a", ": v"), 400, "bad_header_name"},
		{"space in name", head("GET / HTTP/1.1", "Host: a", "X Foo: v"), 400, "bad_header_name"},
		{"non-ASCII name", head("GET / HTTP/1.1", "Host: a", "X-\xc3\xa9: v"), 400, "bad_header_name"},
		{"space before colon", head("GET / HTTP/1.1", "Host : a"), 400, "space_before_colon"},
		{"tab before colon", head("GET / HTTP/1.1", "Host: a", "Transfer-Encoding\t: chunked"), 400, "space_before_colon"},
		{"missing host", head("GET / HTTP/1.1", "X: a"), 400, "missing_host"},
		{"missing host absolute", head("GET http://a/ HTTP/1.1", "X: a"), 400, "missing_host"},
		{"duplicate host", head("GET / HTTP/1.1", "Host: a", "Host: a"), 400, "duplicate_host"},
		{"duplicate host case", head("GET / HTTP/1.0", "host: a", "HOST: b"), 400, "duplicate_host"},
		{"host list", head("GET / HTTP/1.1", "Host: a, b"), 400, "bad_host"},
		{"host space", head("GET / HTTP/1.1", "Host: a b"), 400, "bad_host"},
		{"host userinfo", head("GET / HTTP/1.1", "Host: u@a"), 400, "bad_host"},
		{"host long port", head("GET / HTTP/1.1", "Host: a:123456"), 400, "bad_host"},
		{"host empty port", head("GET / HTTP/1.1", "Host: a:"), 400, "bad_host"},
		{"host bad ipv6", head("GET / HTTP/1.1", "Host: [zz::1]"), 400, "bad_host"},
		{"host slash", head("GET / HTTP/1.1", "Host: a/b"), 400, "bad_host"},
		{"CL and TE", head("POST / HTTP/1.1", "Host: a", "Content-Length: 5", "Transfer-Encoding: chunked"), 400, "cl_with_te"},
		{"CL zero and TE", head("POST / HTTP/1.1", "Host: a", "Content-Length: 0", "Transfer-Encoding: chunked"), 400, "cl_with_te"},
		{"TE and CL", head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: chunked", "Content-Length: 5"), 400, "cl_with_te"},
		{"conflicting CL", head("POST / HTTP/1.1", "Host: a", "Content-Length: 5", "Content-Length: 6"), 400, "conflicting_content_length"},
		{"CL leading zero differs", head("POST / HTTP/1.1", "Host: a", "Content-Length: 5", "Content-Length: 05"), 400, "conflicting_content_length"},
		{"CL list", head("POST / HTTP/1.1", "Host: a", "Content-Length: 5, 5"), 400, "bad_content_length"},
		{"CL negative", head("POST / HTTP/1.1", "Host: a", "Content-Length: -1"), 400, "bad_content_length"},
		{"CL plus", head("POST / HTTP/1.1", "Host: a", "Content-Length: +1"), 400, "bad_content_length"},
		{"CL empty", head("POST / HTTP/1.1", "Host: a", "Content-Length:"), 400, "bad_content_length"},
		{"CL hex", head("POST / HTTP/1.1", "Host: a", "Content-Length: 0x10"), 400, "bad_content_length"},
		{"CL overflow", head("POST / HTTP/1.1", "Host: a", "Content-Length: 9223372036854775808"), 400, "bad_content_length"},
		{"TE gzip", head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: gzip"), 501, "unsupported_transfer_encoding"},
		{"TE gzip chunked", head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: gzip, chunked"), 501, "unsupported_transfer_encoding"},
		{"TE chunked twice", head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: chunked", "Transfer-Encoding: chunked"), 501, "unsupported_transfer_encoding"},
		{"TE chunked list", head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: chunked, chunked"), 501, "unsupported_transfer_encoding"},
		{"TE Kelvin", head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: chun\u212aed"), 501, "unsupported_transfer_encoding"},
		{"TE identity", head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: identity"), 501, "unsupported_transfer_encoding"},
		{"TE on HTTP/1.0", head("POST / HTTP/1.0", "Transfer-Encoding: chunked"), 400, "te_on_http10"},
		{"trailer names CL", head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: chunked", "Trailer: X, content-length"), 400, "bad_trailer"},
		{"bad connection", head("GET / HTTP/1.1", "Host: a", "Connection: upgrade;x"), 400, "bad_connection"},
		{"connection quoted", head("GET / HTTP/1.1", "Host: a", `Connection: "close"`), 400, "bad_connection"},
		{"connection names CL", head("POST / HTTP/1.1", "Host: a", "Connection: Content-Length", "Content-Length: 5"), 400, "bad_connection"},
		{"connection names host", head("GET / HTTP/1.1", "Host: a", "Connection: close, host"), 400, "bad_connection"},
		{"connection names key", ws(3, "Connection: Upgrade, Sec-WebSocket-Key"), 400, "bad_connection"},
		{"connection too many", head("GET / HTTP/1.1", "Host: a", "Connection: a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q"), 400, "bad_connection"},
		{"connection without comma", head("GET / HTTP/1.1", "Host: a", "Connection: keep-alive Upgrade", "Upgrade: websocket"), 400, "bad_connection"},
		{"upgrade with CL", ws(-1, "", "Content-Length: 5"), 400, "upgrade_with_body"},
		{"upgrade chunked", ws(-1, "", "Transfer-Encoding: chunked"), 400, "upgrade_with_body"},
		{"key missing", ws(4, ""), 400, "bad_websocket_key"},
		{"key short", ws(4, "Sec-WebSocket-Key: dGhlIHNhbXBsZQ=="), 400, "bad_websocket_key"},
		{"key not base64", ws(4, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ!!"), 400, "bad_websocket_key"},
		{"key 17 bytes", ws(4, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZTE="), 400, "bad_websocket_key"},
		{"key twice", ws(-1, "", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="), 400, "bad_websocket_key"},
		{"versioned websocket without key", head("GET / HTTP/1.1", "Host: a", "Upgrade: websocket/13", "Connection: Upgrade", "Sec-WebSocket-Version: 13"), 400, "bad_websocket_key"},
		{"version 8", ws(7, "Sec-WebSocket-Version: 8"), 400, "bad_websocket_version"},
		{"version missing", ws(7, ""), 400, "bad_websocket_version"},
		{"version twice", ws(-1, "", "Sec-WebSocket-Version: 13"), 400, "bad_websocket_version"},
		{"version list", ws(7, "Sec-WebSocket-Version: 13, 8"), 400, "bad_websocket_version"},
		{"versioned websocket version 8", head("GET / HTTP/1.1", "Host: a", "Upgrade: WebSocket/13", "Connection: Upgrade",
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 8"), 400, "bad_websocket_version"},
	}
}

func TestParseRequestRejects(t *testing.T) {
	predefined := map[*Reject]bool{}
	for _, r := range Rejects() {
		predefined[r] = true
	}
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
			if r.Status != tt.status || r.Reason != tt.reason {
				t.Fatalf("got %d %s, want %d %s", r.Status, r.Reason, tt.status, tt.reason)
			}
			if !predefined[r] {
				t.Errorf("%s is not one of Rejects(): its reason has no metric", r.Reason)
			}
			// The answer the engine writes carries the same status, and for
			// a bad version the versions wsgate speaks (RFC 6455 4.4).
			ans := string(AppendReject(nil, r))
			if !strings.HasPrefix(ans, fmt.Sprintf("HTTP/1.1 %d ", tt.status)) ||
				!strings.HasSuffix(ans, "\r\n\r\n"+r.Text+"\n") {
				t.Errorf("answer %q", ans)
			}
			if hasVersion := strings.Contains(ans, "\r\nSec-WebSocket-Version: 13\r\n"); hasVersion != (tt.reason == "bad_websocket_version") {
				t.Errorf("Sec-WebSocket-Version in answer: %v: %q", hasVersion, ans)
			}
		})
	}
}

// sized returns a head of exactly n bytes: the lines given, then an X-Pad
// header filling the rest.
func sized(n int, lines ...string) []byte {
	h := head(append(lines, "X-Pad: ")...)
	pad := n - len(h)
	if pad < 0 {
		panic("sized: lines too long")
	}
	return head(append(lines, "X-Pad: "+strings.Repeat("p", pad))...)
}

// TestParseRequestLimits checks each limit at its edge: at the limit the
// request is accepted, one over it is refused with the limit's status,
// whether the limit is the default or configured.
func TestParseRequestLimits(t *testing.T) {
	headers := func(n int) []byte { // a request of n header lines
		lines := []string{"GET / HTTP/1.1", "Host: a"}
		for i := 1; i < n; i++ {
			lines = append(lines, fmt.Sprintf("X-%d: v", i))
		}
		return head(lines...)
	}
	target := func(n int) []byte { // a request whose target is n bytes
		return head("GET /"+strings.Repeat("t", n-1)+" HTTP/1.1", "Host: a")
	}
	tests := []struct {
		name   string
		lim    *Limits
		ok, no []byte // at the limit, one over it
		reject *Reject
	}{
		{"head default", nil, sized(DefaultMaxHeadBytes, "GET / HTTP/1.1", "Host: a"),
			sized(DefaultMaxHeadBytes+1, "GET / HTTP/1.1", "Host: a"), ErrHeadTooLarge},
		{"head 256", &Limits{MaxHeadBytes: 256}, sized(256, "GET / HTTP/1.1", "Host: a"),
			sized(257, "GET / HTTP/1.1", "Host: a"), ErrHeadTooLarge},
		{"headers default", nil, headers(DefaultMaxHeaders), headers(DefaultMaxHeaders + 1), ErrTooManyHeaders},
		{"headers 3", &Limits{MaxHeaders: 3}, headers(3), headers(4), ErrTooManyHeaders},
		{"headers 150", &Limits{MaxHeaders: 150}, headers(150), headers(151), ErrTooManyHeaders},
		{"target default", nil, target(DefaultMaxTargetBytes), target(DefaultMaxTargetBytes + 1), ErrTargetTooLong},
		{"target 10", &Limits{MaxTargetBytes: 10}, target(10), target(11), ErrTargetTooLong},
	}
	var req Request
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := ParseRequest(tt.ok, &req, tt.lim); err != nil {
				t.Fatalf("at the limit: %v", err)
			}
			if err := ParseRequest(tt.no, &req, tt.lim); err != tt.reject {
				t.Fatalf("over the limit: %v, want %v", err, tt.reject)
			}
		})
	}
	// HeadScanner applies the same head limit as the bytes arrive.
	var s HeadScanner
	h := sized(256, "GET / HTTP/1.1", "Host: a")
	if end, err := s.Scan(h, 256); end != 256 || err != nil {
		t.Fatalf("scanner at the limit: %d %v", end, err)
	}
	s.Reset()
	if _, err := s.Scan(sized(257, "GET / HTTP/1.1", "Host: a"), 256); err != ErrHeadTooLarge {
		t.Fatalf("scanner over the limit: %v", err)
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
		{name: "versioned websocket is websocket", in: ws(2, "Upgrade: websocket/13"),
			upgrade: true, websocket: true, host: "server.example.com", path: "/chat"},
		{name: "versioned websocket POST is plain", in: head("POST / HTTP/1.1", "Host: a", "Connection: Upgrade", "Upgrade: WebSocket/13"),
			host: "a", path: "/"},
		{name: "connection list with OWS", in: ws(3, "Connection: keep-alive ,  Upgrade,"),
			upgrade: true, websocket: true, host: "server.example.com", path: "/chat"},
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

	// Past DefaultMaxHeaders, Headers grows onto the heap; Reset must still
	// clear the lines that stayed in the fixed array.
	lines := []string{"GET / HTTP/1.1", "Host: a"}
	for i := 0; i < 150; i++ {
		lines = append(lines, "X: y")
	}
	if err := ParseRequest(head(lines...), &req, &Limits{MaxHeaders: 200}); err != nil {
		t.Fatal(err)
	}
	if len(req.Headers) != 151 {
		t.Fatalf("%d headers, want 151", len(req.Headers))
	}
	req.Reset()
	for i, h := range req.hdrArr {
		if h.Name != nil || h.Value != nil {
			t.Fatalf("Reset left hdrArr[%d] = %q after the headers grew", i, h.Name)
		}
	}
	for _, h := range req.Headers[:cap(req.Headers)] {
		if h.Name != nil {
			t.Fatal("Reset left a reference in the grown Headers")
		}
	}
}

func TestParseRequestZeroAlloc(t *testing.T) {
	var req Request
	ins, _ := filepath.Glob("testdata/golden/*.in")
	for _, name := range ins {
		in, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		n := testing.AllocsPerRun(200, func() {
			if err := ParseRequest(in, &req, nil); err != nil {
				t.Fatal(err)
			}
		})
		if n != 0 {
			t.Errorf("ParseRequest(%s) allocates %v times", name, n)
		}
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
