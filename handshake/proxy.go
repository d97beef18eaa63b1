package handshake

import (
	"encoding/binary"
	"hash/crc32"
	"net/netip"
)

// PROXY protocol, versions 1 and 2, as specified in HAProxy's
// doc/proxy-protocol.txt (cited below as "PP" with its section numbers).
// A listener behind an L4 load balancer reads the header the balancer
// prepends to learn the client's address; wsgate writes a v2 header to
// backends that want the same. PP 2 requires the receiver to expect the
// header because configuration says so, never to guess whether one is
// there: on a PROXY listener a connection without one is refused
// (ErrProxyMissing), and a listener without the option never calls
// ParseProxy.

// Limits on a PROXY header.
const (
	// MaxProxyV1Bytes is the longest v1 line, CRLF included: PP 2.1's
	// worst case, "PROXY UNKNOWN" with two full-length IPv6 addresses and
	// ports. A receiver that finds no CRLF in the first 107 bytes must
	// declare the line invalid (PP 2.1).
	MaxProxyV1Bytes = 107
	// MaxProxyV2Len caps the length a v2 header declares (the 16-bit field
	// after the fixed 16 bytes, PP 2.2). The protocol allows 65535; what a
	// balancer really sends is an address block (at most 216 bytes, AF_UNIX)
	// and a few TLVs (ALPN, SNI, a unique ID of at most 128 bytes, TLS
	// names, a cloud's endpoint ID), well under 1 KiB. 4 KiB leaves room
	// for that and keeps what a peer can make wsgate buffer before its
	// first HTTP byte as small as the head buffers (DESIGN.md: the head
	// phase's memory is what dominates per connection).
	MaxProxyV2Len = 4096
	// MaxProxyHeaderBytes is the most bytes ParseProxy can need: given
	// that many it always returns a header or an error, never "need
	// more". A caller can size its buffer with it.
	MaxProxyHeaderBytes = proxyV2FixedLen + MaxProxyV2Len
)

// Signatures (PP 2.1, 2.2). The v2 one holds a NUL, CR LF pairs and "QUIT"
// so that it fails at once on HTTP, TLS, SMTP and the like (PP 6).
const (
	proxyV1Sig      = "PROXY"
	proxyV2Sig      = "\r\n\r\n\x00\r\nQUIT\n"
	proxyV2FixedLen = len(proxyV2Sig) + 4 // signature, ver_cmd, fam, len
)

// Rejections of a PROXY header. The engine closes the connection without an
// HTTP answer (the peer is a load balancer, not a browser) and counts it by
// Reason; Status is 400 so that a *Reject stays one shape everywhere.
var (
	// ErrProxyMissing: a connection on a PROXY listener that does not start
	// with either signature. PP 2.2: "the protocol is not covered by this
	// specification and the connection must be dropped"; accepting it as
	// plain HTTP would let any client that reaches the listener directly
	// choose its own address (PP 5).
	ErrProxyMissing = newReject(400, "proxy_missing", "connection does not start with a PROXY protocol header")
	// ErrProxyBadV1: a "PROXY" line that does not match PP 2.1 exactly:
	// anything but single spaces, a protocol other than TCP4, TCP6 or
	// UNKNOWN, an address not of the announced family or not canonical
	// (leading zeros, IPv6 zone), a port out of 0..65535 or with a leading
	// zero, a control byte, or a line not ended by CRLF. PP 2.1: "any
	// sequence which does not exactly match the protocol must be discarded".
	ErrProxyBadV1 = newReject(400, "proxy_bad_v1", "malformed PROXY protocol v1 header")
	// ErrProxyBadV2: a v2 header with a version other than 2, a command
	// other than LOCAL or PROXY, an undefined family/transport byte, an
	// address block shorter than its family needs, a TLV overrunning the
	// header, a repeated ALPN, AUTHORITY or CRC32C TLV, or a CRC32C that does
	// not match (PP 2.2, 2.2.3).
	ErrProxyBadV2 = newReject(400, "proxy_bad_v2", "malformed PROXY protocol v2 header")
	// ErrProxyTooLong: a v1 line without CRLF within MaxProxyV1Bytes, or a
	// v2 header declaring more than MaxProxyV2Len bytes.
	ErrProxyTooLong = newReject(400, "proxy_too_long", "PROXY protocol header too long")
	// ErrProxyUntrusted: a well-formed header from a peer that the
	// engine's trusted_proxies does not list: a client claiming to be a
	// balancer, to choose the address wsgate reports for it.
	ErrProxyUntrusted = newReject(400, "proxy_untrusted", "PROXY protocol header from an untrusted peer")
)

// ProxyRejects returns the PROXY header rejections, for registering their
// metrics up front (shared values: do not modify).
func ProxyRejects() []*Reject {
	return []*Reject{ErrProxyMissing, ErrProxyBadV1, ErrProxyBadV2, ErrProxyTooLong, ErrProxyUntrusted}
}

// ProxyCommand is the v2 command (PP 2.2, low nibble of the 13th byte).
type ProxyCommand uint8

const (
	// ProxyLocal: the balancer opened the connection itself (a health
	// check); the connection's own endpoints are the real ones.
	ProxyLocal ProxyCommand = 0
	// ProxyProxy: the connection is relayed for a client. Every v1 header
	// is a ProxyProxy.
	ProxyProxy ProxyCommand = 1
)

func (c ProxyCommand) String() string {
	if c == ProxyLocal {
		return "LOCAL"
	}
	return "PROXY"
}

// ProxyFamily is the announced address family. The values are those of the
// v2 family nibble (PP 2.2).
type ProxyFamily uint8

const (
	ProxyUnspec ProxyFamily = 0 // v1 UNKNOWN, v2 AF_UNSPEC (and every LOCAL)
	ProxyInet   ProxyFamily = 1 // v1 TCP4, v2 AF_INET
	ProxyInet6  ProxyFamily = 2 // v1 TCP6, v2 AF_INET6
	ProxyUnix   ProxyFamily = 3 // v2 AF_UNIX
)

func (f ProxyFamily) String() string {
	switch f {
	case ProxyInet:
		return "INET"
	case ProxyInet6:
		return "INET6"
	case ProxyUnix:
		return "UNIX"
	}
	return "UNSPEC"
}

// ProxyHeader is a parsed PROXY header.
type ProxyHeader struct {
	Version uint8 // 1 or 2
	Command ProxyCommand
	Family  ProxyFamily
	// Src is the client and Dst the address it connected to, valid only
	// for a relayed TCP connection (v1 TCP4/TCP6, v2 PROXY over STREAM in
	// AF_INET/AF_INET6). Otherwise both are the zero AddrPort (IsValid is
	// false) and the connection's own addresses are to be used: LOCAL, v1
	// UNKNOWN and v2 UNSPEC by definition (PP 2.1, 2.2), and the valid v2
	// combinations wsgate does not carry (UDP, AF_UNIX), which PP 2.2 has a
	// receiver fall back to UNSPEC for. IPv4-mapped IPv6 addresses are
	// returned as sent (see netip.Addr.Unmap).
	Src, Dst netip.AddrPort
	// Authority (PP2_TYPE_AUTHORITY, the client's SNI or host name) and
	// ALPN (PP2_TYPE_ALPN) are the v2 TLV values, or nil. They point into
	// the parsed buffer and are not validated: check them before use.
	Authority, ALPN []byte
}

// ParseProxy parses the PROXY header (v1 or v2) at the start of buf, the
// bytes received so far on a connection; call it again with the longer
// buffer when more arrive. It returns:
//
//   - n > 0, nil: the header is buf[:n] and h describes it; buf[n:] is the
//     client's own data, not examined.
//   - 0, nil: buf is a prefix of a header that may still be valid (every
//     strict prefix of a valid header gives this); read more. This never
//     happens once len(buf) >= MaxProxyHeaderBytes.
//   - 0, a *Reject (one of ErrProxyMissing, ErrProxyBadV1, ErrProxyBadV2,
//     ErrProxyTooLong): close the connection. The error is reported as soon
//     as the bytes already received rule a valid header out (PP 2.1
//     recommends aborting as soon as possible), and more bytes never turn
//     it into another result.
//
// It never reads beyond len(buf) and allocates nothing. h is written only
// on success. No state is kept between calls: a header is at most
// MaxProxyHeaderBytes, almost always arrives in one read (PP 2.1, 2.2), and
// a v2 header is not scanned at all before it is complete.
func ParseProxy(buf []byte, h *ProxyHeader) (n int, err error) {
	if len(buf) == 0 {
		return 0, nil
	}
	// PP 2.2 tells the versions apart by their first byte already: 'P' for
	// v1, CR for v2.
	switch buf[0] {
	case proxyV1Sig[0]:
		return parseProxyV1(buf, h)
	case proxyV2Sig[0]:
		return parseProxyV2(buf, h)
	}
	return 0, ErrProxyMissing
}

// proxyPrefix reports whether buf and sig agree on their common length.
func proxyPrefix(buf []byte, sig string) bool {
	k := min(len(buf), len(sig))
	return string(buf[:k]) == sig[:k]
}

// parseProxyV1 parses "PROXY <proto> <src> <dst> <sport> <dport>\r\n" (PP
// 2.1). PP 2.1 has the receiver wait for the CRLF before decoding the
// addresses; until then only the bytes are checked, so that a line with a
// control byte or a bare LF fails at once rather than at 107 bytes.
func parseProxyV1(buf []byte, h *ProxyHeader) (int, error) {
	if !proxyPrefix(buf, proxyV1Sig) {
		return 0, ErrProxyMissing
	}
	// The space and the protocol name can be checked before the line ends:
	// "PROXY" followed by anything else is refused at once.
	if len(buf) > len(proxyV1Sig) {
		rest := buf[len(proxyV1Sig):]
		if !proxyPrefix(rest, " TCP4 ") && !proxyPrefix(rest, " TCP6 ") && !proxyPrefix(rest, " UNKNOWN") {
			return 0, ErrProxyBadV1
		}
	}
	limit := min(len(buf), MaxProxyV1Bytes)
	cr := -1
	for i := len(proxyV1Sig); i < limit; i++ {
		c := buf[i]
		if c == '\r' {
			cr = i
			break
		}
		// US-ASCII text (PP 2.1); this also refuses a bare LF, which PP 2.1
		// forbids as a line end.
		if c < 0x20 || c > 0x7e {
			return 0, ErrProxyBadV1
		}
	}
	switch {
	case cr < 0 && len(buf) >= MaxProxyV1Bytes, cr+2 > MaxProxyV1Bytes:
		return 0, ErrProxyTooLong
	case cr < 0 || cr+1 == len(buf):
		return 0, nil
	case buf[cr+1] != '\n':
		// PP 2.1: a single CR must not end the line.
		return 0, ErrProxyBadV1
	}
	var hdr ProxyHeader
	if !parseProxyV1Line(buf[len(proxyV1Sig):cr], &hdr) {
		return 0, ErrProxyBadV1
	}
	*h = hdr
	return cr + 2, nil
}

// parseProxyV1Line parses the line after "PROXY", without its CRLF.
func parseProxyV1Line(s []byte, h *ProxyHeader) bool {
	h.Version, h.Command = 1, ProxyProxy
	switch {
	case proxyHasPrefix(s, " UNKNOWN"):
		// PP 2.1: for UNKNOWN the receiver must ignore anything before the
		// CRLF (the sender may omit the addresses or send anything there).
		rest := s[len(" UNKNOWN"):]
		return len(rest) == 0 || rest[0] == ' '
	case proxyHasPrefix(s, " TCP4 "):
		h.Family = ProxyInet
	case proxyHasPrefix(s, " TCP6 "):
		h.Family = ProxyInet6
	default:
		return false
	}
	s = s[len(" TCP4 "):]
	// Exactly four fields separated by exactly one space each (PP 2.1):
	// an empty field (two spaces) or a fifth field fails below.
	var f [4][]byte
	for i := range 3 {
		sp := proxyIndexSpace(s)
		if sp < 0 {
			return false
		}
		f[i], s = s[:sp], s[sp+1:]
	}
	f[3] = s
	src, ok1 := proxyParseAddr(f[0], h.Family)
	dst, ok2 := proxyParseAddr(f[1], h.Family)
	sport, ok3 := proxyParsePort(f[2])
	dport, ok4 := proxyParsePort(f[3])
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return false
	}
	h.Src = netip.AddrPortFrom(src, sport)
	h.Dst = netip.AddrPortFrom(dst, dport)
	return true
}

func proxyHasPrefix(b []byte, s string) bool {
	return len(b) >= len(s) && string(b[:len(s)]) == s
}

func proxyIndexSpace(b []byte) int {
	for i, c := range b {
		if c == ' ' {
			return i
		}
	}
	return -1
}

// proxyParseAddr parses a v1 address of the announced family: "TCP4" with
// an IPv6 address or "TCP6" with an IPv4 one is invalid (PP 2.1: "the
// advertised protocol family dictates what format to use").
func proxyParseAddr(s []byte, fam ProxyFamily) (netip.Addr, bool) {
	if fam == ProxyInet {
		a, ok := proxyParseIPv4(s)
		return netip.AddrFrom4(a), ok
	}
	return proxyParseIPv6(s)
}

// proxyParsePort parses a decimal port in 0..65535 without leading zeros
// (PP 2.1: "heading zeroes are not permitted ... to avoid any possible
// confusion with octal numbers").
func proxyParsePort(s []byte) (uint16, bool) {
	if len(s) == 0 || len(s) > 5 || (s[0] == '0' && len(s) > 1) {
		return 0, false
	}
	v := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	if v > 65535 {
		return 0, false
	}
	return uint16(v), true
}

// proxyParseIPv4 parses exactly four decimal numbers in 0..255 separated by
// single dots, without leading zeros (PP 2.1). It accepts what
// netip.ParseAddr accepts for IPv4, which takes a string and would allocate
// here.
func proxyParseIPv4(s []byte) (a [4]byte, ok bool) {
	pos, val, digits := 0, 0, 0
	for _, c := range s {
		switch {
		case '0' <= c && c <= '9':
			if digits == 1 && val == 0 {
				return a, false // leading zero
			}
			val = val*10 + int(c-'0')
			digits++
			if val > 255 {
				return a, false
			}
		case c == '.':
			if digits == 0 || pos == 3 {
				return a, false
			}
			a[pos] = byte(val)
			pos, val, digits = pos+1, 0, 0
		default:
			return a, false
		}
	}
	if pos != 3 || digits == 0 {
		return a, false
	}
	a[3] = byte(val)
	return a, true
}

// proxyParseIPv6 parses an RFC 4291 2.2 text address: up to eight groups of
// one to four hex digits, at most one "::" standing for at least one zero
// group, optionally ending in a dotted IPv4 address (inet_ntop writes
// IPv4-mapped addresses that way, so PROXY senders do). Zones are refused:
// PP 2.1 carries 128 bits, nothing else. It accepts exactly what
// netip.ParseAddr accepts for IPv6 without a zone (the fuzz test checks).
func proxyParseIPv6(s []byte) (netip.Addr, bool) {
	var ip [16]byte
	ellipsis := -1 // index in ip where "::" stands
	if len(s) >= 2 && s[0] == ':' && s[1] == ':' {
		ellipsis = 0
		s = s[2:]
		if len(s) == 0 {
			return netip.IPv6Unspecified(), true
		}
	}
	i := 0
	for i < 16 {
		off, acc := 0, 0
		for ; off < len(s); off++ {
			v := proxyHexVal(s[off])
			if v < 0 {
				break
			}
			if off == 4 {
				return netip.Addr{}, false // more than 4 digits
			}
			acc = acc<<4 | v
		}
		if off == 0 {
			return netip.Addr{}, false
		}
		if off < len(s) && s[off] == '.' {
			// The embedded IPv4 address fills the last 32 bits.
			if (ellipsis < 0 && i != 12) || i > 12 {
				return netip.Addr{}, false
			}
			a, ok := proxyParseIPv4(s)
			if !ok {
				return netip.Addr{}, false
			}
			copy(ip[i:], a[:])
			i += 4
			s = nil
			break
		}
		ip[i], ip[i+1] = byte(acc>>8), byte(acc)
		i += 2
		s = s[off:]
		if len(s) == 0 {
			break
		}
		if s[0] != ':' || len(s) == 1 {
			return netip.Addr{}, false
		}
		s = s[1:]
		if s[0] == ':' {
			if ellipsis >= 0 {
				return netip.Addr{}, false // a second "::"
			}
			ellipsis = i
			s = s[1:]
			if len(s) == 0 {
				break
			}
		}
	}
	if len(s) != 0 {
		return netip.Addr{}, false // more than 128 bits
	}
	if i < 16 {
		if ellipsis < 0 {
			return netip.Addr{}, false // fewer than 128 bits
		}
		n := 16 - i
		copy(ip[ellipsis+n:], ip[ellipsis:i])
		clear(ip[ellipsis : ellipsis+n])
	} else if ellipsis >= 0 {
		return netip.Addr{}, false // "::" standing for no group
	}
	return netip.AddrFrom16(ip), true
}

func proxyHexVal(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// v2 family/transport bytes (PP 2.2, "in practice, the following protocol
// bytes are expected"). Every other value "must be rejected as invalid by
// receivers".
const (
	proxyFamUnspec     = 0x00
	proxyFamTCP4       = 0x11
	proxyFamUDP4       = 0x12
	proxyFamTCP6       = 0x21
	proxyFamUDP6       = 0x22
	proxyFamUnixStream = 0x31
	proxyFamUnixDgram  = 0x32
)

// proxyV2AddrLen is the address block length of each family (PP 2.2):
// two addresses and, for INET/INET6, two 16-bit ports.
var proxyV2AddrLen = [4]int{0, 2*4 + 2*2, 2*16 + 2*2, 2 * 108}

// TLV types wsgate interprets (PP 2.2.1 to 2.2.3).
const (
	proxyTLVALPN      = 0x01
	proxyTLVAuthority = 0x02
	proxyTLVCRC32C    = 0x03
)

// proxyCastagnoli is the CRC32c table (PP 2.2.3 refers to RFC 4960
// appendix B, the Castagnoli polynomial); read-only after init.
var proxyCastagnoli = crc32.MakeTable(crc32.Castagnoli)

// proxyCRCZero stands for the checksum field while the checksum is
// computed; never written. (A local array would escape into crc32's
// assembly and allocate.)
var proxyCRCZero [4]byte

// parseProxyV2 parses the binary header (PP 2.2). Each fixed byte is
// checked as soon as it has arrived, and the declared length as soon as the
// 16 fixed bytes have, so a bad or oversized header fails before wsgate
// waits for (and buffers) its body.
func parseProxyV2(buf []byte, h *ProxyHeader) (int, error) {
	if !proxyPrefix(buf, proxyV2Sig) {
		return 0, ErrProxyMissing
	}
	if len(buf) <= len(proxyV2Sig) {
		return 0, nil
	}
	// PP 2.2: the version must be 2 and "the receiver must only accept this
	// value"; commands other than LOCAL and PROXY "must" drop the connection.
	verCmd := buf[len(proxyV2Sig)]
	if verCmd>>4 != 2 || verCmd&0x0f > byte(ProxyProxy) {
		return 0, ErrProxyBadV2
	}
	cmd := ProxyCommand(verCmd & 0x0f)
	if len(buf) <= len(proxyV2Sig)+1 {
		return 0, nil
	}
	fam := buf[len(proxyV2Sig)+1]
	switch fam {
	case proxyFamUnspec, proxyFamTCP4, proxyFamUDP4, proxyFamTCP6, proxyFamUDP6,
		proxyFamUnixStream, proxyFamUnixDgram:
	default:
		return 0, ErrProxyBadV2
	}
	if len(buf) < proxyV2FixedLen {
		return 0, nil
	}
	length := int(binary.BigEndian.Uint16(buf[proxyV2FixedLen-2:]))
	if length > MaxProxyV2Len {
		return 0, ErrProxyTooLong
	}
	// A LOCAL header's block is discarded, "including the family which is
	// ignored", and a receiver "must not assume zero is presented for LOCAL"
	// (PP 2.2), so only a PROXY header must hold its family's addresses.
	addrLen := proxyV2AddrLen[fam>>4]
	if cmd == ProxyProxy && length < addrLen {
		return 0, ErrProxyBadV2
	}
	n := proxyV2FixedLen + length
	if len(buf) < n {
		return 0, nil
	}
	hdr := ProxyHeader{Version: 2, Command: cmd}
	if cmd == ProxyLocal || fam == proxyFamUnspec {
		// PP 2.2: use the real endpoints and ignore the address
		// information; with UNSPEC nothing says where TLVs would start.
		*h = hdr
		return n, nil
	}
	hdr.Family = ProxyFamily(fam >> 4)
	block := buf[proxyV2FixedLen:n]
	switch fam {
	case proxyFamTCP4:
		hdr.Src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(block[0:4])), binary.BigEndian.Uint16(block[8:]))
		hdr.Dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(block[4:8])), binary.BigEndian.Uint16(block[10:]))
	case proxyFamTCP6:
		hdr.Src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(block[0:16])), binary.BigEndian.Uint16(block[32:]))
		hdr.Dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(block[16:32])), binary.BigEndian.Uint16(block[34:]))
	}
	if !parseProxyTLVs(buf[:n], proxyV2FixedLen+addrLen, &hdr) {
		return 0, ErrProxyBadV2
	}
	*h = hdr
	return n, nil
}

// parseProxyTLVs walks the TLVs in hdr[off:] (PP 2.2: type, 16-bit
// big-endian length, value). Every TLV must fit the header exactly: a
// receiver may skip TLVs, but one that overruns the declared length means
// the sender and wsgate disagree on where the client's data starts. ALPN,
// AUTHORITY and CRC32C may appear once each, so that no two readers can
// pick different ones. Other types (NOOP, UNIQUE_ID, SSL, NETNS, custom)
// are skipped.
func parseProxyTLVs(hdr []byte, off int, h *ProxyHeader) bool {
	crcAt := -1
	for off < len(hdr) {
		if len(hdr)-off < 3 {
			return false
		}
		typ := hdr[off]
		vlen := int(binary.BigEndian.Uint16(hdr[off+1:]))
		v := off + 3
		if vlen > len(hdr)-v {
			return false
		}
		val := hdr[v : v+vlen]
		switch typ {
		case proxyTLVALPN:
			if h.ALPN != nil {
				return false
			}
			h.ALPN = val
		case proxyTLVAuthority:
			if h.Authority != nil {
				return false
			}
			h.Authority = val
		case proxyTLVCRC32C:
			if crcAt >= 0 || vlen != 4 {
				return false
			}
			crcAt = v
		}
		off = v + vlen
	}
	if crcAt >= 0 {
		// PP 2.2.3: the checksum of the whole header with the checksum
		// field taken as zero must match it, or the connection is invalid.
		sum := crc32.Update(0, proxyCastagnoli, hdr[:crcAt])
		sum = crc32.Update(sum, proxyCastagnoli, proxyCRCZero[:])
		sum = crc32.Update(sum, proxyCastagnoli, hdr[crcAt+4:])
		if sum != binary.BigEndian.Uint32(hdr[crcAt:]) {
			return false
		}
	}
	return true
}

// AppendProxyV2 appends a v2 PROXY header (command PROXY, TCP) telling a
// backend that the connection is relayed for client src, which connected to
// dst. Two IPv4 addresses (IPv4-mapped IPv6 included: that is how a
// dual-stack socket reports IPv4 peers) are sent as AF_INET; otherwise both
// go as AF_INET6, an IPv4 one mapped into IPv6 (PP 2.2 has one family for
// both addresses). Zones are dropped: the format has no room for them. If
// either address is invalid (e.g. a Unix socket peer), it sends AF_UNSPEC
// without addresses, which PP 2.2 has the backend read as "use the real
// endpoints". It allocates nothing when b has room for 52 bytes.
func AppendProxyV2(b []byte, src, dst netip.AddrPort) []byte {
	sa, da := src.Addr(), dst.Addr()
	b = append(b, proxyV2Sig...)
	switch {
	case !sa.IsValid() || !da.IsValid():
		return append(b, 0x20|byte(ProxyProxy), proxyFamUnspec, 0, 0)
	case sa.Unmap().Is4() && da.Unmap().Is4():
		s4, d4 := sa.Unmap().As4(), da.Unmap().As4()
		b = append(b, 0x20|byte(ProxyProxy), proxyFamTCP4, 0, byte(proxyV2AddrLen[ProxyInet]))
		b = append(b, s4[:]...)
		b = append(b, d4[:]...)
	default:
		s16, d16 := sa.As16(), da.As16()
		b = append(b, 0x20|byte(ProxyProxy), proxyFamTCP6, 0, byte(proxyV2AddrLen[ProxyInet6]))
		b = append(b, s16[:]...)
		b = append(b, d16[:]...)
	}
	b = binary.BigEndian.AppendUint16(b, src.Port())
	return binary.BigEndian.AppendUint16(b, dst.Port())
}
