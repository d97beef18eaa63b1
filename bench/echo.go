package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// EchoConfig is an echo run: Conns tunnels each send Messages messages of
// Size bytes, one at a time, and wait for each to come back.
type EchoConfig struct {
	Target      string        // ws://host:port/path
	Conns       int           // tunnels
	Messages    int           // messages per tunnel (the count bound)
	Size        int           // payload bytes per message
	Duration    time.Duration // stop sending after this long (the time bound); 0 = only Messages
	PID         int           // target process to measure, with its children; 0 = none
	SourceAddrs []netip.Addr
	Timeout     time.Duration // bound on the whole run, connecting included
	// Progress, when set, is called a few times a second with the
	// messages echoed so far and the most there can be.
	Progress func(done, total int64)
}

// EchoResult is what an echo run measured.
type EchoResult struct {
	Conns          int         `json:"conns"`
	Size           int         `json:"size"`
	Messages       int64       `json:"messages"` // echoed and checked
	Seconds        float64     `json:"seconds"`
	MessagesPerSec float64     `json:"messages_per_sec"`
	RTT            Percentiles `json:"rtt"`
	CPUSeconds     float64     `json:"cpu_seconds,omitempty"`          // the target's, during the run
	CPUPer100k     float64     `json:"cpu_seconds_per_100k,omitempty"` // the target's CPU-seconds per 100,000 messages
	Failed         int         `json:"failed"`                         // tunnels that ended with an error
	Machine        *Machine    `json:"machine,omitempty"`              // the whole machine during the run
	FirstError     string      `json:"first_error,omitempty"`
}

// echoReadBuf is each tunnel's read buffer: a header and a small payload
// arrive in one read.
const echoReadBuf = 4 << 10

// Echo runs an echo benchmark. Each tunnel has one goroutine that writes a
// premasked frame and reads the echo into a reused buffer: two syscalls per
// message, no allocation, so the client costs little next to the target.
func Echo(ctx context.Context, cfg EchoConfig) (EchoResult, error) {
	var res EchoResult
	switch {
	case cfg.Conns <= 0:
		return res, errors.New("conns must be > 0")
	case cfg.Messages <= 0:
		return res, errors.New("messages must be > 0")
	case cfg.Size < 0 || cfg.Size > 16<<20:
		return res, errors.New("size must be 0..16 MiB")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Minute
		if cfg.Duration > 0 {
			cfg.Timeout = cfg.Duration + time.Minute
		}
	}
	if err := checkFDs(cfg.Conns); err != nil {
		return res, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	conns, err := openAll(ctx, cfg.Target, cfg.Conns, cfg.SourceAddrs, echoReadBuf)
	if err != nil {
		return res, err
	}
	defer closeAll(conns)
	res.Conns, res.Size = len(conns), cfg.Size

	payload := make([]byte, cfg.Size)
	for i := range payload {
		payload[i] = byte('a' + i%26)
	}
	hist := newLatencies()
	var (
		stop   atomic.Bool
		done   atomic.Int64
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed int
	)
	fail := func(i int, err error) {
		mu.Lock()
		defer mu.Unlock()
		failed++
		if res.FirstError == "" && !stop.Load() {
			res.FirstError = fmt.Sprintf("tunnel %d: %v", i, err)
		}
	}
	cpu, err := startCPU(cfg.PID)
	if err != nil {
		return res, err
	}
	machine := startMachine()
	start := time.Now()
	end := start.Add(cfg.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(end) {
		end = d
	}
	for i, c := range conns {
		// A deadline bounds every read and write of the run: a target that
		// stops answering ends the run instead of hanging it.
		c.SetDeadline(end)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := echoLoop(c, i, payload, cfg.Messages, &stop, &done, hist); err != nil {
				fail(i, err)
			}
		}()
	}
	all := make(chan struct{})
	go func() { wg.Wait(); close(all) }()
	var timeUp <-chan time.Time
	if cfg.Duration > 0 {
		t := time.NewTimer(cfg.Duration)
		defer t.Stop()
		timeUp = t.C
	}
	pctx, pcancel := context.WithCancel(ctx)
	total := int64(cfg.Conns) * int64(cfg.Messages)
	go every(pctx, 250*time.Millisecond, func() {
		if cfg.Progress != nil {
			cfg.Progress(done.Load(), total)
		}
	})
	select {
	case <-all:
	case <-timeUp:
		stop.Store(true) // each tunnel finishes its message in flight
		<-all
	case <-ctx.Done():
		stop.Store(true)
		closeAll(conns) // unblock reads now
		<-all
	}
	res.Seconds = time.Since(start).Seconds()
	pcancel()
	res.Machine = machine.stop(res.Seconds)
	res.CPUSeconds, err = cpu.stop()
	if err != nil {
		return res, err
	}
	res.Failed = failed
	res.Messages = done.Load()
	res.MessagesPerSec = float64(res.Messages) / res.Seconds
	res.RTT = hist.percentiles()
	if res.Messages > 0 && cfg.PID > 0 {
		res.CPUPer100k = res.CPUSeconds / float64(res.Messages) * 1e5
	}
	if ctx.Err() != nil && res.FirstError == "" {
		res.FirstError = fmt.Sprintf("run cut short after %.1fs: %v", res.Seconds, ctx.Err())
	}
	if res.Messages == 0 {
		return res, fmt.Errorf("no message echoed: %s", res.FirstError)
	}
	return res, nil
}

// echoLoop sends up to n messages on c, one at a time, checking each echo.
func echoLoop(c wsConn, k int, payload []byte, n int, stop *atomic.Bool, done *atomic.Int64, hist *latencies) error {
	// Build the masked frame once: a client must mask (RFC 6455 5.3); one
	// random key per tunnel serves for a benchmark.
	var frame bytes.Buffer
	h := ws.Header{Fin: true, OpCode: ws.OpBinary, Masked: true, Length: int64(len(payload))}
	key := rand.New(rand.NewPCG(uint64(k), 0x5ca1ab1e)).Uint32()
	h.Mask = [4]byte{byte(key), byte(key >> 8), byte(key >> 16), byte(key >> 24)}
	if err := ws.WriteHeader(&frame, h); err != nil {
		return err
	}
	masked := append(frame.Bytes(), payload...)
	ws.Cipher(masked[len(masked)-len(payload):], h.Mask, 0)
	got := make([]byte, len(payload))
	for i := 0; i < n && !stop.Load(); i++ {
		t0 := time.Now()
		if _, err := c.Write(masked); err != nil {
			return fmt.Errorf("write message %d: %w", i+1, err)
		}
		rh, err := ws.ReadHeader(c.br)
		if err != nil {
			return fmt.Errorf("read echo %d: %w", i+1, err)
		}
		if rh.OpCode != ws.OpBinary || rh.Length != int64(len(payload)) || rh.Masked {
			return fmt.Errorf("echo %d: got a %v frame of %d bytes (masked %v), want binary of %d", i+1, rh.OpCode, rh.Length, rh.Masked, len(payload))
		}
		if _, err := io.ReadFull(c.br, got); err != nil {
			return fmt.Errorf("read echo %d: %w", i+1, err)
		}
		rtt := time.Since(t0)
		if !bytes.Equal(got, payload) {
			return fmt.Errorf("echo %d differs from what was sent", i+1)
		}
		hist.record(k, rtt)
		done.Add(1)
	}
	return nil
}
