package handshake

import (
	"strings"
	"testing"
)

// track feeds in to a tracker in pieces of at most step bytes and returns
// the body length it found, whether it completed, and any error.
func track(kind BodyKind, cl int64, in []byte, step int) (int, bool, error) {
	var t BodyTracker
	t.Init(kind, cl)
	total := 0
	for off := 0; off < len(in); off += step {
		p := in[off:min(off+step, len(in))]
		n, done, err := t.Advance(p)
		total += n
		if err != nil || done {
			return total, done, err
		}
		if n != len(p) {
			return total, false, nil
		}
	}
	return total, t.Done(), nil
}

var (
	validChunked = []string{
		"0\r\n\r\n",
		"5\r\nhello\r\n0\r\n\r\n",
		"5;name=value;x=\"q\"\r\nhello\r\n000\r\n\r\n",
		"A\r\n0123456789\r\nf\r\n0123456789abcde\r\n0\r\nX-Sum: 1\r\nY:\t2 \r\n\r\n",
		"1\r\n\n\r\n0\r\n\r\n", // data may hold any byte
		"000000000000000a\r\n0123456789\r\n0\r\n\r\n",
	}
	invalidChunked = []string{
		"\r\n",
		"x\r\n",
		"5\nhello\r\n0\r\n\r\n",
		"5\r\nhelloX\r\n0\r\n\r\n",
		"5\r\nhello\n0\r\n\r\n",
		" 5\r\nhello\r\n0\r\n\r\n",
		"5 \r\nhello\r\n0\r\n\r\n",
		"5 ; ext\r\nhello\r\n0\r\n\r\n", // BWS: net/http refuses it
		"-5\r\n",
		"0x5\r\n",
		"00000000000000001\r\n", // 17 hex digits
		"4000000000000001\r\n",  // over 2^62
		"8000000000000000\r\n0", // 2^63 wrapped negative (FuzzBodyTracker)
		"ffffffffffffffff\r\n",
		"5;a\x00b\r\nhello\r\n", // control byte in extension
		"5;a\nb\r\nhello\r\n",   // LF in extension
		"0\r\nX: 1\n\r\n",       // bare LF in trailer
		"0\r\n X: 1\r\n\r\n",    // obs-fold in trailer
		"0\r\nX : 1\r\n\r\n",    // space before colon
		"0\r\nX\r\n\r\n",        // trailer without colon
		"0\r\nX: a\x01\r\n\r\n", // control byte in trailer
		"0\r\n\r\r",             // bad final CRLF
		"5;" + strings.Repeat("a", MaxChunkLineBytes) + "\r\n",
		"0\r\nX: " + strings.Repeat("a", MaxTrailerBytes) + "\r\n\r\n",
	}
)

func TestBodyTrackerChunked(t *testing.T) {
	for _, body := range validChunked {
		in := []byte(body + "GET /next HTTP/1.1\r\n\r\n")
		for step := 1; step <= len(in); step++ {
			n, done, err := track(BodyChunked, 0, in, step)
			if err != nil || !done || n != len(body) {
				t.Fatalf("%q step %d: n=%d done=%v err=%v, want %d", body, step, n, done, err, len(body))
			}
		}
	}
	for _, body := range invalidChunked {
		for step := 1; step <= len(body); step++ {
			_, done, err := track(BodyChunked, 0, []byte(body), step)
			if err != ErrBadChunked || done {
				t.Fatalf("%q step %d: done=%v err=%v, want ErrBadChunked", body, step, done, err)
			}
		}
	}
	// The error is sticky.
	var bt BodyTracker
	bt.Init(BodyChunked, 0)
	if _, _, err := bt.Advance([]byte("x")); err == nil {
		t.Fatal("no error")
	}
	if n, _, err := bt.Advance([]byte("0\r\n\r\n")); err == nil || n != 0 || bt.Done() {
		t.Fatal("error not sticky")
	}
}

func TestBodyTrackerLength(t *testing.T) {
	in := []byte("0123456789NEXT")
	for step := 1; step <= len(in); step++ {
		n, done, err := track(BodyLength, 10, in, step)
		if n != 10 || !done || err != nil {
			t.Fatalf("step %d: %d %v %v", step, n, done, err)
		}
	}
	var bt BodyTracker
	bt.Init(BodyLength, 0)
	if n, done, _ := bt.Advance(in); n != 0 || !done || !bt.Done() {
		t.Fatal("empty body")
	}
	bt.Init(BodyNone, 0)
	if n, done, _ := bt.Advance(in); n != 0 || !done {
		t.Fatal("no body")
	}
	bt.Init(BodyUntilClose, 0)
	if n, done, _ := bt.Advance(in); n != len(in) || done || bt.Done() {
		t.Fatal("until close")
	}
	var zero BodyTracker
	if !zero.Done() {
		t.Fatal("zero value is not an empty body")
	}
}
