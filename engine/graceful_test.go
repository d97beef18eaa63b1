package engine

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsgate/wsgate/internal/testutil"
)

// frameWriter writes a never-ending stream of frames of every size class:
// 7, 16 and 64-bit lengths (64 KiB+ ones are spliced mid-payload in the
// auto and splice modes), fragmented messages with pings between the
// fragments; masked when a client writes them.
type frameWriter struct {
	w      io.Writer
	masked bool
	rng    *rand.Rand
	buf    []byte
}

var frameSizes = []int{0, 1, 20, 125, 126, 1000, 65535, 65536, 70000}

func (fw *frameWriter) next() error {
	n := frameSizes[fw.rng.IntN(len(frameSizes))]
	if fw.rng.IntN(4) == 0 {
		// A message in three fragments, a ping between each.
		for k, op := range []ws.OpCode{ws.OpBinary, ws.OpContinuation, ws.OpContinuation} {
			if err := fw.frame(op, k == 2, n/3); err != nil {
				return err
			}
			if k < 2 {
				if err := fw.frame(ws.OpPing, true, 4); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return fw.frame(ws.OpBinary, true, n)
}

func (fw *frameWriter) frame(op ws.OpCode, fin bool, n int) error {
	h := ws.Header{Fin: fin, OpCode: op, Length: int64(n), Masked: fw.masked}
	if fw.masked {
		binary.LittleEndian.PutUint32(h.Mask[:], fw.rng.Uint32())
	}
	if err := ws.WriteHeader(fw.w, h); err != nil {
		return err
	}
	if cap(fw.buf) < n {
		fw.buf = make([]byte, n)
	}
	_, err := fw.w.Write(fw.buf[:n])
	return err
}

// readFrames reads well-formed frames until a Close, which it returns, or
// fails on anything else (a truncated frame is an error).
func readFrames(r io.Reader, wantMasked bool) (ws.Frame, int, error) {
	count := 0
	for {
		h, err := ws.ReadHeader(r)
		if err != nil {
			return ws.Frame{}, count, err
		}
		if h.Masked != wantMasked {
			return ws.Frame{}, count, errors.New("frame masking is wrong for its direction")
		}
		if h.OpCode == ws.OpClose {
			p := make([]byte, h.Length)
			if _, err := io.ReadFull(r, p); err != nil {
				return ws.Frame{}, count, err
			}
			if h.Masked {
				ws.Cipher(p, h.Mask, 0)
			}
			return ws.Frame{Header: h, Payload: p}, count, nil
		}
		if _, err := io.CopyN(io.Discard, r, h.Length); err != nil {
			return ws.Frame{}, count, errors.New("truncated frame: " + err.Error())
		}
		count++
	}
}

type closeSeen struct {
	at     time.Time
	code   ws.StatusCode
	frames int
	err    error
}

// TestGracefulDrainWhileStreaming: frames flow both ways on 20 tunnels of
// one backend; the backend is drained (deadline 300 ms, spread 1 s). Every
// client must receive a well-formed stream ending with Close 1001, the
// backend a masked Close, and the closes must be spread over the window.
func TestGracefulDrainWhileStreaming(t *testing.T) {
	for _, m := range modes {
		t.Run(m.String(), func(t *testing.T) { testGracefulDrain(t, m) })
	}
}

func testGracefulDrain(t *testing.T, mode Mode) {
	testutil.CheckLeaks(t)
	const n = 12
	backendSaw := make(chan closeSeen, n)
	rb := startRawBackend(t, true, func(c net.Conn, br *bufio.Reader) {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { // stream frames at the client until told to stop
			defer wg.Done()
			fw := &frameWriter{w: c, rng: rand.New(rand.NewPCG(1, 2))}
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				if fw.next() != nil {
					return
				}
				if k%2 == 0 {
					time.Sleep(2 * time.Millisecond)
				}
			}
		}()
		f, count, err := readFrames(br, true)
		close(stop)
		wg.Wait()
		if err == nil {
			ws.WriteFrame(c, ws.NewCloseFrame(f.Payload)) // the backend's reply
		}
		code, _ := ws.ParseCloseFrameData(f.Payload)
		backendSaw <- closeSeen{at: time.Now(), code: code, frames: count, err: err}
	})
	srv, addr := startProxy(t, []string{rb.Addr()}, func(c *Config) { c.Mode = mode })
	pool := srv.routes.Load().pools[0]

	clientSaw := make(chan closeSeen, n)
	var wg sync.WaitGroup
	for k := 0; k < n; k++ {
		c, br := dialWS(t, addr, "/")
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			stop := make(chan struct{})
			var sw sync.WaitGroup
			sw.Add(1)
			go func() { // stream masked frames at the backend
				defer sw.Done()
				fw := &frameWriter{w: c, masked: true, rng: rand.New(rand.NewPCG(uint64(k), 3))}
				for j := 0; ; j++ {
					select {
					case <-stop:
						return
					default:
					}
					if fw.next() != nil {
						return
					}
					if j%2 == 0 {
						time.Sleep(2 * time.Millisecond)
					}
				}
			}()
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			f, count, err := readFrames(br, false)
			close(stop)
			sw.Wait()
			seen := closeSeen{at: time.Now(), frames: count, err: err}
			if err == nil {
				seen.code, _ = ws.ParseCloseFrameData(f.Payload)
				ws.WriteFrame(c, ws.MaskFrame(ws.NewCloseFrame(f.Payload)))
				// After both Closes, wsgate closes the connection.
				if _, err := io.Copy(io.Discard, br); err != nil && !errors.Is(err, net.ErrClosed) {
					seen.err = err
				}
			}
			clientSaw <- seen
		}(k)
	}
	time.Sleep(300 * time.Millisecond) // let frames flow
	start := time.Now()
	if err := pool.Drain(rb.Addr(), 300*time.Millisecond, time.Second); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	var times []time.Duration
	for k := 0; k < n; k++ {
		s := <-clientSaw
		if s.err != nil {
			t.Fatalf("client: %v after %d frames", s.err, s.frames)
		}
		if s.code != 1001 {
			t.Fatalf("client got Close %d, want 1001", s.code)
		}
		if s.frames == 0 {
			t.Errorf("a client received no frame before the Close: nothing was flowing")
		}
		times = append(times, s.at.Sub(start))
	}
	for k := 0; k < n; k++ {
		s := <-backendSaw
		if s.err != nil {
			t.Fatalf("backend: %v after %d frames", s.err, s.frames)
		}
		if s.code != 1001 {
			t.Fatalf("backend got Close %d, want 1001", s.code)
		}
	}
	slices.Sort(times)
	t.Logf("%s: closes from %v to %v after the drain call", mode, times[0].Round(time.Millisecond), times[n-1].Round(time.Millisecond))
	if times[0] < 250*time.Millisecond {
		t.Errorf("first close %v after the call, before the 300ms deadline", times[0])
	}
	if times[n-1]-times[0] < 500*time.Millisecond {
		t.Errorf("closes spread over only %v, want most of the 1s window", times[n-1]-times[0])
	}
	if times[n-1] > 3*time.Second {
		t.Errorf("last close %v after the call", times[n-1])
	}
	waitFor(t, func() bool { return srv.Stats().GracefulCloses["drain"] == n })
	st := srv.Stats()
	if (mode == ModeCopy) != (st.BytesSpliced == 0) {
		t.Errorf("%s mode spliced %d of %d bytes", mode, st.BytesSpliced, st.BytesUp+st.BytesDown)
	}
}

// TestKeepalive: an idle tunnel's client gets Pings; its Pong reaches the
// backend; a client that stays silent is closed with Close 1001 at the
// idle timeout.
func TestKeepalive(t *testing.T) {
	testutil.CheckLeaks(t)
	got := make(chan ws.OpCode, 10)
	rb := startRawBackend(t, true, func(c net.Conn, br *bufio.Reader) {
		for {
			h, err := ws.ReadHeader(br)
			if err != nil {
				return
			}
			if _, err := io.CopyN(io.Discard, br, h.Length); err != nil {
				return
			}
			got <- h.OpCode
			if h.OpCode == ws.OpClose {
				ws.WriteFrame(c, ws.NewCloseFrame(nil))
				return
			}
		}
	})
	srv, addr := startProxy(t, []string{rb.Addr()}, func(c *Config) {
		c.Keepalive = 300 * time.Millisecond
		c.IdleTimeout = 1500 * time.Millisecond
	})
	c, br := dialWS(t, addr, "/")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	f, err := readFrame(br)
	if err != nil || f.Header.OpCode != ws.OpPing || string(f.Payload) != "wsgate" {
		t.Fatalf("want a Ping, got %v %q, %v", f.Header.OpCode, f.Payload, err)
	}
	// Activity is kept in 100 ms ticks, so a Ping may come up to one tick
	// before the interval has passed in real time.
	if d := time.Since(start); d < 190*time.Millisecond || d > 1200*time.Millisecond {
		t.Errorf("first Ping after %v, want about 300ms", d)
	}
	ws.WriteFrame(c, ws.MaskFrame(ws.NewPongFrame(f.Payload)))
	select {
	case op := <-got:
		if op != ws.OpPong {
			t.Fatalf("backend got %v, want the client's Pong", op)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the Pong did not reach the backend")
	}
	// Now silent: more Pings, then a Close 1001 at the idle timeout,
	// counted from the Pong (the Pings themselves are not activity).
	pongAt := time.Now()
	pings := 0
	for {
		f, err := readFrame(br)
		if err != nil {
			t.Fatal(err)
		}
		if f.Header.OpCode == ws.OpPing {
			pings++
			continue
		}
		code, _ := ws.ParseCloseFrameData(f.Payload)
		if f.Header.OpCode != ws.OpClose || code != 1001 {
			t.Fatalf("got %v %d, want Close 1001", f.Header.OpCode, code)
		}
		break
	}
	if d := time.Since(pongAt); d < 1300*time.Millisecond || d > 3*time.Second {
		t.Errorf("closed %v after the last Pong, want about the 1.5s idle timeout", d)
	}
	if pings < 2 {
		t.Errorf("%d Pings while silent, want several", pings)
	}
	if n := srv.Stats().KeepalivePings; n < 3 {
		t.Errorf("%d keepalive pings counted", n)
	}
}

// TestCloseStalledMidFrame: a client stalled in the middle of a frame gives
// its direction no boundary; at the close timeout the tunnel is closed
// plainly, and counted as such.
func TestCloseStalledMidFrame(t *testing.T) {
	testutil.CheckLeaks(t)
	b := startEcho(t, "a")
	srv, addr := startProxy(t, []string{b.Addr()}, func(c *Config) { c.CloseTimeout = 500 * time.Millisecond })
	c, br := dialWS(t, addr, "/")
	// A frame header announcing 1000 bytes, and only 10 of them.
	ws.WriteHeader(c, ws.Header{Fin: true, OpCode: ws.OpBinary, Length: 1000, Masked: true})
	c.Write(make([]byte, 10))
	time.Sleep(100 * time.Millisecond)
	srv.DrainAll(0)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	// The client's own direction (backend→client) is at a boundary: it
	// still gets its Close; then the connection is cut at the timeout.
	f, err := readFrame(br)
	if err != nil || f.Header.OpCode != ws.OpClose {
		t.Fatalf("want a Close, got %v, %v", f.Header.OpCode, err)
	}
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("bytes after the Close")
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 2*time.Second {
		t.Errorf("cut %v after the drain, want about the 500ms close timeout", d)
	}
	waitFor(t, func() bool { return srv.Stats().PlainCloses["drain"] == 1 })
}
