package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/wsgate/wsgate/internal/testutil"
)

// TestReload: without a configuration file (no hook, or the hook says so)
// POST /reload is a 409 that says why; a refused configuration is a 400
// with the hook's reason; a good one is a 200.
func TestReload(t *testing.T) {
	testutil.CheckLeaks(t)
	_, c := startServer(t, Config{})
	a := c.post("/reload")
	expect(t, a, http.StatusConflict, "reload without a config file")
	if e := a.apiErr(t); !strings.Contains(e.Error, "configuration file") {
		t.Errorf("409 does not say why: %q", e.Error)
	}

	var hookErr error
	calls := 0
	_, c = startServer(t, Config{Reload: func(ctx context.Context) error {
		calls++
		if _, ok := ctx.Deadline(); !ok {
			return errors.New("reload without a deadline")
		}
		return hookErr
	}})
	cases := []struct {
		err  error
		code int
		msg  string
	}{
		{nil, http.StatusOK, ""},
		{fmt.Errorf("read /etc/wsgate.toml: %w", ErrNoConfigFile), http.StatusConflict, "nothing to reload"},
		{errors.New(`backend "x": want host:port`), http.StatusBadRequest, `reload: backend "x": want host:port`},
	}
	for _, tc := range cases {
		hookErr = tc.err
		a := c.post("/reload")
		expect(t, a, tc.code, fmt.Sprintf("reload when the hook returns %v", tc.err))
		if tc.code == http.StatusOK {
			var ok map[string]bool
			if a.json(t, &ok); !ok["reloaded"] {
				t.Errorf("reload answer %s", a.body)
			}
			continue
		}
		if e := a.apiErr(t); !strings.Contains(e.Error, tc.msg) {
			t.Errorf("reload error %q, want it to contain %q", e.Error, tc.msg)
		}
	}
	if calls != len(cases) {
		t.Errorf("hook called %d times, want %d", calls, len(cases))
	}
}
