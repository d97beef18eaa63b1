package bench

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ProcMem is a process's memory from /proc/PID/status, in bytes.
type ProcMem struct {
	RSS, RSSAnon int64
}

// ReadProcMem reads VmRSS and RssAnon of pid.
func ReadProcMem(pid int) (ProcMem, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ProcMem{}, fmt.Errorf("target process %d: %w", pid, err)
	}
	defer f.Close()
	var m ProcMem
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch k {
		case "VmRSS":
			m.RSS = kb(v)
		case "RssAnon":
			m.RSSAnon = kb(v)
		}
	}
	return m, sc.Err()
}

func kb(v string) int64 {
	f := strings.Fields(v)
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.ParseInt(f[0], 10, 64)
	return n << 10
}

// KernelMem is the machine's kernel memory that grows with sockets.
type KernelMem struct {
	Slab     int64 // /proc/meminfo Slab
	TCPPages int64 // /proc/net/sockstat TCP mem, in bytes
}

// ReadKernelMem reads /proc/meminfo and /proc/net/sockstat.
func ReadKernelMem() (KernelMem, error) {
	var k KernelMem
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return k, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if key, v, ok := strings.Cut(line, ":"); ok && key == "Slab" {
			k.Slab = kb(v)
		}
	}
	b, err = os.ReadFile("/proc/net/sockstat")
	if err != nil {
		return k, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "TCP:") {
			continue
		}
		f := strings.Fields(line)
		for i := 1; i+1 < len(f); i += 2 {
			if f[i] == "mem" {
				n, _ := strconv.ParseInt(f[i+1], 10, 64)
				k.TCPPages = n * int64(os.Getpagesize())
			}
		}
	}
	return k, nil
}

// CPUSeconds is a process's user+system CPU time from /proc/PID/stat.
func CPUSeconds(pid int) (float64, error) {
	f, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / clockTicks, nil
}

// clockTicks is USER_HZ, 100 on every Linux this runs on.
const clockTicks = 100

// Tree is a process and its descendants: nginx and HAProxy serve from
// workers under a master, so their cost is the sum over the tree.
func Tree(pid int) ([]int, error) {
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
		return nil, fmt.Errorf("target process %d: %w", pid, err)
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	parent := make(map[int]int, len(ents))
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp, ok := parentOf(p); ok {
			parent[p] = pp
		}
	}
	out := []int{pid}
	for changed := true; changed; {
		changed = false
		for p, pp := range parent {
			if contains(out, pp) && !contains(out, p) {
				out = append(out, p)
				changed = true
			}
		}
	}
	return out, nil
}

func contains(s []int, x int) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// statFields reads /proc/PID/stat and returns the fields after the
// command name (which may hold spaces): [0] is the state, [1] the ppid.
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, fmt.Errorf("target process %d: %w", pid, err)
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return nil, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return f, nil
}

func parentOf(pid int) (int, bool) {
	f, err := statFields(pid)
	if err != nil {
		return 0, false
	}
	pp, err := strconv.Atoi(f[1])
	return pp, err == nil
}

// TreeCPUSeconds is the user+system CPU time of pid and its descendants.
func TreeCPUSeconds(pid int) (float64, error) {
	pids, err := Tree(pid)
	if err != nil {
		return 0, err
	}
	var sum float64
	for _, p := range pids {
		s, err := CPUSeconds(p)
		if err != nil && p == pid {
			return 0, err
		}
		sum += s
	}
	return sum, nil
}

// ReadTreeMem sums VmRSS and RssAnon over pid and its descendants.
func ReadTreeMem(pid int) (ProcMem, error) {
	pids, err := Tree(pid)
	if err != nil {
		return ProcMem{}, err
	}
	var sum ProcMem
	for _, p := range pids {
		m, err := ReadProcMem(p)
		if err != nil && p == pid {
			return ProcMem{}, err
		}
		sum.RSS += m.RSS
		sum.RSSAnon += m.RSSAnon
	}
	return sum, nil
}

// cpuMeter measures the CPU a target tree spends between start and stop;
// with pid 0 it measures nothing.
type cpuMeter struct {
	pid int
	t0  float64
}

func startCPU(pid int) (cpuMeter, error) {
	m := cpuMeter{pid: pid}
	if pid <= 0 {
		return m, nil
	}
	var err error
	m.t0, err = TreeCPUSeconds(pid)
	return m, err
}

func (m cpuMeter) stop() (float64, error) {
	if m.pid <= 0 {
		return 0, nil
	}
	t1, err := TreeCPUSeconds(m.pid)
	return t1 - m.t0, err
}

// Machine is how busy the whole machine was during a run, from /proc/stat:
// on a small machine shared by the load generator, the backends and the
// proxy, a rate is bounded by the CPU all of them need per unit of work,
// and these figures let a report say how close a run came to that bound.
type Machine struct {
	CPUs         int     `json:"cpus"`
	BusySeconds  float64 `json:"busy_seconds"`  // user, nice, system, irq and softirq time over all CPUs
	StealSeconds float64 `json:"steal_seconds"` // time the hypervisor gave to others
	Busy         float64 `json:"busy"`          // BusySeconds / (CPUs × the run's seconds): 1 is saturated
}

// machineTimes reads the "cpu" line of /proc/stat: busy and steal seconds
// summed over all CPUs, and the number of CPUs.
func machineTimes() (busy, steal float64, cpus int, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 8 && f[0] == "cpu":
			// user nice system idle iowait irq softirq steal
			for _, k := range []int{1, 2, 3, 6, 7} {
				v, _ := strconv.ParseFloat(f[k], 64)
				busy += v / clockTicks
			}
			steal, _ = strconv.ParseFloat(f[8], 64)
			steal /= clockTicks
		case len(f) > 0 && strings.HasPrefix(f[0], "cpu"):
			cpus++
		}
	}
	return busy, steal, cpus, nil
}

// machineMeter measures the machine between start and stop.
type machineMeter struct {
	busy, steal float64
	cpus        int
	ok          bool
}

func startMachine() machineMeter {
	busy, steal, cpus, err := machineTimes()
	return machineMeter{busy, steal, cpus, err == nil}
}

// stop returns what the machine did since start, over a run of seconds;
// nil when /proc/stat could not be read.
func (m machineMeter) stop(seconds float64) *Machine {
	busy, steal, _, err := machineTimes()
	if !m.ok || err != nil || seconds <= 0 || m.cpus == 0 {
		return nil
	}
	out := &Machine{CPUs: m.cpus, BusySeconds: busy - m.busy, StealSeconds: steal - m.steal}
	// /proc/stat counts in 10 ms ticks: a run of a few milliseconds can
	// read as more than all CPUs busy.
	out.Busy = min(out.BusySeconds/(float64(m.cpus)*seconds), 1)
	return out
}
