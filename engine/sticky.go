package engine

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/wsgate/wsgate/balance"
	"github.com/wsgate/wsgate/handshake"
)

// Sticky is cookie stickiness for a route's pool: a client that carries
// the cookie goes to the backend it names while that backend is eligible;
// one without it (or whose backend left) is balanced as usual and told the
// chosen backend in a Set-Cookie on the answer. This is what socket.io
// needs — its long-polling requests must reach the backend that issued the
// session id, and then its upgrade too — without ip_hash's flaw of pinning
// every client behind one NAT to one backend.
type Sticky struct {
	// Cookie is the cookie's name.
	Cookie string
	// Key signs the cookie values, so that a client cannot choose its
	// backend; every node behind one balancer needs the same key. Empty:
	// a random key (cookies do not survive a restart).
	Key []byte
}

// sticky turns backend addresses into cookie values and back. A value is
// an HMAC of the address, so it says nothing about the backend and cannot
// be forged; the way back is a table of the pool's backends, rebuilt when
// the pool changes.
type sticky struct {
	cookie []byte
	attrs  string // "; Path=/; HttpOnly; SameSite=Lax"
	key    []byte

	mu    sync.Mutex
	table atomic.Pointer[stickyTable]
}

type stickyTable struct {
	changed <-chan struct{} // closed when the pool's backends change
	addrOf  map[string]string
	tokenOf map[string]string
}

// stickyTokenLen is the HMAC bytes kept: 128 bits, far beyond guessing.
const stickyTokenLen = 16

func newSticky(s Sticky) (*sticky, error) {
	if !handshake.ValidToken([]byte(s.Cookie)) {
		return nil, fmt.Errorf("sticky cookie name %q: must be an HTTP token", s.Cookie)
	}
	key := s.Key
	if len(key) == 0 {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, errors.New("sticky: no random key: " + err.Error())
		}
	}
	return &sticky{cookie: []byte(s.Cookie), attrs: "; Path=/; HttpOnly; SameSite=Lax", key: key}, nil
}

func (s *sticky) token(addr string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte("wsgate sticky\x00"))
	m.Write([]byte(addr))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:stickyTokenLen])
}

// current returns the table for pool p's backends as they are now.
func (s *sticky) current(p *balance.Pool) *stickyTable {
	if t := s.table.Load(); t.fresh() {
		return t
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.table.Load(); t.fresh() { // built while this one waited
		return t
	}
	t := &stickyTable{changed: p.Changes(), addrOf: map[string]string{}, tokenOf: map[string]string{}}
	for _, b := range p.Backends() {
		tok := s.token(b.Addr())
		t.addrOf[tok] = b.Addr()
		t.tokenOf[b.Addr()] = tok
	}
	s.table.Store(t)
	return t
}

// fresh reports that t exists and the pool has not changed since it was
// built.
func (t *stickyTable) fresh() bool {
	if t == nil {
		return false
	}
	select {
	case <-t.changed:
		return false
	default:
		return true
	}
}

// backend returns the backend named by req's cookie, or nil.
func (s *sticky) backend(p *balance.Pool, req *handshake.Request) *balance.Backend {
	v := cookieValue(req, s.cookie)
	if len(v) == 0 {
		return nil
	}
	addr, ok := s.current(p).addrOf[string(v)]
	if !ok {
		return nil
	}
	return p.Lookup(addr)
}

// appendSetCookie appends the Set-Cookie line naming backend addr.
func (s *sticky) appendSetCookie(dst []byte, p *balance.Pool, addr string) []byte {
	tok, ok := s.current(p).tokenOf[addr]
	if !ok {
		tok = s.token(addr)
	}
	dst = append(dst, "Set-Cookie: "...)
	dst = append(dst, s.cookie...)
	dst = append(dst, '=')
	dst = append(dst, tok...)
	dst = append(dst, s.attrs...)
	return append(dst, "\r\n"...)
}
