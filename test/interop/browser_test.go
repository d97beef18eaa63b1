package interop

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/wsgate/wsgate/balance"
	"github.com/wsgate/wsgate/internal/testutil"
)

// browserPage opens a WebSocket from a page of another origin, as a web
// application does, sends a text and a 200 kB binary message (larger
// than one read, so the tunnel splices part of it), and reports in the
// title what came back and what was negotiated.
const browserPage = `<!doctype html><title>start</title><script>
const ws = new WebSocket(%q, ["wsgate.interop"]);
ws.binaryType = "arraybuffer";
const got = [];
ws.onopen = () => {
  ws.send("hello from chromium");
  ws.send(new Uint8Array(200000).fill(7));
};
ws.onmessage = (e) => {
  got.push(typeof e.data === "string" ? e.data
    : "binary " + e.data.byteLength + " " + new Uint8Array(e.data).every((b) => b === 7));
  if (got.length === 2) {
    document.title = "done|" + got.join("|") + "|" + ws.protocol + "|" + ws.extensions;
    ws.close(1000, "bye");
  }
};
ws.onerror = () => { document.title = "error"; };
</script>`

// TestBrowser: headless Chromium's own WebSocket client, through wsgate
// and directly, to node's ws server: the messages come back whole, the
// subprotocol and permessage-deflate (which Chromium always offers) are
// negotiated end to end, and the backend sees the page's Origin and the
// forwarding headers.
func TestBrowser(t *testing.T) {
	testutil.CheckLeaks(t)
	needNode(t)
	chromium := testutil.FindChromium(t)
	b := startBackend(t, "ws-echo-server.js", "ws-echo")
	g := startGate(t, balance.Config{}, b)
	for _, r := range routes(b.addr, g) {
		t.Run(r.name, func(t *testing.T) {
			path := "/browser/" + r.name
			page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				fmt.Fprintf(w, browserPage, "ws://"+r.addr+path)
			}))
			defer page.Close()
			ctx, pageErrors := testutil.Browser(t, chromium)
			if _, err := chromedp.Run(ctx, chromedp.Navigate(page.URL)); err != nil {
				t.Fatalf("open the page: %v", err)
			}
			_, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.title !== "start"`,
				chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(20*time.Second)))
			title, terr := chromedp.Run(ctx, chromedp.Title())
			if err != nil || terr != nil {
				t.Fatalf("page: %v %v (title %q)", err, terr, title)
			}
			want := "done|hello from chromium|binary 200000 true|wsgate.interop|permessage-deflate"
			if !strings.HasPrefix(title, want) {
				t.Fatalf("page says %q, want %q", title, want)
			}
			conns := b.find("connection", func(e event) bool { return e.str("url") == path })
			if len(conns) != 1 {
				t.Fatalf("backend saw %d connections on %s, want 1:\n%s", len(conns), path, b.output())
			}
			checkForwarded(t, r, conns[0])
			if got := conns[0].header("origin"); got != page.URL {
				t.Errorf("backend saw Origin %q, want the page's %q", got, page.URL)
			}
			b.waitEvent(t, eventTimeout, "close", func(e event) bool {
				return e.num("id") == conns[0].num("id") && e.num("code") == 1000
			})
			if errs := pageErrors(); len(errs) > 0 {
				t.Errorf("page errors: %v", errs)
			}
		})
	}
}
