package admin

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/wsgate/wsgate/internal/testutil"
)

// waitJS polls a JavaScript expression in the page until it is true.
func waitJS(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		t.Fatalf("dashboard: waiting for %s (%s): %v\npage text:\n%s", what, expr, err, page)
	}
}

func textOf(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("dashboard: text of %s: %v", sel, err)
	}
	return s
}

// TestDashboardBrowser opens the dashboard in headless Chromium in front
// of a real engine with two echo backends: the backend table lists both,
// the active-tunnels figure rises as tunnels open, and Drain (after the
// token dialog, as the API has a token) drains the backend. It saves a
// screenshot of the page and logs where.
func TestDashboardBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	chromium := testutil.FindChromium(t)
	warmUp(t)
	testutil.CheckLeaks(t)
	const token = "dashboard-test-token"
	p := startProxy(t, 2, Config{Token: token, Version: "v0.0.0-test"})
	ctx, pageErrors := testutil.Browser(t, chromium)
	base := "http://" + p.admin.Addr().String() + "/"
	addrA, addrB := p.backends[0].Addr(), p.backends[1].Addr()

	if err := chromedp.Do(ctx, chromedp.Navigate(base)); err != nil {
		t.Fatalf("open %s: %v", base, err)
	}
	// The backend table lists both backends, up.
	waitJS(t, ctx, "both backends in the table", `document.querySelectorAll("#backends tbody tr[data-key]").length === 2`)
	for _, addr := range []string{addrA, addrB} {
		row := fmt.Sprintf(`#backends tr[data-address=%q]`, addr)
		if got := textOf(t, ctx, row+" td.addr"); got != addr {
			t.Errorf("backend row address %q, want %q", got, addr)
		}
		if got := textOf(t, ctx, row+" td.state"); got != "up" {
			t.Errorf("backend %s state %q, want up", addr, got)
		}
	}
	if got := textOf(t, ctx, "#version"); got != "v0.0.0-test" {
		t.Errorf("version %q", got)
	}
	waitJS(t, ctx, "0 tunnels active", `document.getElementById("active").textContent === "0"`)

	// Tunnels opened: the figure rises to their number.
	const n = 6
	var tunnels []*tunnel
	for range n {
		tn := p.dial(t)
		tn.watch()
		tunnels = append(tunnels, tn)
	}
	exchange(t, tunnels, 10*time.Second)
	waitJS(t, ctx, fmt.Sprintf("%d tunnels active", n), fmt.Sprintf(`document.getElementById("active").textContent === "%d"`, n))
	waitJS(t, ctx, "the backends' active counts", `Array.from(document.querySelectorAll("#backends td.active")).reduce((s, td) => s + Number(td.textContent), 0) === `+fmt.Sprint(n))

	// Drain a: the page asks for the token, asks again after a wrong one
	// saying why, then the row turns draining.
	rowA := fmt.Sprintf(`#backends tr[data-address=%q]`, addrA)
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.ID("deadline"), "1h"),
		chromedp.SetValue(chromedp.ID("spread"), "10s"),
		chromedp.Click(chromedp.CSS(rowA+` button[data-action="drain"]`)),
		chromedp.WaitVisible(chromedp.ID("token-dialog")),
		chromedp.SendKeys(chromedp.ID("token-input"), "not-the-token"),
		chromedp.Click(chromedp.ID("token-ok")),
	); err != nil {
		t.Fatalf("drain through the token dialog: %v", err)
	}
	waitJS(t, ctx, "the token dialog again after a wrong token",
		`document.getElementById("token-dialog").open && document.getElementById("token-why").textContent === "wrong admin token"`)
	if st := p.pool.Lookup(addrA).State().String(); st != "up" {
		t.Fatalf("a wrong token drained a: %s", st)
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("token-input"), token),
		chromedp.Click(chromedp.ID("token-ok")),
	); err != nil {
		t.Fatalf("the right token: %v", err)
	}
	waitJS(t, ctx, "a's row to turn draining", fmt.Sprintf(`document.querySelector(%q).dataset.state === "draining"`, rowA))
	if got := textOf(t, ctx, rowA+" td.state"); got != "draining" {
		t.Errorf("a's state on the page %q, want draining", got)
	}
	if st := p.pool.Lookup(addrA).State().String(); st != "draining" {
		t.Fatalf("a is %s in the pool after Drain on the page", st)
	}
	if d := p.pool.Lookup(addrA).DrainStatus(); d == nil || d.Spread != 10*time.Second || d.Deadline.Before(time.Now().Add(59*time.Minute)) {
		t.Errorf("a's drain %+v: the page did not send its deadline and spread", d)
	}
	waitJS(t, ctx, "a's undrain button", fmt.Sprintf(`!document.querySelector(%q).hidden && document.querySelector(%q).hidden`,
		rowA+` button[data-action="undrain"]`, rowA+` button[data-action="drain"]`))
	if got := textOf(t, ctx, fmt.Sprintf(`#backends tr[data-address=%q] td.state`, addrB)); got != "up" {
		t.Errorf("b's state %q after draining a", got)
	}

	// Let a few samples reach the charts, then take the picture.
	waitJS(t, ctx, "a handshake rate", `document.getElementById("hs-rate").textContent !== "–"`)
	time.Sleep(1500 * time.Millisecond)
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	dir := os.Getenv("WSGATE_SCREENSHOT_DIR")
	if dir == "" {
		dir = t.ArtifactDir()
	}
	shot := filepath.Join(dir, "dashboard.png")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("dashboard screenshot: %s (%d bytes; set WSGATE_SCREENSHOT_DIR or -artifacts to keep it)", shot, len(png))

	// On a narrow window (a phone, a split screen) everything still fits
	// across: wide tables scroll inside their box, not the whole page.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(560, 1000)); err != nil {
		t.Fatal(err)
	}
	// Two frames: the resize handler redraws the charts.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](`new Promise((ok) => requestAnimationFrame(() => requestAnimationFrame(ok)))`, chromedp.EvalAwaitPromise)); err != nil {
		t.Fatal(err)
	}
	png, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	narrow := filepath.Join(dir, "dashboard-narrow.png")
	if err := os.WriteFile(narrow, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("narrow screenshot: %s", narrow)
	overflow, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth - window.innerWidth`))
	if err != nil {
		t.Fatal(err)
	}
	if overflow > 0 {
		t.Errorf("at 560 px the page is %d px wider than the window (see %s)", overflow, narrow)
	}
	if err := chromedp.Do(ctx, chromedp.ResetViewport()); err != nil {
		t.Fatal(err)
	}

	// Undrain from the page: the token is remembered for the session.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(rowA+` button[data-action="undrain"]`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "a's row back up", fmt.Sprintf(`document.querySelector(%q).dataset.state === "up"`, rowA))
	if st := p.pool.Lookup(addrA).State().String(); st != "up" {
		t.Fatalf("a is %s after Undrain on the page", st)
	}

	// The wrong token's 403 is the one error the page was made to meet;
	// the browser logs the refused request.
	var errs []string
	refused := 0
	for _, e := range pageErrors() {
		if strings.Contains(e, "status of 403") && refused == 0 {
			refused++
			continue
		}
		errs = append(errs, e)
	}
	if len(errs) > 0 {
		t.Errorf("the page reported errors:\n%s", strings.Join(errs, "\n"))
	}
	// The API answered the page: no request was refused for its Host or
	// Origin, and none needed a second token prompt.
	expect(t, p.api.get("/readyz"), http.StatusOK, "readyz")
}
