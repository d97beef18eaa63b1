package handshake

// Limits of the chunked body tracker. The chunk-size line limit is Go's
// net/http one (maxLineLength); nginx refuses oversized ones too. The size
// limit keeps remain and its arithmetic far from int64 overflow.
const (
	// MaxChunkLineBytes caps a chunk-size line, extensions included.
	MaxChunkLineBytes = 4096
	// MaxTrailerBytes caps the trailer section after the last chunk.
	MaxTrailerBytes = 16 << 10
	// maxChunkHexDigits and maxChunkSize bound a chunk size.
	maxChunkHexDigits = 16
	maxChunkSize      = 1 << 62
)

// Chunked body states (RFC 9112 7.1).
const (
	stSize    uint8 = iota // in chunk-size hex digits
	stSizeWS               // BWS after the size: only ';' may follow
	stExt                  // in chunk extensions, until CR
	stSizeLF               // CR of the chunk-size line seen
	stData                 // in chunk data: remain bytes left
	stDataCR               // expecting the CR after chunk data
	stDataLF               // expecting the LF after chunk data
	stTrStart              // at the start of a trailer line or the final CRLF
	stTrName               // in a trailer field name
	stTrValue              // in a trailer field value
	stTrLF                 // CR of a trailer line seen
	stFinalLF              // CR of the final CRLF seen
	stDone
)

// BodyTracker follows a message body as its bytes pass, so the engine
// forwards exactly the declared body and not a byte after it: anything after
// it is the start of a next request, and forwarding it would smuggle that
// request past wsgate's checks (RFC 9112 11.2). It parses chunked framing
// without buffering (any split of the input gives the same result) and
// never decodes: the bytes are forwarded as they came. The zero value
// tracks an empty body.
type BodyTracker struct {
	kind   BodyKind
	state  uint8
	digits uint8
	err    bool
	remain int64 // BodyLength: bytes left; chunked: data bytes left in chunk
	line   int32 // bytes in the current chunk-size line
	trail  int32 // bytes in the trailer section
}

// Init starts tracking a body of the given framing.
func (t *BodyTracker) Init(kind BodyKind, contentLength int64) {
	*t = BodyTracker{kind: kind}
	switch kind {
	case BodyNone:
		t.state = stDone
	case BodyLength:
		t.remain = contentLength
		if contentLength <= 0 {
			t.state = stDone
		}
	case BodyChunked:
		t.state = stSize
	}
}

// Done reports whether the whole body has passed. A BodyUntilClose body is
// never done: it ends when the peer closes.
func (t *BodyTracker) Done() bool {
	return !t.err && (t.kind == BodyNone || t.state == stDone)
}

// Advance consumes p, the next bytes after the head (or after the bytes
// earlier calls consumed), and returns how many of them belong to the body,
// n <= len(p), and whether the body is complete. Bytes p[n:] are not part of
// the body. A malformed chunked body returns ErrBadChunked (and keeps
// returning it); the first n bytes are valid body bytes that may still be
// forwarded before the connection is closed.
func (t *BodyTracker) Advance(p []byte) (n int, done bool, err error) {
	if t.err {
		return 0, false, ErrBadChunked
	}
	switch t.kind {
	case BodyLength:
		if int64(len(p)) >= t.remain {
			n = int(t.remain)
			t.remain = 0
			t.state = stDone
			return n, true, nil
		}
		t.remain -= int64(len(p))
		return len(p), false, nil
	case BodyUntilClose:
		return len(p), false, nil
	case BodyChunked:
		n, ok := t.chunked(p)
		if !ok {
			t.err = true
			return n, false, ErrBadChunked
		}
		return n, t.state == stDone, nil
	}
	return 0, true, nil
}

// chunked runs the chunked-coding state machine over p:
//
//	chunked-body = *chunk last-chunk trailer-section CRLF
//	chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//	last-chunk   = 1*("0") [ chunk-ext ] CRLF
//	chunk-ext    = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
//
// Extensions are not interpreted (nobody uses them) but may only hold
// visible characters, SP and HTAB. Whitespace between the size and ';' is
// refused although RFC 9112 7.1.1 lets a recipient accept it (BWS): Go's
// net/http and others refuse it, and chunk-line parsing differences are
// exactly what chunked smuggling variants exploit. Trailer lines must be "name:value" with a
// token name and field-value bytes, like header lines: a lenient trailer
// parser is where an LF-only line end would let two parsers disagree on
// where the body ends. It returns the bytes consumed and false on a syntax
// error.
func (t *BodyTracker) chunked(p []byte) (int, bool) {
	i := 0
	for i < len(p) {
		if t.state == stData {
			k := int64(len(p) - i)
			if k >= t.remain {
				i += int(t.remain)
				t.remain = 0
				t.state = stDataCR
				continue
			}
			t.remain -= k
			return len(p), true
		}
		if t.state == stDone {
			return i, true
		}
		c := p[i]
		i++
		switch t.state {
		case stSize:
			if v, ok := hexVal(c); ok {
				t.digits++
				if t.digits > maxChunkHexDigits {
					return i - 1, false
				}
				// Check before shifting: "8000000000000000" would
				// otherwise wrap to a negative size (found by FuzzBodyTracker).
				if t.remain > maxChunkSize>>4 {
					return i - 1, false
				}
				t.remain = t.remain<<4 | int64(v)
				if t.remain > maxChunkSize {
					return i - 1, false
				}
			} else if t.digits == 0 {
				return i - 1, false
			} else {
				switch c {
				case ';':
					t.state = stExt
				case '\r':
					t.state = stSizeLF
				default:
					return i - 1, false
				}
			}
		case stExt:
			switch {
			case c == '\r':
				t.state = stSizeLF
			case c < ' ' && c != '\t' || c == 0x7f:
				return i - 1, false
			}
		case stSizeLF:
			if c != '\n' {
				return i - 1, false
			}
			t.line, t.digits = 0, 0
			if t.remain == 0 {
				t.state = stTrStart
			} else {
				t.state = stData
			}
			continue
		case stDataCR:
			if c != '\r' {
				return i - 1, false
			}
			t.state = stDataLF
		case stDataLF:
			if c != '\n' {
				return i - 1, false
			}
			t.state = stSize
			continue
		case stTrStart:
			switch {
			case c == '\r':
				t.state = stFinalLF
			case isTchar(c):
				t.state = stTrName
			default:
				return i - 1, false
			}
		case stTrName:
			switch {
			case c == ':':
				t.state = stTrValue
			case !isTchar(c):
				return i - 1, false
			}
		case stTrValue:
			switch {
			case c == '\r':
				t.state = stTrLF
			case c < ' ' && c != '\t' || c == 0x7f:
				return i - 1, false
			}
		case stTrLF:
			if c != '\n' {
				return i - 1, false
			}
			t.state = stTrStart
		case stFinalLF:
			if c != '\n' {
				return i - 1, false
			}
			t.state = stDone
			return i, true
		}
		switch t.state {
		case stSize, stExt, stSizeLF:
			if t.line++; t.line > MaxChunkLineBytes {
				return i - 1, false
			}
		case stTrStart, stTrName, stTrValue, stTrLF, stFinalLF:
			if t.trail++; t.trail > MaxTrailerBytes {
				return i - 1, false
			}
		}
	}
	return i, true
}

func hexVal(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
