package engine

import (
	"log/slog"
	"net"
	"os"
	"testing"
)

// TestMain starts Go's runtime poller (an epoll fd and an eventfd that
// live as long as the process) before any test, so that the first test's
// leak check does not count them.
func TestMain(m *testing.M) {
	if ln, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		ln.Close()
	}
	os.Exit(m.Run())
}

func slogStderr() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, nil))
}
