// Package admin serves the runtime's admin HTTP API: liveness, readiness, Prometheus metrics,
// and under /api/v1 a JSON API to list, inspect, pause, resume and restart pipelines and to
// validate manifests, described by the OpenAPI document at /api/v1/openapi.json.
//
// The status page at / (and /status) shows the pipelines with throughput graphs in a browser.
//
// With a token set, every route but /healthz, /readyz, /metrics and the page needs the header
// "Authorization: Bearer TOKEN"; a request without it, or with another token, gets 401.
package admin

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/runtime/supervisor"
)

// Runtime is what the admin API reads and controls; *supervisor.Supervisor implements it. Its
// methods are called from request goroutines and must be safe for concurrent use.
type Runtime interface {
	Status() []supervisor.Status
	Info() []supervisor.Info
	PipelineInfo(name string) (supervisor.Info, error)
	Pause(name string) error
	Resume(name string) error
	Restart(name string) error
	// DeadLetterFile returns the path of the pipeline's dead-letter file, or an error matching
	// supervisor.ErrNoDeadLetterFile when its dead-letter sink is not a file.
	DeadLetterFile(name string) (string, error)
	// ReplayDeadLetters feeds the selected dead letters of the pipeline's file back into it
	// (see supervisor.Supervisor.ReplayDeadLetters).
	ReplayDeadLetters(ctx context.Context, name string, sel supervisor.ReplaySelection) (supervisor.ReplayResult, error)
}

// Diagnostic is one problem of a manifest, placed at its line and column.
type Diagnostic struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Col     int    `json:"col"`
	Message string `json:"message"`
	Hint    string `json:"hint,omitempty"`
}

// ValidateFunc checks the manifest text as `sluice validate` does, as if read from file. It
// returns the names of its pipelines and its problems; err is for failures of the check itself.
type ValidateFunc func(ctx context.Context, file string, manifest []byte) (pipelines []string, diags []Diagnostic, err error)

// MaxManifestBytes bounds the body of POST /api/v1/validate.
const MaxManifestBytes = 4 << 20

// Options configure the admin server.
type Options struct {
	// Metrics serves /metrics. Required.
	Metrics http.Handler
	// Runtime is the pipelines the API reports and controls. Required.
	Runtime Runtime
	// Validate checks manifests for POST /api/v1/validate; nil answers 501.
	Validate ValidateFunc
	// Token, when not empty, guards every route but /healthz, /readyz, /metrics and the status
	// page (/ and /status).
	Token string
	// Logger receives the server's own failures; nil discards them.
	Logger *slog.Logger
	// Reload reports the state of manifest reloading for GET /api/v1/reload (a JSON value);
	// nil answers 404: reloading is off.
	Reload func() any
}

// route is one route the server serves; the OpenAPI document must describe each (a test checks).
type route struct {
	method, path string
	handler      func(*api, http.ResponseWriter, *http.Request)
}

// openPaths are served without the token: the probes, the metrics and the status page (which
// holds no data; its requests to the API carry the token).
var openPaths = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true, "/": true, "/status": true}

var routes = []route{
	{"GET", "/healthz", (*api).healthz},
	{"GET", "/readyz", (*api).readyz},
	{"GET", "/metrics", (*api).metrics},
	{"GET", "/pipelines", (*api).legacyPipelines},
	{"GET", "/api/v1/openapi.json", (*api).openapi},
	{"GET", "/api/v1/pipelines", (*api).list},
	{"GET", "/api/v1/pipelines/{name}", (*api).get},
	{"POST", "/api/v1/pipelines/{name}/pause", (*api).pause},
	{"POST", "/api/v1/pipelines/{name}/resume", (*api).resume},
	{"POST", "/api/v1/pipelines/{name}/restart", (*api).restart},
	{"GET", "/api/v1/pipelines/{name}/dead-letters", (*api).deadLetters},
	{"POST", "/api/v1/pipelines/{name}/dead-letters/replay", (*api).replay},
	{"POST", "/api/v1/validate", (*api).validate},
	{"GET", "/api/v1/reload", (*api).reload},
}

//go:embed openapi.json
var openAPIDocument []byte

type api struct {
	o     Options
	token [32]byte
}

// Handler returns the admin API as an http.Handler.
func Handler(o Options) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	a := &api{o: o, token: sha256.Sum256([]byte(o.Token))}
	mux := http.NewServeMux()
	for _, r := range routes {
		h := r.handler
		mux.HandleFunc(r.method+" "+r.path, func(w http.ResponseWriter, req *http.Request) { h(a, w, req) })
	}
	a.handleStatusPage(mux)
	if o.Token == "" {
		return mux
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !openPaths[r.URL.Path] && !a.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
			writeError(w, http.StatusUnauthorized, "a bearer token is required: send the header Authorization: Bearer TOKEN with the token of --admin-token")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// authorized compares the request's bearer token with the server's in constant time (digests
// of equal length, so the token's length does not show either).
func (a *api) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(got[:], a.token[:]) == 1
}

// Server is the admin HTTP server.
type Server struct {
	srv *http.Server
	ln  net.Listener
}

// Start listens on addr and serves Handler(o) in the background.
func Start(addr string, o Options) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin: listen on %s: %w", addr, err)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{srv: &http.Server{Handler: Handler(o), ReadHeaderTimeout: 5 * time.Second}, ln: ln}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin server stopped", "err", err)
		}
	}()
	return s, nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close shuts the server down.
func (s *Server) Close(ctx context.Context) error { return s.srv.Shutdown(ctx) }

// IsLoopback reports whether addr (HOST:PORT) listens on the loopback interface only.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (a *api) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintln(w, "ok")
}

// readyz is 200 when every pipeline is ready: running (paused or not) with its source and sinks
// open and nothing stuck, or finished.
func (a *api) readyz(w http.ResponseWriter, _ *http.Request) {
	var notReady []supervisor.Status
	ps := a.o.Runtime.Status()
	for _, p := range ps {
		if !p.Ready {
			notReady = append(notReady, p)
		}
	}
	w.Header().Set("Content-Type", "text/plain")
	if len(ps) == 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "not ready: no pipelines")
		return
	}
	if len(notReady) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		for _, p := range notReady {
			fmt.Fprintf(w, "not ready: %s: %s: %s\n", p.Name, p.State, p.Reason)
		}
		return
	}
	fmt.Fprintln(w, "ready")
}

func (a *api) metrics(w http.ResponseWriter, r *http.Request) { a.o.Metrics.ServeHTTP(w, r) }

// legacyPipelines is the list of statuses the server served before /api/v1.
func (a *api) legacyPipelines(w http.ResponseWriter, _ *http.Request) {
	out := a.o.Runtime.Status()
	if out == nil {
		out = []supervisor.Status{}
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *api) openapi(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPIDocument)
}

// PipelineList is the body of GET /api/v1/pipelines.
type PipelineList struct {
	Pipelines []supervisor.Info `json:"pipelines"`
}

func (a *api) list(w http.ResponseWriter, _ *http.Request) {
	out := a.o.Runtime.Info()
	if out == nil {
		out = []supervisor.Info{}
	}
	writeJSON(w, http.StatusOK, PipelineList{Pipelines: out})
}

func (a *api) get(w http.ResponseWriter, r *http.Request) {
	info, err := a.o.Runtime.PipelineInfo(r.PathValue("name"))
	if err != nil {
		writeRuntimeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, info)
}

func (a *api) pause(w http.ResponseWriter, r *http.Request) {
	a.control(w, r, a.o.Runtime.Pause, http.StatusOK)
}

func (a *api) resume(w http.ResponseWriter, r *http.Request) {
	a.control(w, r, a.o.Runtime.Resume, http.StatusOK)
}

func (a *api) restart(w http.ResponseWriter, r *http.Request) {
	a.control(w, r, a.o.Runtime.Restart, http.StatusAccepted)
}

// control applies op to the named pipeline and answers its status.
func (a *api) control(w http.ResponseWriter, r *http.Request, op func(string) error, code int) {
	name := r.PathValue("name")
	if err := op(name); err != nil {
		writeRuntimeError(w, err)
		return
	}
	info, err := a.o.Runtime.PipelineInfo(name)
	if err != nil {
		writeRuntimeError(w, err)
		return
	}
	writeJSON(w, code, info)
}

// ValidateResult is the body of POST /api/v1/validate.
type ValidateResult struct {
	Valid       bool         `json:"valid"`
	Pipelines   []string     `json:"pipelines"`
	Diagnostics []Diagnostic `json:"diagnostics"`
}

func (a *api) validate(w http.ResponseWriter, r *http.Request) {
	if a.o.Validate == nil {
		writeError(w, http.StatusNotImplemented, "this server does not validate manifests")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxManifestBytes))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the manifest is larger than %d bytes", MaxManifestBytes))
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, "reading the manifest: "+err.Error())
		return
	case len(strings.TrimSpace(string(body))) == 0:
		writeError(w, http.StatusBadRequest, "the body is empty: send the manifest's YAML as the request body")
		return
	}
	file := r.URL.Query().Get("file")
	if file == "" {
		file = "manifest.yaml"
	}
	names, diags, err := a.o.Validate(r.Context(), file, body)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if names == nil {
		names = []string{}
	}
	if diags == nil {
		diags = []Diagnostic{}
	}
	writeJSON(w, http.StatusOK, ValidateResult{Valid: len(diags) == 0, Pipelines: names, Diagnostics: diags})
}

// Limits of GET /api/v1/pipelines/{name}/dead-letters.
const (
	DefaultDeadLetterLimit = 100
	MaxDeadLetterLimit     = 1000
)

// DeadLetterPage is the body of GET /api/v1/pipelines/{name}/dead-letters.
type DeadLetterPage struct {
	Pipeline string `json:"pipeline"`
	File     string `json:"file"`
	// Offset is the index of the first dead letter of the page; NextOffset the one to ask for
	// next (equal to Total at the end).
	Offset     int `json:"offset"`
	NextOffset int `json:"next_offset"`
	// Total is the number of complete dead letters in the file.
	Total       int          `json:"total"`
	DeadLetters []DeadLetter `json:"dead_letters"`
}

// DeadLetter is one dead letter: its index in the file, the envelope the engine wrote and,
// once it was replayed, the mark of its replay.
type DeadLetter struct {
	Index    int                    `json:"index"`
	Envelope json.RawMessage        `json:"envelope"`
	Replayed *supervisor.ReplayMark `json:"replayed,omitempty"`
}

func (a *api) deadLetters(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	offset, limit, err := pageParams(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	path, err := a.o.Runtime.DeadLetterFile(name)
	if err != nil {
		writeRuntimeError(w, err)
		return
	}
	page, err := readDeadLetters(path, offset, limit)
	if err == nil {
		err = markReplayed(path, &page) // replay.go
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	page.Pipeline = name
	writeJSON(w, http.StatusOK, page)
}

func pageParams(r *http.Request) (offset, limit int, err error) {
	q := r.URL.Query()
	limit = DefaultDeadLetterLimit
	if v := q.Get("offset"); v != "" {
		if offset, err = strconv.Atoi(v); err != nil || offset < 0 {
			return 0, 0, fmt.Errorf("offset %q: want a whole number, 0 or more", v)
		}
	}
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > MaxDeadLetterLimit {
			return 0, 0, fmt.Errorf("limit %q: want a whole number from 1 to %d", v, MaxDeadLetterLimit)
		}
	}
	return offset, limit, nil
}

// readDeadLetters reads the page [offset, offset+limit) of the complete lines of a dead-letter
// file (a last line without its newline is still being written and is left out) and counts
// them all. A missing file holds no dead letters.
func readDeadLetters(path string, offset, limit int) (DeadLetterPage, error) {
	page := DeadLetterPage{File: path, Offset: offset, DeadLetters: []DeadLetter{}}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		page.NextOffset = offset
		return page, nil
	}
	if err != nil {
		return page, fmt.Errorf("dead letters: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	i := 0
	for ; ; i++ {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) { // a long line: gather it whole
			rest, rerr := br.ReadBytes('\n')
			line, err = append(append([]byte(nil), line...), rest...), rerr
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				break // a line without its newline is incomplete
			}
			return page, fmt.Errorf("dead letters: read %s: %w", path, err)
		}
		if i < offset || i >= offset+limit {
			continue
		}
		env := bytes.TrimSpace(line)
		if !json.Valid(env) {
			b, _ := json.Marshal(string(env))
			env = b
		}
		page.DeadLetters = append(page.DeadLetters, DeadLetter{Index: i, Envelope: append(json.RawMessage(nil), env...)})
	}
	page.Total = i
	page.NextOffset = min(offset+limit, max(i, offset))
	return page, nil
}

func (a *api) reload(w http.ResponseWriter, _ *http.Request) {
	if a.o.Reload == nil {
		writeError(w, http.StatusNotFound, "manifest reloading is off: `sluice run` watches its manifests unless --watch=false")
		return
	}
	writeJSON(w, http.StatusOK, a.o.Reload())
}

// Error is the body of every error answer of the API.
type Error struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, Error{Error: msg})
}

func writeRuntimeError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, supervisor.ErrUnknownPipeline), errors.Is(err, supervisor.ErrNoDeadLetterFile):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, supervisor.ErrNotRunning), errors.Is(err, supervisor.ErrReloading):
		writeError(w, http.StatusConflict, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
