package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// BulkConfig is a bulk run: Conns tunnels each send Bytes to the echo
// target while reading the same Bytes back, all at once.
type BulkConfig struct {
	Target      string
	Conns       int
	Bytes       int64 // payload bytes each way per tunnel
	Frame       int   // payload bytes per WebSocket frame; 0 = 1 MiB
	PID         int   // target process to measure, with its children; 0 = none
	SourceAddrs []netip.Addr
	Timeout     time.Duration // bound on the whole run
	// Progress, when set, is called a few times a second with the bytes
	// received so far and the total expected.
	Progress func(done, total int64)
}

// BulkResult is what a bulk run measured. Throughput and CPU count the
// payload bytes of both directions: what the target moved.
type BulkResult struct {
	Conns      int      `json:"conns"`
	Sent       int64    `json:"bytes_sent"`
	Received   int64    `json:"bytes_received"`
	Seconds    float64  `json:"seconds"`
	Gbps       float64  `json:"gbit_per_sec"`                 // (sent + received) × 8 / seconds
	CPUSeconds float64  `json:"cpu_seconds,omitempty"`        // the target's, during the run
	CPUPerGB   float64  `json:"cpu_seconds_per_gb,omitempty"` // per 10⁹ bytes moved (both ways)
	Machine    *Machine `json:"machine,omitempty"`            // the whole machine during the run
	FirstError string   `json:"first_error,omitempty"`
}

const (
	defaultFrame = 1 << 20
	bulkReadBuf  = 64 << 10
	bulkChunk    = 256 << 10 // one read of payload; larger than the reader's buffer, so it bypasses it
)

// Bulk runs a bulk benchmark. Frames are masked with the all-zero key
// (RFC 6455 allows any key; this one leaves the payload as it is), so the
// client sends one shared buffer with writev and never touches its bytes,
// and reads payloads straight into a reused buffer.
func Bulk(ctx context.Context, cfg BulkConfig) (BulkResult, error) {
	var res BulkResult
	if cfg.Conns <= 0 || cfg.Bytes <= 0 {
		return res, errors.New("conns and bytes must be > 0")
	}
	if cfg.Frame <= 0 {
		cfg.Frame = defaultFrame
	}
	cfg.Frame = int(min(int64(cfg.Frame), cfg.Bytes))
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Minute
	}
	if err := checkFDs(cfg.Conns); err != nil {
		return res, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	conns, err := openAll(ctx, cfg.Target, cfg.Conns, cfg.SourceAddrs, bulkReadBuf)
	if err != nil {
		return res, err
	}
	defer closeAll(conns)
	res.Conns = len(conns)

	payload := make([]byte, cfg.Frame)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	var (
		sent, recvd atomic.Int64
		wg          sync.WaitGroup
		once        sync.Once
	)
	fail := func(err error) {
		once.Do(func() {
			res.FirstError = err.Error()
			cancel()
		})
	}
	cpu, err := startCPU(cfg.PID)
	if err != nil {
		return res, err
	}
	machine := startMachine()
	start := time.Now()
	go func() {
		<-ctx.Done()
		closeAll(conns) // unblock every read and write at once
	}()
	for i, c := range conns {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := bulkWrite(c, payload, cfg.Bytes, &sent); err != nil && ctx.Err() == nil {
				fail(fmt.Errorf("tunnel %d: send: %w", i, err))
			}
		}()
		go func() {
			defer wg.Done()
			if err := bulkRead(c, cfg.Bytes, &recvd); err != nil && ctx.Err() == nil {
				fail(fmt.Errorf("tunnel %d: receive: %w", i, err))
			}
		}()
	}
	total := int64(cfg.Conns) * cfg.Bytes
	pctx, pcancel := context.WithCancel(ctx)
	go every(pctx, 250*time.Millisecond, func() {
		if cfg.Progress != nil {
			cfg.Progress(recvd.Load(), total)
		}
	})
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	pcancel()
	res.Machine = machine.stop(res.Seconds)
	if res.CPUSeconds, err = cpu.stop(); err != nil {
		return res, err
	}
	res.Sent, res.Received = sent.Load(), recvd.Load()
	moved := float64(res.Sent + res.Received)
	res.Gbps = moved * 8 / res.Seconds / 1e9
	if cfg.PID > 0 && moved > 0 {
		res.CPUPerGB = res.CPUSeconds / (moved / 1e9)
	}
	if res.FirstError == "" && ctx.Err() != nil {
		res.FirstError = fmt.Sprintf("run cut short after %.1fs: %v", res.Seconds, ctx.Err())
	}
	if res.Received != total {
		return res, fmt.Errorf("received %d of %d bytes: %s", res.Received, total, res.FirstError)
	}
	return res, nil
}

func bulkWrite(c wsConn, payload []byte, n int64, sent *atomic.Int64) error {
	var hdr [ws.MaxHeaderSize]byte
	for left := n; left > 0; {
		k := min(int64(len(payload)), left)
		h := ws.Header{Fin: true, OpCode: ws.OpBinary, Masked: true, Length: k}
		hw := sliceWriter{b: hdr[:]}
		if err := ws.WriteHeader(&hw, h); err != nil {
			return err
		}
		bufs := net.Buffers{hdr[:hw.n], payload[:k]}
		if _, err := bufs.WriteTo(c.Conn); err != nil {
			return err
		}
		sent.Add(k)
		left -= k
	}
	return nil
}

func bulkRead(c wsConn, n int64, recvd *atomic.Int64) error {
	buf := make([]byte, bulkChunk)
	for got := int64(0); got < n; {
		h, err := ws.ReadHeader(c.br)
		if err != nil {
			return err
		}
		if h.OpCode != ws.OpBinary || h.Masked {
			return fmt.Errorf("got a %v frame (masked %v), want binary", h.OpCode, h.Masked)
		}
		if got+h.Length > n {
			return fmt.Errorf("got %d bytes, more than the %d sent", got+h.Length, n)
		}
		for left := h.Length; left > 0; {
			k, err := c.br.Read(buf[:min(int64(len(buf)), left)])
			if err != nil {
				return err
			}
			left -= int64(k)
			got += int64(k)
			recvd.Add(int64(k))
		}
	}
	return nil
}

// sliceWriter writes into a fixed slice (a frame header: at most 14 bytes).
type sliceWriter struct {
	b []byte
	n int
}

func (w *sliceWriter) Write(p []byte) (int, error) {
	if len(p) > len(w.b)-w.n {
		return 0, errors.New("header buffer too small")
	}
	w.n += copy(w.b[w.n:], p)
	return len(p), nil
}
