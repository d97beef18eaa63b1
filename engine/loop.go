package engine

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wsgate/wsgate/balance"
)

// loop is one splice loop: a goroutine around its own epoll fd,
// edge-triggered. It accepts connections and owns every tunnel it
// accepted — their sockets, pipes, chunks and timers — so nothing in a
// tunnel is shared and nothing on the hot path takes a lock. Other
// goroutines talk to a loop only through its inbox.
type loop struct {
	id   int
	srv  *Server
	epfd int
	wake int // eventfd: a write wakes epoll_wait for the inbox

	// The epoll fd as the runtime's poller sees it (poll).
	pollFile   *os.File
	pollConn   syscall.RawConn
	pollOnceFn func(uintptr) bool // l.pollOnce, bound once: a method value allocates
	polled     int
	pollErr    error
	deadline   time.Time // the poll's read deadline

	mu     sync.Mutex
	inbox  []func(*loop)
	woken  atomic.Bool // a wake is pending: later senders skip the write
	closed bool        // under mu: the loop no longer takes work

	events     []unix.EpollEvent
	tabs       slab
	wheel      wheel
	ready      []int32 // tunnels with work left after their per-readiness budget
	acceptable []int   // listeners reported ready in this batch of events
	buf        []byte  // the loop's buffer for plain request bodies and input it drops
	batch      batch   // the copy path's recvs and sends, made together (batch.go)
	pipes      pipePool
	parked     int                  // bytes in chunks of this loop's directions
	waits      []int32              // directions waiting for a pipe or park room, FIFO
	key        [16]byte             // scratch for a hash key
	addrs      map[string]*resolved // backend socket addresses, this loop's own

	// side tables (tables.go): what tunnels borrow, by index
	chunks      []*chunk
	chunkFree   []int32
	exchanges   []*exchange
	exFree      []int32
	backends    []backendSlot
	backendFree []int32
	backendIdx  map[*balance.Backend]int32

	start time.Time
	now   uint32 // ticks since start
	c     *loopCounters

	accepting     bool    // the server wants this loop to accept
	listening     bool    // the listeners are in this loop's epoll set
	acceptBackoff uint32  // tick until which accepting is off after an error
	tokens        float64 // the accept rate's bucket
	target        []byte  // scratch for a rewritten request target

	done chan struct{}
}

const (
	tick        = 100 * time.Millisecond
	copyBufSize = 64 << 10 // one read of a plain request body, or of input dropped
	maxOps      = 8        // syscall rounds per direction per readiness, for fairness
	genMask     = 1<<31 - 1
	wakeIndex   = -1
)

func newLoop(id int, srv *Server) (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wake, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: wakeIndex}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wake)
		return nil, err
	}
	// Non-blocking, so that os.NewFile hands it to the runtime's poller.
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		unix.Close(wake)
		return nil, err
	}
	pollFile := os.NewFile(uintptr(epfd), "epoll")
	pollConn, err := pollFile.SyscallConn()
	if err != nil {
		pollFile.Close()
		unix.Close(wake)
		return nil, err
	}
	l := &loop{
		id:         id,
		srv:        srv,
		epfd:       epfd,
		pollFile:   pollFile,
		pollConn:   pollConn,
		wake:       wake,
		events:     make([]unix.EpollEvent, 256),
		buf:        make([]byte, copyBufSize),
		backendIdx: make(map[*balance.Backend]int32),
		addrs:      make(map[string]*resolved),
		start:      time.Now(),
		c:          &loopCounters{},
		done:       make(chan struct{}),
	}
	l.pollOnceFn = l.pollOnce
	l.pipes.max = srv.pipesPerLoop
	l.pipes.size = pipeBytes
	l.tabs.init()
	l.wheel.init(&l.tabs, 0)
	var ring *ioRing
	if srv.cfg.IOUring != IOUringOff {
		ring, err = newRing(batchMax)
		if err != nil {
			if srv.cfg.IOUring == IOUringOn {
				pollFile.Close()
				unix.Close(wake)
				return nil, err
			}
			srv.noteNoRing(err)
		} else {
			srv.rings.Add(1)
		}
	}
	if err := l.batch.init(ring); err != nil {
		if ring != nil {
			ring.close()
		}
		pollFile.Close()
		unix.Close(wake)
		return nil, err
	}
	return l, nil
}

// post runs f on the loop's goroutine. It reports false when the loop has
// stopped, in which case f never runs and the caller still owns what it
// meant to hand over.
func (l *loop) post(f func(*loop)) bool {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return false
	}
	l.inbox = append(l.inbox, f)
	if !l.woken.Swap(true) {
		// Under mu: shutdown closes the eventfd only after it has marked
		// the loop closed under mu, so the fd written here is still the
		// eventfd and not a socket that took its number since.
		var one = [8]byte{1}
		unix.Write(l.wake, one[:])
	}
	l.mu.Unlock()
	return true
}

func (l *loop) clock() uint32 { return uint32(time.Since(l.start) / tick) }

func (l *loop) run() {
	defer close(l.done)
	for {
		timeout := tick
		if len(l.ready) > 0 {
			timeout = 0
		}
		n, err := l.poll(timeout)
		if err != nil && !errors.Is(err, unix.EINTR) {
			l.srv.log.Error("epoll_wait failed; loop stops", "loop", l.id, "err", err)
			l.shutdown()
			return
		}
		l.now = l.clock()
		for k := 0; k < n; k++ {
			ev := &l.events[k]
			if ev.Fd == wakeIndex {
				if l.drainInbox() {
					return
				}
				continue
			}
			if isListenerIndex(ev.Fd) {
				l.acceptable = append(l.acceptable, listenerOf(ev.Fd))
				continue
			}
			l.event(ev)
		}
		// New connections after the events of the ones the loop holds:
		// a close in the same batch frees its admission slot first (a
		// client that closes and reconnects at once is not refused for
		// its own old connection), and existing tunnels are served first.
		for _, k := range l.acceptable {
			if l.listening {
				l.accept(l.srv.listeners[k])
			}
		}
		l.acceptable = l.acceptable[:0]
		if n == len(l.events) && len(l.events) < 4096 {
			l.events = make([]unix.EpollEvent, 2*len(l.events))
		}
		if len(l.waits) > 0 {
			l.serveWaits()
		}
		l.runReady()
		if l.now != l.wheel.now {
			l.refillTokens()
			l.wheel.advance(l.now, l.timeout)
			if l.accepting && !l.listening && int32(l.now-l.acceptBackoff) >= 0 {
				l.pollListeners(true) // the back-off after EMFILE is over
			}
			if l.now-l.batch.trimmed >= trimTicks {
				l.batch.trim()
				l.batch.trimmed = l.now
			}
		}
		// Everything above only queued its copy-path calls; make them.
		// What their results leave to do is on the ready queue.
		l.flushIO()
	}
}

// poll returns the number of events ready in the loop's epoll set,
// waiting up to timeout for one.
//
// It asks epoll without blocking, and when nothing is ready waits in the
// Go runtime's poller (the loop's epoll fd is readable while events are
// ready), not in a blocking epoll_wait. A goroutine blocked in a system
// call keeps its P in the syscall state, and the runtime's monitor thread
// keeps checking such Ps every 20 µs to take them back: measured during a
// handshake run (5,000 upgrades/s), the monitor's wake-ups were 11% of the
// proxy's CPU and 0.8 nanosleep calls per upgrade. Parked in the poller
// the loop holds no P, and the monitor backs off to 10 ms.
func (l *loop) poll(timeout time.Duration) (int, error) {
	if timeout <= 0 {
		return sysEpollPoll(l.epfd, l.events)
	}
	// Read calls pollOnce before it waits, so a busy loop finds its
	// events with one epoll_wait and never parks. The deadline is moved
	// only when it has come near: setting it costs a runtime timer.
	now := time.Now()
	if l.deadline.Sub(now) < timeout/2 {
		l.deadline = now.Add(timeout)
		l.pollFile.SetReadDeadline(l.deadline)
	}
	l.polled, l.pollErr = 0, nil
	if err := l.pollConn.Read(l.pollOnceFn); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		return 0, err
	}
	return l.polled, l.pollErr
}

// pollOnce is poll's callback for the runtime's poller: false means
// nothing is ready yet, wait for the epoll fd to become readable.
func (l *loop) pollOnce(fd uintptr) bool {
	n, err := sysEpollPoll(int(fd), l.events)
	if err == unix.EINTR {
		n, err = 0, nil
	}
	l.polled, l.pollErr = n, err
	return n > 0 || err != nil
}

// drainInbox runs what other goroutines posted. It reports true when one of
// them stopped the loop.
func (l *loop) drainInbox() bool {
	var b [8]byte
	unix.Read(l.wake, b[:]) // an eventfd, not a socket
	l.woken.Store(false)
	l.mu.Lock()
	work := l.inbox
	l.inbox = nil
	l.mu.Unlock()
	for _, f := range work {
		f(l)
	}
	l.mu.Lock()
	stop := l.closed
	l.mu.Unlock()
	if stop {
		// stop may have been called while this batch ran: its work is
		// not in the batch, so shut down here, whatever the batch held.
		l.shutdown()
	}
	return stop
}

// stop makes the loop close every tunnel it holds and exit; it returns when
// the loop has.
func (l *loop) stop() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		<-l.done
		return
	}
	l.closed = true
	var one = [8]byte{1}
	unix.Write(l.wake, one[:]) // under mu, as in post
	l.mu.Unlock()
	<-l.done
}

// shutdown closes every tunnel, the pipes and the epoll fd. Work posted
// after stop was called never runs: its senders saw post fail.
func (l *loop) shutdown() {
	l.mu.Lock()
	l.closed = true
	work := l.inbox
	l.inbox = nil
	l.mu.Unlock()
	for _, f := range work {
		f(l) // hand-offs queued before the stop: they close what they bring
	}
	for p := range l.tabs.pages {
		for j := range l.tabs.pages[p] {
			i := int32(p*slabPage + j)
			if l.tabs.at(i).state != stFree {
				l.finish(i, causeShutdown)
			}
		}
	}
	l.batch.close() // the finished tunnels' sockets too
	l.pipes.close()
	l.tabs.unmap()
	unix.Close(l.wake)
	l.pollFile.Close() // the epoll fd
}

// watch registers one side of tunnel i with the loop's epoll,
// edge-triggered, for both readiness kinds at once: registering once costs
// no epoll_ctl per transfer. The event carries the tunnel index, its
// generation and the side, so a stale event for a reused fd is dropped.
func (l *loop) watch(i int32, side int, fd int) error {
	t := l.tabs.at(i)
	ev := unix.EpollEvent{
		Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET,
		Fd:     i,
		Pad:    int32((t.gen&genMask)<<1 | uint32(side)),
	}
	return sysEpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev)
}

// rewatch re-registers the client side after the generation changed (a
// new backend socket replaced a failed one).
func (l *loop) rewatch(i int32, side int) error {
	t := l.tabs.at(i)
	ev := unix.EpollEvent{
		Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET,
		Fd:     i,
		Pad:    int32((t.gen&genMask)<<1 | uint32(side)),
	}
	return sysEpollCtl(l.epfd, unix.EPOLL_CTL_MOD, int(t.fd[side]), &ev)
}

func (l *loop) event(ev *unix.EpollEvent) {
	i := ev.Fd
	side := int(ev.Pad & 1)
	t := l.tabs.at(i)
	if t.state == stFree || t.gen&genMask != uint32(ev.Pad)>>1 {
		return // the tunnel closed, or its backend socket changed, after this event was queued
	}
	e := ev.Events
	if e&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		t.io[side] |= canRead
	}
	if e&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		t.io[side] |= canWrite
	}
	if e&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		t.io[side] |= peerShut
	}
	l.step(i, t)
}

// step advances tunnel i as far as its sockets allow.
func (l *loop) step(i int32, t *tunnel) {
	switch t.state {
	case stHead:
		l.stepHead(i, t)
	case stConnecting:
		l.stepConnect(i, t)
	case stExchange:
		l.stepExchange(i, t)
	case stTunnel, stClosing:
		l.stepTunnel(i, t)
	case stHTTP:
		l.stepHTTP(i, t)
	case stLinger:
		l.stepLinger(i, t)
	}
}

// requeue puts tunnel i on the ready queue: it spent its budget with work
// left, and edge-triggered epoll will not report that work again.
func (l *loop) requeue(i int32, t *tunnel) {
	if !t.queued {
		t.queued = true
		l.ready = append(l.ready, i)
	}
}

func (l *loop) runReady() {
	for len(l.ready) > 0 {
		batch := l.ready
		l.ready = nil
		for _, i := range batch {
			t := l.tabs.at(i)
			if !t.queued {
				continue // freed (and maybe reused) since it was queued
			}
			t.queued = false
			l.step(i, t)
		}
		if len(l.ready) > 0 {
			// More work than one pass: give epoll a turn first (the
			// caller polls with a zero timeout while ready is non-empty).
			return
		}
	}
}

// timeout is the wheel's callback: tunnel i's due tick has come.
func (l *loop) timeout(i int32) {
	t := l.tabs.at(i)
	switch t.state {
	case stHead:
		l.headTimedOut(i, t)
	case stConnecting:
		l.connectTimedOut(i, t)
	case stExchange:
		l.answerTimedOut(i, t)
	case stTunnel, stHTTP:
		l.idleCheck(i, t)
	case stLinger:
		l.finish(i, t.cause)
	case stClosing:
		l.closeTimedOut(i, t)
	}
}

// ticks converts a duration to wheel ticks, rounding up so a timeout never
// fires early.
func ticks(d time.Duration) uint32 {
	return uint32((d + tick - 1) / tick)
}

// resolved is a backend's socket address as connect(2) takes it. Each loop
// keeps its own (nothing in it is shared between threads).
type resolved struct {
	raw    rawSockaddr
	family int
}

// resolve returns the socket address of backend addr.
func (l *loop) resolve(addr string) (*resolved, error) {
	if r, ok := l.addrs[addr]; ok {
		return r, nil
	}
	ap, err := l.srv.lookup(addr)
	if err != nil {
		return nil, err
	}
	r := &resolved{raw: makeRawSockaddr(sockaddr(ap)), family: unix.AF_INET6}
	if ap.Addr().Is4() {
		r.family = unix.AF_INET
	}
	if len(l.addrs) > 4096 {
		clear(l.addrs) // backends come and go: never grow without bound
	}
	l.addrs[addr] = r
	return r, nil
}
