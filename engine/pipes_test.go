package engine

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/wsgate/wsgate/internal/testutil"
)

// TestPipesGoBackWhenDrained: with far fewer pipes than tunnels, splice
// mode still moves every tunnel's messages, because a direction gives its
// pipe back as soon as its source is drained. Held until the direction's
// next event, the pipes sat in idle directions while the messages that
// would produce those events waited for a pipe.
func TestPipesGoBackWhenDrained(t *testing.T) {
	testutil.CheckLeaks(t)
	b := startEcho(t, "a")
	srv, addr := startProxy(t, []string{b.Addr()}, func(c *Config) {
		c.Mode = ModeSplice
		c.MaxPipes = 4
		c.Loops = 1
	})
	const tunnels, rounds = 20, 20
	var wg sync.WaitGroup
	errs := make(chan error, tunnels)
	start := time.Now()
	for k := range tunnels {
		c, br := dialWS(t, addr, "/")
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			rw := wsConn{c, br}
			for j := range rounds {
				msg := []byte(fmt.Sprintf("tunnel %d round %d", k, j))
				if err := wsutil.WriteClientMessage(c, ws.OpText, msg); err != nil {
					errs <- err
					return
				}
				got, _, err := wsutil.ReadServerData(rw)
				if err != nil {
					errs <- fmt.Errorf("tunnel %d round %d: %w", k, j, err)
					return
				}
				if string(got) != string(msg) {
					errs <- fmt.Errorf("tunnel %d: echo %q, want %q", k, got, msg)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// 400 round trips of a few dozen bytes: well under a second unless
	// tunnels wait for pipes they should have had.
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("%d round trips took %v", tunnels*rounds, d)
	}
	// The last echo can reach its client just before the loop's next
	// splice finds the source empty and gives the pipe back: allow the
	// loop that moment, not the direction's next event (which never
	// comes: every tunnel is idle now).
	deadline := time.Now().Add(time.Second)
	for srv.Stats().PipesInUse != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := srv.Stats().PipesInUse; n != 0 {
		t.Errorf("%d pipes still lent a second after every tunnel went idle", n)
	}
}
