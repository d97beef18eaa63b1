package main

import (
	"fmt"
	"log/slog"
	"net/http"
	_ "net/http/pprof" // profiles on WSGATE_PPROF, for performance work
	"os"
	"runtime"
	"runtime/metrics"
	"strings"
)

// startPprof serves net/http/pprof on the address in WSGATE_PPROF, if set:
// how the engine's CPU and memory figures in bench/RESULTS.md were
// investigated. Off by default; bind it to loopback.
func startPprof(log *slog.Logger) {
	addr := os.Getenv("WSGATE_PPROF")
	if addr == "" {
		return
	}
	if os.Getenv("WSGATE_PPROF_ALLOCS") != "" {
		runtime.MemProfileRate = 1 // every allocation: exact, and slow
	}
	http.HandleFunc("/debug/memclasses", func(w http.ResponseWriter, r *http.Request) {
		var samples []metrics.Sample
		for _, d := range metrics.All() {
			if strings.HasPrefix(d.Name, "/memory/classes/") || strings.HasPrefix(d.Name, "/gc/heap/goal") {
				samples = append(samples, metrics.Sample{Name: d.Name})
			}
		}
		metrics.Read(samples)
		for _, s := range samples {
			if s.Value.Kind() == metrics.KindUint64 {
				fmt.Fprintf(w, "%-50s %d\n", s.Name, s.Value.Uint64())
			}
		}
	})
	go func() {
		if err := http.ListenAndServe(addr, nil); err != nil {
			log.Error("pprof listener failed", "addr", addr, "err", err)
		}
	}()
	log.Info("pprof serving", "addr", addr)
}
