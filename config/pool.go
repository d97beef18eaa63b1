package config

import "github.com/wsgate/wsgate/balance"

// PoolConfig returns the named pool as balance.NewPool takes it, and false
// if there is no such pool (rather than an empty pool that would answer
// every request 502).
func (c *Config) PoolConfig(name string) (balance.Config, bool) {
	p, ok := c.Pools[name]
	if !ok {
		return balance.Config{}, false
	}
	return p.Balance(), true
}

// Balance converts p to balance.Config. The config already holds every
// default, so nothing is left for balance to fill in; sticky and PROXY
// protocol are the engine's, not the pool's.
func (p *Pool) Balance() balance.Config {
	bc := balance.Config{
		Policy:      p.Policy,
		MaxFails:    p.MaxFails,
		FailTimeout: p.FailTimeout,
		SlowStart:   p.SlowStart,
		HashKey:     p.HashKey,
		Backends:    make([]balance.BackendConfig, len(p.Backends)),
	}
	if h := p.HealthCheck; h != nil {
		bc.Health = balance.HealthCheck{
			Kind:     h.Type,
			Path:     h.Path,
			Interval: h.Interval,
			Timeout:  h.Timeout,
			Rise:     h.Rise,
			Fall:     h.Fall,
		}
	}
	for i, b := range p.Backends {
		bc.Backends[i] = balance.BackendConfig{Addr: b.Address, Weight: b.Weight, MaxConns: b.MaxConns}
	}
	return bc
}
