package testutil

import (
	"fmt"
	"io"

	"github.com/gobwas/ws"
)

// ReadFrame reads one WebSocket frame with its payload (at most 1 MiB),
// unmasked. gobwas/ws's ReadFrame trusts the declared length; this bounds
// it, as a test reading a proxy's output should.
func ReadFrame(r io.Reader) (ws.Frame, error) {
	h, err := ws.ReadHeader(r)
	if err != nil {
		return ws.Frame{}, err
	}
	if h.Length > 1<<20 {
		return ws.Frame{}, fmt.Errorf("frame of %d bytes", h.Length)
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(r, p); err != nil {
		return ws.Frame{}, err
	}
	if h.Masked {
		ws.Cipher(p, h.Mask, 0)
	}
	return ws.Frame{Header: h, Payload: p}, nil
}
