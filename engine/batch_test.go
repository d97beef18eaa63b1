package engine

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/gobwas/ws/wsutil"
	"golang.org/x/sys/unix"

	"github.com/wsgate/wsgate/balance"
	"github.com/wsgate/wsgate/internal/testutil"
)

// ioModes are the ways of making batched calls this machine can test:
// plain system calls always, io_uring where the kernel allows it.
func ioModes(t *testing.T) []IOUringMode {
	r, err := newRing(8)
	if err != nil {
		t.Logf("io_uring unavailable here (%v): only plain system calls are tested", err)
		return []IOUringMode{IOUringOff}
	}
	r.close()
	return []IOUringMode{IOUringOff, IOUringOn}
}

// TestBatchedEchoManyTunnels: more tunnels than one batch holds, on one
// loop, each echoing messages from 1 byte to 40 KiB (past a slot, so the
// copy path's bursts and ModeAuto's switch to splice are crossed), with
// every byte checked.
func TestBatchedEchoManyTunnels(t *testing.T) {
	for _, iom := range ioModes(t) {
		for _, m := range []Mode{ModeAuto, ModeCopy} {
			t.Run(iom.String()+"/"+m.String(), func(t *testing.T) {
				testutil.CheckLeaks(t)
				b := startEcho(t, "a")
				srv, addr := startProxy(t, []string{b.Addr()}, func(c *Config) {
					c.Mode, c.IOUring, c.Loops = m, iom, 1
				})
				if got := srv.IOUring(); got != (iom == IOUringOn) {
					t.Fatalf("IOUring() = %v with io_uring %s", got, iom)
				}
				const tunnels, rounds = batchMax + 44, 6
				var wg sync.WaitGroup
				errs := make(chan error, tunnels)
				for k := range tunnels {
					c, br := dialWS(t, addr, "/")
					wg.Add(1)
					go func() {
						defer wg.Done()
						c.SetDeadline(time.Now().Add(30 * time.Second))
						rng := rand.New(rand.NewPCG(uint64(k), 7))
						for j := range rounds {
							msg := make([]byte, 1+rng.IntN(40<<10))
							for x := range msg {
								msg[x] = byte(rng.Uint32())
							}
							if err := wsutil.WriteClientBinary(c, msg); err != nil {
								errs <- err
								return
							}
							got, err := wsutil.ReadServerBinary(wsConn{c, br})
							if err != nil {
								errs <- fmt.Errorf("tunnel %d round %d: %w", k, j, err)
								return
							}
							if !bytes.Equal(got, msg) {
								errs <- fmt.Errorf("tunnel %d round %d: echo of %d bytes differs (got %d)", k, j, len(msg), len(got))
								return
							}
						}
					}()
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					t.Fatal(err)
				}
				st := srv.Stats()
				if st.Batches == 0 || st.BatchedCalls < 2*st.Batches {
					t.Errorf("%d batches of %d calls: the copy path did not batch", st.Batches, st.BatchedCalls)
				}
			})
		}
	}
}

// TestBatchedSlowReader: a client that sends 8 MiB before it reads a
// byte makes the proxy's sends to it fall short and park; every byte
// still arrives, in order, once it reads.
func TestBatchedSlowReader(t *testing.T) {
	const total = 8 << 20
	for _, iom := range ioModes(t) {
		t.Run(iom.String(), func(t *testing.T) {
			testutil.CheckLeaks(t)
			b := startEcho(t, "a")
			_, addr := startProxy(t, []string{b.Addr()}, func(c *Config) {
				c.Mode, c.IOUring = ModeCopy, iom
			})
			c, br := dialWS(t, addr, "/")
			c.SetDeadline(time.Now().Add(60 * time.Second))
			sent := sha256.New()
			done := make(chan error, 1)
			go func() {
				rng := rand.New(rand.NewPCG(3, 4))
				msg := make([]byte, 3000)
				for n := 0; n < total; n += len(msg) {
					for x := range msg {
						msg[x] = byte(rng.Uint32())
					}
					sent.Write(msg)
					if err := wsutil.WriteClientBinary(c, msg); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			// Let the echoes back up: the client's receive buffer, the
			// proxy's send buffer, then the proxy's parked chunk fill.
			time.Sleep(500 * time.Millisecond)
			got := readPayloads(t, br, total)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(sent.Sum(nil), got) {
				t.Fatal("echoed bytes differ from sent bytes")
			}
		})
	}
}

// TestStaleRecvIsNotMade: a recv queued for a tunnel that is freed before
// the batch runs, its fd number then given to a new connection, must not
// be made: it would read the new connection's bytes into the old tunnel.
func TestStaleRecvIsNotMade(t *testing.T) {
	for _, iom := range ioModes(t) {
		t.Run(iom.String(), func(t *testing.T) {
			testutil.CheckLeaks(t)
			l := testLoop(t, iom)
			old, dst := rawPair(t), rawPair(t)
			defer closeAll(dst[:])
			i, err := l.tabs.alloc()
			if err != nil {
				t.Fatal(err)
			}
			tn := l.tabs.at(i)
			tn.state, tn.fd = stTunnel, [2]int32{int32(old[0]), int32(dst[0])}
			if !l.queueRecv(i, tn, dirUp) {
				t.Fatal("queueRecv refused an empty batch")
			}
			// The tunnel closes, and its slot and fd number are reused.
			reused := old[0]
			closeAll(old[:])
			l.tabs.release(i)
			fresh := rawPair(t)
			if fresh[0] != reused {
				if err := unix.Dup3(fresh[0], reused, unix.O_CLOEXEC); err != nil {
					t.Fatal(err)
				}
				unix.Close(fresh[0])
				fresh[0] = reused
			}
			defer closeAll(fresh[:])
			j, _ := l.tabs.alloc()
			if j != i {
				t.Fatalf("slab gave tunnel %d, want the freed %d", j, i)
			}
			nt := l.tabs.at(j)
			nt.state, nt.fd = stTunnel, [2]int32{int32(fresh[0]), int32(dst[0])}
			if _, err := unix.Write(fresh[1], []byte("new connection's bytes")); err != nil {
				t.Fatal(err)
			}
			l.flushIO()
			buf := make([]byte, 64)
			n, err := unix.Read(fresh[0], buf)
			if err != nil || string(buf[:n]) != "new connection's bytes" {
				t.Fatalf("the new connection's bytes: %q, %v; the stale recv took them", buf[:max(n, 0)], err)
			}
			if n, _ := unix.Read(dst[1], buf); n > 0 {
				t.Fatalf("the stale tunnel forwarded %q", buf[:n])
			}
			l.tabs.release(j) // its sockets are the test's to close
		})
	}
}

// TestBatchResults: each call's result lands in its own op — bytes,
// EAGAIN on an empty socket, EPIPE (not a SIGPIPE) on a closed peer — for
// a full batch.
func TestBatchResults(t *testing.T) {
	for _, iom := range ioModes(t) {
		t.Run(iom.String(), func(t *testing.T) {
			testutil.CheckLeaks(t)
			l := testLoop(t, iom)
			b := &l.batch
			pairs := make([][2]int, batchMax)
			for k := range pairs {
				pairs[k] = rawPair(t)
				defer closeAll(pairs[k][:])
			}
			unix.Close(pairs[7][1]) // sends to 7 break
			pairs[7][1] = -1
			var ops []ioOp
			for k := range pairs {
				s := b.slot(uint16(k))
				n := copy(s, fmt.Sprintf("message %d", k))
				ops = append(ops, ioOp{buf: s[:n], fd: int32(pairs[k][0]), kind: opSend})
			}
			b.run(ops)
			for k, o := range ops {
				want := int32(len(fmt.Sprintf("message %d", k)))
				if k == 7 {
					want = -int32(unix.EPIPE)
				}
				if o.res != want {
					t.Errorf("send %d: res %d, want %d", k, o.res, want)
				}
			}
			// Recvs on the other ends: every second one finds its message,
			// the rest are drained first and find nothing.
			ops = ops[:0]
			var of []int // the pair each recv is on
			for k := range pairs {
				if k == 7 {
					continue
				}
				if k%2 == 1 {
					unix.Read(pairs[k][1], make([]byte, 64))
				}
				ops = append(ops, ioOp{buf: b.slot(uint16(len(ops))), fd: int32(pairs[k][1]), slot: uint16(len(ops)), kind: opRecv})
				of = append(of, k)
			}
			b.run(ops)
			for x, o := range ops {
				k := of[x]
				got := b.slot(o.slot)[:max(o.res, 0)]
				if want := fmt.Sprintf("message %d", k); k%2 == 0 && string(got) != want {
					t.Errorf("recv %d: res %d %q, want %q", k, o.res, got, want)
				}
				if k%2 == 1 && o.res != -int32(unix.EAGAIN) {
					t.Errorf("recv %d on a drained socket: res %d, want EAGAIN", k, o.res)
				}
			}
		})
	}
}

// testLoop is a loop that never runs: its tables and batch are driven by
// the test.
func testLoop(t *testing.T, io IOUringMode) *loop {
	t.Helper()
	pool, err := balance.NewPool(balance.Config{Backends: []balance.BackendConfig{{Addr: "127.0.0.1:1"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	srv, err := New(Config{Listen: []string{"127.0.0.1:0"}, Pool: pool, IOUring: io})
	if err != nil {
		t.Fatal(err)
	}
	l, err := newLoop(0, srv)
	if err != nil {
		t.Fatal(err)
	}
	if (l.batch.ring != nil) != (io == IOUringOn) {
		t.Fatalf("loop has ring %v with io_uring %s", l.batch.ring != nil, io)
	}
	t.Cleanup(l.shutdown)
	return l
}

// rawPair returns a connected pair of non-blocking stream sockets for
// the test to close.
func rawPair(t *testing.T) [2]int {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	return [2]int{fds[0], fds[1]}
}

func closeAll(fds []int) {
	for _, fd := range fds {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}

// TestArenaTrim: the pages of slots a burst used stay resident only until
// a trim finds no batch has used them since the one before.
func TestArenaTrim(t *testing.T) {
	l := testLoop(t, IOUringOff)
	b := &l.batch
	resident := func(k int) bool {
		var vec [1]byte
		p := b.slot(uint16(k))
		_, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&p[0])), 4096, uintptr(unsafe.Pointer(&vec[0])))
		if e != 0 {
			t.Fatal("mincore:", e)
		}
		return vec[0]&1 != 0
	}
	for k := 0; k < 10; k++ {
		b.slot(uint16(k))[0] = 1 // a burst's batch read into slots 0-9
	}
	b.used, b.held = 10, 10
	b.trim() // slots 0-9 were used in this window: kept
	if !resident(9) {
		t.Fatal("slot 9 given back in the window that used it")
	}
	b.used = 3 // a quieter window: 3 slots a batch
	b.trim()
	if !resident(2) || resident(3) || resident(9) {
		t.Fatalf("after a window using 3 slots: slot 2 resident %v, 3 %v, 9 %v; want true, false, false",
			resident(2), resident(3), resident(9))
	}
}

// TestRingFailureFallsBack: when io_uring_enter fails, the batch's calls
// are made plainly — the recv and the send that forwards its bytes, and
// the queued closes — and the loop goes on without the ring.
func TestRingFailureFallsBack(t *testing.T) {
	if len(ioModes(t)) < 2 {
		t.Skip("io_uring unavailable here")
	}
	testutil.CheckLeaks(t)
	l := testLoop(t, IOUringOn)
	src, dst, gone := rawPair(t), rawPair(t), rawPair(t)
	defer closeAll([]int{src[0], src[1], dst[0], dst[1], gone[1]})
	i, err := l.tabs.alloc()
	if err != nil {
		t.Fatal(err)
	}
	tn := l.tabs.at(i)
	tn.state, tn.fd = stTunnel, [2]int32{int32(src[0]), int32(dst[0])}
	tn.io = [2]uint8{canRead | canWrite, canRead | canWrite}
	unix.Write(src[1], []byte("through"))
	if !l.queueRecv(i, tn, dirUp) {
		t.Fatal("queueRecv refused an empty batch")
	}
	l.closeLater(int32(gone[0]))
	// io_uring_enter now fails with EBADF, as it would under a seccomp
	// profile that denies it.
	unix.Close(l.batch.ring.fd)
	l.batch.ring.fd = -1
	l.flushIO()
	if l.batch.ring != nil {
		t.Error("the loop still uses the ring that failed")
	}
	buf := make([]byte, 16)
	if n, err := unix.Read(dst[1], buf); err != nil || string(buf[:n]) != "through" {
		t.Errorf("the destination got %q, %v; want the source's bytes", buf[:max(n, 0)], err)
	}
	if _, err := unix.FcntlInt(uintptr(gone[0]), unix.F_GETFD, 0); err == nil {
		t.Error("the socket queued for closing is still open")
		unix.Close(gone[0])
	}
	tn.state = stFree
	l.tabs.release(i)
}
