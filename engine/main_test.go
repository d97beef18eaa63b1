package engine

import (
	"io"
	"log/slog"
	"os"
	"testing"

	"github.com/cloudwego/netpoll"
)

// TestMain starts netpoll's process-wide pollers before any test, so that
// the leak checks do not count them: they live as long as the process.
func TestMain(m *testing.M) {
	configureNetpoll(slog.New(slog.NewTextHandler(io.Discard, nil)))
	netpoll.Initialize()
	os.Exit(m.Run())
}

func slogStderr() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, nil))
}
