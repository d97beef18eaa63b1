package main

import (
	"strings"
	"testing"

	"github.com/wsgate/wsgate/bench"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{{[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// handshakes is a round of a handshake run: n upgrades/s for 1 s, the
// proxy using proxyUS µs and the machine busyUS µs per upgrade.
func handshakes(n, proxyUS, busyUS float64) round {
	return round{Handshake: &bench.HandshakeResult{
		Handshakes: int64(n), Seconds: 1, PerSec: n,
		CPUSeconds: proxyUS * n / 1e6, CPUPerHandshake: proxyUS,
		Machine: &bench.Machine{CPUs: 2, BusySeconds: busyUS * n / 1e6, Busy: busyUS * n / 2e6},
	}}
}

// TestRateGoalBound: the figures are medians over rounds, and the table of
// what a rate goal leaves a proxy is CPUs ÷ rate, less the rest's share.
func TestRateGoalBound(t *testing.T) {
	results := []result{
		{Target: "direct", Rounds: []round{handshakes(8000, 0, 250), handshakes(7000, 0, 250), handshakes(7500, 0, 250)}},
		// wsgate: 80 µs of 350 per upgrade are the proxy's; the rest 270.
		{Target: "wsgate", Rounds: []round{handshakes(5000, 80, 350), handshakes(5200, 90, 350), handshakes(4000, 70, 350)}},
		{Target: "nginx", Rounds: []round{handshakes(5000, 100, 380), handshakes(5000, 100, 380)}},
	}
	if v, ok := metrics[6].Get(results[1]); !ok || v != 5000 {
		t.Errorf("wsgate handshakes/s: %v, %v; want the median 5000", v, ok)
	}
	u := usage(results[1], 2)
	if !u.ok || u.proxy*1e6 < 79.9 || u.proxy*1e6 > 80.1 || u.rest*1e6 < 269.9 || u.rest*1e6 > 270.1 {
		t.Errorf("usage: %+v; want proxy 80 µs, rest 270 µs", u)
	}
	// 1.25 × 5000 = 6250/s leaves 2 CPUs ÷ 6250 = 320 µs per upgrade;
	// less the rest's 270, 50 µs for a proxy.
	report := renderCPU(results, 2)
	want := "| handshakes ≥ 1.25× nginx | 6250/s | 320 µs per handshake | 270 | 50 | 80 | 100 |"
	if !strings.Contains(report, want) {
		t.Errorf("report lacks %q:\n%s", want, report)
	}
}
