// Package wsecho is the WebSocket echo server behind `wsgate echo`, the
// demo's backends and the tests and benchmarks: every frame comes back as
// it went (fragments, opcodes and all, unmasked as a server must send it),
// pings are answered, and a plain HTTP request is answered with a
// description of what arrived, so that a test can see the head a backend
// receives.
package wsecho

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gobwas/ws"
)

// Server is one echo server.
type Server struct {
	// Name is put in plain answers and in the X-Echo-Server header, so a
	// test can tell which backend answered.
	Name string

	ln    net.Listener
	hs    *http.Server
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// Listen starts an echo server on addr ("127.0.0.1:0" picks a port).
func Listen(addr, name string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("echo: %w", err)
	}
	s := &Server{Name: name, ln: ln, conns: make(map[net.Conn]struct{})}
	s.hs = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.hs.Serve(ln)
	}()
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server and closes every connection, upgraded ones too.
func (s *Server) Close() error {
	err := s.hs.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		s.upgrade(w, r)
		return
	}
	w.Header().Set("X-Echo-Server", s.Name)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if r.Method == http.MethodPost || r.Method == http.MethodPut {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Write(body)
		return
	}
	io.WriteString(w, Describe(s.Name, r))
}

// Describe renders a request as the plain answer shows it: the request
// line, then the headers sorted by name, one "Name: value" per line.
func Describe(name string, r *http.Request) string {
	var b strings.Builder
	fmt.Fprintf(&b, "server: %s\n%s %s %s\nHost: %s\n", name, r.Method, r.RequestURI, r.Proto, r.Host)
	keys := make([]string, 0, len(r.Header))
	for k := range r.Header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range r.Header[k] {
			fmt.Fprintf(&b, "%s: %s\n", k, v)
		}
	}
	return b.String()
}

func (s *Server) upgrade(w http.ResponseWriter, r *http.Request) {
	u := ws.HTTPUpgrader{Header: http.Header{"X-Echo-Server": {s.Name}}}
	conn, rw, _, err := u.Upgrade(r, w)
	if err != nil {
		return // gobwas/ws has answered 400 with the reason
	}
	s.mu.Lock()
	s.conns[conn] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, conn)
		s.mu.Unlock()
		conn.Close()
		s.wg.Done()
	}()
	// ?headers=1: first send the head this server received, so a test can
	// check what a proxy forwarded on an upgrade.
	if r.URL.Query().Get("headers") == "1" {
		if err := writeFrame(conn, ws.OpText, true, []byte(Describe(s.Name, r))); err != nil {
			return
		}
	}
	echo(conn, rw.Reader)
}

// echo sends every frame back until the client closes or fails. Payloads
// stream through a fixed buffer, so a 1 GiB frame costs no more memory
// than a small one.
func echo(conn net.Conn, br *bufio.Reader) {
	buf := make([]byte, 64<<10)
	for {
		h, err := ws.ReadHeader(br)
		if err != nil {
			return
		}
		mask := h.Mask
		masked := h.Masked
		h.Masked = false
		h.Mask = [4]byte{}
		switch h.OpCode {
		case ws.OpPong:
			if _, err := io.CopyN(io.Discard, br, h.Length); err != nil {
				return
			}
			continue
		case ws.OpPing:
			h.OpCode = ws.OpPong
		case ws.OpClose:
			p := make([]byte, h.Length)
			if _, err := io.ReadFull(br, p); err != nil {
				return
			}
			if masked {
				ws.Cipher(p, mask, 0)
			}
			writeFrame(conn, ws.OpClose, true, p)
			return
		}
		// Header and a first slice of payload in one write: small echoes
		// cost one syscall.
		hlen := headerLen(h.Length)
		n := min(int64(len(buf)-hlen), h.Length)
		if err := writeHeaderTo(buf[:hlen], h); err != nil {
			return
		}
		pos := 0
		if _, err := io.ReadFull(br, buf[hlen:hlen+int(n)]); err != nil {
			return
		}
		if masked {
			ws.Cipher(buf[hlen:hlen+int(n)], mask, pos)
		}
		if _, err := conn.Write(buf[:hlen+int(n)]); err != nil {
			return
		}
		pos += int(n)
		for rest := h.Length - n; rest > 0; {
			k := min(int64(len(buf)), rest)
			if _, err := io.ReadFull(br, buf[:k]); err != nil {
				return
			}
			if masked {
				ws.Cipher(buf[:k], mask, pos)
			}
			if _, err := conn.Write(buf[:k]); err != nil {
				return
			}
			pos += int(k)
			rest -= k
		}
	}
}

func headerLen(n int64) int {
	switch {
	case n < 126:
		return 2
	case n <= 0xffff:
		return 4
	}
	return 10
}

type sliceWriter struct {
	b []byte
	n int
}

func (w *sliceWriter) Write(p []byte) (int, error) {
	w.n += copy(w.b[w.n:], p)
	return len(p), nil
}

func writeHeaderTo(b []byte, h ws.Header) error {
	return ws.WriteHeader(&sliceWriter{b: b}, h)
}

func writeFrame(w io.Writer, op ws.OpCode, fin bool, p []byte) error {
	return ws.WriteFrame(w, ws.Frame{Header: ws.Header{Fin: fin, OpCode: op, Length: int64(len(p))}, Payload: p})
}
