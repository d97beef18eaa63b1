package handshake

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"hash/crc32"
	"net/netip"
	"strings"
	"testing"
)

// proxyV2 builds a v2 header from its 13th and 14th bytes and its body
// (address block and TLVs), filling in the length.
func proxyV2(verCmd, fam byte, body ...[]byte) []byte {
	b := append([]byte(proxyV2Sig), verCmd, fam, 0, 0)
	for _, p := range body {
		b = append(b, p...)
	}
	binary.BigEndian.PutUint16(b[14:], uint16(len(b)-proxyV2FixedLen))
	return b
}

// proxyBlock is an AF_INET or AF_INET6 address block.
func proxyBlock(src, dst string) []byte {
	s, d := netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst)
	b := append(s.Addr().AsSlice(), d.Addr().AsSlice()...)
	b = binary.BigEndian.AppendUint16(b, s.Port())
	return binary.BigEndian.AppendUint16(b, d.Port())
}

func proxyTLV(typ byte, val string) []byte {
	b := []byte{typ, byte(len(val) >> 8), byte(len(val))}
	return append(b, val...)
}

// proxyWithCRC appends a PP2_TYPE_CRC32C TLV to the v2 header h and fills
// in its checksum (PP 2.2.3), xor-ed with flip to make it wrong.
func proxyWithCRC(h []byte, flip uint32) []byte {
	h = append(append([]byte(nil), h...), proxyTLV(proxyTLVCRC32C, "\x00\x00\x00\x00")...)
	binary.BigEndian.PutUint16(h[14:], uint16(len(h)-proxyV2FixedLen))
	sum := crc32.Checksum(h, crc32.MakeTable(crc32.Castagnoli)) ^ flip
	binary.BigEndian.PutUint32(h[len(h)-4:], sum)
	return h
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

type proxyAccept struct {
	name string
	in   []byte
	want ProxyHeader
}

var (
	proxyMax6     = strings.Repeat("ffff:", 7) + "ffff"
	proxyTCP4Line = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
	proxyTCP6Line = "PROXY TCP6 2001:db8::1 2001:db8::2 1234 443\r\n"
)

// proxyAccepts is every kind of valid header (also the fuzz seeds).
func proxyAccepts() []proxyAccept {
	v1 := func(src, dst string) ProxyHeader {
		s, d := ap(src), ap(dst)
		fam := ProxyInet
		if s.Addr().Is6() {
			fam = ProxyInet6
		}
		return ProxyHeader{Version: 1, Command: ProxyProxy, Family: fam, Src: s, Dst: d}
	}
	unknown := ProxyHeader{Version: 1, Command: ProxyProxy}
	v2 := func(src, dst string) ProxyHeader {
		h := v1(src, dst)
		h.Version = 2
		return h
	}
	withTLV := func(h ProxyHeader, authority, alpn string) ProxyHeader {
		if authority != "" {
			h.Authority = []byte(authority)
		}
		if alpn != "" {
			h.ALPN = []byte(alpn)
		}
		return h
	}
	emptyAuthority := v2("192.0.2.1:1", "192.0.2.2:2")
	emptyAuthority.Authority = []byte{}
	tlvs := [][]byte{
		proxyTLV(proxyTLVALPN, "h2"),
		proxyTLV(proxyTLVAuthority, "example.com"),
		proxyTLV(0x04, ""),                                        // NOOP, empty
		proxyTLV(0x05, strings.Repeat("u", 128)),                  // UNIQUE_ID
		proxyTLV(0x20, "\x01\x00\x00\x00\x00\x21\x00\x07TLSv1.3"), // SSL
		proxyTLV(0x30, "ns1"),                                     // NETNS
		proxyTLV(0xea, "\x01vpce-0123"),                           // custom (AWS)
	}
	pad := MaxProxyV2Len - 12 - 3
	return []proxyAccept{
		{"v1 tcp4", []byte(proxyTCP4Line), v1("192.168.0.1:56324", "192.168.0.11:443")},
		{"v1 tcp4 max", []byte("PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n"),
			v1("255.255.255.255:65535", "255.255.255.255:65535")},
		{"v1 tcp4 zeros", []byte("PROXY TCP4 0.0.0.0 10.0.0.1 0 1\r\n"), v1("0.0.0.0:0", "10.0.0.1:1")},
		{"v1 tcp6", []byte(proxyTCP6Line), v1("[2001:db8::1]:1234", "[2001:db8::2]:443")},
		{"v1 tcp6 max", []byte("PROXY TCP6 " + proxyMax6 + " " + proxyMax6 + " 65535 65535\r\n"),
			v1("["+proxyMax6+"]:65535", "["+proxyMax6+"]:65535")},
		{"v1 tcp6 unspecified", []byte("PROXY TCP6 :: ::1 1 2\r\n"), v1("[::]:1", "[::1]:2")},
		{"v1 tcp6 mapped upper", []byte("PROXY TCP6 ::ffff:192.0.2.1 2001:DB8:0:0:0:0:0:2 1 2\r\n"),
			v1("[::ffff:192.0.2.1]:1", "[2001:db8::2]:2")},
		{"v1 tcp6 ellipsis ends", []byte("PROXY TCP6 1:2:3:4:5:6:7:: ::2:3:4:5:6:7:8 1 2\r\n"),
			v1("[1:2:3:4:5:6:7:0]:1", "[0:2:3:4:5:6:7:8]:2")},
		{"v1 tcp6 embedded v4", []byte("PROXY TCP6 1:2:3:4:5:6:1.2.3.4 ::1.2.3.4 1 2\r\n"),
			v1("[1:2:3:4:5:6:102:304]:1", "[::102:304]:2")},
		{"v1 tcp6 leading zeros in groups", []byte("PROXY TCP6 0000:0db8::0001 ::1 80 8080\r\n"),
			v1("[0:db8::1]:80", "[::1]:8080")},
		{"v1 unknown", []byte("PROXY UNKNOWN\r\n"), unknown},
		{"v1 unknown worst case", []byte("PROXY UNKNOWN " + proxyMax6 + " " + proxyMax6 + " 65535 65535\r\n"), unknown},
		{"v1 unknown anything", []byte("PROXY UNKNOWN what  ever ?\r\n"), unknown},

		{"v2 tcp4", proxyV2(0x21, 0x11, proxyBlock("192.0.2.1:56324", "198.51.100.1:443")),
			v2("192.0.2.1:56324", "198.51.100.1:443")},
		{"v2 tcp6", proxyV2(0x21, 0x21, proxyBlock("[2001:db8::1]:1", "[2001:db8::2]:65535")),
			v2("[2001:db8::1]:1", "[2001:db8::2]:65535")},
		{"v2 local", proxyV2(0x20, 0x00), ProxyHeader{Version: 2, Command: ProxyLocal}},
		{"v2 local with addresses", proxyV2(0x20, 0x11, proxyBlock("192.0.2.1:1", "192.0.2.2:2")),
			ProxyHeader{Version: 2, Command: ProxyLocal}},
		{"v2 local short block", proxyV2(0x20, 0x21, []byte("12345")), ProxyHeader{Version: 2, Command: ProxyLocal}},
		{"v2 unspec", proxyV2(0x21, 0x00), ProxyHeader{Version: 2, Command: ProxyProxy}},
		{"v2 unspec with junk", proxyV2(0x21, 0x00, []byte("\xff\xff\xff")), ProxyHeader{Version: 2, Command: ProxyProxy}},
		{"v2 udp4", proxyV2(0x21, 0x12, proxyBlock("192.0.2.1:53", "192.0.2.2:53")),
			ProxyHeader{Version: 2, Command: ProxyProxy, Family: ProxyInet}},
		{"v2 udp6", proxyV2(0x21, 0x22, proxyBlock("[::1]:53", "[::2]:53")),
			ProxyHeader{Version: 2, Command: ProxyProxy, Family: ProxyInet6}},
		{"v2 unix stream", proxyV2(0x21, 0x31, make([]byte, 216), proxyTLV(proxyTLVALPN, "http/1.1")),
			ProxyHeader{Version: 2, Command: ProxyProxy, Family: ProxyUnix, ALPN: []byte("http/1.1")}},
		{"v2 unix dgram", proxyV2(0x21, 0x32, make([]byte, 216)),
			ProxyHeader{Version: 2, Command: ProxyProxy, Family: ProxyUnix}},
		{"v2 tcp4 tlvs", proxyV2(0x21, 0x11, append([][]byte{proxyBlock("192.0.2.1:1", "192.0.2.2:2")}, tlvs...)...),
			withTLV(v2("192.0.2.1:1", "192.0.2.2:2"), "example.com", "h2")},
		{"v2 tcp6 crc32c", proxyWithCRC(proxyV2(0x21, 0x21, proxyBlock("[::1]:1", "[::2]:2"), proxyTLV(proxyTLVAuthority, "a.example")), 0),
			withTLV(v2("[::1]:1", "[::2]:2"), "a.example", "")},
		{"v2 tcp4 empty authority", proxyV2(0x21, 0x11, proxyBlock("192.0.2.1:1", "192.0.2.2:2"), proxyTLV(proxyTLVAuthority, "")),
			emptyAuthority},
		{"v2 longest", proxyV2(0x21, 0x11, proxyBlock("192.0.2.1:1", "192.0.2.2:2"), proxyTLV(0x04, strings.Repeat("\x00", pad))),
			v2("192.0.2.1:1", "192.0.2.2:2")},
		{"v2 appended", AppendProxyV2(nil, ap("[2001:db8::7]:40000"), ap("192.0.2.9:443")),
			v2("[2001:db8::7]:40000", "[::ffff:192.0.2.9]:443")},
	}
}

// proxyEqual compares headers, nil and empty TLV values apart.
func proxyEqual(a, b ProxyHeader) bool {
	return a.Version == b.Version && a.Command == b.Command && a.Family == b.Family &&
		a.Src == b.Src && a.Dst == b.Dst &&
		(a.Authority == nil) == (b.Authority == nil) && bytes.Equal(a.Authority, b.Authority) &&
		(a.ALPN == nil) == (b.ALPN == nil) && bytes.Equal(a.ALPN, b.ALPN)
}

// parseProxyExact parses a copy of b whose capacity ends at its length, so
// that a read past what was given panics.
func parseProxyExact(b []byte, h *ProxyHeader) (int, error) {
	c := append([]byte(nil), b...)
	return ParseProxy(c[:len(c):len(c)], h)
}

func TestParseProxyAccepts(t *testing.T) {
	for _, c := range proxyAccepts() {
		t.Run(c.name, func(t *testing.T) {
			for _, tail := range []string{"", "GET / HTTP/1.1\r\n", "\r\n\r\n\x00\r\nQUIT\n"} {
				var h ProxyHeader
				n, err := parseProxyExact(append(append([]byte(nil), c.in...), tail...), &h)
				if err != nil || n != len(c.in) {
					t.Fatalf("tail %q: n=%d err=%v, want %d", tail, n, err, len(c.in))
				}
				if !proxyEqual(h, c.want) {
					t.Fatalf("tail %q:\n got %+v\nwant %+v", tail, h, c.want)
				}
			}
		})
	}
}

// Every strict prefix of a valid header, however the header is split
// across reads, asks for more bytes: never an error, never a success.
func TestParseProxyPrefixes(t *testing.T) {
	for _, c := range proxyAccepts() {
		for k := range len(c.in) {
			h := ProxyHeader{Version: 9}
			n, err := parseProxyExact(c.in[:k], &h)
			if n != 0 || err != nil {
				t.Fatalf("%s: prefix %d/%d: n=%d err=%v", c.name, k, len(c.in), n, err)
			}
			if h.Version != 9 {
				t.Fatalf("%s: prefix %d wrote h", c.name, k)
			}
		}
	}
}

type proxyRejectCase struct {
	name string
	in   []byte
	want *Reject
	// at, if not 0, is the shortest prefix that is already rejected: the
	// rejection does not wait for the rest of the header.
	at int
}

func proxyRejectCases() []proxyRejectCase {
	l := func(s string) []byte { return []byte(s) }
	b4 := proxyBlock("192.0.2.1:1", "192.0.2.2:2")
	b6 := proxyBlock("[::1]:1", "[::2]:2")
	// A v2 header whose declared length is huge but whose body never comes:
	// rejected on the 16 fixed bytes.
	huge := proxyV2(0x21, 0x11, b4)
	binary.BigEndian.PutUint16(huge[14:], MaxProxyV2Len+1)
	ffff := proxyV2(0x21, 0x11, b4)
	binary.BigEndian.PutUint16(ffff[14:], 0xffff)
	tcp4 := func(a, b, p, q string) []byte { return l("PROXY TCP4 " + a + " " + b + " " + p + " " + q + "\r\n") }
	tcp6 := func(a, b string) []byte { return l("PROXY TCP6 " + a + " " + b + " 1 2\r\n") }
	return []proxyRejectCase{
		// Not PROXY at all.
		{"http", l("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), ErrProxyMissing, 1},
		{"tls", l("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), ErrProxyMissing, 1},
		{"lower case", l("proxy TCP4 1.2.3.4 1.2.3.4 1 2\r\n"), ErrProxyMissing, 1},
		{"v1 sig", l("PROXZ TCP4 1.2.3.4 1.2.3.4 1 2\r\n"), ErrProxyMissing, 5},
		{"v2 sig", l("\r\n\r\n\x00\r\nQUIX\n\x21\x11\x00\x0c"), ErrProxyMissing, 11},
		{"crlf then http", l("\r\nGET / HTTP/1.1\r\n"), ErrProxyMissing, 3},
		{"nul", l("\x00"), ErrProxyMissing, 1},

		// v1: PP 2.1, exactly.
		{"v1 no space", l("PROXY\r\n"), ErrProxyBadV1, 6},
		{"v1 bad protocol", l("PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n"), ErrProxyBadV1, 10},
		{"v1 lower protocol", l("PROXY tcp4 1.2.3.4 1.2.3.4 1 2\r\n"), ErrProxyBadV1, 7},
		{"v1 udp", l("PROXY UDP4 1.2.3.4 1.2.3.4 1 2\r\n"), ErrProxyBadV1, 8},
		{"v1 no protocol", l("PROXY \r\n"), ErrProxyBadV1, 7},
		{"v1 tcp4 alone", l("PROXY TCP4\r\n"), ErrProxyBadV1, 11},
		{"v1 tcp4 space alone", l("PROXY TCP4 \r\n"), ErrProxyBadV1, 0},
		{"v1 unknownx", l("PROXY UNKNOWNX\r\n"), ErrProxyBadV1, 0},
		{"v1 double space", l("PROXY TCP4 1.2.3.4  1.2.3.4 1 2\r\n"), ErrProxyBadV1, 0},
		{"v1 double space after proxy", l("PROXY  TCP4 1.2.3.4 1.2.3.4 1 2\r\n"), ErrProxyBadV1, 7},
		{"v1 trailing space", l("PROXY TCP4 1.2.3.4 1.2.3.4 1 2 \r\n"), ErrProxyBadV1, 0},
		{"v1 tab", l("PROXY TCP4 1.2.3.4\t1.2.3.4 1 2\r\n"), ErrProxyBadV1, 19},
		{"v1 nul", l("PROXY TCP4 1.2.3.4 1.2.3.4 1 2\x00\r\n"), ErrProxyBadV1, 31},
		{"v1 del", l("PROXY TCP4 1.2.3.4 1.2.3.4 1 2\x7f\r\n"), ErrProxyBadV1, 31},
		{"v1 high byte", l("PROXY TCP4 1.2.3.4 1.2.3.\xb4 1 2\r\n"), ErrProxyBadV1, 26},
		{"v1 bare lf", l("PROXY TCP4 1.2.3.4 1.2.3.4 1 2\nGET"), ErrProxyBadV1, 31},
		{"v1 bare cr", l("PROXY TCP4 1.2.3.4 1.2.3.4 1 2\rGET\r\n"), ErrProxyBadV1, 32},
		{"v1 lf cr", l("PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n\r"), ErrProxyBadV1, 31},
		{"v1 unknown bare lf", l("PROXY UNKNOWN\nGET / HTTP/1.1\r\n"), ErrProxyBadV1, 14},
		{"v1 missing port", l("PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n"), ErrProxyBadV1, 0},
		{"v1 extra field", l("PROXY TCP4 1.2.3.4 1.2.3.4 1 2 3\r\n"), ErrProxyBadV1, 0},
		{"v1 empty port", tcp4("1.2.3.4", "1.2.3.4", "", "2"), ErrProxyBadV1, 0},
		{"v1 port too big", tcp4("1.2.3.4", "1.2.3.4", "65536", "2"), ErrProxyBadV1, 0},
		{"v1 port 99999", tcp4("1.2.3.4", "1.2.3.4", "1", "99999"), ErrProxyBadV1, 0},
		{"v1 port six digits", tcp4("1.2.3.4", "1.2.3.4", "100000", "2"), ErrProxyBadV1, 0},
		{"v1 port leading zero", tcp4("1.2.3.4", "1.2.3.4", "080", "2"), ErrProxyBadV1, 0},
		{"v1 port 00", tcp4("1.2.3.4", "1.2.3.4", "1", "00"), ErrProxyBadV1, 0},
		{"v1 port sign", tcp4("1.2.3.4", "1.2.3.4", "+1", "2"), ErrProxyBadV1, 0},
		{"v1 port negative", tcp4("1.2.3.4", "1.2.3.4", "-1", "2"), ErrProxyBadV1, 0},
		{"v1 port hex", tcp4("1.2.3.4", "1.2.3.4", "0x50", "2"), ErrProxyBadV1, 0},
		{"v1 octet leading zero", tcp4("1.2.3.04", "1.2.3.4", "1", "2"), ErrProxyBadV1, 0},
		{"v1 octet 00", tcp4("1.2.00.4", "1.2.3.4", "1", "2"), ErrProxyBadV1, 0},
		{"v1 octet 256", tcp4("1.2.3.4", "1.2.3.256", "1", "2"), ErrProxyBadV1, 0},
		{"v1 three octets", tcp4("1.2.3", "1.2.3.4", "1", "2"), ErrProxyBadV1, 0},
		{"v1 five octets", tcp4("1.2.3.4.5", "1.2.3.4", "1", "2"), ErrProxyBadV1, 0},
		{"v1 empty octet", tcp4("1..3.4", "1.2.3.4", "1", "2"), ErrProxyBadV1, 0},
		{"v1 trailing dot", tcp4("1.2.3.4.", "1.2.3.4", "1", "2"), ErrProxyBadV1, 0},
		{"v1 hostname", tcp4("localhost", "1.2.3.4", "1", "2"), ErrProxyBadV1, 0},
		{"v1 tcp4 with v6", tcp4("::1", "1.2.3.4", "1", "2"), ErrProxyBadV1, 0},
		{"v1 tcp4 with mapped", tcp4("::ffff:1.2.3.4", "1.2.3.4", "1", "2"), ErrProxyBadV1, 0},
		{"v1 tcp6 with v4", tcp6("1.2.3.4", "::1"), ErrProxyBadV1, 0},
		{"v1 tcp6 zone", tcp6("fe80::1%eth0", "::1"), ErrProxyBadV1, 0},
		{"v1 tcp6 empty zone", tcp6("fe80::1%", "::1"), ErrProxyBadV1, 0},
		{"v1 tcp6 brackets", tcp6("[::1]", "::1"), ErrProxyBadV1, 0},
		{"v1 tcp6 triple colon", tcp6(":::", "::1"), ErrProxyBadV1, 0},
		{"v1 tcp6 two ellipses", tcp6("1::2::3", "::1"), ErrProxyBadV1, 0},
		{"v1 tcp6 nine groups", tcp6("1:2:3:4:5:6:7:8:9", "::1"), ErrProxyBadV1, 0},
		{"v1 tcp6 seven groups", tcp6("1:2:3:4:5:6:7", "::1"), ErrProxyBadV1, 0},
		{"v1 tcp6 empty ellipsis", tcp6("1:2:3:4:5:6:7:8::", "::1"), ErrProxyBadV1, 0},
		{"v1 tcp6 five digits", tcp6("12345::1", "::1"), ErrProxyBadV1, 0},
		{"v1 tcp6 leading colon", tcp6(":1::2", "::1"), ErrProxyBadV1, 0},
		{"v1 tcp6 trailing colon", tcp6("1::2:", "::1"), ErrProxyBadV1, 0},
		{"v1 tcp6 bad hex", tcp6("1::g", "::1"), ErrProxyBadV1, 0},
		{"v1 tcp6 v4 too early", tcp6("1:2:3:4:5:1.2.3.4", "::1"), ErrProxyBadV1, 0},
		{"v1 tcp6 v4 too late", tcp6("1:2:3:4:5:6:7:1.2.3.4", "::1"), ErrProxyBadV1, 0},
		{"v1 tcp6 v4 leading zero", tcp6("::1.2.3.04", "::1"), ErrProxyBadV1, 0},
		{"v1 tcp6 v4 short", tcp6("::1.2.3", "::1"), ErrProxyBadV1, 0},
		{"v1 tcp6 v4 not last", tcp6("::1.2.3.4:1", "::1"), ErrProxyBadV1, 0},
		{"v1 too long", l("PROXY UNKNOWN " + strings.Repeat("x", 200) + "\r\n"), ErrProxyTooLong, MaxProxyV1Bytes},
		{"v1 cr at 107", l("PROXY UNKNOWN " + strings.Repeat("x", MaxProxyV1Bytes-15) + "\r\n"), ErrProxyTooLong, MaxProxyV1Bytes},
		{"v1 tcp6 embedded max", l("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 65535 65535\r\n"),
			ErrProxyTooLong, MaxProxyV1Bytes},

		// v2: PP 2.2.
		{"v2 version 1", proxyV2(0x11, 0x11, b4), ErrProxyBadV2, 13},
		{"v2 version 3", proxyV2(0x31, 0x11, b4), ErrProxyBadV2, 13},
		{"v2 version 0", proxyV2(0x01, 0x11, b4), ErrProxyBadV2, 13},
		{"v2 command 2", proxyV2(0x22, 0x11, b4), ErrProxyBadV2, 13},
		{"v2 command f", proxyV2(0x2f, 0x11, b4), ErrProxyBadV2, 13},
		{"v2 family 4", proxyV2(0x21, 0x41, b4), ErrProxyBadV2, 14},
		{"v2 transport 3", proxyV2(0x21, 0x13, b4), ErrProxyBadV2, 14},
		{"v2 inet unspec transport", proxyV2(0x21, 0x10, b4), ErrProxyBadV2, 14},
		{"v2 unspec stream", proxyV2(0x21, 0x01), ErrProxyBadV2, 14},
		{"v2 local family f", proxyV2(0x20, 0xff), ErrProxyBadV2, 14},
		{"v2 too long", huge, ErrProxyTooLong, 16},
		{"v2 length ffff", ffff, ErrProxyTooLong, 16},
		{"v2 inet short block", proxyV2(0x21, 0x11, b4[:11]), ErrProxyBadV2, 16},
		{"v2 inet6 short block", proxyV2(0x21, 0x21, b6[:35]), ErrProxyBadV2, 16},
		{"v2 inet6 with inet block", proxyV2(0x21, 0x21, b4), ErrProxyBadV2, 16},
		{"v2 udp4 short block", proxyV2(0x21, 0x12, b4[:4]), ErrProxyBadV2, 16},
		{"v2 unix short block", proxyV2(0x21, 0x31, make([]byte, 215)), ErrProxyBadV2, 16},
		{"v2 tlv header cut", proxyV2(0x21, 0x11, b4, []byte{0x04, 0x00}), ErrProxyBadV2, 0},
		{"v2 tlv one byte", proxyV2(0x21, 0x11, b4, []byte{0x04}), ErrProxyBadV2, 0},
		{"v2 tlv overruns", proxyV2(0x21, 0x11, b4, proxyTLV(0x04, "abc")[:5]), ErrProxyBadV2, 0},
		{"v2 tlv overruns into data", append(proxyV2(0x21, 0x11, b4, []byte{0x02, 0x00, 0x05, 'a'}), "bcdGET / HTTP/1.1\r\n"...), ErrProxyBadV2, 0},
		{"v2 two alpn", proxyV2(0x21, 0x11, b4, proxyTLV(proxyTLVALPN, "h2"), proxyTLV(proxyTLVALPN, "http/1.1")), ErrProxyBadV2, 0},
		{"v2 two authority", proxyV2(0x21, 0x21, b6, proxyTLV(proxyTLVAuthority, "a"), proxyTLV(proxyTLVAuthority, "b")), ErrProxyBadV2, 0},
		{"v2 two empty authority", proxyV2(0x21, 0x11, b4, proxyTLV(proxyTLVAuthority, ""), proxyTLV(proxyTLVAuthority, "")), ErrProxyBadV2, 0},
		{"v2 crc wrong", proxyWithCRC(proxyV2(0x21, 0x11, b4), 1), ErrProxyBadV2, 0},
		{"v2 crc short", proxyV2(0x21, 0x11, b4, proxyTLV(proxyTLVCRC32C, "abc")), ErrProxyBadV2, 0},
		{"v2 two crc", proxyWithCRC(proxyWithCRC(proxyV2(0x21, 0x11, b4), 0), 0), ErrProxyBadV2, 0},
	}
}

func TestParseProxyRejects(t *testing.T) {
	for _, c := range proxyRejectCases() {
		t.Run(c.name, func(t *testing.T) {
			h := ProxyHeader{Version: 9}
			n, err := parseProxyExact(c.in, &h)
			if n != 0 || err != c.want {
				t.Fatalf("n=%d err=%v, want %v", n, err, c.want)
			}
			if h.Version != 9 {
				t.Fatal("h written on error")
			}
			// Shorter prefixes need more or fail the same way; with more
			// bytes the answer stays.
			first := -1
			for k := range len(c.in) {
				n, err := parseProxyExact(c.in[:k], &h)
				if n != 0 || (err != nil && err != c.want) {
					t.Fatalf("prefix %d: n=%d err=%v", k, n, err)
				}
				if err != nil && first < 0 {
					first = k
				}
			}
			if first < 0 {
				first = len(c.in)
			}
			if c.at != 0 && first != c.at {
				t.Fatalf("rejected after %d bytes, want %d", first, c.at)
			}
			if n, err := parseProxyExact(append(append([]byte(nil), c.in...), "0123456789"...), &h); n != 0 || err != c.want {
				t.Fatalf("with trailing bytes: n=%d err=%v", n, err)
			}
		})
	}
}

func TestProxyRejectsTable(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Reasons() {
		seen[r] = true
	}
	for _, r := range ProxyRejects() {
		if r.Status != 400 || r.Text == "" || !strings.HasPrefix(r.Reason, "proxy_") {
			t.Errorf("%+v", r)
		}
		if seen[r.Reason] {
			t.Errorf("reason %q twice", r.Reason)
		}
		seen[r.Reason] = true
	}
}

// The engine sizes its buffer from MaxProxyHeaderBytes: no input that long
// still asks for more.
func TestParseProxyBounded(t *testing.T) {
	var h ProxyHeader
	ins := [][]byte{
		[]byte("PROXY UNKNOWN " + strings.Repeat(" ", 92)),
		proxyV2(0x21, 0x11, make([]byte, MaxProxyV2Len)),
	}
	for _, in := range ins {
		in = append(in, make([]byte, MaxProxyHeaderBytes)...)[:MaxProxyHeaderBytes]
		if n, err := ParseProxy(in, &h); n == 0 && err == nil {
			t.Errorf("%q...: still needs more", in[:20])
		}
	}
	if n, err := ParseProxy(ins[1][:MaxProxyHeaderBytes-1], &h); n != 0 || err != nil {
		t.Errorf("longest v2 minus one byte: n=%d err=%v", n, err)
	}
}

// The test's CRC32c is the one PP 2.2.3 names (RFC 4960 appendix B; RFC
// 3720 B.4 gives the check value of "123456789").
func TestProxyCRC32c(t *testing.T) {
	if got := crc32.Checksum([]byte("123456789"), proxyCastagnoli); got != 0xe3069283 {
		t.Fatalf("crc32c = %#x", got)
	}
}

func TestAppendProxyV2(t *testing.T) {
	// What HAProxy sends for 172.19.0.1:42578 -> 172.19.0.3:80.
	const haproxy = "0d0a0d0a000d0a515549540a2111000cac130001ac130003a6520050"
	got := AppendProxyV2([]byte("x"), ap("172.19.0.1:42578"), ap("172.19.0.3:80"))
	if hex.EncodeToString(got[1:]) != haproxy || got[0] != 'x' {
		t.Fatalf("got %x", got)
	}
	cases := []struct {
		src, dst   string
		fam        byte
		wantSrc    string
		wantDst    string
		wantLength int
	}{
		{"192.0.2.1:1", "198.51.100.2:443", 0x11, "192.0.2.1:1", "198.51.100.2:443", 28},
		{"[2001:db8::1]:65535", "[2001:db8::2]:0", 0x21, "[2001:db8::1]:65535", "[2001:db8::2]:0", 52},
		// Families differ: IPv4 is mapped into IPv6.
		{"192.0.2.1:1", "[2001:db8::2]:2", 0x21, "[::ffff:192.0.2.1]:1", "[2001:db8::2]:2", 52},
		{"[2001:db8::1]:1", "192.0.2.2:2", 0x21, "[2001:db8::1]:1", "[::ffff:192.0.2.2]:2", 52},
		// IPv4 seen through a dual-stack socket is still IPv4.
		{"[::ffff:192.0.2.1]:1", "192.0.2.2:2", 0x11, "192.0.2.1:1", "192.0.2.2:2", 28},
		{"[::ffff:192.0.2.1]:1", "[::ffff:192.0.2.2]:2", 0x11, "192.0.2.1:1", "192.0.2.2:2", 28},
		// The zone cannot be carried.
		{"[fe80::1%eth0]:1", "[fe80::2]:2", 0x21, "[fe80::1]:1", "[fe80::2]:2", 52},
	}
	for _, c := range cases {
		b := AppendProxyV2(nil, ap(c.src), ap(c.dst))
		var h ProxyHeader
		n, err := ParseProxy(b, &h)
		if err != nil || n != len(b) || n != c.wantLength || b[13] != c.fam {
			t.Fatalf("%s %s: %x: n=%d err=%v", c.src, c.dst, b, n, err)
		}
		want := ProxyHeader{Version: 2, Command: ProxyProxy, Family: ProxyFamily(c.fam >> 4), Src: ap(c.wantSrc), Dst: ap(c.wantDst)}
		if !proxyEqual(h, want) {
			t.Fatalf("%s %s: got %+v", c.src, c.dst, h)
		}
	}
	// Without a client address: AF_UNSPEC, "use the real endpoints".
	b := AppendProxyV2(nil, netip.AddrPort{}, ap("192.0.2.2:2"))
	var h ProxyHeader
	if n, err := ParseProxy(b, &h); err != nil || n != 16 || b[13] != 0 || h.Src.IsValid() || h.Command != ProxyProxy {
		t.Fatalf("unspec: %x n=%d err=%v %+v", b, n, err, h)
	}
}

func TestProxyZeroAlloc(t *testing.T) {
	var h ProxyHeader
	ins := [][]byte{
		[]byte(proxyTCP4Line),
		[]byte(proxyTCP6Line),
		[]byte("PROXY TCP6 ::ffff:192.0.2.1 " + proxyMax6 + " 1 2\r\n"),
		proxyWithCRC(proxyV2(0x21, 0x21, proxyBlock("[::1]:1", "[::2]:2"),
			proxyTLV(proxyTLVAuthority, "example.com"), proxyTLV(proxyTLVALPN, "h2")), 0),
		[]byte("GET / HTTP/1.1\r\n"),
		[]byte("PROXY TCP4 1.2.3.4 1.2.3.4 1 99999\r\n"),
		proxyWithCRC(proxyV2(0x21, 0x11, proxyBlock("192.0.2.1:1", "192.0.2.2:2")), 1),
	}
	for _, in := range ins {
		if a := testing.AllocsPerRun(100, func() { _, _ = ParseProxy(in, &h) }); a != 0 {
			t.Errorf("ParseProxy(%q) allocates %v times", in, a)
		}
	}
	buf := make([]byte, 0, 64)
	src, dst := ap("[2001:db8::1]:1"), ap("192.0.2.2:2")
	if a := testing.AllocsPerRun(100, func() { buf = AppendProxyV2(buf[:0], src, dst) }); a != 0 {
		t.Errorf("AppendProxyV2 allocates %v times", a)
	}
}

func BenchmarkParseProxy(b *testing.B) {
	ins := []struct {
		name string
		in   []byte
	}{
		{"v1-tcp4", []byte(proxyTCP4Line)},
		{"v1-tcp6", []byte(proxyTCP6Line)},
		{"v2-tcp4", AppendProxyV2(nil, ap("192.0.2.1:56324"), ap("198.51.100.1:443"))},
		{"v2-tcp6-tlvs-crc", proxyWithCRC(proxyV2(0x21, 0x21, proxyBlock("[2001:db8::1]:56324", "[2001:db8::2]:443"),
			proxyTLV(proxyTLVALPN, "h2"), proxyTLV(proxyTLVAuthority, "example.com"), proxyTLV(0xea, "\x01vpce-0123456789abcdef0")), 0)},
	}
	for _, c := range ins {
		b.Run(c.name, func(b *testing.B) {
			var h ProxyHeader
			b.SetBytes(int64(len(c.in)))
			b.ReportAllocs()
			for b.Loop() {
				if n, err := ParseProxy(c.in, &h); n != len(c.in) || err != nil {
					b.Fatal(n, err)
				}
			}
		})
	}
}

func BenchmarkAppendProxyV2(b *testing.B) {
	for _, c := range []struct{ name, src, dst string }{
		{"v4", "192.0.2.1:56324", "198.51.100.1:443"},
		{"v6", "[2001:db8::1]:56324", "[2001:db8::2]:443"},
	} {
		b.Run(c.name, func(b *testing.B) {
			src, dst := ap(c.src), ap(c.dst)
			buf := make([]byte, 0, 64)
			b.ReportAllocs()
			for b.Loop() {
				buf = AppendProxyV2(buf[:0], src, dst)
			}
		})
	}
}
