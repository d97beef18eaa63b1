package handshake

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// proxyRefV1 is a reference reading of a v1 line (PP 2.1) written the
// obvious way, with strings.Fields and netip.ParseAddr, for the fuzzer to
// hold ParseProxy against. It reports only complete, valid lines.
func proxyRefV1(b []byte) (n int, h ProxyHeader, ok bool) {
	s := string(b)
	end := strings.Index(s, "\r\n")
	if end < 0 || end+2 > MaxProxyV1Bytes {
		return 0, h, false
	}
	line := s[:end]
	for i := 0; i < len(line); i++ {
		if line[i] < 0x20 || line[i] > 0x7e {
			return 0, h, false
		}
	}
	h = ProxyHeader{Version: 1, Command: ProxyProxy}
	if line == "PROXY UNKNOWN" || strings.HasPrefix(line, "PROXY UNKNOWN ") {
		return end + 2, h, true
	}
	f := strings.Fields(line)
	if len(f) != 6 || strings.Join(f, " ") != line || f[0] != "PROXY" {
		return 0, h, false
	}
	switch f[1] {
	case "TCP4":
		h.Family = ProxyInet
	case "TCP6":
		h.Family = ProxyInet6
	default:
		return 0, h, false
	}
	var addrs [2]netip.Addr
	var ports [2]uint16
	for i := range 2 {
		a, err := netip.ParseAddr(f[2+i])
		if err != nil || a.Zone() != "" || (h.Family == ProxyInet) != a.Is4() {
			return 0, h, false
		}
		addrs[i] = a
		p, err := strconv.ParseUint(f[4+i], 10, 16)
		if err != nil || (f[4+i][0] == '0' && f[4+i] != "0") {
			return 0, h, false
		}
		ports[i] = uint16(p)
	}
	h.Src = netip.AddrPortFrom(addrs[0], ports[0])
	h.Dst = netip.AddrPortFrom(addrs[1], ports[1])
	return end + 2, h, true
}

// proxyResult is one ParseProxy answer.
type proxyResult struct {
	n   int
	err error
	h   ProxyHeader
}

func proxyParse(b []byte) proxyResult {
	var r proxyResult
	r.n, r.err = ParseProxy(b[:len(b):len(b)], &r.h)
	return r
}

func (r proxyResult) String() string {
	return fmt.Sprintf("n=%d err=%v h=%+v", r.n, r.err, r.h)
}

// proxyCheckV1 holds ParseProxy's answer for b against the reference.
func proxyCheckV1(t *testing.T, b []byte, r proxyResult) {
	rn, rh, ok := proxyRefV1(b)
	if ok && (r.err != nil || r.n != rn || !proxyEqual(r.h, rh)) {
		t.Fatalf("%q: reference accepts (n=%d %+v), ParseProxy: %v", b, rn, rh, r)
	}
	if !ok && r.n > 0 {
		t.Fatalf("%q: ParseProxy accepts (%v), reference does not", b, r)
	}
}

// FuzzProxyHeader checks ParseProxy on any bytes: it never panics or reads
// past its input (proxyParse caps the capacity), consumes at most what
// it was given, fails only with a PROXY *Reject, gives a final answer once
// MaxProxyHeaderBytes are there, and answers consistently as bytes arrive:
// every strict prefix of an accepted header needs more, a prefix that is
// rejected or accepted stays so, bytes after the header change nothing.
// v1 lines agree with proxyRefV1, and each input is also tried as an
// address and a port inside a v1 line, which holds the address parsers
// against netip.ParseAddr. Accepted v2 headers are checked against their
// raw bytes and through AppendProxyV2.
func FuzzProxyHeader(f *testing.F) {
	for _, c := range proxyAccepts() {
		f.Add(c.in)
	}
	for _, c := range proxyRejectCases() {
		f.Add(c.in)
	}
	f.Add([]byte(proxyTCP4Line + "GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
	f.Add([]byte("2001:db8::ffff:1.2.3.4"))
	f.Add([]byte("65535"))
	reasons := map[*Reject]bool{}
	for _, r := range ProxyRejects() {
		reasons[r] = true
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := proxyParse(data)
		switch {
		case r.err != nil:
			rej, ok := r.err.(*Reject)
			if !ok || !reasons[rej] || r.n != 0 {
				t.Fatalf("%q: %v", data, r)
			}
		case r.n < 0 || r.n > len(data):
			t.Fatalf("%q: %v", data, r)
		case r.n == 0 && len(data) >= MaxProxyHeaderBytes:
			t.Fatalf("%d bytes and still need more", len(data))
		case r.n == 0 && len(data) >= MaxProxyV1Bytes && data[0] == 'P':
			t.Fatalf("%q: a v1 line and still need more", data)
		}

		// Consistency as the bytes arrive: prefixes need more until the
		// answer is decided, and then it is r's. Past the first two decided
		// prefixes nothing new is learnt, so the loop stops (each further one
		// would re-run the whole parse).
		decided := -1
		for k := 0; k < len(data); k++ {
			p := proxyParse(data[:k])
			if p.n == 0 && p.err == nil {
				if decided >= 0 {
					t.Fatalf("%q: decided at %d, prefix %d needs more", data, decided, k)
				}
				continue
			}
			if p.err != r.err || p.n != r.n || !proxyEqual(p.h, r.h) || k < r.n {
				t.Fatalf("%q: %v, but prefix %d: %v", data, r, k, p)
			}
			if decided >= 0 {
				break
			}
			decided = k
		}
		if r.n > 0 {
			if p := proxyParse(data[:r.n]); p.n != r.n || !proxyEqual(p.h, r.h) {
				t.Fatalf("%q: header alone: %v, with data: %v", data, p, r)
			}
		}

		if len(data) > 0 && data[0] == 'P' {
			proxyCheckV1(t, data, r)
		}
		if len(data) <= 64 && !bytes.ContainsAny(data, " \r\n") {
			tok := string(data)
			for _, line := range []string{
				"PROXY TCP4 " + tok + " 192.0.2.1 1 2\r\n",
				"PROXY TCP6 ::1 " + tok + " 1 2\r\n",
				"PROXY TCP4 192.0.2.1 192.0.2.2 " + tok + " 2\r\n",
				"PROXY TCP6 ::1 ::2 1 " + tok + "\r\n",
			} {
				b := []byte(line)
				proxyCheckV1(t, b, proxyParse(b))
			}
		}

		if r.n > 0 && r.h.Version == 2 {
			proxyCheckV2(t, data[:r.n], r.h)
		}
	})
}

// proxyCheckV2 checks an accepted v2 header against its raw bytes (PP 2.2)
// and re-encodes its addresses with AppendProxyV2.
func proxyCheckV2(t *testing.T, hdr []byte, h ProxyHeader) {
	if len(hdr) != proxyV2FixedLen+int(binary.BigEndian.Uint16(hdr[14:])) {
		t.Fatalf("%x: length", hdr)
	}
	fam, block := hdr[13], hdr[proxyV2FixedLen:]
	var src, dst netip.AddrPort
	if h.Command == ProxyProxy {
		switch fam {
		case 0x11:
			a, _ := netip.AddrFromSlice(block[:4])
			b, _ := netip.AddrFromSlice(block[4:8])
			src = netip.AddrPortFrom(a, binary.BigEndian.Uint16(block[8:]))
			dst = netip.AddrPortFrom(b, binary.BigEndian.Uint16(block[10:]))
		case 0x21:
			a, _ := netip.AddrFromSlice(block[:16])
			b, _ := netip.AddrFromSlice(block[16:32])
			src = netip.AddrPortFrom(a, binary.BigEndian.Uint16(block[32:]))
			dst = netip.AddrPortFrom(b, binary.BigEndian.Uint16(block[34:]))
		}
	}
	if h.Src != src || h.Dst != dst {
		t.Fatalf("%x: addresses %v %v, want %v %v", hdr, h.Src, h.Dst, src, dst)
	}
	if !src.IsValid() {
		return
	}
	out := AppendProxyV2(nil, src, dst)
	var back ProxyHeader
	if n, err := ParseProxy(out, &back); n != len(out) || err != nil {
		t.Fatalf("%x: re-encoded %x: n=%d err=%v", hdr, out, n, err)
	}
	unmap := func(a netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(a.Addr().Unmap(), a.Port()) }
	if src.Addr().Is4In6() && dst.Addr().Is4In6() {
		src, dst = unmap(src), unmap(dst)
	}
	if back.Src != src || back.Dst != dst {
		t.Fatalf("%x: re-encoded %v %v, want %v %v", hdr, back.Src, back.Dst, src, dst)
	}
}

// TestWriteProxySeedCorpus writes the proxy test tables as seeds of
// FuzzProxyHeader in testdata/fuzz, like TestWriteSeedCorpus does for the
// other fuzzers. It runs only with WSGATE_WRITE_SEEDS=1:
//
//	WSGATE_WRITE_SEEDS=1 go test -run TestWriteProxySeedCorpus ./handshake/
func TestWriteProxySeedCorpus(t *testing.T) {
	if os.Getenv("WSGATE_WRITE_SEEDS") != "1" {
		t.Skip("set WSGATE_WRITE_SEEDS=1 to rewrite testdata/fuzz/FuzzProxyHeader seeds")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzProxyHeader")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string, in []byte) {
		name = "seed-" + strings.NewReplacer(" ", "-", "/", "-").Replace(name)
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", in)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range proxyAccepts() {
		write("accept-"+c.name, c.in)
	}
	for _, c := range proxyRejectCases() {
		write("reject-"+c.name, c.in)
	}
}
