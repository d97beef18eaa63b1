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

// HopByHop lists the header fields a proxy must not forward (RFC 9110 7.6.1:
// Connection and every field it names, plus the fields RFC 9110 and RFC 2616
// 13.5.1 define as connection-specific: Keep-Alive, Proxy-Connection, TE,
// Trailer, Transfer-Encoding and Upgrade). This is the set Go's
// httputil.ReverseProxy strips too. wsgate re-creates Upgrade and Connection
// itself, and forwards Transfer-Encoding: chunked unchanged, because it
// passes chunked bodies through byte for byte instead of re-framing them.
var HopByHop = []string{
	"Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Transfer-Encoding", "Upgrade",
}

// classify returns the kind of a header name. Names are compared ASCII
// case-insensitively (RFC 9110 5.1).
func classify(name []byte) fieldKind {
	switch len(name) {
	case 2:
		if equalFold(name, "te") {
			return fieldTE
		}
	case 4:
		if equalFold(name, "host") {
			return fieldHost
		}
	case 6:
		switch {
		case equalFold(name, "origin"):
			return fieldOrigin
		case equalFold(name, "expect"):
			return fieldExpect
		}
	case 7:
		switch {
		case equalFold(name, "upgrade"):
			return fieldUpgrade
		case equalFold(name, "trailer"):
			return fieldTrailer
		}
	case 9:
		switch {
		case equalFold(name, "x-real-ip"):
			return fieldXRealIP
		case equalFold(name, "forwarded"):
			return fieldForwarded
		}
	case 10:
		switch {
		case equalFold(name, "connection"):
			return fieldConnection
		case equalFold(name, "keep-alive"):
			return fieldKeepAlive
		}
	case 14:
		if equalFold(name, "content-length") {
			return fieldContentLength
		}
	case 15:
		if equalFold(name, "x-forwarded-for") {
			return fieldXForwardedFor
		}
	case 16:
		switch {
		case equalFold(name, "proxy-connection"):
			return fieldProxyConnection
		case equalFold(name, "x-forwarded-host"):
			return fieldXForwardedHost
		}
	case 17:
		switch {
		case equalFold(name, "transfer-encoding"):
			return fieldTransferEncoding
		case equalFold(name, "x-forwarded-proto"):
			return fieldXForwardedProto
		case equalFold(name, "sec-websocket-key"):
			return fieldWSKey
		}
	case 20:
		if equalFold(name, "sec-websocket-accept") {
			return fieldWSAccept
		}
	case 21:
		if equalFold(name, "sec-websocket-version") {
			return fieldWSVersion
		}
	case 22:
		if equalFold(name, "sec-websocket-protocol") {
			return fieldWSProtocol
		}
	}
	return fieldOther
}

// equalFold reports whether b equals s under ASCII case folding. It is
// bytes.EqualFold without Unicode: bytes.EqualFold folds "\u212a" (Kelvin
// sign) to "k", so "chun\u212aed" would equal "chunked" there, while HTTP
// compares tokens as ASCII (RFC 9110 5.1, 5.6.2) and other parsers would not
// see "chunked" at all.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c, d := b[i], s[i]
		if c == d {
			continue
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
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
		c, d := a[i], b[i]
		if c == d {
			continue
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

// isTchar reports whether c is a token character (RFC 9110 5.6.2).
func isTchar(c byte) bool { return httphead.OctetTypes[c].IsToken() }

// parseFieldLine splits one header line (without its CRLF) into name and
// value. httphead.ParseHeaderLine finds the colon, checks the name is a
// token and trims OWS; before it, the checks httphead leaves out: a leading
// SP/HTAB (obs-fold, which httphead would return as a header of its own), an
// empty name, and whitespace before the colon (httphead trims the name, so
// "Host : x" would read as Host).
func parseFieldLine(line []byte) (name, value []byte, rej *Reject) {
	if line[0] == ' ' || line[0] == '\t' {
		return nil, nil, ErrObsFold
	}
	colon := bytes.IndexByte(line, ':')
	switch {
	case colon < 0:
		return nil, nil, ErrHeaderNoColon
	case colon == 0:
		return nil, nil, ErrBadHeaderName
	case line[colon-1] == ' ' || line[colon-1] == '\t':
		return nil, nil, ErrSpaceBeforeColon
	}
	name, value, ok := httphead.ParseHeaderLine(line)
	if !ok {
		return nil, nil, ErrBadHeaderName
	}
	return name, value, nil
}

// scanTokenList calls it for each token of a #token list (RFC 9110 5.6.1)
// using httphead.ScanTokens. An empty list (only OWS and commas) is valid.
// httphead's lexer treats only SP, not HTAB, as whitespace, so a list with a
// tab in its OWS is reported malformed: stricter than RFC 9110, never seen
// from real clients.
func scanTokenList(v []byte, it func(tok []byte) bool) bool {
	if isEmptyList(v) {
		return true
	}
	return httphead.ScanTokens(v, it)
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
