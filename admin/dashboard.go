package admin

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

// The dashboard is a static page (HTML, CSS and plain JavaScript, no
// framework, no build step, nothing fetched from elsewhere) embedded in the
// binary. It polls /stats once a second, loads /stats/history once for the
// minutes before it was opened, and drives the same API as `wsgate ctl`.
//
//go:embed web
var webFiles embed.FS

var webRoot, _ = fs.Sub(webFiles, "web")

// dashboardCSP lets the page load only its own files and talk only to this
// server: whatever a backend's name or an error message contains, it
// cannot run script (the page also sets text, never HTML).
const dashboardCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func dashboardHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", dashboardCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
}

// GET /
func (s *Server) serveDashboard(w http.ResponseWriter, r *http.Request) {
	dashboardHeaders(w)
	http.ServeFileFS(w, r, webRoot, "index.html")
}

var staticFiles = http.StripPrefix("/static/", http.FileServerFS(webRoot))

// GET /static/{file}
func (s *Server) serveStatic(w http.ResponseWriter, r *http.Request) {
	if strings.HasSuffix(r.URL.Path, "/") {
		writeError(w, http.StatusNotFound, "", "no such file")
		return
	}
	dashboardHeaders(w)
	staticFiles.ServeHTTP(w, r)
}
