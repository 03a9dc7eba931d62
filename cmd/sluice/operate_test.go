package main_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pipelineInfo is what GET /api/v1/pipelines/NAME answers, in the fields the tests read.
type pipelineInfo struct {
	Name           string   `json:"name"`
	State          string   `json:"state"`
	Ready          bool     `json:"ready"`
	Reason         string   `json:"reason"`
	Paused         bool     `json:"paused"`
	Restarts       int      `json:"restarts"`
	BackoffSeconds float64  `json:"backoff_seconds"`
	LastError      string   `json:"last_error"`
	In             float64  `json:"records_in"`
	Out            float64  `json:"records_out"`
	Lag            *float64 `json:"lag"`
}

// call sends a request to the admin API with the bearer token (none when empty).
func call(t *testing.T, method, url, token, body string) (int, string) {
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
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func infoOf(t *testing.T, base, token, name string) (pipelineInfo, bool) {
	t.Helper()
	code, body := call(t, "GET", base+"/api/v1/pipelines/"+name, token, "")
	if code != 200 {
		return pipelineInfo{}, false
	}
	var p pipelineInfo
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatalf("GET %s: %v\n%s", name, err, body)
	}
	return p, true
}

// until polls cond every few milliseconds until it holds; it fails the test after two minutes,
// or when the process has exited.
func until(t *testing.T, what string, exited <-chan struct{}, stderr fmt.Stringer, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); !cond(); time.Sleep(10 * time.Millisecond) {
		select {
		case <-exited:
			t.Fatalf("sluice exited while waiting for %s; stderr:\n%s", what, stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; stderr:\n%s", what, stderr)
		}
	}
}

// checkSeq fails unless the lines of path are 1 … n for some n >= min, each once, in order.
func checkSeq(t *testing.T, path string, min int) int {
	t.Helper()
	got := lines(t, path)
	if len(got) < min {
		t.Fatalf("%s holds %d lines, want at least %d", path, len(got), min)
	}
	for i, v := range got {
		if v != fmt.Sprint(i+1) {
			t.Fatalf("%s line %d = %q: a record lost or repeated", path, i+1, v)
		}
	}
	return len(got)
}

// TestRunIsolatesAFailingPipeline runs two pipelines: one whose Postgres sink points at a port
// where nothing listens, and one that copies 3000 records. The failing one is restarted with a
// growing backoff (seen through the admin API) until its start attempts are used up; the other
// delivers everything meanwhile; then `sluice run` exits 1 naming the failed pipeline.
func TestRunIsolatesAFailingPipeline(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out.txt")
	closed := freeAddr(t) // nothing listens there once freeAddr returns
	if err := os.MkdirAll(filepath.Join(dir, "pipelines"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "pipelines", "good.yaml"), fmt.Sprintf(`apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: good}
spec:
  source: {type: generate, config: {count: 3000, rate: 1000, template: "{{seq}}"}}
  sinks: [{name: out, type: file, config: {path: %q}}]
`, out))
	writeFile(t, filepath.Join(dir, "pipelines", "bad.yaml"), fmt.Sprintf(`apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: bad}
spec:
  source: {type: generate, config: {rate: 100, template: "{\"seq\": {{seq}}}"}}
  sinks: [{name: db, type: postgres, config: {dsn: "postgres://sluice@%s/x?sslmode=disable", table: t, value_column: v, connect_timeout: 2s}}]
`, closed))
	addr := freeAddr(t)
	const token = "run-isolation-token"
	r := startSluice(t, []string{"SLUICE_ADMIN_TOKEN=" + token}, "run", "--data-dir", filepath.Join(dir, "data"), "--admin-addr", addr, "--start-attempts", "4", filepath.Join(dir, "pipelines"))
	exited, stderr := r.done, r.stderr

	base := "http://" + addr
	var backoffs []float64
	sawGoodFinished, sawNotReady := false, false
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("sluice run did not end; stderr:\n%s", stderr)
		}
		select {
		case <-exited:
		default:
			if p, ok := infoOf(t, base, token, "bad"); ok && p.State == "degraded" && p.BackoffSeconds > 0 {
				if len(backoffs) == 0 || backoffs[len(backoffs)-1] != p.BackoffSeconds {
					backoffs = append(backoffs, p.BackoffSeconds)
					if !strings.Contains(p.LastError, "connect") {
						t.Errorf("degraded without the cause: %+v", p)
					}
					if code, body := call(t, "GET", base+"/readyz", "", ""); code == 503 && strings.Contains(body, "bad: degraded") {
						sawNotReady = true
					}
				}
			}
			if p, ok := infoOf(t, base, token, "good"); ok && p.State == "finished" {
				sawGoodFinished = true
			}
			continue
		}
		break
	}
	var ee *exec.ExitError
	if !errors.As(r.err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit = %v, want status 1; stderr:\n%s", r.err, stderr)
	}
	if fmt.Sprint(backoffs) != "[1 2 4]" {
		t.Errorf("backoffs seen = %v, want [1 2 4] (seconds, doubling)", backoffs)
	}
	if !sawGoodFinished || !sawNotReady {
		t.Errorf("saw good finished: %v, /readyz naming bad: %v", sawGoodFinished, sawNotReady)
	}
	if s := stderr.String(); !strings.Contains(s, `pipeline "bad"`) || !strings.Contains(s, "gave up after 4 attempts") {
		t.Errorf("stderr does not say which pipeline failed and why:\n%s", s)
	}
	checkSeq(t, out, 3000)
}

// TestAdminAPIControlsPipelines drives a running pipeline through the admin API: the token
// guard, the OpenAPI document, pause (nothing read while paused, nothing left in flight),
// resume, restart, and validation; after SIGTERM the output holds every record once.
func TestAdminAPIControlsPipelines(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out.txt")
	manifest := writeFile(t, filepath.Join(dir, "gen.yaml"), fmt.Sprintf(`apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: gen}
spec:
  source: {type: generate, config: {rate: 2000, template: "{{seq}}"}}
  sinks: [{name: out, type: file, config: {path: %q}}]
`, out))
	const token = "file-token-123"
	tokenFile := writeFile(t, filepath.Join(dir, "token"), token+"\n")
	addr := freeAddr(t)
	r := startSluice(t, nil, "run", "--data-dir", filepath.Join(dir, "data"), "--admin-addr", addr, "--admin-token-file", tokenFile, manifest)
	exited, stderr := r.done, r.stderr
	base := "http://" + addr

	until(t, "/readyz 200", exited, stderr, func() bool { code, _ := call(t, "GET", base+"/readyz", "", ""); return code == 200 })
	// The token guard: probes and metrics open, the API closed without the right token.
	for _, path := range []string{"/healthz", "/metrics"} {
		if code, _ := call(t, "GET", base+path, "", ""); code != 200 {
			t.Errorf("%s without a token = %d, want 200", path, code)
		}
	}
	for _, tok := range []string{"", "wrong"} {
		if code, body := call(t, "GET", base+"/api/v1/pipelines", tok, ""); code != 401 || !strings.Contains(body, `"error"`) {
			t.Errorf("/api/v1/pipelines with token %q = %d %q, want 401 with a JSON error", tok, code, body)
		}
	}
	if code, body := call(t, "GET", base+"/api/v1/openapi.json", token, ""); code != 200 || !strings.Contains(body, `"/api/v1/pipelines/{name}/restart"`) {
		t.Errorf("openapi.json = %d %.200q", code, body)
	}
	code, body := call(t, "GET", base+"/api/v1/pipelines", token, "")
	var list struct{ Pipelines []pipelineInfo }
	if code != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list.Pipelines) != 1 || list.Pipelines[0].Name != "gen" {
		t.Fatalf("GET /api/v1/pipelines = %d %s", code, body)
	}
	grows := func(what string) {
		t.Helper()
		n := len(lines(t, out))
		until(t, what, exited, stderr, func() bool { return len(lines(t, out)) > n+200 })
	}
	grows("first records")

	// Pause: the answer says so (the state turns paused once a read under way has returned), what
	// was read is delivered, and nothing more comes.
	if code, body := call(t, "POST", base+"/api/v1/pipelines/gen/pause", token, ""); code != 200 || !strings.Contains(body, `"paused": true`) ||
		!(strings.Contains(body, `"state": "paused"`) || strings.Contains(body, `"reason": "pausing: waiting for the read in progress"`)) {
		t.Fatalf("pause = %d %s", code, body)
	}
	until(t, "everything read delivered", exited, stderr, func() bool {
		p, _ := infoOf(t, base, token, "gen")
		return p.State == "paused" && p.In == p.Out && int(p.Out) == len(lines(t, out))
	})
	n := len(lines(t, out))
	time.Sleep(300 * time.Millisecond)
	if m := len(lines(t, out)); m != n {
		t.Fatalf("%d records delivered while paused", m-n)
	}
	if code, body := call(t, "GET", base+"/readyz", "", ""); code != 200 {
		t.Errorf("/readyz while paused = %d %q; a paused pipeline counts as ready", code, body)
	}
	if code, body := call(t, "POST", base+"/api/v1/pipelines/gen/resume", token, ""); code != 200 || !strings.Contains(body, `"paused": false`) {
		t.Fatalf("resume = %d %s", code, body)
	}
	grows("records after resume")

	// Restart: drained, run again from the checkpoint.
	if code, body := call(t, "POST", base+"/api/v1/pipelines/gen/restart", token, ""); code != 202 {
		t.Fatalf("restart = %d %s", code, body)
	}
	until(t, "the restarted run", exited, stderr, func() bool {
		p, _ := infoOf(t, base, token, "gen")
		return p.Restarts == 1 && p.State == "running"
	})
	grows("records after restart")
	if code, _ := call(t, "POST", base+"/api/v1/pipelines/nope/pause", token, ""); code != 404 {
		t.Errorf("pause of an unknown pipeline = %d, want 404", code)
	}

	// Validate: the diagnostics of `sluice validate`, with line and column.
	bad := "apiVersion: sluice.dev/v1\nkind: Pipeline\nmetadata: {name: bad}\nspec:\n  source: {type: fiel, config: {}}\n  sinks: [{name: out, type: drop}]\n"
	code, body = call(t, "POST", base+"/api/v1/validate?file=bad.yaml", token, bad)
	var res struct {
		Valid       bool
		Diagnostics []struct {
			File      string
			Line, Col int
			Message   string
		}
	}
	if code != 200 || json.Unmarshal([]byte(body), &res) != nil || res.Valid || len(res.Diagnostics) == 0 ||
		res.Diagnostics[0].File != "bad.yaml" || res.Diagnostics[0].Line != 5 || res.Diagnostics[0].Col == 0 || !strings.Contains(res.Diagnostics[0].Message, `"file"`) {
		t.Errorf("validate bad = %d %s", code, body)
	}
	if code, body := call(t, "POST", base+"/api/v1/validate", token, mustRead(t, manifest)); code != 200 || !strings.Contains(body, `"valid": true`) {
		t.Errorf("validate good = %d %s", code, body)
	}

	r.cmd.Process.Signal(syscall.SIGTERM)
	<-exited
	if r.err != nil {
		t.Fatalf("graceful stop: %v\n%s", r.err, stderr)
	}
	t.Logf("%d records, each once", checkSeq(t, out, 600))
}

// TestAdminAPIBrowsesDeadLetters: lines longer than max_line_bytes go to a file dead-letter
// sink, and the admin API pages through them while the pipeline runs.
func TestAdminAPIBrowsesDeadLetters(t *testing.T) {
	dir := t.TempDir()
	in := writeFile(t, filepath.Join(dir, "in.txt"), "short 1\n"+strings.Repeat("x", 100)+"\nshort 2\n"+strings.Repeat("y", 200)+"\nshort 3\n")
	out, dlq := filepath.Join(dir, "out.txt"), filepath.Join(dir, "dead.jsonl")
	manifest := writeFile(t, filepath.Join(dir, "p.yaml"), fmt.Sprintf(`apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: lines}
spec:
  source: {type: file, config: {path: %q, follow: true, max_line_bytes: 64}}
  sinks: [{name: out, type: file, config: {path: %q}}]
  dead_letter: {type: file, config: {path: %q}}
`, in, out, dlq))
	addr := freeAddr(t)
	r := startSluice(t, nil, "run", "--data-dir", filepath.Join(dir, "data"), "--admin-addr", addr, manifest)
	exited, stderr := r.done, r.stderr
	base := "http://" + addr + "/api/v1/pipelines/lines/dead-letters"
	var page struct {
		Total       int `json:"total"`
		Next        int `json:"next_offset"`
		DeadLetters []struct {
			Index    int
			Envelope struct {
				Kind, Reason, Value string
				Offset              int64
			}
		} `json:"dead_letters"`
	}
	until(t, "two dead letters", exited, stderr, func() bool {
		code, body := call(t, "GET", base, "", "")
		if code != 200 {
			return false
		}
		if err := json.Unmarshal([]byte(body), &page); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		return page.Total == 2
	})
	code, body := call(t, "GET", base+"?offset=1&limit=1", "", "")
	if err := json.Unmarshal([]byte(body), &page); code != 200 || err != nil {
		t.Fatalf("page 2 = %d %s", code, body)
	}
	if len(page.DeadLetters) != 1 || page.DeadLetters[0].Index != 1 || page.Next != 2 || page.DeadLetters[0].Envelope.Kind != "malformed" ||
		!strings.Contains(page.DeadLetters[0].Envelope.Value, "yyyy") {
		t.Fatalf("page 2 = %s", body)
	}
	until(t, "the short lines delivered", exited, stderr, func() bool { return len(lines(t, out)) == 3 })
	r.cmd.Process.Signal(syscall.SIGTERM)
	<-exited
	if r.err != nil {
		t.Fatalf("graceful stop: %v\n%s", r.err, stderr)
	}
}
