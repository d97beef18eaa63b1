package handshake

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"strconv"
)

// webSocketGUID is appended to Sec-WebSocket-Key to compute
// Sec-WebSocket-Accept (RFC 6455 1.3).
const webSocketGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// Response is a parsed backend response head. Like Request, its slices
// point into the parsed head and its storage is reused by ParseResponse.
type Response struct {
	Major, Minor int
	Status       int
	Reason       []byte
	// Upgrade is the first Upgrade header value.
	Upgrade []byte
	// ConnectionUpgrade: Connection lists "upgrade".
	ConnectionUpgrade bool
	WSAccept          []byte // Sec-WebSocket-Accept
	// Body and ContentLength are the body framing as for a GET request;
	// BodyFor corrects it for HEAD.
	Body          BodyKind
	ContentLength int64
	Headers       []Header

	upgrades, accepts int
	kinds             []fieldKind
	conn              [][]byte
	hdrArr            [DefaultMaxHeaders]Header
	kindArr           [DefaultMaxHeaders]fieldKind
	connArr           [MaxConnectionTokens][]byte
}

// Reset drops every reference the Response holds into a head buffer.
func (r *Response) Reset() {
	clear(r.Headers[:cap(r.Headers)]) // hdrArr, or the heap slice it grew into
	r.clear()
}

func (r *Response) clear() {
	clear(r.Headers)
	clear(r.conn)
	hs, ks := r.Headers[:0], r.kinds[:0]
	if hs == nil {
		hs, ks = r.hdrArr[:0], r.kindArr[:0]
	}
	r.Major, r.Minor, r.Status, r.Reason = 0, 0, 0, nil
	r.Upgrade, r.ConnectionUpgrade, r.WSAccept = nil, false, nil
	r.Body, r.ContentLength = BodyNone, 0
	r.upgrades, r.accepts = 0, 0
	r.Headers, r.kinds, r.conn = hs, ks, r.connArr[:0]
}

// ParseResponse parses the response head at the start of head (up to its
// first empty line) into resp. It is as strict as ParseRequest about the
// bytes and header lines (a backend must not be able to smuggle a second
// response to the client either), with DefaultMaxHeadBytes and
// DefaultMaxHeaders as limits. Framing follows nginx: a Transfer-Encoding
// other than chunked, Content-Length with Transfer-Encoding, or conflicting
// Content-Lengths are errors ("upstream sent ..."), not guesses. Every error
// is ErrBackendBadResponse.
func ParseResponse(head []byte, resp *Response) error {
	if !parseResponse(head, resp) {
		return ErrBackendBadResponse
	}
	return nil
}

func parseResponse(head []byte, resp *Response) bool {
	resp.clear()
	b := head[:min(len(head), DefaultMaxHeadBytes)]
	sl, p, rej := nextLine(b, 0, ErrBackendBadResponse)
	if rej != nil || !resp.parseStatusLine(sl) {
		return false
	}
	var cls, te []byte
	var nCL, nTE int
	for {
		var line []byte
		if line, p, rej = nextLine(b, p, ErrBackendBadResponse); rej != nil {
			return false
		}
		if len(line) == 0 {
			break
		}
		if len(resp.Headers) == DefaultMaxHeaders {
			return false
		}
		name, value, rej := parseFieldLine(line)
		if rej != nil {
			return false
		}
		k := classify(name)
		resp.Headers = append(resp.Headers, Header{Name: name, Value: value})
		resp.kinds = append(resp.kinds, k)
		switch k {
		case fieldConnection:
			tooMany := false
			ok := scanTokenList(value, func(tok []byte) bool {
				if len(resp.conn) == MaxConnectionTokens {
					tooMany = true
					return false
				}
				resp.conn = append(resp.conn, tok)
				if equalFold(tok, "upgrade") {
					resp.ConnectionUpgrade = true
				}
				return true
			})
			if !ok || tooMany {
				return false
			}
		case fieldUpgrade:
			if resp.upgrades++; resp.upgrades == 1 {
				resp.Upgrade = value
			}
		case fieldWSAccept:
			if resp.accepts++; resp.accepts == 1 {
				resp.WSAccept = value
			}
		case fieldContentLength:
			v, ok := parseContentLength(value)
			if !ok {
				return false
			}
			if nCL++; nCL > 1 && !bytes.Equal(value, cls) {
				return false
			}
			cls, resp.ContentLength = value, v
		case fieldTransferEncoding:
			nTE++
			te = value
		}
	}
	for _, tok := range resp.conn {
		for i := range resp.Headers {
			if equalFoldBytes(resp.Headers[i].Name, tok) {
				resp.kinds[i] |= fieldNamedByConnection
			}
		}
	}
	switch {
	case nTE > 0:
		if resp.Minor == 0 || nCL > 0 || nTE > 1 || !equalFold(te, "chunked") {
			return false
		}
		resp.Body, resp.ContentLength = BodyChunked, 0
	case nCL > 0:
		resp.Body = BodyLength
	default:
		resp.Body = BodyUntilClose
	}
	// RFC 9112 6.3 item 1: 1xx, 204 and 304 responses end at the head.
	if resp.Status < 200 || resp.Status == 204 || resp.Status == 304 {
		resp.Body, resp.ContentLength = BodyNone, 0
	}
	return true
}

// parseStatusLine parses "HTTP/1.x SP 3DIGIT [SP reason-phrase]". RFC 9112
// 4 requires the SP after the code, but servers that send "HTTP/1.1 200"
// exist, and nginx and Go accept them.
func (resp *Response) parseStatusLine(line []byte) bool {
	if len(line) < 12 || string(line[:5]) != "HTTP/" || line[5] != '1' || line[6] != '.' ||
		!isDigit(line[7]) || line[8] != ' ' {
		return false
	}
	code := line[9:12]
	if code[0] < '1' || code[0] > '5' || !isDigit(code[1]) || !isDigit(code[2]) {
		return false
	}
	if len(line) > 12 && line[12] != ' ' {
		return false
	}
	resp.Major, resp.Minor = 1, int(line[7]-'0')
	resp.Status = int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0')
	if len(line) > 12 {
		resp.Reason = line[13:]
	}
	return true
}

// BodyFor returns the response body framing for the request it answers: a
// response to HEAD has no body whatever its headers say (RFC 9112 6.3).
func (resp *Response) BodyFor(req *Request) (BodyKind, int64) {
	if req != nil && string(req.Method) == "HEAD" {
		return BodyNone, 0
	}
	return resp.Body, resp.ContentLength
}

// SwitchesTo reports whether resp is a valid 101 (Switching Protocols) to
// the upgrade req asked for: req is an honoured upgrade, the response is
// HTTP/1.1, lists "upgrade" in Connection and has exactly one Upgrade equal
// (ASCII case-insensitively) to the protocol requested (RFC 9110 7.8). For
// WebSocket, Sec-WebSocket-Accept must also match req.WSKey (RFC 6455
// 4.2.2 item 5.4), so a backend that is not a WebSocket server (or answers
// another connection's handshake) never gets a tunnel. No allocation.
func (resp *Response) SwitchesTo(req *Request) bool {
	if resp.Status != 101 || resp.Minor == 0 || !req.IsUpgrade || !resp.ConnectionUpgrade ||
		resp.upgrades != 1 || !equalFoldBytes(resp.Upgrade, req.Upgrade) {
		return false
	}
	if !req.IsWebSocket {
		return true
	}
	if resp.accepts != 1 || len(resp.WSAccept) != 28 || len(req.WSKey) != 24 {
		return false
	}
	var in [24 + len(webSocketGUID)]byte
	copy(in[copy(in[:], req.WSKey):], webSocketGUID)
	sum := sha1.Sum(in[:])
	var want [28]byte
	base64.StdEncoding.Encode(want[:], sum[:])
	return bytes.Equal(want[:], resp.WSAccept)
}

// AppendResponseClose appends the head the client receives for a response
// that is not a 101: "HTTP/1.1", the backend's status and reason, its
// headers without the hop-by-hop ones (hopByHopNames except Transfer-Encoding,
// which stays because the body is relayed as it is, chunked or not), and
// "Connection: close", so the client does not send a second request on a
// connection wsgate will close after this response.
func AppendResponseClose(dst []byte, resp *Response) []byte {
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(resp.Status), 10)
	dst = append(dst, ' ')
	dst = append(dst, resp.Reason...)
	dst = append(dst, "\r\n"...)
	for i, h := range resp.Headers {
		if k := resp.kinds[i]; k.hopByHop() && !isFraming(k) {
			continue
		}
		dst = appendHeader(dst, h)
	}
	return append(dst, "Connection: close\r\n\r\n"...)
}

// isFraming reports whether k (possibly named by Connection) is a body
// framing field. A backend's Connection may not remove those: the client
// must frame the relayed body as the backend did.
func isFraming(k fieldKind) bool {
	k &^= fieldNamedByConnection
	return k == fieldContentLength || k == fieldTransferEncoding
}
