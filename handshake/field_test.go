package handshake

import (
	"strings"
	"testing"
)

// TestHopByHop holds the readable list and the rule together.
func TestHopByHop(t *testing.T) {
	listed := map[fieldKind]bool{}
	for _, name := range hopByHopNames {
		for _, n := range []string{name, strings.ToLower(name), strings.ToUpper(name)} {
			k := classify([]byte(n))
			if !k.hopByHop() {
				t.Errorf("%s is not hop-by-hop", n)
			}
			listed[k] = true
		}
	}
	for k := fieldOther; k <= fieldOrigin; k++ {
		if k.hopByHop() != listed[k] {
			t.Errorf("kind %d: hopByHop %v, listed %v", k, k.hopByHop(), listed[k])
		}
		if !(k | fieldNamedByConnection).hopByHop() {
			t.Errorf("kind %d named by Connection is not hop-by-hop", k)
		}
	}
}

func TestClassify(t *testing.T) {
	for name, want := range map[string]fieldKind{
		"Host": fieldHost, "HOST": fieldHost, "hosts": fieldOther, "Hos": fieldOther,
		"sec-websocket-key": fieldWSKey, "Sec-WebSocket-Version": fieldWSVersion,
		"Sec-WebSocket-Protocol": fieldWSProtocol, "Sec-WebSocket-Accept": fieldWSAccept,
		"X-Forwarded-For": fieldXForwardedFor, "x-forwarded-proto": fieldXForwardedProto,
		"X-Forwarded-Host": fieldXForwardedHost, "X-Real-IP": fieldXRealIP, "Forwarded": fieldForwarded,
		"Content-Length": fieldContentLength, "Transfer-Encoding": fieldTransferEncoding,
		"Expect": fieldExpect, "Origin": fieldOrigin, "Tf": fieldOther, "T": fieldOther,
		"Transfer-Encodinh": fieldOther, "Sec-WebSocket-Extensions": fieldOther,
	} {
		if got := classify([]byte(name)); got != want {
			t.Errorf("classify(%q) = %d, want %d", name, got, want)
		}
	}
	if equalFold([]byte("chun\u212aed"), "chunked") {
		t.Error("Kelvin sign folded to k")
	}
}
