// Package testutil holds helpers shared by wsgate's tests: leak checks for
// goroutines and file descriptors, and small socket utilities.
package testutil

import (
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// CountFDs reports how many file descriptors this process has open, from
// /proc/self/fd (the directory handle used to read it is not counted).
func CountFDs(tb testing.TB) int {
	tb.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Fatalf("read /proc/self/fd: %v", err)
	}
	return len(ents) - 1
}

// CheckLeaks records the goroutine and fd counts now and, when the test ends,
// fails it if they have not come back to those levels within a few seconds.
// Call it first in a test, before anything it starts, so that the test's own
// Cleanup functions (registered later, run earlier) have shut everything down
// by the time the check runs.
func CheckLeaks(tb testing.TB) {
	tb.Helper()
	g0 := runtime.NumGoroutine()
	fd0 := CountFDs(tb)
	tb.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			g, fd := runtime.NumGoroutine(), CountFDs(tb)
			if g <= g0 && fd <= fd0 {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				n := runtime.Stack(buf, true)
				tb.Errorf("leak: goroutines %d → %d, fds %d → %d\n%s\nopen fds:\n%s",
					g0, g, fd0, fd, buf[:n], listFDs())
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

func listFDs() string {
	ents, _ := os.ReadDir("/proc/self/fd")
	var b strings.Builder
	for _, e := range ents {
		target, _ := os.Readlink("/proc/self/fd/" + e.Name())
		b.WriteString(e.Name() + " -> " + target + "\n")
	}
	return b.String()
}
