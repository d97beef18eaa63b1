package engine

import (
	"fmt"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Sides of a tunnel and directions through it. Direction d reads side d and
// writes side 1-d: dirUp (client → backend) reads the client.
const (
	sideClient  = 0
	sideBackend = 1
	dirUp       = 0 // client → backend
	dirDown     = 1 // backend → client
)

// Tunnel states. A tunnel is born when the loop accepts its client and
// lives in that loop until both sockets close.
const (
	stFree       uint8 = iota
	stHead             // reading the client's head (session.go)
	stConnecting       // backend connect in flight
	stExchange         // head sent or being sent; waiting for the answer head
	stTunnel           // upgraded: bytes both ways until both ends finish
	stHTTP             // plain request: exact body up, the answer down, then close
	stLinger           // answer flushed to the client, then its input discarded until EOF
	stClosing          // a WebSocket tunnel ending with Close frames (graceful.go)
)

// Per-socket readiness bits, set from epoll events (edge-triggered) and
// cleared when a syscall says EAGAIN.
const (
	canRead    uint8 = 1 << iota
	canWrite         // the send buffer has room
	peerShut         // EPOLLRDHUP/HUP seen: read until 0, a short read proves nothing
	reading          // a recv on this socket is queued in the loop's batch (batch.go)
	writing          // a send on this socket is queued in the loop's batch
	sendFailed       // a batched send on this socket failed; flush reports it
)

// Direction flags.
const (
	dEOF         uint8 = 1 << iota // the source said EOF
	dShut                          // shutdown(SHUT_WR) done on the destination
	dBurst                         // splice-auto: a read filled the buffer, splice the rest of the burst
	dWaiting                       // queued for a pipe or for park room
	dCloseWant                     // graceful close: send our Close frame at the next frame boundary
	dCloseSent                     // our Close is queued: the source's further bytes are read and dropped
	dPeerClose                     // the source sent a whole Close frame after ours (its reply)
	dPeerClosing                   // the source's Close header has come; dPeerClose once its payload has too
)

// direction is one way through a tunnel. Idle, it holds no pipe and no
// chunk; bytes in flight are in at most one of them. Both are indices
// (plus one; 0 is none) into the loop's tables, not pointers: a tunnel
// holds no pointer at all, so the Go garbage collector never scans the
// tunnel pages, however many tunnels a node holds.
type direction struct {
	fr    frames // WebSocket frame boundaries (upgraded websocket tunnels only)
	chunk int32  // loop.chunks index + 1
	pipe  uint16 // loop.pipes id + 1 (a loop lends at most maxPipesPerLoop)
	flags uint8
}

// finished reports that the direction has delivered everything up to its
// source's EOF and half-closed its destination.
func (d *direction) finished() bool { return d.flags&dShut != 0 }

// peerAddr is the client's address in 20 bytes; a netip.AddrPort would cost
// 32 and this struct is multiplied by every tunnel a node holds.
type peerAddr struct {
	ip   [16]byte
	port uint16
	is4  bool
}

func makePeer(ap netip.AddrPort) peerAddr {
	a := ap.Addr().Unmap()
	return peerAddr{ip: a.As16(), port: ap.Port(), is4: a.Is4()}
}

func (p peerAddr) addr() netip.Addr {
	a := netip.AddrFrom16(p.ip)
	if p.is4 {
		a = a.Unmap()
	}
	return a
}

func (p peerAddr) addrPort() netip.AddrPort { return netip.AddrPortFrom(p.addr(), p.port) }

// tunnel is one client connection from hand-off to close: its two sockets,
// the two directions, timers and counters. It is kept small on purpose
// (DESIGN.md: ≤ 256 B user space per idle tunnel) and holds no pointer: the
// loop stores tunnels by value in pages the garbage collector does not
// scan, addresses them by index, and threads its timer and per-backend
// lists through them.
type tunnel struct {
	fd     [2]int32
	gen    uint32 // bumped on free: stale epoll events carry the old value
	state  uint8
	io     [2]uint8 // per side: canRead, canWrite, peerShut, reading, writing, sendFailed
	queued bool     // in the loop's ready queue
	leased bool     // holds an active slot on its backend to release
	linked bool     // on its backend's list (upgraded tunnels)
	ws     bool     // a WebSocket tunnel: its directions track frames
	tls    bool     // the client side is a TLS bridge's socket (tls.go)
	held   bool     // counted by the admission limits until it closes
	ln     uint8    // the listener it came from
	cause  uint8    // why it closes, for the access log and metrics
	peer   peerAddr // here, not last: it fills what alignment would waste

	// timer wheel
	prev, next int32
	due        uint32 // tick the wheel looks at this tunnel again
	active     uint32 // tick of the last byte moved
	closeAt    uint32 // tick of a scheduled drain close; 0 = none

	// the backend's list of this loop's tunnels (drain without a scan)
	bePrev, beNext int32
	be             int32 // loop.backends index + 1; 0 = none
	ex             int32 // loop.exchanges index + 1 while the handshake runs

	slot   int16
	status uint16 // answered status, for the access log
	logged uint16 // periodic access-log lines written (AccessLogInterval)

	dir     [2]direction
	bytes   [2]uint64
	started int64 // unix nanoseconds at accept
}

// slab holds a loop's tunnels in fixed pages so that growing never copies
// and a tunnel's address never changes. Measured in the prototype: a slice
// of structs costs 48 B per idle tunnel, a slice of pointers 69 B and a map
// from fd 190–220 B. Free tunnels are chained through next.
//
// The pages are mapped with mmap(2), outside the Go heap: a tunnel holds no
// pointer, so the garbage collector has nothing to find there, and memory
// it does not manage costs no runtime metadata. Measured: 40 KiB pages on
// the heap cost 25% more in /memory/classes/metadata/other (375 KiB per
// 1.44 MiB of tunnels), which made 9,000 idle tunnels cost 300-400 B each
// instead of the struct's 160.
type slab struct {
	pages [][]tunnel
	free  int32
	used  int
}

const (
	slabPageShift = 8
	slabPage      = 1 << slabPageShift
)

func (s *slab) at(i int32) *tunnel {
	return &s.pages[i>>slabPageShift][i&(slabPage-1)]
}

func (s *slab) init() { s.free = none }

// alloc returns the index of a zeroed tunnel, growing by one page when
// full. Growing can fail only when the kernel refuses memory.
func (s *slab) alloc() (int32, error) {
	if s.free == none {
		page, err := mapTunnels(slabPage)
		if err != nil {
			return none, err
		}
		base := int32(len(s.pages) * slabPage)
		for j := range page {
			page[j].next = base + int32(j) + 1
			page[j].slot = -1
		}
		page[slabPage-1].next = none
		s.pages = append(s.pages, page)
		s.free = base
	}
	i := s.free
	t := s.at(i)
	s.free = t.next
	gen := t.gen
	*t = tunnel{gen: gen, prev: none, next: none, slot: -1, bePrev: none, beNext: none, fd: [2]int32{-1, -1}}
	s.used++
	return i, nil
}

// unmap gives the pages back to the kernel; the slab is empty after.
func (s *slab) unmap() {
	for _, p := range s.pages {
		unmapTunnels(p)
	}
	s.pages, s.free, s.used = nil, none, 0
}

// mapTunnels maps zeroed, private memory for n tunnels. The kernel backs
// it page by page as tunnels are first used.
func mapTunnels(n int) ([]tunnel, error) {
	size := n * int(unsafe.Sizeof(tunnel{}))
	b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("mmap %d bytes for tunnels: %w", size, err)
	}
	return unsafe.Slice((*tunnel)(unsafe.Pointer(&b[0])), n), nil
}

func unmapTunnels(p []tunnel) {
	size := len(p) * int(unsafe.Sizeof(tunnel{}))
	unix.Munmap(unsafe.Slice((*byte)(unsafe.Pointer(&p[0])), size))
}

// release puts tunnel i back on the free list; the caller has closed its
// sockets and disarmed its timer.
func (s *slab) release(i int32) {
	t := s.at(i)
	t.gen++
	t.state = stFree
	t.next = s.free
	s.free = i
	s.used--
}
