package handshake_test

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/wsgate/wsgate/handshake"
)

// The handshake phase as the engine runs it: find the end of the head as
// bytes arrive, parse it, answer a rejection or write the backend's head,
// then check the backend's answer.
func Example() {
	arrived := []byte("GET /chat HTTP/1.1\r\nHost: chat.example.com\r\nUpgrade: websocket\r\n" +
		"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")

	var scan handshake.HeadScanner
	var end int
	for n := 10; end == 0; n += 10 { // bytes arrive in pieces
		var err error
		if end, err = scan.Scan(arrived[:min(n, len(arrived))], 0); err != nil {
			fmt.Printf("%s", handshake.AppendReject(nil, err.(*handshake.Reject)))
			return
		}
	}

	var req handshake.Request
	if err := handshake.ParseRequest(arrived[:end], &req, nil); err != nil {
		fmt.Printf("%s", handshake.AppendReject(nil, err.(*handshake.Reject)))
		return
	}
	client := &handshake.ClientInfo{IP: netip.MustParseAddr("192.0.2.7")}
	out := handshake.AppendRewritten(nil, &req, client, nil)
	fmt.Print(strings.ReplaceAll(string(out), "\r\n", "\n")) // CRLF shown as LF

	var resp handshake.Response
	answer := []byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
	if handshake.ParseResponse(answer, &resp) == nil && resp.SwitchesTo(&req) {
		fmt.Println("tunnel")
	}
	// Output:
	// GET /chat HTTP/1.1
	// Host: chat.example.com
	// X-Real-IP: 192.0.2.7
	// X-Forwarded-For: 192.0.2.7
	// Upgrade: websocket
	// Connection: upgrade
	// X-Forwarded-Proto: http
	// Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==
	// Sec-WebSocket-Version: 13
	//
	// tunnel
}
