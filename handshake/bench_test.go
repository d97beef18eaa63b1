package handshake

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"net/http"
	"net/netip"
	"os"
	"testing"
)

// chromeRequest is a real Chromium WebSocket handshake (493 bytes, see
// testdata/golden/README.md).
var chromeRequest = func() []byte {
	b, err := os.ReadFile("testdata/golden/chrome.in")
	if err != nil {
		panic(err)
	}
	return b
}()

func BenchmarkParseRequest(b *testing.B) {
	var req Request
	b.ReportAllocs()
	b.SetBytes(int64(len(chromeRequest)))
	for b.Loop() {
		if err := ParseRequest(chromeRequest, &req, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHeadScanner(b *testing.B) {
	var s HeadScanner
	b.ReportAllocs()
	b.SetBytes(int64(len(chromeRequest)))
	for b.Loop() {
		s.Reset()
		if end, err := s.Scan(chromeRequest, 0); end != len(chromeRequest) || err != nil {
			b.Fatal(end, err)
		}
	}
}

func BenchmarkAppendRewritten(b *testing.B) {
	var req Request
	if err := ParseRequest(chromeRequest, &req, nil); err != nil {
		b.Fatal(err)
	}
	c := &ClientInfo{IP: netip.MustParseAddr("192.0.2.10")}
	o := &RewriteOptions{}
	dst := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		dst = AppendRewritten(dst[:0], &req, c, o)
	}
}

// BenchmarkParseAndRewrite is the whole per-handshake cost in this package.
func BenchmarkParseAndRewrite(b *testing.B) {
	var req Request
	c := &ClientInfo{IP: netip.MustParseAddr("192.0.2.10")}
	dst := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		var s HeadScanner
		end, _ := s.Scan(chromeRequest, 0)
		if err := ParseRequest(chromeRequest[:end], &req, nil); err != nil {
			b.Fatal(err)
		}
		dst = AppendRewritten(dst[:0], &req, c, nil)
	}
}

// BenchmarkNetHTTPReadRequest is the comparison: net/http reading the same
// head.
func BenchmarkNetHTTPReadRequest(b *testing.B) {
	r := bytes.NewReader(chromeRequest)
	br := bufio.NewReader(r)
	b.ReportAllocs()
	b.SetBytes(int64(len(chromeRequest)))
	for b.Loop() {
		r.Reset(chromeRequest)
		br.Reset(r)
		if _, err := http.ReadRequest(br); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSwitchesTo(b *testing.B) {
	var req Request
	if err := ParseRequest(chromeRequest, &req, nil); err != nil {
		b.Fatal(err)
	}
	sum := sha1.Sum(append(append([]byte(nil), req.WSKey...), webSocketGUID...))
	accept := base64.StdEncoding.EncodeToString(sum[:])
	var resp Response
	if err := ParseResponse(head("HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade",
		"Sec-WebSocket-Accept: "+accept), &resp); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if !resp.SwitchesTo(&req) {
			b.Fatal("no switch")
		}
	}
}

func BenchmarkBodyTrackerChunked(b *testing.B) {
	body := bytes.Repeat([]byte("400\r\n"+string(bytes.Repeat([]byte("x"), 0x400))+"\r\n"), 64)
	body = append(body, "0\r\n\r\n"...)
	var t BodyTracker
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		t.Init(BodyChunked, 0)
		if n, done, err := t.Advance(body); n != len(body) || !done || err != nil {
			b.Fatal(n, done, err)
		}
	}
}
