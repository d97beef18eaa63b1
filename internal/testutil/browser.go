package testutil

import (
	"context"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath is Debian's chromium, which .ci/run installs;
// WSGATE_CHROMIUM names another.
const chromiumPath = "/usr/bin/chromium"

// FindChromium returns the browser to drive, or skips the test; in CI
// (WSGATE_CI=1) a missing browser fails it instead, so that browser tests are
// never silently skipped there.
func FindChromium(t *testing.T) string {
	t.Helper()
	path := os.Getenv("WSGATE_CHROMIUM")
	if path == "" {
		path = chromiumPath
		if p, err := exec.LookPath("chromium"); err == nil {
			path = p
		}
	}
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("WSGATE_CI") == "1" {
			t.Fatalf("WSGATE_CI=1 and no Chromium for browser tests: %v (install Debian's chromium package)", err)
		}
		t.Skipf("no Chromium for browser tests: %v", err)
	}
	return path
}

// Browser starts a headless Chromium of its own (fresh profile) and
// returns a context to drive one tab with, and the page errors seen.
func Browser(t *testing.T, chromium string) (context.Context, func() []string) {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox, // tests may run as root, where the sandbox will not start
		chromedp.DisableGPU,
		// Without these Chromium keeps dialling Google's services, which
		// on a closed network only floods it with failing connections.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	ctx, cancelTime := context.WithTimeout(ctx, 90*time.Second)
	// Start the browser now: a failure to is the environment's, and says so.
	if err := chromedp.Do(ctx); err != nil {
		cancelTime()
		cancelTab()
		cancelAlloc()
		t.Fatalf("start Chromium: %v", err)
	}

	// The page's uncaught exceptions and its console and browser-log
	// errors and warnings (CSP violations among them) fail the test.
	var mu sync.Mutex
	var errs []string
	messages := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			switch m.Type {
			case chromedp.ConsoleError, chromedp.ConsoleWarning, chromedp.ConsoleException:
				mu.Lock()
				errs = append(errs, m.String())
				mu.Unlock()
			}
		}
	}()
	// Cancelling the allocator kills the browser and waits for it.
	t.Cleanup(func() {
		cancelTime()
		cancelTab()
		cancelAlloc()
		<-done
	})
	return ctx, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), errs...)
	}
}
