package handshake

import (
	"bytes"
	"encoding/base64"
	"math"
	"strings"

	"github.com/gobwas/httphead"
)

// BodyKind is how a message's body is framed (RFC 9112 6.3).
type BodyKind uint8

const (
	// BodyNone: no body.
	BodyNone BodyKind = iota
	// BodyLength: exactly ContentLength bytes (which may be 0).
	BodyLength
	// BodyChunked: chunked transfer coding, up to the last chunk and trailers.
	BodyChunked
	// BodyUntilClose: a response body that ends when the backend closes.
	BodyUntilClose
)

func (k BodyKind) String() string {
	switch k {
	case BodyNone:
		return "none"
	case BodyLength:
		return "length"
	case BodyChunked:
		return "chunked"
	case BodyUntilClose:
		return "until-close"
	}
	return "invalid"
}

// MaxConnectionTokens caps the options one request's Connection headers may
// list (real clients send one or two: "Upgrade", "keep-alive, Upgrade").
const MaxConnectionTokens = 16

// webSocketVersion is the only version RFC 6455 4.1 defines.
const webSocketVersion = "13"

// Request is a parsed request head. Its byte slices point into the head
// passed to ParseRequest, so they are valid only while that buffer is;
// ParseRequest reuses a Request's storage, so one Request per parsing
// goroutine is reused without allocation. A Request holds about 6 KB of
// fixed arrays: pool it rather than keep one per tunnel, and call Reset
// before pooling so it does not keep a head buffer reachable. Do not copy a
// Request (Headers points into its own array).
type Request struct {
	Method []byte
	// Target is the request-target as received.
	Target []byte
	// Path is the target in origin form: Target, or for an absolute-form
	// target what follows the authority (may be empty or start with '?';
	// the rewrite then sends "/" before it).
	Path []byte
	// Authority is the authority of an absolute-form target, else nil.
	Authority    []byte
	Major, Minor int
	// Host is the Host header value, or the target's authority for an
	// HTTP/1.0 absolute-form request without Host. It may be empty
	// (RFC 9110 7.2).
	Host []byte
	// Upgrade is the protocol selected from the Upgrade header: the first
	// one listed that Limits.Upgrades allows (nil if none). With a single
	// protocol, as every real client sends, it is the raw header value.
	Upgrade []byte
	// IsUpgrade: HTTP/1.1, Connection lists "upgrade", and Upgrade names an
	// allowed protocol (for websocket: method GET too). Otherwise the
	// request is forwarded as a plain one and its Upgrade header dropped.
	// An upgrade never has a body: Body is BodyNone (a declared body is
	// refused with ErrUpgradeWithBody).
	IsUpgrade bool
	// IsWebSocket: IsUpgrade to "websocket" (or "websocket/<version>"),
	// with a valid Sec-WebSocket-Key and Sec-WebSocket-Version 13 (checked
	// by ParseRequest).
	IsWebSocket bool
	WSKey       []byte
	WSVersion   []byte
	WSProtocol  []byte // the first Sec-WebSocket-Protocol value, raw
	Origin      []byte
	// Body and ContentLength describe the request body's framing.
	Body          BodyKind
	ContentLength int64
	// Connection lists the Connection options (all Connection lines).
	Connection [][]byte
	// ConnectionClose: Connection lists "close".
	ConnectionClose bool
	// Expect100Continue: "Expect: 100-continue". The rewrite drops Expect as
	// nginx does, so the backend sends no 100 (Continue); the engine may send
	// "HTTP/1.1 100 Continue" itself before relaying the body.
	Expect100Continue bool
	// Headers lists every header line in order.
	Headers []Header

	kinds   []fieldKind // kinds[i] classifies Headers[i]
	hdrArr  [DefaultMaxHeaders]Header
	kindArr [DefaultMaxHeaders]fieldKind
	connArr [MaxConnectionTokens][]byte
}

// Reset drops every reference the Request holds into a head buffer.
func (r *Request) Reset() {
	// Headers is hdrArr, or the heap slice it grew into when
	// Limits.MaxHeaders is above DefaultMaxHeaders; hdrArr then still holds
	// the first DefaultMaxHeaders lines of that parse.
	clear(r.Headers[:cap(r.Headers)])
	clear(r.hdrArr[:])
	r.clear()
}

// clear zeroes the parse results, keeping storage.
//
// The Headers entries past the new parse's count keep pointing into the
// previous head until Reset; that is the same buffer when the engine
// reuses one, and clearing 5 KB per parse would cost more than the parse.
func (r *Request) clear() {
	clear(r.Connection)
	hs, ks := r.Headers[:0], r.kinds[:0]
	if hs == nil {
		hs, ks = r.hdrArr[:0], r.kindArr[:0]
	}
	r.Method, r.Target, r.Path, r.Authority = nil, nil, nil, nil
	r.Major, r.Minor = 0, 0
	r.Host, r.Upgrade = nil, nil
	r.IsUpgrade, r.IsWebSocket = false, false
	r.WSKey, r.WSVersion, r.WSProtocol, r.Origin = nil, nil, nil, nil
	r.Body, r.ContentLength = BodyNone, 0
	r.Connection = r.connArr[:0]
	r.ConnectionClose, r.Expect100Continue = false, false
	r.Headers, r.kinds = hs, ks
}

// ParseRequest parses the request head at the start of head (as found by
// HeadScanner: up to and including the first empty line; bytes after it are
// ignored) into req, reusing req's storage. It allocates nothing unless
// Limits.MaxHeaders is above DefaultMaxHeaders and the request has more
// header lines than that. lim may be nil (defaults). The error is nil or a
// *Reject saying how to answer.
func ParseRequest(head []byte, req *Request, lim *Limits) error {
	if r := parseRequest(head, req, lim); r != nil {
		return r
	}
	return nil
}

// requestCounts tallies the header lines whose repetition matters.
type requestCounts struct {
	host, cl, te, key, version int
	trailer                    bool
	connUpgrade                bool
	tooManyConn                bool
}

func parseRequest(head []byte, req *Request, lim *Limits) *Reject {
	req.clear()
	b := head
	maxHead := lim.maxHead()
	if len(b) > maxHead {
		b = b[:maxHead]
	}
	rl, p, rej := nextLine(b, 0, ErrMalformedRequestLine)
	if rej == nil {
		rej = req.parseRequestLine(rl, lim)
	}
	var c requestCounts
	var cl, te []byte
	maxHeaders := lim.maxHeaders()
	for rej == nil {
		var line []byte
		if line, p, rej = nextLine(b, p, ErrControlByte); rej != nil || len(line) == 0 {
			break
		}
		if len(req.Headers) == maxHeaders {
			return ErrTooManyHeaders
		}
		name, value, frej := parseFieldLine(line)
		if frej != nil {
			return frej
		}
		k := classify(name)
		req.Headers = append(req.Headers, Header{Name: name, Value: value})
		req.kinds = append(req.kinds, k)
		switch k {
		case fieldHost:
			if c.host++; c.host > 1 {
				return ErrDuplicateHost
			}
			req.Host = value
		case fieldConnection:
			if !req.addConnection(value, &c) {
				return ErrBadConnection
			}
		case fieldUpgrade:
			if req.Upgrade == nil {
				req.Upgrade = selectUpgrade(value, lim)
			}
		case fieldContentLength:
			v, ok := parseContentLength(value)
			if !ok {
				return ErrBadContentLength
			}
			if c.cl++; c.cl > 1 && !bytes.Equal(value, cl) {
				return ErrConflictingCL
			}
			cl, req.ContentLength = value, v
		case fieldTransferEncoding:
			c.te++
			te = value
		case fieldTrailer:
			c.trailer = true
		case fieldExpect:
			req.Expect100Continue = equalFold(value, "100-continue")
		case fieldWSKey:
			if c.key++; c.key == 1 {
				req.WSKey = value
			}
		case fieldWSVersion:
			if c.version++; c.version == 1 {
				req.WSVersion = value
			}
		case fieldWSProtocol:
			if req.WSProtocol == nil {
				req.WSProtocol = value
			}
		case fieldOrigin:
			if req.Origin == nil {
				req.Origin = value
			}
		}
	}
	if rej != nil {
		if rej == ErrIncompleteHead && len(head) > maxHead {
			return ErrHeadTooLarge
		}
		return rej
	}

	http11 := req.Minor >= 1 // HTTP/1.x, x >= 2, is read as 1.1 (RFC 9110 2.5)
	if c.host == 0 {
		if http11 {
			return ErrMissingHost
		}
		req.Host = req.Authority
	} else {
		if !validHost(req.Host) {
			return ErrBadHost
		}
		if req.Authority != nil && !equalFoldBytes(req.Authority, req.Host) {
			return ErrAuthorityMismatch
		}
	}

	switch {
	case c.te > 0:
		switch {
		case !http11:
			return ErrTEOnHTTP10
		case c.cl > 0:
			return ErrCLWithTE
		case c.te > 1 || !equalFold(te, "chunked"):
			return ErrUnsupportedTE
		}
		req.Body, req.ContentLength = BodyChunked, 0
		if c.trailer && req.trailerNamesFraming() {
			return ErrBadTrailer
		}
	case c.cl > 0:
		req.Body = BodyLength
	}

	if req.markNamedByConnection() {
		return ErrBadConnection
	}

	if req.Upgrade != nil && c.connUpgrade && http11 {
		req.IsUpgrade = true
		if isWebSocketProtocol(req.Upgrade) {
			// RFC 6455 4.1: the opening handshake is a GET.
			req.IsWebSocket = string(req.Method) == "GET"
			req.IsUpgrade = req.IsWebSocket
		}
	}
	if !req.IsUpgrade {
		return nil
	}
	if req.Body == BodyChunked || req.ContentLength > 0 {
		return ErrUpgradeWithBody
	}
	// "Content-Length: 0" is no body: an upgrade always has Body ==
	// BodyNone, so the engine never has a body to hold back.
	req.Body = BodyNone
	if req.IsWebSocket {
		if c.key != 1 || !validWebSocketKey(req.WSKey) {
			return ErrBadWebSocketKey
		}
		if c.version != 1 || string(req.WSVersion) != webSocketVersion {
			return ErrBadWebSocketVersion
		}
	}
	return nil
}

// parseRequestLine parses "method SP request-target SP HTTP-version" with
// httphead.ParseRequestLine, then checks what it leaves out: it reads
// "HTTP/1.;" as 1.11 and any digits as a version, and does not look inside
// the target.
func (req *Request) parseRequestLine(line []byte, lim *Limits) *Reject {
	rl, ok := httphead.ParseRequestLine(line)
	if !ok {
		return ErrMalformedRequestLine
	}
	proto := line[len(rl.Method)+1+len(rl.URI)+1:]
	// RFC 9112 2.3: HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive.
	if len(proto) != 8 || string(proto[:5]) != "HTTP/" || !isDigit(proto[5]) ||
		proto[6] != '.' || !isDigit(proto[7]) {
		return ErrMalformedRequestLine
	}
	req.Method, req.Target = rl.Method, rl.URI
	req.Major, req.Minor = int(proto[5]-'0'), int(proto[7]-'0')
	if req.Major != 1 {
		return ErrUnsupportedVersion
	}
	if len(req.Target) > lim.maxTarget() {
		return ErrTargetTooLong
	}
	if equalFold(req.Method, "CONNECT") || equalFold(req.Method, "TRACE") {
		return ErrUnsupportedMethod
	}
	return req.parseTarget()
}

// parseTarget checks the request-target's form (RFC 9112 3.2) and sets Path
// and Authority.
func (req *Request) parseTarget() *Reject {
	t := req.Target
	switch {
	case t[0] == '/':
		req.Path = t
		return checkPath(t)
	case len(t) == 1 && t[0] == '*':
		// asterisk-form is for OPTIONS only (RFC 9112 3.2.4).
		if string(req.Method) != "OPTIONS" {
			return ErrBadTarget
		}
		req.Path = t
		return nil
	}
	var rest []byte
	switch {
	case hasPrefixFold(t, "http://"):
		rest = t[len("http://"):]
	case hasPrefixFold(t, "https://"):
		rest = t[len("https://"):]
	default:
		// authority-form belongs to CONNECT, refused above; other schemes
		// are not for an HTTP gateway.
		return ErrBadTarget
	}
	end := len(rest)
	if i := bytes.IndexAny(rest, "/?"); i >= 0 {
		end = i
	}
	// validHost refuses '@': userinfo in an http(s) URI is deprecated and a
	// known way to make a URI look like it points elsewhere (RFC 9110 4.2.4).
	if end == 0 || !validHost(rest[:end]) {
		return ErrBadTarget
	}
	req.Authority, req.Path = rest[:end], rest[end:]
	return checkPath(req.Path)
}

// checkPath checks an origin-form target (path and query): no whitespace or
// control bytes (httphead leaves them in; a malformed request line), no '#' (a fragment is never part
// of a request-target, RFC 9112 3.2), and in the path every '%' starts a
// valid pct-encoded triplet (RFC 3986 2.1; Go's net/http refuses bad ones
// too). The query's percent signs are not checked: sloppy clients send
// "?q=100%" and no parser frames a request by them.
func checkPath(p []byte) *Reject {
	inQuery := false
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c <= ' ' || c == 0x7f:
			return ErrMalformedRequestLine
		case c == '#':
			return ErrBadTarget
		case c == '?':
			inQuery = true
		case c == '%' && !inQuery:
			if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
				return ErrBadTarget
			}
			i += 2
		}
	}
	return nil
}

// validHost reports whether h is a valid Host value: empty (RFC 9110 7.2),
// or uri-host [":" port] where uri-host is a bracketed IPv6 literal or a
// reg-name/IPv4 of ALPHA DIGIT "-" "." "_" "~". That is narrower than RFC
// 3986's reg-name (no sub-delims, no pct-encoding): a Host with ',' ';' '@'
// or '%' is not a name DNS can hold, and some parsers split or decode them.
func validHost(h []byte) bool {
	if len(h) == 0 {
		return true
	}
	i := 0
	if h[0] == '[' {
		j := bytes.IndexByte(h, ']')
		if j < 3 {
			return false
		}
		colons := 0
		for _, c := range h[1:j] {
			switch {
			case c == ':':
				colons++
			case c == '.' || isHex(c):
			default:
				return false
			}
		}
		if colons < 2 {
			return false
		}
		i = j + 1
	} else {
		for i < len(h) && h[i] != ':' {
			if !isRegNameChar(h[i]) {
				return false
			}
			i++
		}
		if i == 0 {
			return false
		}
	}
	if i == len(h) {
		return true
	}
	if h[i] != ':' {
		return false
	}
	port := h[i+1:]
	if len(port) == 0 || len(port) > 5 {
		return false
	}
	for _, c := range port {
		if !isDigit(c) {
			return false
		}
	}
	return true
}

func isRegNameChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || isDigit(c) ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isHex(c byte) bool {
	return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && equalFold(b[:len(prefix)], prefix)
}

// parseContentLength parses Content-Length = 1*DIGIT (RFC 9110 8.6) into an
// int64. Signs, commas, spaces and overflow are refused.
func parseContentLength(v []byte) (int64, bool) {
	if len(v) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if !isDigit(c) {
			return 0, false
		}
		d := int64(c - '0')
		if n > (math.MaxInt64-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// addConnection records the options of one Connection line.
func (req *Request) addConnection(v []byte, c *requestCounts) bool {
	if equalFold(v, "upgrade") && len(req.Connection) < MaxConnectionTokens {
		// What browsers send: skip the general list scanner.
		req.Connection = append(req.Connection, v)
		c.connUpgrade = true
		return true
	}
	ok := scanTokenList(v, func(tok []byte) bool {
		if len(req.Connection) == MaxConnectionTokens {
			c.tooManyConn = true
			return false
		}
		req.Connection = append(req.Connection, tok)
		switch {
		case equalFold(tok, "upgrade"):
			c.connUpgrade = true
		case equalFold(tok, "close"):
			req.ConnectionClose = true
		}
		return true
	})
	return ok && !c.tooManyConn
}

// markNamedByConnection marks the headers a Connection option names as
// hop-by-hop (RFC 9110 7.6.1), and reports whether an option names a field
// that frames or identifies the request: Host, Content-Length,
// Transfer-Encoding, Sec-WebSocket-Key or -Version. A proxy that honours
// such an option drops the field and one that does not keeps it, so the
// two would read different requests (hop-by-hop header abuse); wsgate
// refuses the request instead. "close", "keep-alive" and "upgrade" name
// nothing the rewrite would keep anyway, so common requests skip the loop.
func (req *Request) markNamedByConnection() (framing bool) {
	for _, tok := range req.Connection {
		if equalFold(tok, "close") || equalFold(tok, "keep-alive") || equalFold(tok, "upgrade") {
			continue
		}
		for i := range req.Headers {
			if !equalFoldBytes(req.Headers[i].Name, tok) {
				continue
			}
			switch req.kinds[i] {
			case fieldHost, fieldContentLength, fieldTransferEncoding, fieldWSKey, fieldWSVersion:
				return true
			}
			req.kinds[i] |= fieldNamedByConnection
		}
	}
	return false
}

// trailerNamesFraming reports whether a Trailer header announces
// Content-Length, Transfer-Encoding or Trailer.
func (req *Request) trailerNamesFraming() bool {
	for i, h := range req.Headers {
		if req.kinds[i]&^fieldNamedByConnection != fieldTrailer {
			continue
		}
		for p := 0; p < len(h.Value); {
			var e []byte
			e, p = nextListElement(h.Value, p)
			if equalFold(e, "content-length") || equalFold(e, "transfer-encoding") || equalFold(e, "trailer") {
				return true
			}
		}
	}
	return false
}

// selectUpgrade returns the first protocol in an Upgrade value (RFC 9110
// 7.8: protocol-name ["/" protocol-version], comma-separated) that the
// allow-list admits, or nil. A malformed list selects nothing, so the
// request stays plain.
func selectUpgrade(v []byte, lim *Limits) []byte {
	allow := defaultUpgrades
	if lim != nil && lim.Upgrades != nil {
		allow = lim.Upgrades
	}
	if len(allow) == 1 && isToken(v) && upgradeMatches(v, allow[0]) {
		return v // one protocol and one allowed, as is usual
	}
	for p := 0; p < len(v); {
		var e []byte
		e, p = nextListElement(v, p)
		if len(e) == 0 {
			continue
		}
		if !validProtocol(e) {
			return nil
		}
		for _, a := range allow {
			if upgradeMatches(e, a) {
				return e
			}
		}
	}
	return nil
}

// isWebSocketProtocol reports whether an Upgrade protocol is WebSocket:
// "websocket" (RFC 6455 4.1) or, though RFC 6455 defines no version,
// "websocket/<anything>". A versioned name reaches backends that match the
// protocol name loosely, so it must get the same checks: otherwise
// "Upgrade: websocket/13" would skip the Sec-WebSocket-Key and -Version
// checks and the GET rule, and get a tunnel that is not frame-aware.
func isWebSocketProtocol(p []byte) bool {
	return equalFold(p, "websocket") || hasPrefixFold(p, "websocket/")
}

// validProtocol: token ["/" token].
func validProtocol(p []byte) bool {
	slash := -1
	for i, c := range p {
		if c == '/' && slash < 0 && i > 0 {
			slash = i
			continue
		}
		if !isTchar(c) {
			return false
		}
	}
	return slash != len(p)-1
}

// upgradeMatches reports whether protocol p is admitted by allow-list entry
// a: equal, or a has no version and names p's protocol-name.
func upgradeMatches(p []byte, a string) bool {
	if equalFold(p, a) {
		return true
	}
	if strings.IndexByte(a, '/') >= 0 {
		return false
	}
	i := bytes.IndexByte(p, '/')
	return i > 0 && equalFold(p[:i], a)
}

var base64Strict = base64.StdEncoding.Strict()

// validWebSocketKey reports whether k is the base64 of 16 bytes (RFC 6455
// 4.1 item 7): 24 characters decoding to 16 bytes, into a stack array.
func validWebSocketKey(k []byte) bool {
	if len(k) != 24 {
		return false
	}
	var raw [18]byte
	n, err := base64Strict.Decode(raw[:], k)
	return err == nil && n == 16
}
