package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// procs is every process the comparison started, so that each is stopped
// however the comparison ends: normally, on an error, or on a signal.
type procs struct {
	mu  sync.Mutex
	all []*proc
}

type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

// start runs argv in a process group of its own (so nginx's workers go
// with their master), killed by the kernel if this program dies first.
func (ps *procs) start(name string, log io.Writer, env []string, argv ...string) (*proc, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	ps.mu.Lock()
	ps.all = append(ps.all, p)
	ps.mu.Unlock()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop ends p's process group: SIGTERM, then SIGKILL after 5 s.
func (p *proc) stop() {
	if p.exited() {
		syscall.Kill(-p.pid(), syscall.SIGKILL) // strays of an exited leader
		return
	}
	syscall.Kill(-p.pid(), syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.done
	}
	syscall.Kill(-p.pid(), syscall.SIGKILL)
}

// stop ends one process and forgets it.
func (ps *procs) stop(p *proc) {
	p.stop()
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for i, q := range ps.all {
		if q == p {
			ps.all = append(ps.all[:i], ps.all[i+1:]...)
			break
		}
	}
}

// stopAll ends every process still running, newest first.
func (ps *procs) stopAll() {
	ps.mu.Lock()
	all := ps.all
	ps.all = nil
	ps.mu.Unlock()
	for i := len(all) - 1; i >= 0; i-- {
		all[i].stop()
	}
}

// waitListening waits until addr accepts connections (or p exits).
func waitListening(p *proc, addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if p.exited() {
			return fmt.Errorf("%s exited before listening on %s (see its log)", p.name, addr)
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s: nothing listening on %s after 10s", p.name, addr)
}

// checkFree fails when something already listens on addr: the comparison
// would measure someone else's server.
func checkFree(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return nil
	}
	c.Close()
	return fmt.Errorf("%s is already in use: stop what listens there (another comparison?) first", addr)
}
