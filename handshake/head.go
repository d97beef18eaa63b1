package handshake

import (
	"bytes"
	"encoding/binary"
	"math/bits"
)

// Limits on a request head. A zero field means its default.
type Limits struct {
	// MaxHeadBytes caps the head, request line and final CRLFCRLF included
	// (default DefaultMaxHeadBytes). Over it: 431.
	MaxHeadBytes int
	// MaxHeaders caps the number of header lines (default DefaultMaxHeaders).
	// Over it: 431.
	MaxHeaders int
	// MaxTargetBytes caps the request-target (default DefaultMaxTargetBytes).
	// Over it: 414.
	MaxTargetBytes int
	// Upgrades lists the protocols honoured in an Upgrade request, compared
	// case-insensitively; an entry without "/version" matches every version.
	// nil means websocket only; an empty non-nil slice
	// honours none. A request to upgrade to anything else is forwarded as a
	// plain request with Upgrade removed: passing "Upgrade: h2c" on would let
	// a client speak HTTP/2 to the backend behind wsgate's back (h2c
	// smuggling).
	Upgrades []string
}

// Defaults for Limits. 16 KiB matches the head sizes browsers send with large
// cookies while staying far below the memory a slowloris could pin per
// connection; nginx's large_client_header_buffers default is 4 × 8 KiB and
// its request line limit 8 KiB, hence the target limit. 100 header lines is
// Apache's LimitRequestFields and HAProxy's tune.http.maxhdr-style default.
const (
	DefaultMaxHeadBytes   = 16 << 10
	DefaultMaxHeaders     = 100
	DefaultMaxTargetBytes = 8 << 10
)

// defaultUpgrades is the upgrade allow-list used when Limits.Upgrades is
// nil: WebSocket is what wsgate exists for; anything else has to be asked for.
var defaultUpgrades = []string{"websocket"}

func (l *Limits) maxHead() int {
	if l == nil || l.MaxHeadBytes <= 0 {
		return DefaultMaxHeadBytes
	}
	return l.MaxHeadBytes
}

func (l *Limits) maxHeaders() int {
	if l == nil || l.MaxHeaders <= 0 {
		return DefaultMaxHeaders
	}
	return l.MaxHeaders
}

func (l *Limits) maxTarget() int {
	if l == nil || l.MaxTargetBytes <= 0 {
		return DefaultMaxTargetBytes
	}
	return l.MaxTargetBytes
}

// HeadScanner finds the end of an HTTP head (the CRLFCRLF after the last
// header line) in a buffer that grows as bytes arrive. It remembers how far
// it has looked, so each byte is examined once however the head is split
// across reads, and it rejects as early as it can: a bare LF at once (RFC
// 9112 2.2; see ErrBareLF), and a buffer that reaches the size limit without
// an end of head (431) without waiting for more bytes. The zero value is
// ready to use.
type HeadScanner struct {
	pos int // buf[:pos] has been searched: no end of head, every LF after a CR
	end int // length of the head once found, else 0
}

// Reset makes s ready for a new head.
func (s *HeadScanner) Reset() { *s = HeadScanner{} }

// Scan looks at buf, the whole head buffer so far (earlier calls saw a
// prefix of it), and returns the length of the head including its final
// CRLFCRLF, or 0 if the head is not complete yet. Bytes after the head
// (early data) are not examined. maxHead <= 0 means DefaultMaxHeadBytes. The
// error is nil, ErrBareLF or ErrHeadTooLarge (as error values holding a
// *Reject).
func (s *HeadScanner) Scan(buf []byte, maxHead int) (end int, err error) {
	if s.end > 0 {
		return s.end, nil
	}
	if maxHead <= 0 {
		maxHead = DefaultMaxHeadBytes
	}
	limit := min(len(buf), maxHead)
	for s.pos < limit {
		i := bytes.IndexByte(buf[s.pos:limit], '\n')
		if i < 0 {
			s.pos = limit
			break
		}
		i += s.pos
		if i == 0 || buf[i-1] != '\r' {
			return 0, ErrBareLF
		}
		// buf[i-2] is an LF already checked to follow a CR: CRLFCRLF.
		if i >= 3 && buf[i-2] == '\n' {
			s.end = i + 1
			return s.end, nil
		}
		s.pos = i + 1
	}
	if len(buf) >= maxHead {
		// The first maxHead bytes hold no end: the head cannot fit.
		return 0, ErrHeadTooLarge
	}
	return 0, nil
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// nextLine returns the head line that starts at b[p:], without its CRLF,
// and the offset of the next line. It checks what httphead does not (it
// accepts NUL, CR, LF and control bytes inside lines): the line ends in
// CRLF (a bare LF is ErrBareLF), holds no other CR (ErrBareCR) and no
// control byte other than HTAB (reported as ctl). Without an LF in b[p:]
// the head is incomplete.
//
// One pass finds the line end and checks the bytes: eight bytes at a time
// are tested for "any byte < 0x20 or == 0x7f" with word arithmetic
// (Hacker's Delight 6-1); the lowest flagged byte is exact, and it is
// either the CR of the CRLF, an HTAB to step over, or an error.
func nextLine(b []byte, p int, ctl *Reject) (line []byte, next int, rej *Reject) {
	i := p
	for {
		for i+8 <= len(b) {
			if m := ctlMask(binary.LittleEndian.Uint64(b[i:])); m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		for ; i < len(b); i++ {
			if c := b[i]; c < 0x20 || c == 0x7f {
				break
			}
		}
		if i == len(b) {
			return nil, 0, ErrIncompleteHead
		}
		switch b[i] {
		case '\t':
			i++
			continue
		case '\r':
			if i+1 == len(b) {
				return nil, 0, ErrIncompleteHead
			}
			if b[i+1] != '\n' {
				return nil, 0, ErrBareCR
			}
			return b[p:i], i + 2, nil
		case '\n':
			return nil, 0, ErrBareLF
		}
		return nil, 0, ctl
	}
}

// ctlMask has the high bit set in the byte of x (little-endian) of each byte
// below 0x20 or equal to 0x7f; above the lowest such byte, borrows may set
// false bits, so only the lowest set bit is to be trusted.
func ctlMask(x uint64) uint64 {
	d := x ^ (0x7f * lsb)
	return ((x-0x20*lsb)&^x | (d-lsb)&^d) & msb
}
