package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/internal/admin"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/runtime/supervisor"
)

// fakeRuntime holds pipelines by name; ended ones refuse control with ErrNotRunning.
type fakeRuntime struct {
	mu    sync.Mutex
	pipes []supervisor.Info
	calls []string
	dlq   map[string]string // pipeline → dead-letter file
}

func (f *fakeRuntime) Status() []supervisor.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]supervisor.Status, len(f.pipes))
	for i, p := range f.pipes {
		out[i] = p.Status
	}
	return out
}

func (f *fakeRuntime) Info() []supervisor.Info {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]supervisor.Info(nil), f.pipes...)
}

func (f *fakeRuntime) find(name string) (*supervisor.Info, error) {
	for i := range f.pipes {
		if f.pipes[i].Name == name {
			return &f.pipes[i], nil
		}
	}
	return nil, fmt.Errorf("pipeline %q: %w", name, supervisor.ErrUnknownPipeline)
}

func (f *fakeRuntime) PipelineInfo(name string) (supervisor.Info, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, err := f.find(name)
	if err != nil {
		return supervisor.Info{}, err
	}
	return *p, nil
}

func (f *fakeRuntime) control(op, name string, apply func(*supervisor.Info)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, err := f.find(name)
	if err != nil {
		return err
	}
	if p.State == pipeline.StateFailed {
		return fmt.Errorf("pipeline %q: %w", name, supervisor.ErrNotRunning)
	}
	if p.Reason == "reloading" {
		return fmt.Errorf("pipeline %q: %w", name, supervisor.ErrReloading)
	}
	f.calls = append(f.calls, op+" "+name)
	apply(p)
	return nil
}

func (f *fakeRuntime) Pause(name string) error {
	return f.control("pause", name, func(p *supervisor.Info) { p.State, p.Paused = pipeline.StatePaused, true })
}

func (f *fakeRuntime) Resume(name string) error {
	return f.control("resume", name, func(p *supervisor.Info) { p.State, p.Paused = pipeline.StateRunning, false })
}

func (f *fakeRuntime) Restart(name string) error {
	return f.control("restart", name, func(p *supervisor.Info) { p.Restarts++ })
}

func (f *fakeRuntime) DeadLetterFile(name string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.find(name); err != nil {
		return "", err
	}
	if f.dlq[name] == "" {
		return "", fmt.Errorf("pipeline %q: %w", name, supervisor.ErrNoDeadLetterFile)
	}
	return f.dlq[name], nil
}

func newFake() *fakeRuntime {
	lag := 42.0
	return &fakeRuntime{pipes: []supervisor.Info{
		{Status: supervisor.Status{Name: "orders", Status: pipeline.Status{State: pipeline.StateRunning, Ready: true}},
			Counts: supervisor.Counts{In: 100, Out: 90, DeadLetters: 3, Rejected: 3, Errors: 3, Lag: &lag}, InPerSecond: 12.5, OutPerSecond: 11},
		{Status: supervisor.Status{Name: "broken", Status: pipeline.Status{State: pipeline.StateFailed, Reason: "sink \"db\": bad password"}}},
	}}
}

// validateStub answers one problem for a manifest holding "bad", none otherwise.
func validateStub(_ context.Context, file string, manifest []byte) ([]string, []admin.Diagnostic, error) {
	if strings.Contains(string(manifest), "bad") {
		return nil, []admin.Diagnostic{{File: file, Line: 5, Col: 11, Message: `source: unknown source type "fiel"`, Hint: `did you mean "file"?`}}, nil
	}
	return []string{"ok"}, nil, nil
}

func newServer(t *testing.T, rt admin.Runtime, token string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(admin.Handler(admin.Options{Metrics: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "sluice_up 1")
	}), Runtime: rt, Validate: validateStub, Token: token}))
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Defect 8: /readyz and /pipelines say why a pipeline is not ready.
func TestReadinessCarriesTheReason(t *testing.T) {
	rt := &fakeRuntime{pipes: []supervisor.Info{
		{Status: supervisor.Status{Name: "a", Status: pipeline.Status{State: pipeline.StateRunning, Ready: true}}},
		{Status: supervisor.Status{Name: "b", Status: pipeline.Status{State: pipeline.StatePaused, Ready: true}}},
	}}
	base := newServer(t, rt, "").URL
	if code, body := do(t, "GET", base+"/readyz", "", ""); code != 200 {
		t.Fatalf("/readyz = %d %q while every pipeline is ready (one paused)", code, body)
	}
	rt.mu.Lock()
	rt.pipes[1].Status = supervisor.Status{Name: "b", Status: pipeline.Status{State: pipeline.StateDegraded, Reason: `stuck longer than 2m0s: "out" has been failing for 3m0s`}}
	rt.mu.Unlock()
	code, body := do(t, "GET", base+"/readyz", "", "")
	if code != 503 || !strings.Contains(body, `b: degraded: stuck longer than 2m0s: "out" has been failing`) || strings.Contains(body, "a:") {
		t.Fatalf("/readyz = %d %q; want 503 naming b and why", code, body)
	}
	_, body = do(t, "GET", base+"/pipelines", "", "")
	var list []supervisor.Status
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[1].Ready || !strings.Contains(list[1].Reason, `"out" has been failing`) || list[0].State != "running" {
		t.Fatalf("/pipelines = %s", body)
	}
	if code, body := do(t, "GET", newServer(t, &fakeRuntime{}, "").URL+"/readyz", "", ""); code != 503 || !strings.Contains(body, "no pipelines") {
		t.Fatalf("/readyz without pipelines = %d %q", code, body)
	}
}

// TestAPI walks every endpoint: lists, one pipeline, control (and its errors), validation and
// bad requests.
func TestAPI(t *testing.T) {
	rt := newFake()
	base := newServer(t, rt, "").URL + "/api/v1"
	tests := []struct {
		name, method, path, body string
		code                     int
		want                     []string // substrings of the body
	}{
		{"list", "GET", "/pipelines", "", 200, []string{`"name": "orders"`, `"records_in_per_second": 12.5`, `"lag": 42`, `"dead_letters": 3`, `"name": "broken"`, `"lag": null`}},
		{"one", "GET", "/pipelines/orders", "", 200, []string{`"state": "running"`, `"records_out": 90`, `"errors": 3`}},
		{"unknown", "GET", "/pipelines/nope", "", 404, []string{`"error": "pipeline \"nope\": no such pipeline"`}},
		{"pause", "POST", "/pipelines/orders/pause", "", 200, []string{`"state": "paused"`, `"paused": true`}},
		{"resume", "POST", "/pipelines/orders/resume", "", 200, []string{`"state": "running"`, `"paused": false`}},
		{"restart", "POST", "/pipelines/orders/restart", "", 202, []string{`"restarts": 1`}},
		{"restart unknown", "POST", "/pipelines/nope/restart", "", 404, []string{"no such pipeline"}},
		{"pause failed", "POST", "/pipelines/broken/pause", "", 409, []string{"not running"}},
		{"pause by GET", "GET", "/pipelines/orders/pause", "", 405, nil},
		{"dead letters without a file", "GET", "/pipelines/broken/dead-letters", "", 404, []string{"no file dead_letter sink"}},
		{"valid manifest", "POST", "/validate", "apiVersion: sluice.dev/v1\n", 200, []string{`"valid": true`, `"pipelines": [`, `"ok"`, `"diagnostics": []`}},
		{"invalid manifest", "POST", "/validate?file=/etc/sluice/p.yaml", "bad", 200, []string{`"valid": false`, `"file": "/etc/sluice/p.yaml"`, `"line": 5`, `"col": 11`, `did you mean`}},
		{"empty manifest", "POST", "/validate", " \n", 400, []string{"body is empty"}},
		{"huge manifest", "POST", "/validate", strings.Repeat("#", admin.MaxManifestBytes+1), 413, []string{"larger than"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(t, tc.method, base+tc.path, "", tc.body)
			if code != tc.code {
				t.Fatalf("%s %s = %d, want %d; body:\n%s", tc.method, tc.path, code, tc.code, body)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("body lacks %s:\n%s", w, body)
				}
			}
		})
	}
	if want := []string{"pause orders", "resume orders", "restart orders"}; fmt.Sprint(rt.calls) != fmt.Sprint(want) {
		t.Fatalf("runtime calls = %v, want %v", rt.calls, want)
	}
}

// With a token, every route but the probes and the metrics answers 401 without it or with a
// wrong one, and serves with the right one.
func TestTokenGuard(t *testing.T) {
	const token = "s3cret-token"
	base := newServer(t, newFake(), token).URL
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if code, _ := do(t, "GET", base+path, "", ""); code == 401 {
			t.Errorf("%s needs the token; it must stay open for probes and scrapers", path)
		}
	}
	guarded := []struct{ method, path string }{
		{"GET", "/api/v1/pipelines"}, {"GET", "/api/v1/pipelines/orders"}, {"POST", "/api/v1/pipelines/orders/pause"},
		{"POST", "/api/v1/pipelines/orders/resume"}, {"POST", "/api/v1/pipelines/orders/restart"}, {"POST", "/api/v1/validate"},
		{"GET", "/api/v1/openapi.json"}, {"GET", "/pipelines"}, {"GET", "/api/v1/nothing-here"}, {"GET", "/api/v1/pipelines/orders/dead-letters"},
	}
	for _, g := range guarded {
		for _, tok := range []string{"", "wrong", token + "x", strings.ToUpper(token)} {
			code, body := do(t, g.method, base+g.path, tok, "apiVersion: x\n")
			var e admin.Error
			if code != 401 || json.Unmarshal([]byte(body), &e) != nil || !strings.Contains(e.Error, "bearer token") {
				t.Errorf("%s %s with token %q = %d %q; want 401 with a JSON error", g.method, g.path, tok, code, body)
			}
		}
	}
	if code, body := do(t, "GET", base+"/api/v1/pipelines", token, ""); code != 200 || !strings.Contains(body, "orders") {
		t.Fatalf("with the token: %d %q", code, body)
	}
	req, _ := http.NewRequest("GET", base+"/api/v1/pipelines/orders", nil)
	req.Header.Set("Authorization", "bearer "+token) // the scheme is case-insensitive
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("lower-case scheme: %d", resp.StatusCode)
	}
}

// The OpenAPI document describes exactly the routes the server serves: each of its operations
// is answered (not 404 or 405 from the router), and each route is in it.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	base := newServer(t, newFake(), "").URL
	code, body := do(t, "GET", base+"/api/v1/openapi.json", "", "")
	if code != 200 {
		t.Fatalf("openapi.json = %d", code)
	}
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi = %q", doc.OpenAPI)
	}
	var documented []string
	for path, ops := range doc.Paths {
		for method := range ops {
			op := strings.ToUpper(method) + " " + path
			documented = append(documented, op)
			url := base + strings.ReplaceAll(path, "{name}", "orders")
			body := ""
			if strings.HasSuffix(path, "/validate") {
				body = "apiVersion: sluice.dev/v1\n"
			}
			// The router's own 404 and 405 are plain text; the API's errors are JSON.
			if code, resp := do(t, strings.ToUpper(method), url, "", body); (code == 404 || code == 405) && !strings.HasPrefix(resp, "{") {
				t.Errorf("%s is documented but answers %d %q", op, code, resp)
			}
		}
	}
	served := admin.Routes()
	sort.Strings(documented)
	sort.Strings(served)
	if fmt.Sprint(documented) != fmt.Sprint(served) {
		t.Fatalf("documented operations:\n  %s\nserved routes:\n  %s", strings.Join(documented, "\n  "), strings.Join(served, "\n  "))
	}
	if code, _ := do(t, "GET", base+"/api/v1/undocumented", "", ""); code != 404 {
		t.Fatalf("an undocumented path answers %d", code)
	}
}

// The dead letters of a file dead-letter sink come in pages; a line still being written is left
// out; offset and limit are checked.
func TestDeadLetterPages(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "dlq.jsonl")
	var text strings.Builder
	for i := range 5 {
		fmt.Fprintf(&text, `{"pipeline":"orders","stage":"validate","kind":"rejected","reason":"price < 0","offset":%d,"value":"{\"price\": -%d}"}`+"\n", i, i)
	}
	text.WriteString(`{"pipeline":"orders","sta`) // being written
	if err := os.WriteFile(file, []byte(text.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	rt := newFake()
	rt.dlq = map[string]string{"orders": file, "broken": filepath.Join(dir, "none-yet.jsonl")}
	base := newServer(t, rt, "").URL + "/api/v1/pipelines/"
	page := func(path string) admin.DeadLetterPage {
		t.Helper()
		code, body := do(t, "GET", base+path, "", "")
		var p admin.DeadLetterPage
		if code != 200 || json.Unmarshal([]byte(body), &p) != nil {
			t.Fatalf("GET %s = %d %s", path, code, body)
		}
		return p
	}
	p := page("orders/dead-letters?offset=1&limit=3")
	if p.Total != 5 || p.Offset != 1 || p.NextOffset != 4 || len(p.DeadLetters) != 3 || p.DeadLetters[0].Index != 1 || p.File != file {
		t.Fatalf("page = %+v", p)
	}
	var env struct {
		Reason string
		Offset int
		Value  string
	}
	if err := json.Unmarshal(p.DeadLetters[2].Envelope, &env); err != nil || env.Offset != 3 || env.Reason != "price < 0" || env.Value != `{"price": -3}` {
		t.Fatalf("envelope 3 = %s (%v)", p.DeadLetters[2].Envelope, err)
	}
	if p := page("orders/dead-letters?offset=4"); len(p.DeadLetters) != 1 || p.NextOffset != 5 {
		t.Fatalf("last page = %+v", p)
	}
	if p := page("orders/dead-letters?offset=9"); len(p.DeadLetters) != 0 || p.NextOffset != 9 || p.Total != 5 {
		t.Fatalf("past the end = %+v", p)
	}
	rt.pipes[1].State = pipeline.StateRunning
	if p := page("broken/dead-letters"); p.Total != 0 || len(p.DeadLetters) != 0 {
		t.Fatalf("no file yet = %+v", p)
	}
	for _, q := range []string{"offset=-1", "limit=0", "limit=1001", "offset=x"} {
		if code, body := do(t, "GET", base+"orders/dead-letters?"+q, "", ""); code != 400 {
			t.Errorf("?%s = %d %s, want 400", q, code, body)
		}
	}
	if code, _ := do(t, "GET", base+"nope/dead-letters", "", ""); code != 404 {
		t.Errorf("unknown pipeline = %d", code)
	}
}

// A pipeline that a reload is draining refuses control with 409, not as a server failure.
func TestControlDuringReloadConflicts(t *testing.T) {
	rt := &fakeRuntime{pipes: []supervisor.Info{
		{Status: supervisor.Status{Name: "moving", Status: pipeline.Status{State: pipeline.StateRunning, Ready: true, Reason: "reloading"}}},
	}}
	base := newServer(t, rt, "").URL + "/api/v1"
	for _, op := range []string{"pause", "resume", "restart"} {
		if code, body := do(t, "POST", base+"/pipelines/moving/"+op, "", ""); code != 409 || !strings.Contains(body, "reload") {
			t.Errorf("%s while reloading = %d %s; want 409 naming the reload", op, code, body)
		}
	}
}
