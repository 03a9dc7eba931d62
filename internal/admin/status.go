package admin

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"net/http"
)

// The status page: one self-contained HTML document (inline style and script, no external
// resources) that polls GET /api/v1/pipelines every second and draws a table and throughput
// graphs. It holds no data itself, so it is served without the token; its requests to the API
// carry the token the user types in, kept in the tab's sessionStorage (see RATIONALE.md).

//go:embed status.html
var statusPage []byte

// statusCSP allows the page's own inline style and script (by their hashes) and requests to its
// own origin, nothing else: no other script runs even if an API answer carried markup.
var statusCSP = "default-src 'none'; connect-src 'self'; img-src 'self' data:; " +
	"style-src " + inlineHash(statusPage, "<style>", "</style>") + "; " +
	"script-src " + inlineHash(statusPage, "<script>", "</script>") + "; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// inlineHash returns the CSP source expression of the text between open and close in doc.
func inlineHash(doc []byte, open, close string) string {
	_, rest, ok := bytes.Cut(doc, []byte(open))
	body, _, ok2 := bytes.Cut(rest, []byte(close))
	if !ok || !ok2 {
		panic("admin: status.html lacks " + open + "…" + close)
	}
	sum := sha256.Sum256(body)
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

func (a *api) statusPage(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", statusCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	_, _ = w.Write(statusPage)
}

// handleStatusPage serves the page at / (that path only, not as a catch-all) and /status. The
// page is not an API route, so the OpenAPI document does not list it.
func (a *api) handleStatusPage(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", a.statusPage)
	mux.HandleFunc("GET /status", a.statusPage)
}
