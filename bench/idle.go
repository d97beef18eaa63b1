// Package bench is wsgate's load generator (a WebSocket client on
// gobwas/ws) and the measurements it takes of a target process from /proc:
// memory per idle tunnel, messages per second and latency, bulk throughput
// and CPU per unit of work, handshakes per second.
package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// IdleConfig is an idle run: open Conns tunnels at Rate per second, hold
// them for Hold, measure.
type IdleConfig struct {
	Target      string        // ws://host:port/path
	Conns       int           // tunnels to open
	Rate        float64       // new tunnels per second
	Hold        time.Duration // how long to hold them before measuring
	PID         int           // target process to measure, with its children; 0 = none
	SourceAddrs []netip.Addr  // local addresses to dial from, in turn
	Timeout     time.Duration // bound on the whole run
	// Settle is how long the target rests after the warm-up; 0 = 4 s.
	Settle   time.Duration
	Progress func(opened int)
}

// IdleResult is what an idle run measured.
type IdleResult struct {
	Conns          int     `json:"conns"`
	Failed         int     `json:"failed"`
	OpenSeconds    float64 `json:"open_seconds"`
	HandshakeP50ms float64 `json:"handshake_p50_ms"`
	HandshakeP99ms float64 `json:"handshake_p99_ms"`
	HandshakeMaxMs float64 `json:"handshake_max_ms"`
	RSSBefore      int64   `json:"rss_before"`
	RSSAfter       int64   `json:"rss_after"`
	RSSPerConn     float64 `json:"rss_per_conn"`  // bytes of user-space memory per tunnel
	AnonPerConn    float64 `json:"anon_per_conn"` // of which anonymous (heap, stacks), not file pages
	SlabPerConn    float64 `json:"slab_per_conn"`
	TCPMemPerConn  float64 `json:"tcp_mem_per_conn"`
	FirstError     string  `json:"first_error,omitempty"`
}

// Idle runs an idle benchmark. Connections are closed before it returns.
func Idle(ctx context.Context, cfg IdleConfig) (IdleResult, error) {
	if cfg.Conns <= 0 {
		return IdleResult{}, errors.New("conns must be > 0")
	}
	if cfg.Rate <= 0 {
		cfg.Rate = 1000
	}
	if err := checkFDs(cfg.Conns); err != nil {
		return IdleResult{}, err
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Duration(float64(cfg.Conns)/cfg.Rate*float64(time.Second))*3 + cfg.Hold + time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()

	var res IdleResult
	var before ProcMem
	var kBefore KernelMem
	var err error
	// Warm up: open and close a tenth of the tunnels (at most 1,000) at
	// the same rate first, then let the target settle, so that its code
	// for them is paged in and the runtime structures any traffic leaves
	// behind (a Go target's GC metadata, pools) exist before the baseline:
	// the figure is then what holding a tunnel costs, not what starting
	// up costs.
	if err := warmUp(ctx, cfg, min(1000, max(1, cfg.Conns/10))); err != nil {
		return res, err
	}
	if cfg.PID > 0 {
		if before, err = ReadTreeMem(cfg.PID); err != nil {
			return res, err
		}
		kBefore, _ = ReadKernelMem()
	}
	hist := hdrhistogram.New(1, int64(time.Minute/time.Microsecond), 3)
	conns := make([]net.Conn, 0, cfg.Conns)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	var mu sync.Mutex
	start := time.Now()
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	sem := make(chan struct{}, 256) // handshakes in flight
	var wg sync.WaitGroup
	for i := 0; i < cfg.Conns; i++ {
		// Pace by the clock, not by sleeping per connection: the rate
		// holds however long each dial takes.
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			t0 := time.Now()
			c, err := dial(ctx, cfg.Target, sourceFor(cfg.SourceAddrs, i))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				res.Failed++
				if res.FirstError == "" {
					res.FirstError = describeDialError(err)
				}
				return
			}
			hist.RecordValue(time.Since(t0).Microseconds())
			conns = append(conns, c)
			if cfg.Progress != nil {
				cfg.Progress(len(conns))
			}
		}(i)
	}
	wg.Wait()
	res.OpenSeconds = time.Since(start).Seconds()
	res.Conns = len(conns)
	if res.Conns == 0 {
		return res, fmt.Errorf("no tunnel opened: %s", res.FirstError)
	}
	select {
	case <-time.After(cfg.Hold):
	case <-ctx.Done():
	}
	res.HandshakeP50ms = float64(hist.ValueAtQuantile(50)) / 1000
	res.HandshakeP99ms = float64(hist.ValueAtQuantile(99)) / 1000
	res.HandshakeMaxMs = float64(hist.Max()) / 1000
	if cfg.PID > 0 {
		after, err := ReadTreeMem(cfg.PID)
		if err != nil {
			return res, err
		}
		kAfter, _ := ReadKernelMem()
		n := float64(res.Conns)
		res.RSSBefore, res.RSSAfter = before.RSS, after.RSS
		res.RSSPerConn = float64(after.RSS-before.RSS) / n
		res.AnonPerConn = float64(after.RSSAnon-before.RSSAnon) / n
		res.SlabPerConn = float64(kAfter.Slab-kBefore.Slab) / n
		res.TCPMemPerConn = float64(kAfter.TCPPages-kBefore.TCPPages) / n
	}
	runtime.KeepAlive(conns)
	return res, nil
}

func warmUp(ctx context.Context, cfg IdleConfig, n int) error {
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	start := time.Now()
	for i := 0; i < n; i++ {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		c, err := dial(ctx, cfg.Target, sourceFor(cfg.SourceAddrs, i))
		if err != nil {
			return fmt.Errorf("warm-up: %s", describeDialError(err))
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	select {
	case <-time.After(cmp.Or(cfg.Settle, settleTime)):
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// settleTime is how long the target gets after the warm-up (wsgate
// returns a burst's transient memory 2 s after it ends).
const settleTime = 4 * time.Second
