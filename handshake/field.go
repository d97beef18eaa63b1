package handshake

import (
	"bytes"

	"github.com/gobwas/httphead"
)

// Header is one header line: name and value (OWS trimmed), both slices of
// the head they were parsed from.
type Header struct{ Name, Value []byte }

// fieldKind is what a header name means to wsgate; parsing records it once
// per line so that rewriting never compares names again.
type fieldKind uint8

const (
	fieldOther fieldKind = iota
	fieldHost
	fieldConnection
	fieldUpgrade
	fieldContentLength
	fieldTransferEncoding
	fieldKeepAlive
	fieldProxyConnection
	fieldTE
	fieldTrailer
	fieldExpect
	fieldXRealIP
	fieldXForwardedFor
	fieldXForwardedProto
	fieldXForwardedHost
	fieldForwarded
	fieldWSKey
	fieldWSVersion
	fieldWSProtocol
	fieldWSAccept
	fieldOrigin

	// fieldNamedByConnection is or-ed into a kind when a Connection option
	// names the field: it is then hop-by-hop (RFC 9110 7.6.1).
	fieldNamedByConnection fieldKind = 0x80
)

// hopByHopNames are the header fields a proxy must not forward (RFC 9110
// 7.6.1: Connection and every field it names, plus the fields RFC 9110 and
// RFC 2616 13.5.1 define as connection-specific: Keep-Alive,
// Proxy-Connection, TE, Trailer, Transfer-Encoding and Upgrade), the set
// Go's httputil.ReverseProxy strips too. fieldKind.hopByHop is the rule
// itself; this list is its readable form (the tests hold them together).
var hopByHopNames = []string{
	"Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Transfer-Encoding", "Upgrade",
}

// hopByHop reports whether a field of kind k is hop-by-hop: one of
// hopByHopNames or named by a Connection option. wsgate re-creates Upgrade
// and Connection itself and forwards Transfer-Encoding: chunked unchanged,
// because it passes chunked bodies through byte for byte.
func (k fieldKind) hopByHop() bool {
	if k&fieldNamedByConnection != 0 {
		return true
	}
	switch k {
	case fieldConnection, fieldKeepAlive, fieldProxyConnection, fieldTE, fieldTrailer,
		fieldTransferEncoding, fieldUpgrade:
		return true
	}
	return false
}

// classify returns the kind of a header name. Names are compared ASCII
// case-insensitively (RFC 9110 5.1). The switch on length and first letter
// leaves at most one candidate to compare, so the names wsgate does not care
// about (most of them) cost one jump.
func classify(name []byte) fieldKind {
	if len(name) < 2 || len(name) > 22 {
		return fieldOther
	}
	var want string
	var kind fieldKind
	switch len(name)<<8 | int(toLower[name[0]]) {
	case 2<<8 | 't':
		want, kind = "te", fieldTE
	case 4<<8 | 'h':
		want, kind = "host", fieldHost
	case 6<<8 | 'o':
		want, kind = "origin", fieldOrigin
	case 6<<8 | 'e':
		want, kind = "expect", fieldExpect
	case 7<<8 | 'u':
		want, kind = "upgrade", fieldUpgrade
	case 7<<8 | 't':
		want, kind = "trailer", fieldTrailer
	case 9<<8 | 'x':
		want, kind = "x-real-ip", fieldXRealIP
	case 9<<8 | 'f':
		want, kind = "forwarded", fieldForwarded
	case 10<<8 | 'c':
		want, kind = "connection", fieldConnection
	case 10<<8 | 'k':
		want, kind = "keep-alive", fieldKeepAlive
	case 14<<8 | 'c':
		want, kind = "content-length", fieldContentLength
	case 15<<8 | 'x':
		want, kind = "x-forwarded-for", fieldXForwardedFor
	case 16<<8 | 'p':
		want, kind = "proxy-connection", fieldProxyConnection
	case 16<<8 | 'x':
		want, kind = "x-forwarded-host", fieldXForwardedHost
	case 17<<8 | 't':
		want, kind = "transfer-encoding", fieldTransferEncoding
	case 17<<8 | 'x':
		want, kind = "x-forwarded-proto", fieldXForwardedProto
	case 17<<8 | 's':
		want, kind = "sec-websocket-key", fieldWSKey
	case 20<<8 | 's':
		want, kind = "sec-websocket-accept", fieldWSAccept
	case 21<<8 | 's':
		want, kind = "sec-websocket-version", fieldWSVersion
	case 22<<8 | 's':
		want, kind = "sec-websocket-protocol", fieldWSProtocol
	default:
		return fieldOther
	}
	if equalFold(name, want) {
		return kind
	}
	return fieldOther
}

// equalFold reports whether b equals s under ASCII case folding. It is
// bytes.EqualFold without Unicode: bytes.EqualFold folds "\u212a" (Kelvin
// sign) to "k", so "chun\u212aed" would equal "chunked" there, while HTTP
// compares tokens as ASCII (RFC 9110 5.1, 5.6.2) and other parsers would not
// see "chunked" at all. One table look-up per byte keeps it branch-light:
// classify runs it on every header name.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		if toLower[b[i]] != toLower[s[i]] {
			return false
		}
	}
	return true
}

// equalFoldBytes is equalFold for two byte slices.
func equalFoldBytes(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if toLower[a[i]] != toLower[b[i]] {
			return false
		}
	}
	return true
}

// toLower maps ASCII upper-case letters to lower case and every other byte
// to itself.
var toLower = func() (t [256]byte) {
	for i := range t {
		t[i] = byte(i)
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = byte(c) + 'a' - 'A'
	}
	return t
}()

// isTchar reports whether c is a token character (RFC 9110 5.6.2).
func isTchar(c byte) bool { return httphead.OctetTypes[c].IsToken() }

// parseFieldLine splits one header line (without its CRLF) into name and
// value with httphead.ParseHeaderLine, which finds the colon, checks that
// the name is a token and trims OWS, and adds the checks it leaves out: a
// leading SP/HTAB (obs-fold, which httphead would return as a header of its
// own), an empty name (": v"), and whitespace before the colon (httphead
// trims the name, so "Host : x" would read as Host).
func parseFieldLine(line []byte) (name, value []byte, rej *Reject) {
	if line[0] == ' ' || line[0] == '\t' {
		return nil, nil, ErrObsFold
	}
	name, value, ok := httphead.ParseHeaderLine(line)
	switch {
	case !ok:
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			return nil, nil, ErrHeaderNoColon
		}
		if c := line[colon-1]; c == ' ' || c == '\t' {
			return nil, nil, ErrSpaceBeforeColon
		}
		return nil, nil, ErrBadHeaderName
	case len(name) == 0:
		return nil, nil, ErrBadHeaderName
	case line[len(name)] != ':':
		// name is line's prefix: what follows it was trimmed whitespace.
		return nil, nil, ErrSpaceBeforeColon
	}
	return name, value, nil
}

// scanTokenList calls it for each token of a #token list (RFC 9110 5.6.1)
// using httphead.ScanTokens, and reports whether v is one. An empty list
// (only OWS and commas) is valid.
//
// httphead's lexer skips spaces between items, so on its own it reads
// "keep-alive Upgrade" as two tokens, where RFC 9110 5.6.1 and other
// parsers (Go's httpguts, which splits on commas only) see one malformed
// element and no "upgrade" option; scanTokenList refuses two tokens without
// a comma between them. The lexer also treats only SP, not HTAB, as
// whitespace, so a tab in a list's OWS is reported malformed: stricter than
// RFC 9110, never seen from real clients.
func scanTokenList(v []byte, it func(tok []byte) bool) bool {
	if isEmptyList(v) {
		return true
	}
	prev := -1 // offset in v of the end of the previous token
	adjacent := false
	ok := httphead.ScanTokens(v, func(tok []byte) bool {
		// tok is a subslice of v, so their capacities give its offset.
		start := cap(v) - cap(tok)
		if prev >= 0 && bytes.IndexByte(v[prev:start], ',') < 0 {
			adjacent = true
			return false
		}
		prev = start + len(tok)
		return it(tok)
	})
	return ok && !adjacent
}

func isEmptyList(v []byte) bool {
	for _, c := range v {
		if c != ',' && c != ' ' && c != '\t' {
			return false
		}
	}
	return true
}

// nextListElement returns the next element of a comma-separated list value
// starting at v[pos:], OWS trimmed (possibly empty), and the position after
// it. It is used for lists whose elements are not plain tokens
// (Upgrade's protocol/version, Trailer's field names).
func nextListElement(v []byte, pos int) (elem []byte, next int) {
	end := bytes.IndexByte(v[pos:], ',')
	if end < 0 {
		end = len(v)
		next = len(v)
	} else {
		end += pos
		next = end + 1
	}
	elem = v[pos:end]
	for len(elem) > 0 && (elem[0] == ' ' || elem[0] == '\t') {
		elem = elem[1:]
	}
	for len(elem) > 0 && (elem[len(elem)-1] == ' ' || elem[len(elem)-1] == '\t') {
		elem = elem[:len(elem)-1]
	}
	return elem, next
}
