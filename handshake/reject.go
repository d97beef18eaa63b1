package handshake

import (
	"strconv"
)

// Reject is why a head was refused and how to answer it. Reject values are
// predefined and shared (returning one allocates nothing); never modify one.
type Reject struct {
	// Status is the HTTP status code to answer with.
	Status int
	// Reason is a short snake_case label, used as the metric label.
	Reason string
	// Text is one line of human-readable explanation for the response body.
	Text string
	// Header holds extra header lines for the answer, each ending in CRLF
	// (e.g. "Sec-WebSocket-Version: 13\r\n"), or is empty.
	Header string
}

// Error returns "status reason: text".
func (r *Reject) Error() string {
	return strconv.Itoa(r.Status) + " " + r.Reason + ": " + r.Text
}

func newReject(status int, reason, text string) *Reject {
	return &Reject{Status: status, Reason: reason, Text: text}
}

// Rejections of the request line (RFC 9112 section 3).
var (
	// ErrMalformedRequestLine: not "method SP request-target SP HTTP/x.y",
	// with a token method, exactly one SP between the parts (RFC 9112 3 lets
	// a recipient split on other whitespace; two parsers doing it
	// differently is a classic desync, so wsgate does not) and no control
	// byte or whitespace in the target.
	ErrMalformedRequestLine = newReject(400, "malformed_request_line", "malformed request line")
	// ErrUnsupportedVersion: a major version other than 1 (HTTP/0.9,
	// HTTP/2.0 such as the h2 prior-knowledge preface, HTTP/9.9). RFC 9110
	// 15.6.6 defines 505 for a major version the server refuses; HTTP/1.x
	// with x >= 2 is processed as HTTP/1.1 (RFC 9110 2.5).
	ErrUnsupportedVersion = newReject(505, "unsupported_version", "HTTP version not supported")
	// ErrTargetTooLong: request-target longer than Limits.MaxTargetBytes
	// (RFC 9110 15.5.15, 414 URI Too Long).
	ErrTargetTooLong = newReject(414, "target_too_long", "request target too long")
	// ErrBadTarget: a target that is neither origin-form, an http(s)
	// absolute-form without userinfo, nor "*" for OPTIONS; or a path with a
	// bad percent-escape or a '#' (RFC 9112 3.2, RFC 3986).
	ErrBadTarget = newReject(400, "bad_target", "invalid request target")
	// ErrUnsupportedMethod: CONNECT (wsgate is no forward proxy) and TRACE
	// (it would reflect the rewritten head, cross-site tracing). RFC 9110
	// 15.6.2: 501 for a method the server does not support for any resource.
	ErrUnsupportedMethod = newReject(501, "unsupported_method", "method not supported")
	// ErrAuthorityMismatch: an absolute-form target whose authority differs
	// from Host. RFC 9112 3.2.2 has the target win; a backend that reads Host
	// instead would route differently, so wsgate refuses the ambiguity.
	ErrAuthorityMismatch = newReject(400, "authority_mismatch", "target authority differs from Host")
)

// Rejections of the head as a whole and of its header lines (RFC 9112 2, 5).
var (
	// ErrHeadTooLarge: the head is longer than Limits.MaxHeadBytes (RFC 6585 5).
	ErrHeadTooLarge = newReject(431, "head_too_large", "request head too large")
	// ErrTooManyHeaders: more header lines than Limits.MaxHeaders.
	ErrTooManyHeaders = newReject(431, "too_many_headers", "too many header fields")
	// ErrIncompleteHead: ParseRequest was given bytes without the empty line
	// that ends a head (a caller error: use HeadScanner first).
	ErrIncompleteHead = newReject(400, "incomplete_head", "incomplete request head")
	// ErrBareCR: a CR not followed by LF. RFC 9112 2.2: a recipient must
	// reject it or replace it with SP; parsers that do neither desync.
	ErrBareCR = newReject(400, "bare_cr", "bare CR in head")
	// ErrBareLF: an LF not preceded by CR. RFC 9112 2.2 allows a recipient
	// to accept it as a line end; some backends do and some do not, which is
	// enough to smuggle a header past one of them.
	ErrBareLF = newReject(400, "bare_lf", "bare LF in head")
	// ErrControlByte: NUL or another control byte (other than HTAB) in a
	// header line (RFC 9110 5.5: field values are VCHAR, obs-text, SP, HTAB;
	// RFC 9110 5.5 also singles out NUL as dangerous).
	ErrControlByte = newReject(400, "control_byte", "control byte in head")
	// ErrObsFold: a header line starting with SP or HTAB (obsolete line
	// folding). RFC 9112 5.2: a server must reject it with 400 or unfold it;
	// unfolding is where parsers disagree.
	ErrObsFold = newReject(400, "obs_fold", "obsolete line folding")
	// ErrHeaderNoColon: a header line without ':'.
	ErrHeaderNoColon = newReject(400, "header_no_colon", "header line without colon")
	// ErrBadHeaderName: an empty header name or one with a non-token byte.
	ErrBadHeaderName = newReject(400, "bad_header_name", "invalid header name")
	// ErrSpaceBeforeColon: whitespace between name and colon. RFC 9112 5.1:
	// a server MUST reject it with 400 ("Transfer-Encoding :" is a known
	// smuggling vector).
	ErrSpaceBeforeColon = newReject(400, "space_before_colon", "whitespace before colon")
)

// Rejections of Host (RFC 9112 3.2: 400 for a missing Host in HTTP/1.1, more
// than one Host, or an invalid Host value).
var (
	ErrMissingHost   = newReject(400, "missing_host", "missing Host header")
	ErrDuplicateHost = newReject(400, "duplicate_host", "more than one Host header")
	// ErrBadHost: Host is not uri-host [":" port]. wsgate accepts the
	// reg-name characters DNS names use (ALPHA DIGIT - . _ ~), IPv4 and
	// bracketed IPv6 literals, and a port of 1 to 5 digits.
	ErrBadHost = newReject(400, "bad_host", "invalid Host header")
)

// Rejections of message framing (RFC 9112 6 and 11.2, request smuggling).
var (
	// ErrCLWithTE: both Content-Length and Transfer-Encoding. RFC 9112 6.1:
	// "ought to be handled as an error"; it is the CL.TE / TE.CL smuggling
	// pattern.
	ErrCLWithTE = newReject(400, "cl_with_te", "both Content-Length and Transfer-Encoding")
	// ErrConflictingCL: several Content-Length lines that are not identical.
	ErrConflictingCL = newReject(400, "conflicting_content_length", "conflicting Content-Length headers")
	// ErrBadContentLength: a Content-Length that is not 1*DIGIT fitting an
	// int64. A comma list ("5, 5") is refused too (RFC 9110 8.6 only lets a
	// recipient accept it), because Go's net/http and others refuse it.
	ErrBadContentLength = newReject(400, "bad_content_length", "invalid Content-Length")
	// ErrUnsupportedTE: a Transfer-Encoding other than exactly "chunked", in
	// one header line. RFC 9112 6.1 allows any codings with chunked last, but
	// nginx and Go accept chunked alone and answer 501 (RFC 9112 6.1:
	// "SHOULD respond with 501") to the rest; matching them leaves no coding
	// wsgate and a backend could frame differently.
	ErrUnsupportedTE = newReject(501, "unsupported_transfer_encoding", "unsupported Transfer-Encoding")
	// ErrTEOnHTTP10: Transfer-Encoding in an HTTP/1.0 request. RFC 9112 6.1:
	// treat the framing as faulty (HTTP/1.0 peers do not know chunked).
	ErrTEOnHTTP10 = newReject(400, "te_on_http10", "Transfer-Encoding in HTTP/1.0 request")
	// ErrBadTrailer: a chunked request whose Trailer announces a framing field
	// (RFC 9110 6.5.1 forbids them in trailers; Go's net/http refuses them).
	ErrBadTrailer = newReject(400, "bad_trailer", "Trailer names a framing field")
	// ErrBadChunked: malformed chunked body (BodyTracker): bad chunk-size
	// line, a size over 2^62 or with more than 16 hex digits, missing CRLF
	// after data, malformed or oversized trailer section.
	ErrBadChunked = newReject(400, "bad_chunked", "malformed chunked body")
)

// Rejections of Connection / Upgrade / WebSocket (RFC 9110 7.6.1, 7.8; RFC 6455 4).
var (
	// ErrBadConnection: a Connection value that is not a token list, lists
	// more than MaxConnectionTokens options, or names a field that frames or
	// identifies the request (Host, Content-Length, Transfer-Encoding,
	// Sec-WebSocket-Key/-Version): proxies that honour the option and
	// proxies that do not would then read different requests.
	ErrBadConnection = newReject(400, "bad_connection", "invalid Connection header")
	// ErrUpgradeWithBody: an honoured upgrade that declares a body. wsgate
	// holds client bytes after an upgrade head until the backend answers 101,
	// so a body would either be lost or, forwarded, be read as frames.
	ErrUpgradeWithBody = newReject(400, "upgrade_with_body", "upgrade request with a body")
	// ErrBadWebSocketKey: Sec-WebSocket-Key missing, repeated, or not the
	// base64 of 16 bytes (RFC 6455 4.2.1 item 5).
	ErrBadWebSocketKey = newReject(400, "bad_websocket_key", "invalid Sec-WebSocket-Key")
	// ErrBadWebSocketVersion: Sec-WebSocket-Version missing, repeated or not
	// 13. RFC 6455 4.4: answer with the versions the server supports.
	ErrBadWebSocketVersion = &Reject{Status: 400, Reason: "bad_websocket_version",
		Text: "unsupported Sec-WebSocket-Version", Header: "Sec-WebSocket-Version: 13\r\n"}
)

// Rejections the engine answers with (defined here so that every status and
// reason lives in one table).
var (
	ErrHeaderTimeout      = newReject(408, "header_timeout", "request head not received in time")
	ErrForbiddenOrigin    = newReject(403, "origin_forbidden", "origin not allowed")
	ErrForbiddenProtocol  = newReject(403, "subprotocol_forbidden", "no allowed Sec-WebSocket-Protocol offered")
	ErrNoRoute            = newReject(404, "no_route", "no route for this host and path")
	ErrTooManyPerIP       = newReject(429, "too_many_per_ip", "too many connections from this address")
	ErrTooManyTunnels     = newReject(503, "too_many_tunnels", "tunnel limit reached")
	ErrBadGateway         = newReject(502, "backend_refused", "backend refused the connection")
	ErrBackendBadResponse = newReject(502, "backend_bad_response", "invalid response from backend")
	ErrNoBackend          = newReject(503, "no_backend", "no backend available")
	ErrOverloaded         = newReject(503, "overloaded", "server overloaded")
	ErrGatewayTimeout     = newReject(504, "backend_timeout", "backend timed out")
)

// allRejects is every predefined Reject, in the order Reasons lists them.
var allRejects = []*Reject{
	ErrMalformedRequestLine, ErrUnsupportedVersion, ErrTargetTooLong, ErrBadTarget,
	ErrUnsupportedMethod, ErrAuthorityMismatch,
	ErrHeadTooLarge, ErrTooManyHeaders, ErrIncompleteHead, ErrBareCR, ErrBareLF,
	ErrControlByte, ErrObsFold, ErrHeaderNoColon, ErrBadHeaderName, ErrSpaceBeforeColon,
	ErrMissingHost, ErrDuplicateHost, ErrBadHost,
	ErrCLWithTE, ErrConflictingCL, ErrBadContentLength, ErrUnsupportedTE, ErrTEOnHTTP10,
	ErrBadTrailer, ErrBadChunked,
	ErrBadConnection, ErrUpgradeWithBody, ErrBadWebSocketKey, ErrBadWebSocketVersion,
	ErrHeaderTimeout, ErrForbiddenOrigin, ErrForbiddenProtocol, ErrNoRoute,
	ErrTooManyPerIP, ErrTooManyTunnels, ErrBadGateway,
	ErrBackendBadResponse, ErrNoBackend, ErrOverloaded, ErrGatewayTimeout,
}

// Reasons returns every reason label, for registering metrics up front.
func Reasons() []string {
	out := make([]string, len(allRejects))
	for i, r := range allRejects {
		out[i] = r.Reason
	}
	return out
}

// Rejects returns every predefined Reject (shared values: do not modify).
func Rejects() []*Reject {
	return append([]*Reject(nil), allRejects...)
}

// AppendReject appends the complete answer for r to dst: status line,
// Content-Type, Content-Length, Connection: close, r.Header, the empty line
// and a one-line body (r.Text and LF). It allocates nothing when dst has room.
func AppendReject(dst []byte, r *Reject) []byte {
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(r.Status), 10)
	dst = append(dst, ' ')
	dst = append(dst, StatusText(r.Status)...)
	dst = append(dst, "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: "...)
	dst = strconv.AppendInt(dst, int64(len(r.Text)+1), 10)
	dst = append(dst, "\r\nConnection: close\r\n"...)
	dst = append(dst, r.Header...)
	dst = append(dst, "\r\n"...)
	dst = append(dst, r.Text...)
	return append(dst, '\n')
}

// StatusText returns the reason phrase for the statuses wsgate answers
// with (RFC 9110 section 15), or "Error" for others.
func StatusText(code int) string {
	switch code {
	case 400:
		return "Bad Request"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 408:
		return "Request Timeout"
	case 414:
		return "URI Too Long"
	case 429:
		return "Too Many Requests"
	case 431:
		return "Request Header Fields Too Large"
	case 501:
		return "Not Implemented"
	case 502:
		return "Bad Gateway"
	case 503:
		return "Service Unavailable"
	case 504:
		return "Gateway Timeout"
	case 505:
		return "HTTP Version Not Supported"
	}
	return "Error"
}
