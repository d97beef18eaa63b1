package engine

import "sync"

// chunk holds bytes that were read but not yet written: a head being read,
// early data held until the backend answers, or the rest of a partial write
// on the copy path. Chunks come from size-class pools and go back as soon as
// they are drained, so an idle tunnel holds none.
type chunk struct {
	b   []byte
	off int // first unwritten byte
}

// pending returns the bytes still to write.
func (c *chunk) pending() []byte { return c.b[c.off:] }

// chunkClasses are the pooled capacities. Heads start in the smallest: the
// prototype measured that a pooled 16 KiB head buffer per handshake left
// 548 B of retained heap per idle tunnel, a 1 KiB one 48 B (DESIGN.md).
var chunkClasses = [...]int{1 << 10, 4 << 10, 16 << 10, 64 << 10, 128 << 10}

var chunkPools [len(chunkClasses)]sync.Pool

// getChunk returns an empty chunk with capacity of at least n bytes. Past
// the largest class it allocates one of exactly n, which putChunk drops:
// only a plain request's body prefix gets there.
func getChunk(n int) *chunk {
	for i, size := range chunkClasses {
		if n <= size {
			if c, ok := chunkPools[i].Get().(*chunk); ok {
				return c
			}
			return &chunk{b: make([]byte, 0, size)}
		}
	}
	return &chunk{b: make([]byte, 0, n)}
}

// putChunk returns c to its pool; a nil c is ignored.
func putChunk(c *chunk) {
	if c == nil {
		return
	}
	for i, size := range chunkClasses {
		if cap(c.b) == size {
			c.b, c.off = c.b[:0], 0
			chunkPools[i].Put(c)
			return
		}
	}
}

// growChunk returns a chunk holding c's bytes with room for at least extra
// more, moving to a larger class when needed.
func growChunk(c *chunk, extra int) *chunk {
	need := len(c.b) + extra
	if need <= cap(c.b) {
		return c
	}
	bigger := getChunk(need)
	bigger.b = append(bigger.b, c.b...)
	bigger.off = c.off
	putChunk(c)
	return bigger
}
