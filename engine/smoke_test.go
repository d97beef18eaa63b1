package engine

import (
	"testing"

	"github.com/wsgate/wsgate/internal/testutil"
)

func TestSmokeEcho(t *testing.T) {
	testutil.CheckLeaks(t)
	b := startEcho(t, "a")
	_, addr := startProxy(t, []string{b.Addr()}, nil)
	c, br := dialWS(t, addr, "/")
	for i := 0; i < 10; i++ {
		echoOnce(t, c, br, []byte("hello"))
	}
}
