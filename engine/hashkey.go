package engine

import (
	"bytes"

	"github.com/wsgate/wsgate/balance"
	"github.com/wsgate/wsgate/handshake"
)

// hashKey is where the hash policy's key comes from (balance.Config's
// HashKey): the client address, or a header, cookie or query parameter.
// Note that socket.io cannot be kept on one backend by hashing its sid:
// the first long-poll carries no sid yet, so it is hashed differently from
// the session's later requests (test/interop shows 6-7 of 10 sessions
// failing); socket.io needs cookie stickiness or hashing by client address.
type hashKey struct {
	source uint8 // keyIP, keyHeader, keyCookie, keyQuery
	name   []byte
}

const (
	keyIP uint8 = iota
	keyHeader
	keyCookie
	keyQuery
)

func parseHashKey(pool *balance.Pool) hashKey {
	cfg := pool.Config()
	if cfg.Policy != balance.Hash {
		return hashKey{}
	}
	source, name, err := balance.SplitHashKey(cfg.HashKey)
	if err != nil {
		return hashKey{} // the pool validated it; fall back to the address
	}
	k := hashKey{name: []byte(name)}
	switch source {
	case "header":
		k.source = keyHeader
	case "cookie":
		k.source = keyCookie
	case "query":
		k.source = keyQuery
	}
	return k
}

// hashKey returns the key for ex's request, without allocating: a slice of
// the head, or the client address in the loop's scratch array. A request
// without the header, cookie or parameter hashes by client address.
func (l *loop) hashKey(ex *exchange) []byte {
	if ex.req != nil {
		k := &ex.route.key
		var v []byte
		switch k.source {
		case keyHeader:
			v = headerValue(ex.req, k.name)
		case keyCookie:
			v = cookieValue(ex.req, k.name)
		case keyQuery:
			v = queryValue(ex.req.Target, k.name)
		}
		if len(v) > 0 {
			return v
		}
	}
	l.key = ex.peer.Addr().As16()
	return l.key[:]
}

func headerValue(req *handshake.Request, name []byte) []byte {
	for _, h := range req.Headers {
		if bytes.EqualFold(h.Name, name) {
			return h.Value
		}
	}
	return nil
}

// cookieValue finds name=value in the Cookie headers (RFC 6265 5.4: pairs
// separated by "; ").
func cookieValue(req *handshake.Request, name []byte) []byte {
	for _, h := range req.Headers {
		if !bytes.EqualFold(h.Name, []byte("Cookie")) {
			continue
		}
		rest := h.Value
		for len(rest) > 0 {
			var pair []byte
			if i := bytes.IndexByte(rest, ';'); i >= 0 {
				pair, rest = rest[:i], rest[i+1:]
			} else {
				pair, rest = rest, nil
			}
			pair = bytes.TrimSpace(pair)
			if k, v, ok := bytes.Cut(pair, []byte("=")); ok && bytes.Equal(k, name) {
				return v
			}
		}
	}
	return nil
}

// queryValue finds name=value in a request target's query. The value is
// hashed as sent (not unescaped): the same client sends the same bytes.
func queryValue(target, name []byte) []byte {
	i := bytes.IndexByte(target, '?')
	if i < 0 {
		return nil
	}
	q := target[i+1:]
	if j := bytes.IndexByte(q, '#'); j >= 0 {
		q = q[:j]
	}
	for len(q) > 0 {
		var pair []byte
		if j := bytes.IndexByte(q, '&'); j >= 0 {
			pair, q = q[:j], q[j+1:]
		} else {
			pair, q = q, nil
		}
		if k, v, ok := bytes.Cut(pair, []byte("=")); ok && bytes.Equal(k, name) {
			return v
		}
	}
	return nil
}
