package balance

// PickBackend reserves an active slot on b, the backend a client is
// pinned to (the engine's sticky cookie names it), if b is still one of
// p's backends, not excluded, and eligible: up, not draining or disabled,
// under max_conns. Otherwise it reports false and the caller picks as
// usual — a pin never sends a client to a backend the policy would not.
func (p *Pool) PickBackend(b *Backend, exclude []*Backend) (Lease, bool) {
	if b == nil || b.pool != p || excluded(b, exclude) {
		return Lease{}, false
	}
	c := clock{p: p}
	if !b.acquire(&c) {
		return Lease{}, false
	}
	return Lease{b: b}, true
}
