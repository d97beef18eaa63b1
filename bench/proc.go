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
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("target process %d: %w", pid, err)
	}
	// The command name may hold spaces; fields start after its ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / clockTicks, nil
}

// clockTicks is USER_HZ, 100 on every Linux this runs on.
const clockTicks = 100
