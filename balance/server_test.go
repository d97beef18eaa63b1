package balance

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testServer is a backend on 127.0.0.1 that can stop and start again on the
// same port. With HTTP set it answers each request with Status; otherwise
// it accepts and closes.
type testServer struct {
	t      testing.TB
	addr   string
	http   bool
	Status atomic.Int32
	mu     sync.Mutex
	ln     net.Listener
	done   chan struct{}
	reqs   atomic.Value // last request line
}

func startServer(t testing.TB, http bool) *testServer {
	t.Helper()
	s := &testServer{t: t, http: http, addr: "127.0.0.1:0"}
	s.Status.Store(200)
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *testServer) start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return
	}
	var ln net.Listener
	var err error
	// The port may linger briefly after stop; retry for a moment.
	for range 50 {
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("listen %s: %v", s.addr, err)
	}
	s.ln, s.addr, s.done = ln, ln.Addr().String(), make(chan struct{})
	go s.serve(ln, s.done)
}

func (s *testServer) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return
	}
	s.ln.Close()
	<-s.done
	s.ln = nil
}

func (s *testServer) serve(ln net.Listener, done chan struct{}) {
	defer close(done)
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		if s.http {
			c.SetDeadline(time.Now().Add(time.Second))
			r := bufio.NewReader(c)
			line, _ := r.ReadString('\n')
			s.reqs.Store(strings.TrimSpace(line))
			for {
				l, err := r.ReadString('\n')
				if err != nil || l == "\r\n" {
					break
				}
			}
			fmt.Fprintf(c, "HTTP/1.1 %d X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", s.Status.Load())
		}
		c.Close()
	}
}

// waitFor polls cond for up to 10 s: a bound for a loaded machine, not a
// measurement.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
