package handshake

import (
	"strings"
	"testing"
)

func parseWS(t *testing.T) *Request {
	t.Helper()
	req := new(Request)
	if err := ParseRequest(ws(-1, ""), req, nil); err != nil {
		t.Fatal(err)
	}
	return req
}

func TestSwitchesTo(t *testing.T) {
	req := parseWS(t)
	// RFC 6455 1.3: key dGhlIHNhbXBsZSBub25jZQ== gives this accept.
	ok := head("HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade",
		"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "Sec-WebSocket-Protocol: chat")
	var resp Response
	if err := ParseResponse(ok, &resp); err != nil {
		t.Fatal(err)
	}
	if !resp.SwitchesTo(req) || resp.Status != 101 || string(resp.Reason) != "Switching Protocols" || resp.Body != BodyNone {
		t.Fatalf("valid 101 refused: %+v", resp)
	}
	if n := testing.AllocsPerRun(100, func() { resp.SwitchesTo(req) }); n != 0 {
		t.Fatalf("SwitchesTo allocates %v times", n)
	}
	for name, in := range map[string][]byte{
		"200":            head("HTTP/1.1 200 OK", "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
		"wrong accept":   head("HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOA="),
		"no accept":      head("HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade"),
		"two accepts":    head("HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "Sec-WebSocket-Accept: x"),
		"other protocol": head("HTTP/1.1 101 Switching Protocols", "Upgrade: h2c", "Connection: Upgrade", "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
		"no connection":  head("HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
		"two upgrades":   head("HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
		"HTTP/1.0":       head("HTTP/1.0 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
	} {
		if err := ParseResponse(in, &resp); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if resp.SwitchesTo(req) {
			t.Errorf("%s: accepted as a switch", name)
		}
	}
	// A plain request never switches.
	var plain Request
	if err := ParseRequest(head("GET / HTTP/1.1", "Host: a"), &plain, nil); err != nil {
		t.Fatal(err)
	}
	if err := ParseResponse(ok, &resp); err != nil || resp.SwitchesTo(&plain) {
		t.Error("switch to a plain request")
	}
	// Non-WebSocket upgrades need no accept.
	var h2 Request
	if err := ParseRequest(head("GET / HTTP/1.1", "Host: a", "Connection: upgrade", "Upgrade: foo"), &h2, &Limits{Upgrades: []string{"foo"}}); err != nil {
		t.Fatal(err)
	}
	if err := ParseResponse(head("HTTP/1.1 101 ", "Upgrade: FOO", "Connection: upgrade"), &resp); err != nil || !resp.SwitchesTo(&h2) {
		t.Errorf("foo upgrade: %v", err)
	}
}

func TestParseResponseFraming(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		body BodyKind
		cl   int64
	}{
		{"length", head("HTTP/1.1 200 OK", "Content-Length: 7"), BodyLength, 7},
		{"no reason", head("HTTP/1.1 404", "Content-Length: 0"), BodyLength, 0},
		{"chunked", head("HTTP/1.1 200 OK", "Transfer-Encoding: chunked"), BodyChunked, 0},
		{"until close", head("HTTP/1.0 200 OK"), BodyUntilClose, 0},
		{"204", head("HTTP/1.1 204 No Content", "Content-Length: 9"), BodyNone, 0},
		{"304", head("HTTP/1.1 304 Not Modified", "Content-Length: 9"), BodyNone, 0},
		{"100", head("HTTP/1.1 100 Continue"), BodyNone, 0},
	}
	var resp Response
	for _, tt := range tests {
		if err := ParseResponse(tt.in, &resp); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if resp.Body != tt.body || resp.ContentLength != tt.cl {
			t.Errorf("%s: %v %d, want %v %d", tt.name, resp.Body, resp.ContentLength, tt.body, tt.cl)
		}
	}
	if err := ParseResponse(head("HTTP/1.1 200 OK", "Content-Length: 7"), &resp); err != nil {
		t.Fatal(err)
	}
	if k, n := resp.BodyFor(&Request{Method: []byte("HEAD")}); k != BodyNone || n != 0 {
		t.Errorf("HEAD: %v %d", k, n)
	}
	for name, in := range map[string][]byte{
		"CL and TE":                head("HTTP/1.1 200 OK", "Content-Length: 7", "Transfer-Encoding: chunked"),
		"gzip":                     head("HTTP/1.1 200 OK", "Transfer-Encoding: gzip, chunked"),
		"TE on 1.0":                head("HTTP/1.0 200 OK", "Transfer-Encoding: chunked"),
		"conflicting CL":           head("HTTP/1.1 200 OK", "Content-Length: 7", "Content-Length: 8"),
		"bad CL":                   head("HTTP/1.1 200 OK", "Content-Length: 7x"),
		"bare LF":                  []byte("HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n"),
		"obs-fold":                 head("HTTP/1.1 200 OK", "X: a", " b"),
		"HTTP/2":                   head("HTTP/2.0 200 OK"),
		"status 99":                head("HTTP/1.1 099 Odd"),
		"status 600":               head("HTTP/1.1 600 Odd"),
		"status 2000":              head("HTTP/1.1 2000 Odd"),
		"no status":                head("HTTP/1.1 OK"),
		"incomplete":               []byte("HTTP/1.1 200 OK\r\n"),
		"NUL":                      head("HTTP/1.1 200 OK", "X: \x00"),
		"bad connection":           head("HTTP/1.1 200 OK", "Connection: a;b"),
		"connection without comma": head("HTTP/1.1 101 Switching Protocols", "Connection: keep-alive upgrade", "Upgrade: websocket"),
	} {
		if err := ParseResponse(in, &resp); err != ErrBackendBadResponse {
			t.Errorf("%s: %v, want ErrBackendBadResponse", name, err)
		}
	}
}

func TestAppendResponseClose(t *testing.T) {
	in := head("HTTP/1.0 403 Forbidden", "Content-Type: text/plain", "Connection: keep-alive, X-Hop, Content-Length",
		"Keep-Alive: timeout=5", "X-Hop: 1", "Upgrade: websocket", "Proxy-Connection: x", "Trailer: X", "TE: trailers",
		"Content-Length: 6", "Set-Cookie: a=b")
	var resp Response
	if err := ParseResponse(in, &resp); err != nil {
		t.Fatal(err)
	}
	got := string(AppendResponseClose(nil, &resp))
	want := "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 6\r\nSet-Cookie: a=b\r\nConnection: close\r\n\r\n"
	if got != want {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
	if err := ParseResponse(head("HTTP/1.1 200", "Transfer-Encoding: chunked"), &resp); err != nil {
		t.Fatal(err)
	}
	got = string(AppendResponseClose(nil, &resp))
	if got != "HTTP/1.1 200 \r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" {
		t.Fatalf("chunked: %q", got)
	}
	dst := make([]byte, 0, 1024)
	if n := testing.AllocsPerRun(100, func() {
		_ = ParseResponse(in, &resp)
		dst = AppendResponseClose(dst[:0], &resp)
	}); n != 0 {
		t.Fatalf("allocates %v times", n)
	}
	if !strings.HasSuffix(string(dst), "Connection: close\r\n\r\n") {
		t.Fatal(string(dst))
	}
}
