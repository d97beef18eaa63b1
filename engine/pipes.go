package engine

import (
	"golang.org/x/sys/unix"
)

// pipe is one kernel pipe used to move a burst with splice(2): socket → pipe
// → socket, the bytes never entering user space. n counts the bytes it holds.
type pipe struct {
	r, w int
	n    int
	id   int32 // index in pipePool.all
}

// maxPipesPerLoop bounds a loop's pipes so that a pipe id fits a
// direction's 16 bits.
const maxPipesPerLoop = 1<<16 - 2

// pipePool lends pipes to a loop's tunnels while a direction has bytes in
// flight; an idle tunnel holds none (DESIGN.md, "Tunnel phase": a pipe per
// direction would cost ~5–8 KB of kernel memory and 4 fds per tunnel). It
// belongs to one loop and is used only from that loop's goroutine.
//
// The pool is bounded: it never holds or lends more than max pipes, so the
// fds it uses are planned against RLIMIT_NOFILE.
type pipePool struct {
	all     []*pipe // by id; nil where a discarded pipe was
	freeIDs []int32
	idle    []*pipe
	created int // pipes open now: idle + lent
	max     int
	size    int // F_SETPIPE_SZ, 0 = kernel default (64 KiB)
}

// get returns an empty pipe, or nil when the pool is at its bound or the
// process is out of fds (the caller falls back to copying or waits).
func (p *pipePool) get() (*pipe, error) {
	if n := len(p.idle); n > 0 {
		pp := p.idle[n-1]
		p.idle = p.idle[:n-1]
		return pp, nil
	}
	if p.created >= p.max || p.created >= maxPipesPerLoop {
		return nil, nil
	}
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return nil, err
	}
	if p.size > 0 {
		// Best effort: a larger pipe moves a bulk burst in fewer splices;
		// the kernel may refuse it (pipe-user-pages-soft), which is fine.
		_, _ = unix.FcntlInt(uintptr(fds[0]), unix.F_SETPIPE_SZ, p.size)
	}
	p.created++
	pp := &pipe{r: fds[0], w: fds[1]}
	if n := len(p.freeIDs); n > 0 {
		pp.id = p.freeIDs[n-1]
		p.freeIDs = p.freeIDs[:n-1]
		p.all[pp.id] = pp
	} else {
		pp.id = int32(len(p.all))
		p.all = append(p.all, pp)
	}
	return pp, nil
}

// put takes a pipe back. A pipe that still holds bytes (its tunnel died with
// data in flight) is closed, never lent again: its bytes belong to no one.
func (p *pipePool) put(pp *pipe) {
	if pp.n != 0 {
		p.discard(pp)
		return
	}
	p.idle = append(p.idle, pp)
}

func (p *pipePool) discard(pp *pipe) {
	sysClose(pp.r)
	sysClose(pp.w)
	p.created--
	p.all[pp.id] = nil
	p.freeIDs = append(p.freeIDs, pp.id)
}

// inUse reports how many pipes are lent out.
func (p *pipePool) inUse() int { return p.created - len(p.idle) }

// close closes every idle pipe; lent ones are closed by their tunnels.
func (p *pipePool) close() {
	for _, pp := range p.idle {
		p.discard(pp)
	}
	p.idle = nil
}
