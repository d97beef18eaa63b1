package engine

import (
	"bytes"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/gobwas/ws"
)

// frameSeq builds a stream of frames from a seed: every length class (7,
// 16 and 64-bit), masked and unmasked, fragmented messages with control
// frames between the fragments, empty frames. It returns the stream and
// the offsets at which frames end.
func frameSeq(seed uint64, n int) ([]byte, []int, []bool) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var buf bytes.Buffer
	var ends []int
	var isClose []bool
	sizes := []int{0, 1, 125, 126, 127, 200, 65535, 65536, 70000}
	for i := 0; i < n; i++ {
		var h ws.Header
		switch rng.IntN(6) {
		case 0:
			h.OpCode = ws.OpPing
			h.Length = int64(rng.IntN(126))
		case 1:
			h.OpCode = ws.OpClose
			h.Length = int64(rng.IntN(126))
		case 2:
			h.OpCode = ws.OpContinuation
			h.Length = int64(sizes[rng.IntN(len(sizes))])
		default:
			h.OpCode = ws.OpBinary
			h.Length = int64(sizes[rng.IntN(len(sizes))])
		}
		h.Fin = rng.IntN(2) == 0 || h.OpCode.IsControl()
		if rng.IntN(2) == 0 {
			h.Masked = true
			binary.BigEndian.PutUint32(h.Mask[:], rng.Uint32())
		}
		ws.WriteHeader(&buf, h)
		payload := make([]byte, h.Length)
		for j := range payload {
			payload[j] = byte(rng.Uint32())
		}
		buf.Write(payload)
		ends = append(ends, buf.Len())
		isClose = append(isClose, h.OpCode == ws.OpClose)
	}
	return buf.Bytes(), ends, isClose
}

// splitScan feeds stream to a tracker in pieces cut at the given points
// (sorted), in stop mode, and returns every boundary offset found and how
// many Close frames were reported.
func splitScan(stream []byte, cuts []int) (bounds []int, closes int) {
	var f frames
	pos := 0
	for _, end := range append(cuts, len(stream)) {
		for pos < end {
			n, closed := f.scan(stream[pos:end], true)
			if closed {
				closes++
			}
			pos += n
			if f.atBoundary() {
				bounds = append(bounds, pos)
			}
		}
	}
	return bounds, closes
}

func TestFramesBoundariesAnySplit(t *testing.T) {
	for seed := uint64(1); seed <= 200; seed++ {
		stream, ends, isClose := frameSeq(seed, 20)
		rng := rand.New(rand.NewPCG(seed, 7))
		var cuts []int
		for k := 0; k < 30; k++ {
			cuts = append(cuts, rng.IntN(len(stream)+1))
		}
		slicesSort(cuts)
		bounds, closes := splitScan(stream, cuts)
		if !equalInts(bounds, ends) {
			t.Fatalf("seed %d: boundaries %v, want %v", seed, head(bounds), head(ends))
		}
		want := 0
		for _, c := range isClose {
			if c {
				want++
			}
		}
		if closes != want {
			t.Fatalf("seed %d: %d Close frames reported, want %d", seed, closes, want)
		}
	}
}

func TestFramesByteAtATime(t *testing.T) {
	stream, ends, _ := frameSeq(42, 30)
	var cuts []int
	for i := 1; i < len(stream); i++ {
		cuts = append(cuts, i)
	}
	bounds, _ := splitScan(stream, cuts)
	if !equalInts(bounds, ends) {
		t.Fatalf("boundaries %v, want %v", head(bounds), head(ends))
	}
}

// TestFramesAgreesWithGobwas: the tracker and gobwas/ws's reader walk the
// same stream to the same frame ends.
func TestFramesAgreesWithGobwas(t *testing.T) {
	stream, _, _ := frameSeq(9, 50)
	r := bytes.NewReader(stream)
	var f frames
	pos := 0
	for r.Len() > 0 {
		h, err := ws.ReadHeader(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.CopyN(io.Discard, r, h.Length); err != nil {
			t.Fatal(err)
		}
		end := len(stream) - r.Len()
		n, _ := f.scan(stream[pos:], true)
		if pos+n != end {
			t.Fatalf("tracker stopped at %d, gobwas/ws frame ends at %d", pos+n, end)
		}
		pos = end
	}
}

func FuzzFrames(f *testing.F) {
	f.Add(uint64(1), uint8(3), []byte{5, 100, 200})
	f.Add(uint64(77), uint8(40), []byte{1, 1, 1, 1})
	f.Fuzz(func(t *testing.T, seed uint64, nframes uint8, cutBytes []byte) {
		stream, ends, _ := frameSeq(seed, int(nframes%40)+1)
		var cuts []int
		at := 0
		for _, c := range cutBytes {
			at += int(c) * 97
			if at > len(stream) {
				break
			}
			cuts = append(cuts, at)
		}
		bounds, _ := splitScan(stream, cuts)
		if !equalInts(bounds, ends) {
			t.Fatalf("boundaries %v, want %v", head(bounds), head(ends))
		}
	})
}

func TestFramesScanAllocatesNothing(t *testing.T) {
	stream, _, _ := frameSeq(3, 20)
	var f frames
	if n := testing.AllocsPerRun(100, func() { f = frames{}; f.scan(stream, false) }); n != 0 {
		t.Fatalf("%v allocations per scan", n)
	}
}

func BenchmarkFramesScan64B(b *testing.B) {
	// 1,000 frames of 64 B, as the echo benchmark sends them.
	var buf bytes.Buffer
	for i := 0; i < 1000; i++ {
		ws.WriteHeader(&buf, ws.Header{Fin: true, OpCode: ws.OpBinary, Length: 64, Masked: true})
		buf.Write(make([]byte, 64))
	}
	stream := buf.Bytes()
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	var f frames
	for b.Loop() {
		f.scan(stream, false)
	}
}

func slicesSort(a []int) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func head(a []int) []int { return a[:min(len(a), 12)] }
