package main

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wsgate/wsgate/engine"
)

// Zero-downtime binary upgrade, as nginx's: on SIGUSR2 wsgate starts the
// binary at its own path again, with the same arguments and the listening
// sockets inherited, waits until the new process says it serves, then
// stops accepting (the new process accepts from the same sockets, so no
// connection is refused in between) and drains its own tunnels until
// they end or the drain timeout passes, ending the rest with Close 1012
// (service restart: clients may reconnect at once).

const (
	// envListenFDs tells the new process which inherited fds listen on
	// which address: "ADDR=3,4;ADDR2=5".
	envListenFDs = "WSGATE_LISTEN_FDS"
	// envReadyFD is the fd the new process writes "ready" to once it
	// accepts.
	envReadyFD = "WSGATE_READY_FD"
	// upgradeReadyTimeout bounds the wait for the new process: one that
	// does not come up (a bad binary, a bad config) is killed and the old
	// one keeps serving.
	upgradeReadyTimeout = 30 * time.Second
)

// adminKey names the admin API's socket among the inherited ones.
const adminKey = "admin"

func upgrade(srv *engine.Server, adm *adminRun, log *slog.Logger) error {
	exe, err := exec.LookPath(os.Args[0])
	if err != nil {
		return fmt.Errorf("find the binary to start: %w", err)
	}
	byAddr := srv.ListenerFDs()
	addrs := make([]string, 0, len(byAddr))
	for a := range byAddr {
		addrs = append(addrs, a)
	}
	sort.Strings(addrs)
	var files []*os.File
	var spec []string
	for _, a := range addrs {
		var nums []string
		for _, fd := range byAddr[a] {
			// A copy, closed below: an *os.File closes its fd when it is
			// collected, and the engine's own must stay open.
			dup, err := unix.Dup(fd)
			if err != nil {
				closeFiles(files)
				return fmt.Errorf("dup listener %s: %w", a, err)
			}
			// ExtraFiles[i] becomes fd 3+i in the child.
			nums = append(nums, strconv.Itoa(3+len(files)))
			files = append(files, os.NewFile(uintptr(dup), "listener "+a))
		}
		spec = append(spec, a+"="+strings.Join(nums, ","))
	}
	defer func() { closeFiles(files) }()
	if f := adm.file(); f != nil {
		spec = append(spec, adminKey+"="+strconv.Itoa(3+len(files)))
		files = append(files, f)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	defer pr.Close()
	readyFD := 3 + len(files)
	files = append(files, pw)

	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.ExtraFiles = files
	cmd.Env = append(withoutUpgradeEnv(os.Environ()),
		envListenFDs+"="+strings.Join(spec, ";"),
		envReadyFD+"="+strconv.Itoa(readyFD))
	log.Info("binary upgrade: starting the new process", "binary", exe, "listeners", strings.Join(spec, ";"))
	if err := cmd.Start(); err != nil {
		pw.Close()
		return fmt.Errorf("start %s: %w", exe, err)
	}
	pw.Close() // the child holds its copy
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(pr).ReadString('\n')
		if err == nil && strings.TrimSpace(line) != "ready" {
			err = fmt.Errorf("unexpected %q", line)
		}
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return fmt.Errorf("new process (pid %d) did not start serving: %v", cmd.Process.Pid, err)
		}
	case <-time.After(upgradeReadyTimeout):
		cmd.Process.Kill()
		cmd.Wait()
		return fmt.Errorf("new process (pid %d) not ready within %v", cmd.Process.Pid, upgradeReadyTimeout)
	}
	// The child is on its own now; it outlives this process.
	go cmd.Wait()
	log.Info("binary upgrade: the new process serves; this one stops accepting and drains", "pid", cmd.Process.Pid)
	srv.Handoff()
	return nil
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

func withoutUpgradeEnv(env []string) []string {
	out := env[:0:0]
	for _, e := range env {
		if strings.HasPrefix(e, envListenFDs+"=") || strings.HasPrefix(e, envReadyFD+"=") {
			continue
		}
		out = append(out, e)
	}
	return out
}

// inheritedListeners reads the listening sockets a parent passed down.
func inheritedListeners(log *slog.Logger) map[string][]int {
	spec := os.Getenv(envListenFDs)
	if spec == "" {
		return nil
	}
	os.Unsetenv(envListenFDs)
	out := map[string][]int{}
	for _, part := range strings.Split(spec, ";") {
		addr, nums, ok := strings.Cut(part, "=")
		if !ok {
			log.Warn("binary upgrade: ignoring malformed listener list", "value", spec)
			return nil
		}
		for _, s := range strings.Split(nums, ",") {
			fd, err := strconv.Atoi(s)
			if err != nil || fd < 3 {
				log.Warn("binary upgrade: ignoring malformed listener list", "value", spec)
				return nil
			}
			out[addr] = append(out[addr], fd)
		}
	}
	return out
}

// signalReady tells the parent of a binary upgrade that this process
// serves.
func signalReady(log *slog.Logger) {
	s := os.Getenv(envReadyFD)
	if s == "" {
		return
	}
	os.Unsetenv(envReadyFD)
	fd, err := strconv.Atoi(s)
	if err != nil || fd < 3 {
		log.Warn("binary upgrade: bad ready fd", "value", s)
		return
	}
	f := os.NewFile(uintptr(fd), "upgrade ready")
	if _, err := f.WriteString("ready\n"); err != nil && !errors.Is(err, os.ErrClosed) {
		log.Warn("binary upgrade: telling the parent failed", "err", err)
	}
	f.Close()
}

// closeUnused closes inherited listening sockets this process's
// configuration does not listen on (it changed across the upgrade): left
// open, their queues would fill with connections nobody accepts.
func closeUnused(inherited map[string][]int, keep func(addr string) bool, log *slog.Logger) {
	for addr, fds := range inherited {
		if addr == adminKey || keep(addr) {
			continue
		}
		log.Info("binary upgrade: no longer listening", "address", addr)
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
}
