package balance

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Passive health follows nginx's upstream module
// (ngx_http_upstream_round_robin.c): a failed attempt increments the peer's
// fails; once fails reaches max_fails within fail_timeout the peer is
// skipped for fail_timeout; after that one request is let through as a
// trial (nginx moves peer->checked to now, so the others keep skipping it
// for another fail_timeout); a success clears fails and the peer is up
// again, a failure keeps it down for another fail_timeout. Here downUntil
// plays peer->checked + fail_timeout and acquire's claimTrial the move of
// checked, done with a CAS so exactly one concurrent Pick gets the trial.

// succeeded records a successful dial (Lease.Connected).
func (b *Backend) succeeded() {
	if b.fails.Load() == 0 {
		return
	}
	p := b.pool
	b.hmu.Lock()
	wasDown := b.flags.Load()&flagPassive != 0
	b.fails.Store(0)
	if wasDown {
		b.startSlow(p.mono())
		b.flags.And(^flagPassive)
	}
	b.hmu.Unlock()
	if wasDown {
		p.notify()
	}
}

// failed records a failed dial (Lease.Failed).
func (b *Backend) failed(FailKind) {
	b.failures.Add(1)
	p := b.pool
	if p.maxFails <= 0 {
		return
	}
	now := p.mono()
	b.hmu.Lock()
	n := b.fails.Load()
	// The window opens at the first failure; past fail_timeout the count
	// starts again (nginx's peer->accessed/checked bookkeeping).
	if n == 0 || (n < p.maxFails && now-b.failStart > p.failTimeout) {
		n = 0
		b.failStart = now
	}
	n++
	b.fails.Store(n)
	wasDown := b.flags.Load()&flagPassive != 0
	down := n >= p.maxFails
	if down {
		// downUntil before the flag: a Pick that sees the flag reads a
		// deadline at least this recent.
		b.downUntil.Store(now + p.failTimeout)
		b.flags.Or(flagPassive)
	}
	b.hmu.Unlock()
	if down && !wasDown {
		p.notify()
	}
}

// claimTrial lets one Pick through to a passively-down backend whose
// fail_timeout has passed, and pushes the next trial a fail_timeout away.
func (b *Backend) claimTrial(c *clock) bool {
	d := b.downUntil.Load()
	now := c.now()
	if now < d {
		return false
	}
	return b.downUntil.CompareAndSwap(d, now+b.pool.failTimeout)
}

// Active checks: one goroutine per backend probes it every Interval, by TCP
// connect or by an HTTP/1.1 GET of Path (2xx and 3xx pass, as nginx Plus's
// default "match"). Rise consecutive passes bring a down backend up (with
// slow start), Fall consecutive failures take an up backend down, as
// HAProxy's rise/fall. A backend starts up, as in nginx Plus without
// "mandatory": a pool does not refuse traffic until the first checks run.

type checkResult struct {
	at  time.Time
	err string
}

func normalizeHealth(h *HealthCheck) error {
	switch h.Kind {
	case "":
		*h = HealthCheck{}
		return nil
	case "tcp", "http":
	default:
		return fmt.Errorf("health kind %q: must be tcp or http", h.Kind)
	}
	if h.Kind == "http" {
		if h.Path == "" {
			h.Path = DefaultCheckPath
		}
		if !strings.HasPrefix(h.Path, "/") || strings.ContainsAny(h.Path, " \r\n") {
			return fmt.Errorf("health path %q: must start with / and contain no spaces or line breaks", h.Path)
		}
	} else {
		h.Path = ""
	}
	for _, f := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{{"interval", &h.Interval, DefaultCheckInterval}, {"timeout", &h.Timeout, DefaultCheckTimeout}} {
		if *f.v < 0 {
			return fmt.Errorf("health %s %v: must be >= 0", f.name, *f.v)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	for _, f := range []struct {
		name string
		v    *int
		def  int
	}{{"rise", &h.Rise, DefaultCheckRise}, {"fall", &h.Fall, DefaultCheckFall}} {
		if *f.v < 0 {
			return fmt.Errorf("health %s %d: must be >= 0", f.name, *f.v)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	return nil
}

// startCheckLocked starts b's checker if checks are on. Called with p.mu.
func (p *Pool) startCheckLocked(b *Backend) {
	if p.health.Kind == "" || p.closed {
		return
	}
	ctx, cancel := context.WithCancel(p.ctx)
	b.stopCheck = cancel
	p.wg.Add(1)
	go p.checkLoop(ctx, b)
}

// stopCheckLocked stops b's checker. Called with p.mu.
func (p *Pool) stopCheckLocked(b *Backend) {
	if b.stopCheck != nil {
		b.stopCheck()
		b.stopCheck = nil
	}
}

func (p *Pool) checkLoop(ctx context.Context, b *Backend) {
	defer p.wg.Done()
	hc := p.health
	var req []byte
	if hc.Kind == "http" {
		req = []byte("GET " + hc.Path + " HTTP/1.1\r\nHost: " + b.addr +
			"\r\nUser-Agent: wsgate-health-check\r\nConnection: close\r\n\r\n")
	}
	t := time.NewTicker(hc.Interval)
	defer t.Stop()
	passes, fails := 0, 0
	for {
		err := probe(ctx, b.addr, hc.Timeout, req)
		if ctx.Err() != nil {
			return
		}
		r := &checkResult{at: p.wall(p.mono())}
		if err != nil {
			r.err = err.Error()
			passes, fails = 0, fails+1
		} else {
			passes, fails = passes+1, 0
		}
		b.check.Store(r)
		down := b.flags.Load()&flagCheckDown != 0
		switch {
		case !down && fails >= hc.Fall:
			b.flags.Or(flagCheckDown)
			p.notify()
		case down && passes >= hc.Rise:
			b.startSlow(p.mono())
			b.flags.And(^flagCheckDown)
			p.notify()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// probe connects to addr and, for HTTP checks, sends req and reads the
// status line. The whole check shares one timeout.
func probe(ctx context.Context, addr string, timeout time.Duration, req []byte) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if req == nil {
		return nil
	}
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	// Close interrupts the read too, not only the dial.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := conn.Write(req); err != nil {
		return err
	}
	line, err := bufio.NewReaderSize(conn, 256).ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return errors.New("status line too long")
		}
		return fmt.Errorf("reading status line: %w", err)
	}
	// status-line = HTTP-version SP status-code SP [ reason-phrase ], the
	// status code three digits (RFC 9112 section 4).
	if len(line) < 12 || !strings.HasPrefix(string(line), "HTTP/1.") || line[8] != ' ' ||
		!isDigit(line[9]) || !isDigit(line[10]) || !isDigit(line[11]) ||
		len(line) > 12 && !strings.ContainsRune(" \r\n", rune(line[12])) {
		return fmt.Errorf("malformed status line %q", strings.TrimRight(string(line), "\r\n"))
	}
	// 2xx and 3xx pass, as nginx Plus's health_check without a match block.
	if code := line[9:12]; code[0] != '2' && code[0] != '3' {
		return fmt.Errorf("status %s", code)
	}
	return nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
