package balance

import (
	"errors"
	"fmt"
	"strings"
)

// Errors. Pick's failures match ErrNoBackend with errors.Is; the admin
// calls' unknown-address errors match ErrUnknownBackend.
var (
	ErrNoBackend        = errors.New("no eligible backend")
	ErrUnknownBackend   = errors.New("unknown backend")
	ErrDuplicateBackend = errors.New("backend already in pool")
	ErrClosed           = errors.New("pool closed")
)

// NoBackendError says why Pick found nothing: how many backends were in each
// ineligible state. The engine answers 503.
type NoBackendError struct {
	Backends, Down, Draining, Disabled, Full, Excluded int
}

func (e *NoBackendError) Error() string {
	if e.Backends == 0 {
		return "no eligible backend: pool is empty"
	}
	var b strings.Builder
	b.WriteString("no eligible backend:")
	sep := " "
	for _, part := range []struct {
		n    int
		what string
	}{{e.Down, "down"}, {e.Draining, "draining"}, {e.Disabled, "disabled"}, {e.Full, "at max_conns"}, {e.Excluded, "already tried"}} {
		if part.n > 0 {
			fmt.Fprintf(&b, "%s%d %s", sep, part.n, part.what)
			sep = ", "
		}
	}
	if sep == " " {
		b.WriteString(" busy")
	}
	return b.String()
}

// Is makes errors.Is(err, ErrNoBackend) true.
func (e *NoBackendError) Is(target error) bool { return target == ErrNoBackend }

func errorf(addr, format string, args ...any) error {
	return fmt.Errorf("backend %q: "+format, append([]any{addr}, args...)...)
}
