package handshake

import (
	"net/netip"
	"strconv"
)

// ClientInfo is what the rewrite needs to know about the client.
type ClientInfo struct {
	// IP is the client address, from the socket or a PROXY protocol header.
	IP netip.Addr
	// TLS: the client connected over TLS (X-Forwarded-Proto: https).
	TLS bool
	// Trusted: the immediate peer is in trusted_proxies, so the
	// X-Forwarded-For, X-Real-IP, X-Forwarded-Proto, X-Forwarded-Host and
	// Forwarded it sent are kept (X-Forwarded-For and Forwarded appended
	// to). From any other peer they are replaced, since a client could
	// otherwise claim any address to a backend that trusts them.
	Trusted bool
}

// HostMode selects the Host the backend receives.
type HostMode uint8

const (
	// HostPreserve sends the client's Host unchanged (nginx's $http_host),
	// port included, so backends that compare Origin with Host (gorilla,
	// socket.io allowRequest) see what the browser saw. An empty Host is
	// replaced by RewriteOptions.BackendAddr when that is set.
	HostPreserve HostMode = iota
	// HostBackend sends RewriteOptions.BackendAddr (nginx's default
	// "Host: $proxy_host").
	HostBackend
	// HostLiteral sends RewriteOptions.HostLiteral.
	HostLiteral
	// HostNginx sends what nginx's "proxy_set_header Host $host" of the
	// DESIGN.md recipe sends: the host lowercased, without port and trailing
	// dot. It is offered for exact nginx compatibility; dropping the port
	// breaks same-origin checks on non-default ports.
	HostNginx
)

// RewriteOptions controls AppendRewritten. The zero value is the default:
// preserve Host, no Forwarded header, the request's own target.
type RewriteOptions struct {
	HostMode    HostMode
	HostLiteral string // for HostLiteral
	BackendAddr string // host:port of the chosen backend, for HostBackend
	// Forwarded also emits an RFC 7239 Forwarded header
	// (for=<client>;host=<Host>;proto=<http|https>).
	Forwarded bool
	// Target, if non-nil, replaces the request target (e.g. after the
	// engine strips a route prefix). Empty means "/".
	Target []byte
	// ExtraHeaders are appended as they are, last.
	ExtraHeaders []Header
	// KeepAllNames forwards client fields whose name has a byte other than
	// ALPHA, DIGIT or "-" ("X_Forwarded_For", "X.Id"). By default they are
	// dropped, as nginx does (underscores_in_headers off,
	// ignore_invalid_headers on): CGI-style backends (WSGI, Rack, PHP's
	// $_SERVER) name "X-Forwarded-For" and "X-Forwarded_For" alike
	// (HTTP_X_FORWARDED_FOR), so the second would carry a client's claim
	// past the rule that replaces untrusted forwarding fields.
	KeepAllNames bool
}

// AppendRewritten appends to dst the head the backend receives for req,
// what nginx with the DESIGN.md recipe sends, and nothing of the body:
//
//	<method> <origin-form target> HTTP/1.1      (proxy_http_version 1.1)
//	Host: ...                                   (per HostMode)
//	X-Real-IP: <client ip>
//	X-Forwarded-For: [<trusted XFF>, ]<client ip>
//	Upgrade: <protocol>                         (only for an honoured upgrade)
//	Connection: upgrade | close                 ($connection_upgrade)
//	X-Forwarded-Proto: http | https
//	Forwarded: ...                              (with RewriteOptions.Forwarded)
//	Content-Length | Transfer-Encoding: chunked (the request's framing)
//	<the client's other headers, in order>
//	<ExtraHeaders>
//
// nginx sends proxy_set_header fields first in config order, then its
// defaults (the body framing), then the client's fields minus the ones it
// set or clears (Host, X-Real-IP, X-Forwarded-For, Upgrade, Connection,
// Content-Length, Transfer-Encoding, TE, Keep-Alive, Expect). wsgate keeps
// that order and adds X-Forwarded-Proto where a "proxy_set_header
// X-Forwarded-Proto $scheme;" appended to the recipe would put it. Unlike
// nginx it also drops the other hop-by-hop fields (Proxy-Connection,
// Trailer, every field the client's Connection names), the untrusted
// forwarding fields, and an Upgrade it does not honour (nginx's recipe
// passes "Upgrade: h2c" on). Like nginx it drops fields whose name is not
// ALPHA, DIGIT and "-" (see RewriteOptions.KeepAllNames).
//
// Client IPv4-mapped IPv6 addresses are written as IPv4, without zone. c and
// o may be nil. It allocates nothing when dst has room.
func AppendRewritten(dst []byte, req *Request, c *ClientInfo, o *RewriteOptions) []byte {
	var ci ClientInfo
	if c != nil {
		ci = *c
	}
	var opt RewriteOptions
	if o != nil {
		opt = *o
	}
	ip := ci.IP.Unmap().WithZone("")

	dst = append(dst, req.Method...)
	dst = append(dst, ' ')
	t := opt.Target
	if t == nil {
		t = req.Path
	}
	if len(t) == 0 || t[0] == '?' {
		dst = append(dst, '/')
	}
	dst = append(dst, t...)
	dst = append(dst, " HTTP/1.1\r\nHost: "...)
	switch opt.HostMode {
	case HostBackend:
		dst = append(dst, opt.BackendAddr...)
	case HostLiteral:
		dst = append(dst, opt.HostLiteral...)
	case HostNginx:
		dst = appendNginxHost(dst, req.Host, opt.BackendAddr)
	default:
		if len(req.Host) == 0 {
			dst = append(dst, opt.BackendAddr...)
		} else {
			dst = append(dst, req.Host...)
		}
	}
	dst = append(dst, "\r\n"...)

	// X-Real-IP: a trusted peer's own value, else the client address
	// (nginx: proxy_set_header X-Real-IP $remote_addr).
	if v := req.trustedValue(ci.Trusted, fieldXRealIP); v != nil {
		dst = appendField(dst, "X-Real-IP", v)
	} else if ip.IsValid() {
		dst = append(dst, "X-Real-IP: "...)
		dst = ip.AppendTo(dst)
		dst = append(dst, "\r\n"...)
	}

	// X-Forwarded-For: nginx's $proxy_add_x_forwarded_for, which appends to
	// what the client sent; wsgate appends only to a trusted peer's list.
	start := len(dst)
	dst = append(dst, "X-Forwarded-For: "...)
	n := 0
	if ci.Trusted {
		for i, h := range req.Headers {
			if req.kinds[i] == fieldXForwardedFor && len(h.Value) > 0 {
				if n > 0 {
					dst = append(dst, ", "...)
				}
				dst = append(dst, h.Value...)
				n++
			}
		}
	}
	if ip.IsValid() {
		if n > 0 {
			dst = append(dst, ", "...)
		}
		dst = ip.AppendTo(dst)
		n++
	}
	if n > 0 {
		dst = append(dst, "\r\n"...)
	} else {
		dst = dst[:start]
	}

	if req.IsUpgrade {
		dst = appendField(dst, "Upgrade", req.Upgrade)
		// $connection_upgrade maps to the literal "upgrade".
		dst = append(dst, "Connection: upgrade\r\n"...)
	} else {
		dst = append(dst, "Connection: close\r\n"...)
	}

	proto := "http"
	if ci.TLS {
		proto = "https"
	}
	if v := req.trustedValue(ci.Trusted, fieldXForwardedProto); v != nil {
		dst = appendField(dst, "X-Forwarded-Proto", v)
	} else {
		dst = append(dst, "X-Forwarded-Proto: "...)
		dst = append(dst, proto...)
		dst = append(dst, "\r\n"...)
	}

	if opt.Forwarded {
		dst = req.appendForwarded(dst, ci.Trusted, ip, proto)
	}

	switch req.Body {
	case BodyLength:
		dst = append(dst, "Content-Length: "...)
		dst = strconv.AppendInt(dst, req.ContentLength, 10)
		dst = append(dst, "\r\n"...)
	case BodyChunked:
		dst = append(dst, "Transfer-Encoding: chunked\r\n"...)
	}

	for i, h := range req.Headers {
		k := req.kinds[i]
		if k.hopByHop() {
			continue
		}
		switch k {
		case fieldHost, fieldContentLength, fieldXRealIP, fieldXForwardedFor, fieldXForwardedProto:
			continue // written above
		case fieldExpect:
			continue // nginx answers 100-continue itself and never forwards Expect
		case fieldXForwardedHost:
			if !ci.Trusted {
				continue
			}
		case fieldForwarded:
			if !ci.Trusted || opt.Forwarded {
				continue
			}
		case fieldOther:
			// Every name classify recognises is letters and '-'.
			if !opt.KeepAllNames && !isNginxFieldName(h.Name) {
				continue
			}
		}
		dst = appendHeader(dst, h)
	}
	for _, h := range opt.ExtraHeaders {
		dst = appendHeader(dst, h)
	}
	return append(dst, "\r\n"...)
}

// isNginxFieldName reports whether name has only the bytes nginx accepts
// in a field name by default: ALPHA, DIGIT and "-" (ngx_http_parse_header_line
// with underscores_in_headers off marks any other byte invalid).
func isNginxFieldName(name []byte) bool {
	for _, c := range name {
		// c|0x20 folds A-Z onto a-z and maps no other byte into a-z.
		if l := c | 0x20; (l < 'a' || l > 'z') && !isDigit(c) && c != '-' {
			return false
		}
	}
	return true
}

// appendField appends "name: value\r\n".
func appendField(dst []byte, name string, value []byte) []byte {
	dst = append(dst, name...)
	dst = append(dst, ": "...)
	dst = append(dst, value...)
	return append(dst, "\r\n"...)
}

// appendHeader appends h as "Name: Value\r\n".
func appendHeader(dst []byte, h Header) []byte {
	dst = append(dst, h.Name...)
	dst = append(dst, ": "...)
	dst = append(dst, h.Value...)
	return append(dst, "\r\n"...)
}

// trustedValue returns the first value of a forwarding field when the peer
// is trusted and sent one (not named by its Connection), else nil.
func (req *Request) trustedValue(trusted bool, k fieldKind) []byte {
	if !trusted {
		return nil
	}
	for i, h := range req.Headers {
		if req.kinds[i] == k && len(h.Value) > 0 {
			return h.Value
		}
	}
	return nil
}

// appendForwarded appends an RFC 7239 Forwarded header: a trusted peer's
// elements, then this hop's "for=...;host=...;proto=...". IPv6 nodes and
// hosts with a port are quoted (RFC 7239 4, 6).
func (req *Request) appendForwarded(dst []byte, trusted bool, ip netip.Addr, proto string) []byte {
	dst = append(dst, "Forwarded: "...)
	if trusted {
		for i, h := range req.Headers {
			if req.kinds[i] == fieldForwarded && len(h.Value) > 0 {
				dst = append(dst, h.Value...)
				dst = append(dst, ", "...)
			}
		}
	}
	dst = append(dst, "for="...)
	switch {
	case !ip.IsValid():
		dst = append(dst, "unknown"...)
	case ip.Is6():
		dst = append(dst, `"[`...)
		dst = ip.AppendTo(dst)
		dst = append(dst, `]"`...)
	default:
		dst = ip.AppendTo(dst)
	}
	if len(req.Host) > 0 {
		dst = append(dst, ";host="...)
		if isToken(req.Host) {
			dst = append(dst, req.Host...)
		} else {
			// validHost admits no '"' or '\\': quoting needs no escapes.
			dst = append(dst, '"')
			dst = append(dst, req.Host...)
			dst = append(dst, '"')
		}
	}
	dst = append(dst, ";proto="...)
	dst = append(dst, proto...)
	return append(dst, "\r\n"...)
}

func isToken(b []byte) bool {
	for _, c := range b {
		if !isTchar(c) {
			return false
		}
	}
	return len(b) > 0
}

// appendNginxHost appends nginx's $host for a Host value: lowercased,
// without port and trailing dot (ngx_http_validate_host), or fallback when
// it is empty.
func appendNginxHost(dst, host []byte, fallback string) []byte {
	end := len(host)
	if len(host) > 0 && host[0] == '[' {
		for i, c := range host {
			if c == ']' {
				end = i + 1
				break
			}
		}
	} else {
		for i, c := range host {
			if c == ':' {
				end = i
				break
			}
		}
	}
	for end > 0 && host[end-1] == '.' {
		end--
	}
	if end == 0 {
		return append(dst, fallback...)
	}
	for _, c := range host[:end] {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// ValidToken reports whether b is an RFC 9110 5.6.2 token: what a field
// name or a cookie name must be.
func ValidToken(b []byte) bool { return isToken(b) }
