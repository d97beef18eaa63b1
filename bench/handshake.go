package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// HandshakeConfig is a handshake run: Concurrency workers each connect,
// upgrade and close, again and again, for Duration or until Max upgrades.
type HandshakeConfig struct {
	Target      string
	Duration    time.Duration // the time bound
	Max         int64         // the count bound; 0 = 10,000,000
	Concurrency int           // handshakes in flight; 0 = 32
	PID         int           // target process to measure, with its children; 0 = none
	SourceAddrs []netip.Addr
	// Progress, when set, is called a few times a second with the
	// milliseconds elapsed and the run's duration in milliseconds.
	Progress func(done, total int64)
}

// HandshakeResult is what a handshake run measured.
type HandshakeResult struct {
	Handshakes      int64       `json:"handshakes"` // upgrades answered 101 with the right accept key
	Failed          int64       `json:"failed"`
	Seconds         float64     `json:"seconds"`
	PerSec          float64     `json:"handshakes_per_sec"`
	Latency         Percentiles `json:"latency"`                        // connect to 101 received
	CPUSeconds      float64     `json:"cpu_seconds,omitempty"`          // the target's, during the run
	CPUPerHandshake float64     `json:"cpu_us_per_handshake,omitempty"` // the target's CPU-microseconds per upgrade
	Machine         *Machine    `json:"machine,omitempty"`              // the whole machine during the run
	FirstError      string      `json:"first_error,omitempty"`
}

// The sample nonce of RFC 6455 section 1.3 and its accept value: every
// upgrade sends the same key, which costs the client nothing to make or
// check.
const (
	sampleKey    = "dGhlIHNhbXBsZSBub25jZQ=="
	sampleAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
	// maxFailStreak ends a run early when this many handshakes fail in a
	// row: the target is down or refusing, and more tries measure nothing.
	maxFailStreak = 200
)

// Handshake runs a handshake benchmark. The client writes one prebuilt
// request and reads the answer head with one read, so most of each
// handshake's cost is the kernel's and the target's.
func Handshake(ctx context.Context, cfg HandshakeConfig) (HandshakeResult, error) {
	var res HandshakeResult
	if cfg.Duration <= 0 {
		return res, errors.New("duration must be > 0")
	}
	if cfg.Max <= 0 {
		cfg.Max = 10_000_000
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 32
	}
	if err := checkFDs(cfg.Concurrency); err != nil {
		return res, err
	}
	u, err := url.Parse(cfg.Target)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "http") || u.Host == "" {
		return res, fmt.Errorf("target %q: want ws://host:port/path", cfg.Target)
	}
	addr := u.Host
	if u.Port() == "" {
		addr += ":80"
	}
	req := []byte("GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + sampleKey +
		"\r\nSec-WebSocket-Version: 13\r\n\r\n")

	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	var (
		ok, failed atomic.Int64
		streak     atomic.Int64
		seq        atomic.Int64
		wg         sync.WaitGroup
		once       sync.Once
	)
	hist := newLatencies()
	cpu, err := startCPU(cfg.PID)
	if err != nil {
		return res, err
	}
	machine := startMachine()
	start := time.Now()
	end, _ := ctx.Deadline()
	for w := 0; w < cfg.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1024)
			for ctx.Err() == nil {
				i := int(seq.Add(1))
				if int64(i) > cfg.Max {
					return
				}
				t0 := time.Now()
				err := upgradeOnce(ctx, addr, sourceFor(cfg.SourceAddrs, i), req, buf)
				if err != nil {
					if ctx.Err() != nil || !time.Now().Before(end) {
						// The run ended while this one was in flight (the
						// deadline of its socket can fire before ctx's).
						return
					}
					failed.Add(1)
					once.Do(func() { res.FirstError = describeDialError(err) })
					if streak.Add(1) >= maxFailStreak {
						cancel()
					}
					continue
				}
				streak.Store(0)
				hist.record(w, time.Since(t0))
				ok.Add(1)
			}
		}()
	}
	pctx, pcancel := context.WithCancel(ctx)
	go every(pctx, 250*time.Millisecond, func() {
		if cfg.Progress != nil {
			cfg.Progress(time.Since(start).Milliseconds(), cfg.Duration.Milliseconds())
		}
	})
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	pcancel()
	res.Machine = machine.stop(res.Seconds)
	if res.CPUSeconds, err = cpu.stop(); err != nil {
		return res, err
	}
	res.Handshakes, res.Failed = ok.Load(), failed.Load()
	res.PerSec = float64(res.Handshakes) / res.Seconds
	res.Latency = hist.percentiles()
	if cfg.PID > 0 && res.Handshakes > 0 {
		res.CPUPerHandshake = res.CPUSeconds / float64(res.Handshakes) * 1e6
	}
	if res.Handshakes == 0 {
		return res, fmt.Errorf("no upgrade succeeded (%d failed): %s", res.Failed, res.FirstError)
	}
	if streak.Load() >= maxFailStreak {
		return res, fmt.Errorf("stopped after %d failed handshakes in a row: %s", maxFailStreak, res.FirstError)
	}
	return res, nil
}

// upgradeOnce connects, sends req, reads the answer head and closes.
func upgradeOnce(ctx context.Context, addr string, src netip.Addr, req, buf []byte) error {
	c, err := netDialer(src).DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	end := time.Now().Add(dialTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(end) {
		end = d // the run's end bounds the one in flight too
	}
	c.SetDeadline(end)
	if _, err := c.Write(req); err != nil {
		return err
	}
	n := 0
	for {
		k, err := c.Read(buf[n:])
		n += k
		if i := bytes.Index(buf[:n], []byte("\r\n\r\n")); i >= 0 {
			head := buf[:i]
			if !bytes.HasPrefix(head, []byte("HTTP/1.1 101 ")) {
				line, _, _ := bytes.Cut(head, []byte("\r\n"))
				return fmt.Errorf("the target answered %q instead of 101 Switching Protocols", line)
			}
			if !bytes.Contains(head, []byte(sampleAccept)) {
				return errors.New("the target's 101 lacks the right Sec-WebSocket-Accept")
			}
			return nil
		}
		if err != nil {
			return err
		}
		if n == len(buf) {
			return fmt.Errorf("answer head longer than %d bytes", len(buf))
		}
	}
}
