package engine

// frames follows WebSocket frame boundaries (RFC 6455 5.2) in one
// direction's byte stream as the bytes pass, so that wsgate can end a
// tunnel at a boundary with a Close frame, or slip a Ping in, instead of
// cutting a frame in half. It costs no syscall and no allocation: headers
// are parsed from the bytes the copy path already holds, and a spliced
// payload's length is known from its header. The state is 12 bytes, a
// partial header across reads included (the header's own bytes are not
// kept, only what they say).
//
// It is not a validator: a peer that breaks the framing only makes the
// tracker wait for a boundary that never comes, and a graceful close then
// falls back to a plain one after its timeout.
type frames struct {
	remain uint64 // payload bytes left in the current frame; while in a header, the length so far
	hpos   uint8  // header bytes seen; 0 when not in a header
	hlen   uint8  // header length, known from its second byte
	lend   uint8  // header position after the extended length field
	b0     uint8  // the current frame's first byte: FIN and opcode
}

// WebSocket opcodes wsgate acts on.
const (
	opClose = 0x8
	opPing  = 0x9
	opPong  = 0xA
)

// atBoundary reports that the next byte starts a new frame.
func (f *frames) atBoundary() bool { return f.hpos == 0 && f.remain == 0 }

// inPayload reports that the next byte is payload, and how much is left.
func (f *frames) inPayload() (uint64, bool) { return f.remain, f.hpos == 0 && f.remain > 0 }

// scan follows p. With stop set it stops at the first frame boundary it
// reaches (possibly at once, returning 0) and returns how many bytes lie
// before it; otherwise it consumes all of p. closed reports that a Close
// frame's header was among the bytes consumed.
func (f *frames) scan(p []byte, stop bool) (n int, closed bool) {
	i := 0
	for i < len(p) {
		if f.hpos == 0 {
			if f.remain > 0 {
				// Payload: skip it whole, the common case costs one compare.
				if uint64(len(p)-i) < f.remain {
					f.remain -= uint64(len(p) - i)
					return len(p), closed
				}
				i += int(f.remain)
				f.remain = 0
				if stop {
					return i, closed
				}
				continue
			}
			if stop && i > 0 {
				return i, closed // at a boundary reached inside p
			}
			f.b0 = p[i]
			f.hpos = 1
			i++
			continue
		}
		c := p[i]
		i++
		if f.hpos == 1 {
			f.lend = 2
			switch n := c & 0x7f; n {
			case 126:
				f.lend = 4 // 16-bit length follows
			case 127:
				f.lend = 10 // 64-bit length follows
			default:
				f.remain = uint64(n)
			}
			f.hlen = f.lend
			if c&0x80 != 0 {
				f.hlen += 4 // masking key
			}
			if f.b0&0x0f == opClose {
				closed = true
			}
		} else if f.hpos < f.lend {
			f.remain = f.remain<<8 | uint64(c) // extended payload length, big-endian
		}
		f.hpos++
		if f.hpos == f.hlen {
			f.hpos = 0
			if f.remain == 0 && stop {
				return i, closed // an empty frame ends here
			}
		}
	}
	return i, closed
}
