package bench

import (
	"context"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wsgate/wsgate/balance"
	"github.com/wsgate/wsgate/engine"
	"github.com/wsgate/wsgate/internal/testutil"
	"github.com/wsgate/wsgate/internal/wsecho"
)

// Smoke tests: each mode with tiny parameters against a real target in
// this process (an echo server, directly and through an engine), checking
// that the figures add up. The benchmarks themselves are `wsgate bench`
// runs and bench/compare, not tests.

func startEcho(t *testing.T) string {
	t.Helper()
	s, err := wsecho.Listen("127.0.0.1:0", "bench-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s.Addr()
}

// targets are the two ways every mode is run: straight to an echo server
// and through wsgate's engine (in each of its byte-moving modes).
func targets(t *testing.T) map[string]string {
	backend := startEcho(t)
	out := map[string]string{"direct": "ws://" + backend + "/"}
	for _, mode := range []engine.Mode{engine.ModeAuto, engine.ModeCopy, engine.ModeSplice} {
		pool, err := balance.NewPool(balance.Config{Backends: []balance.BackendConfig{{Addr: backend}}})
		if err != nil {
			t.Fatal(err)
		}
		srv, err := engine.New(engine.Config{Listen: []string{"127.0.0.1:0"}, Pool: pool, Mode: mode, Loops: 1})
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			srv.Close()
			pool.Close()
		})
		out["wsgate-"+mode.String()] = "ws://" + srv.Addrs()[0].String() + "/"
	}
	return out
}

func TestEcho(t *testing.T) {
	for name, target := range targets(t) {
		t.Run(name, func(t *testing.T) {
			res, err := Echo(context.Background(), EchoConfig{
				Target: target, Conns: 4, Messages: 50, Size: 64,
				PID: os.Getpid(), Duration: 20 * time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Messages != 200 || res.Failed != 0 || res.Conns != 4 {
				t.Errorf("echoed %d messages over %d tunnels (%d failed), want 200 over 4: %+v", res.Messages, res.Conns, res.Failed, res)
			}
			if res.RTT.P50 <= 0 || res.RTT.P50 > res.RTT.P99 || res.RTT.P99 > res.RTT.Max || res.MessagesPerSec <= 0 {
				t.Errorf("implausible latency or rate: %+v", res)
			}
			if res.CPUSeconds < 0 || res.CPUPer100k < 0 {
				t.Errorf("negative CPU: %+v", res)
			}
			if m := res.Machine; m == nil || m.CPUs < 1 || m.BusySeconds < 0 || m.Busy < 0 || m.Busy > 1 {
				t.Errorf("implausible machine figures: %+v", m)
			}
		})
	}
}

func TestEchoDurationBound(t *testing.T) {
	target := "ws://" + startEcho(t) + "/"
	start := time.Now()
	res, err := Echo(context.Background(), EchoConfig{
		Target: target, Conns: 2, Messages: 1 << 30, Size: 16, Duration: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second || res.Messages == 0 || res.Seconds > 3 {
		t.Errorf("a 200 ms run took %v, echoed %d in %.2fs", took, res.Messages, res.Seconds)
	}
}

func TestBulk(t *testing.T) {
	for name, target := range targets(t) {
		t.Run(name, func(t *testing.T) {
			const n = 3<<20 + 12345 // not a multiple of the frame
			res, err := Bulk(context.Background(), BulkConfig{
				Target: target, Conns: 2, Bytes: n, Frame: 256 << 10, PID: os.Getpid(),
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Sent != 2*n || res.Received != 2*n {
				t.Errorf("sent %d, received %d, want %d each", res.Sent, res.Received, 2*n)
			}
			if res.Gbps <= 0 || res.Seconds <= 0 || res.CPUPerGB < 0 {
				t.Errorf("implausible figures: %+v", res)
			}
		})
	}
}

func TestHandshake(t *testing.T) {
	for name, target := range targets(t) {
		t.Run(name, func(t *testing.T) {
			res, err := Handshake(context.Background(), HandshakeConfig{
				Target: target, Duration: 300 * time.Millisecond, Concurrency: 4, PID: os.Getpid(),
				SourceAddrs: []netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")},
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Handshakes == 0 || res.Failed != 0 || res.PerSec <= 0 || res.Latency.P50 <= 0 {
				t.Errorf("implausible figures: %+v", res)
			}
			if res.Seconds > 2 {
				t.Errorf("a 300 ms run took %.2fs", res.Seconds)
			}
		})
	}
}

func TestHandshakeCountBound(t *testing.T) {
	target := "ws://" + startEcho(t) + "/"
	res, err := Handshake(context.Background(), HandshakeConfig{Target: target, Duration: 20 * time.Second, Max: 25, Concurrency: 3})
	if err != nil {
		t.Fatal(err)
	}
	if res.Handshakes != 25 {
		t.Errorf("%d upgrades, want exactly 25", res.Handshakes)
	}
}

func TestIdle(t *testing.T) {
	for name, target := range targets(t) {
		t.Run(name, func(t *testing.T) {
			res, err := Idle(context.Background(), IdleConfig{
				Target: target, Conns: 30, Rate: 2000, PID: os.Getpid(), Settle: time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Conns != 30 || res.Failed != 0 || res.HandshakeP50ms <= 0 || res.RSSAfter <= 0 {
				t.Errorf("implausible figures: %+v", res)
			}
		})
	}
}

// A refused target and an over-large run fail at once, saying why.
func TestErrors(t *testing.T) {
	testutil.CheckLeaks(t)
	refused := "ws://127.0.0.1:1/"
	ctx := context.Background()
	if _, err := Echo(ctx, EchoConfig{Target: refused, Conns: 1, Messages: 1}); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("echo, refused target: %v", err)
	}
	if _, err := Bulk(ctx, BulkConfig{Target: refused, Conns: 1, Bytes: 1}); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("bulk, refused target: %v", err)
	}
	if _, err := Handshake(ctx, HandshakeConfig{Target: refused, Duration: 5 * time.Second}); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("handshake, refused target: %v", err)
	}
	_, err := Echo(ctx, EchoConfig{Target: refused, Conns: 1 << 24, Messages: 1})
	if err == nil || !strings.Contains(err.Error(), "RLIMIT_NOFILE") {
		t.Errorf("echo, more tunnels than fds: %v", err)
	}
	if got := describeDialError(errEMFILE()); !strings.Contains(got, "RLIMIT_NOFILE is reached") || !strings.Contains(got, "fds open") {
		t.Errorf("EMFILE described as %q", got)
	}
}

func TestParseAddrRange(t *testing.T) {
	got, err := ParseAddrRange("127.0.0.2-127.0.0.4,127.0.0.9")
	if err != nil || len(got) != 4 || got[2].String() != "127.0.0.4" || got[3].String() != "127.0.0.9" {
		t.Errorf("got %v, %v", got, err)
	}
	for _, bad := range []string{"127.0.0.4-127.0.0.2", "x", "127.0.0.1-::1"} {
		if _, err := ParseAddrRange(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestTree(t *testing.T) {
	pids, err := Tree(os.Getpid())
	if err != nil || len(pids) == 0 || pids[0] != os.Getpid() {
		t.Fatalf("Tree(self) = %v, %v", pids, err)
	}
	if s, err := TreeCPUSeconds(os.Getpid()); err != nil || s <= 0 {
		t.Errorf("TreeCPUSeconds(self) = %v, %v", s, err)
	}
	if m, err := ReadTreeMem(os.Getpid()); err != nil || m.RSS <= 0 {
		t.Errorf("ReadTreeMem(self) = %v, %v", m, err)
	}
	if _, err := Tree(1 << 30); err == nil {
		t.Error("Tree of a missing process succeeded")
	}
}

// TestMachine: the machine meter sees this process's own work.
func TestMachine(t *testing.T) {
	m := startMachine()
	start := time.Now()
	for x := 0; time.Since(start) < 300*time.Millisecond; x++ {
		_ = x * x // a busy CPU for 300 ms
	}
	got := m.stop(time.Since(start).Seconds())
	if got == nil || got.CPUs < 1 {
		t.Fatalf("machine meter: %+v", got)
	}
	// /proc/stat counts in 10 ms ticks: 300 ms of one busy CPU is at
	// least 0.2 s of busy time whatever else the machine does.
	if got.BusySeconds < 0.2 || got.Busy <= 0 || got.Busy > 1 {
		t.Errorf("300 ms of a busy CPU measured as %+v", got)
	}
}

func errEMFILE() error {
	return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("socket", syscall.EMFILE)}
}
