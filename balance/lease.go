package balance

// FailKind says how a dial (or the upgrade on it) failed. Every kind counts
// toward max_fails, as nginx's default proxy_next_upstream "error timeout"
// counts both.
type FailKind uint8

const (
	FailRefused  FailKind = iota // connection refused or reset while dialling
	FailTimeout                  // connect or upgrade response timed out
	FailError                    // any other I/O error
	FailResponse                 // the backend answered the upgrade with an invalid head or a 5xx

	// NumFailKinds sizes per-kind counter arrays.
	NumFailKinds = int(FailResponse) + 1
)

var failKindNames = [...]string{"refused", "timeout", "error", "response"}

func (k FailKind) String() string {
	if int(k) < len(failKindNames) {
		return failKindNames[k]
	}
	return "unknown"
}

// Lease is one reserved active slot on a backend, the result of Pick. It is
// a value; copying it does not make a second slot. Its lifecycle:
//
//	lease, err := pool.Pick(key, tried)
//	conn, err := dial(lease.Backend().Addr())
//	if err != nil { lease.Failed(FailRefused); retry with lease.Backend() in tried }
//	lease.Connected()
//	... tunnel ...
//	lease.Done()
//
// Exactly one of Failed or Done must be called, once: a second release
// corrupts the backend's active count. A Lease is only its backend, so the
// pool cannot tell one lease from another; it panics when a release takes
// the count below zero, as a negative sync.WaitGroup counter does.
// Connected may be called before either.
type Lease struct {
	b *Backend
}

// Backend is the chosen backend; nil for the zero Lease.
func (l Lease) Backend() *Backend { return l.b }

// Connected reports a successful dial. As nginx does on a successful
// request, it clears the backend's failure count; a backend that was down
// (this was its trial) is up again and starts its slow start.
func (l Lease) Connected() {
	if l.b != nil {
		l.b.succeeded()
	}
}

// Failed reports a failed dial, counts it toward max_fails and releases the
// slot.
func (l Lease) Failed(kind FailKind) {
	if l.b != nil {
		l.b.failed(kind)
		l.b.release()
	}
}

// Done reports that the tunnel closed and releases the slot.
func (l Lease) Done() {
	if l.b != nil {
		l.b.release()
	}
}
