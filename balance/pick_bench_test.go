package balance

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// Pick + Done, the cost the engine pays per tunnel. Hash keys cycle through
// 4096 IPv4 addresses. Median (and best) of 5 runs on a 2-vCPU AMD EPYC
// while other test runs kept the load average between 2 and 4, ns/op, all
// 0 allocs/op:
//
//	              2 serial  2 par    16 serial  16 par   256 serial  256 par
//	least_conn    15 (14)   70 (53)  37 (34)    65 (59)  683 (471)   495 (448)
//	round_robin   20 (20)   33 (25)  63 (60)    75 (60)  796 (739)   781 (730)
//	hash          23 (22)   26 (21)  22 (21)    20 (17)   24 (23)     31 (29)
func BenchmarkPickLeastConn(b *testing.B)  { benchPick(b, LeastConn) }
func BenchmarkPickRoundRobin(b *testing.B) { benchPick(b, RoundRobin) }
func BenchmarkPickHash(b *testing.B)       { benchPick(b, Hash) }

func benchPick(b *testing.B, pol Policy) {
	var keys [4096][4]byte
	for i := range keys {
		binary.BigEndian.PutUint32(keys[i][:], 0xc0a80000+uint32(i)*2654435761)
	}
	for _, n := range []int{2, 16, 256} {
		p, err := NewPool(Config{Policy: pol, Backends: equal(n)})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("%d/serial", n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				l, err := p.Pick(keys[i&4095][:], nil)
				if err != nil {
					b.Fatal(err)
				}
				l.Done()
				i++
			}
		})
		b.Run(fmt.Sprintf("%d/parallel", n), func(b *testing.B) {
			b.ReportAllocs()
			var seed atomic.Uint32
			b.RunParallel(func(pb *testing.PB) {
				i := int(seed.Add(1) * 1237)
				for pb.Next() {
					l, err := p.Pick(keys[i&4095][:], nil)
					if err != nil {
						b.Error(err)
						return
					}
					l.Done()
					i++
				}
			})
		})
		p.Close()
	}
}

// Pick, Connected and Done allocate nothing, for every policy, with a key
// and an exclude list on the caller's stack, with max_conns and slow start
// in play.
func TestPickAllocs(t *testing.T) {
	for _, pol := range []Policy{LeastConn, RoundRobin, Hash} {
		cfg := Config{Policy: pol, SlowStart: time.Hour, MaxFails: 1, Backends: equal(16)}
		cfg.Backends[3].MaxConns = 100
		p, _ := testPool(t, cfg)
		must(t, p.Add(BackendConfig{Addr: "10.9.9.9:80"}))
		other := p.Backends()[5]
		allocs := testing.AllocsPerRun(1000, func() {
			var key [16]byte
			key[0] = 7
			l, err := p.Pick(key[:], []*Backend{other})
			if err != nil {
				t.Fatal(err)
			}
			l.Connected()
			l.Done()
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocs per Pick", pol, allocs)
		}
	}
}
