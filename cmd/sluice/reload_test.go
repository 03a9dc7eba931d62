package main_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// genManifest is a pipeline named name whose generate source writes prefix+seq lines to out.
func genManifest(name, prefix, out string) string {
	return fmt.Sprintf(`apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: %s}
spec:
  source: {type: generate, config: {rate: 1000, template: "%s{{seq}}"}}
  sinks: [{name: out, type: file, config: {path: %q}}]
`, name, prefix, out)
}

// lineCount counts the complete lines of path (0 when it does not exist).
func lineCount(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

// reloadAPIState is what GET /api/v1/reload answers, in the fields the test reads.
type reloadAPIState struct {
	Reloads map[string]int `json:"reloads"`
	Last    *struct {
		Result    string   `json:"result"`
		Restarted []string `json:"restarted"`
		Added     []string `json:"added"`
		Removed   []string `json:"removed"`
	} `json:"last"`
	Errors []struct {
		File    string `json:"file"`
		Line    int    `json:"line"`
		Col     int    `json:"col"`
		Message string `json:"message"`
	} `json:"errors"`
	Pipelines []struct {
		Name string `json:"name"`
		File string `json:"file"`
	} `json:"pipelines"`
}

// TestRunReloadsChangedManifestsOnly runs five pipelines under load from a watched directory,
// then edits one manifest, adds one, removes one, breaks one and adds one that reuses a running
// pipeline's name. The edited pipeline restarts with its new configuration and loses nothing;
// the added one starts; the removed one stops and leaves the API; the broken and the duplicate
// changes are not applied (the broken pipeline runs on as before) and their problems show with
// file:line:col in the API, the metrics and the log. The two untouched pipelines are never seen
// in any state but running, are never restarted, and deliver every record exactly once.
func TestRunReloadsChangedManifestsOnly(t *testing.T) {
	dir := t.TempDir()
	mdir := filepath.Join(dir, "pipelines")
	if err := os.MkdirAll(mdir, 0o755); err != nil {
		t.Fatal(err)
	}
	out := func(name string) string { return filepath.Join(dir, name+".out") }
	manifest := func(name string) string { return filepath.Join(mdir, name+".yaml") }
	for _, name := range []string{"keep1", "keep2", "edited", "removed", "broken"} {
		writeFile(t, manifest(name), genManifest(name, "", out(name)))
	}
	addr := freeAddr(t)
	base := "http://" + addr
	r := startSluice(t, nil, "run", "--data-dir", filepath.Join(dir, "data"), "--admin-addr", addr, "--watch-interval", "100ms", mdir)
	until(t, "every pipeline delivering", r.done, r.stderr, func() bool {
		for _, name := range []string{"keep1", "keep2", "edited", "removed", "broken"} {
			if lineCount(t, out(name)) < 200 {
				return false
			}
		}
		return true
	})

	// Watch the untouched pipelines through the API the whole time: any state but running
	// (paused, starting, stopped) or a restart is a failure.
	watchDone := make(chan struct{})
	var watchMu sync.Mutex
	var seenBad []string
	var watchWG sync.WaitGroup
	watchWG.Add(1)
	go func() {
		defer watchWG.Done()
		for {
			select {
			case <-watchDone:
				return
			default:
			}
			time.Sleep(5 * time.Millisecond)
			for _, name := range []string{"keep1", "keep2"} {
				code, body := call(t, "GET", base+"/api/v1/pipelines/"+name, "", "")
				var p pipelineInfo
				if code != 200 || json.Unmarshal([]byte(body), &p) != nil || p.State != "running" || p.Restarts != 0 || p.Paused {
					watchMu.Lock()
					seenBad = append(seenBad, fmt.Sprintf("%s: %d %s", name, code, body))
					watchMu.Unlock()
				}
			}
		}
	}()
	reloadState := func() reloadAPIState {
		code, body := call(t, "GET", base+"/api/v1/reload", "", "")
		var st reloadAPIState
		if code != 200 || json.Unmarshal([]byte(body), &st) != nil {
			t.Fatalf("GET /api/v1/reload = %d %s", code, body)
		}
		return st
	}

	// Edit: a new template; at-least-once across the restart.
	editedBefore := lineCount(t, out("edited"))
	writeFile(t, manifest("edited"), genManifest("edited", "v2-", out("edited")))
	until(t, "edited restarted with its new configuration", r.done, r.stderr, func() bool {
		p, ok := infoOf(t, base, "", "edited")
		return ok && p.Restarts == 1 && p.State == "running" && strings.Contains(mustRead(t, out("edited")), "\nv2-")
	})
	if n := lineCount(t, out("edited")); n <= editedBefore {
		t.Fatalf("edited: %d lines after the edit, %d before", n, editedBefore)
	}

	// Add.
	writeFile(t, manifest("added"), genManifest("added", "", out("added")))
	until(t, "added delivering", r.done, r.stderr, func() bool { return lineCount(t, out("added")) >= 200 })

	// Remove: it stops, leaves the API, and its output stops growing.
	if err := os.Remove(manifest("removed")); err != nil {
		t.Fatal(err)
	}
	until(t, "removed gone from the API", r.done, r.stderr, func() bool {
		code, _ := call(t, "GET", base+"/api/v1/pipelines/removed", "", "")
		return code == 404
	})
	removedAt := lineCount(t, out("removed"))

	// Break: a typo in the source type. The pipeline runs on; the API says where and why.
	brokenBefore := lineCount(t, out("broken"))
	writeFile(t, manifest("broken"), strings.Replace(genManifest("broken", "", out("broken")), "type: generate", "type: generat", 1))
	until(t, "the broken manifest reported", r.done, r.stderr, func() bool {
		for _, e := range reloadState().Errors {
			if e.File == manifest("broken") && e.Line == 5 && e.Col > 0 && strings.Contains(e.Message, `"generat"`) {
				return true
			}
		}
		return false
	})

	// A second manifest defining a running pipeline's name.
	writeFile(t, manifest("dup"), genManifest("keep1", "dup-", out("dup")))
	until(t, "the duplicate name reported", r.done, r.stderr, func() bool {
		for _, e := range reloadState().Errors {
			if e.File == manifest("dup") && strings.Contains(e.Message, `pipeline "keep1" is also defined at `+manifest("keep1")+":") {
				return true
			}
		}
		return false
	})

	// Everything goes on: the broken one as before, the untouched ones, the edited and the added.
	grown := map[string]int{}
	for _, name := range []string{"keep1", "keep2", "edited", "added", "broken"} {
		grown[name] = lineCount(t, out(name)) + 500
	}
	until(t, "every running pipeline delivering after the reloads", r.done, r.stderr, func() bool {
		for name, n := range grown {
			if lineCount(t, out(name)) < n {
				return false
			}
		}
		return true
	})
	if n := lineCount(t, out("broken")); n <= brokenBefore {
		t.Fatal("broken stopped delivering")
	}
	if p, _ := infoOf(t, base, "", "broken"); p.Restarts != 0 || p.State != "running" {
		t.Errorf("broken after its bad change: %+v, want running, never restarted", p)
	}
	if got := lineCount(t, out("removed")); got != removedAt {
		t.Errorf("removed: %d lines written after it left the API", got-removedAt)
	}
	if _, err := os.Stat(out("dup")); err == nil {
		t.Error("the duplicate pipeline ran")
	}
	st := reloadState()
	if st.Reloads["error"] < 2 || st.Reloads["ok"] < 3 {
		t.Errorf("reloads = %v, want at least 3 ok and 2 error", st.Reloads)
	}
	_, metrics := get(t, base+"/metrics")
	for _, want := range []string{`sluice_manifest_errors{file="` + manifest("broken") + `"} 1`, `sluice_reload_total{result="error"} `} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(metrics, `pipeline="removed"`) {
		t.Error("/metrics still reports the removed pipeline")
	}
	close(watchDone)
	watchWG.Wait()
	if len(seenBad) > 0 {
		t.Errorf("the untouched pipelines were seen not running or restarted:\n%s", strings.Join(seenBad[:min(5, len(seenBad))], "\n"))
	}

	// Fixing the broken manifest applies it, and clears the error.
	writeFile(t, manifest("broken"), genManifest("broken", "fixed-", out("broken")))
	if err := os.Remove(manifest("dup")); err != nil {
		t.Fatal(err)
	}
	until(t, "the fixed manifest applied", r.done, r.stderr, func() bool {
		p, ok := infoOf(t, base, "", "broken")
		return ok && p.Restarts == 1 && len(reloadState().Errors) == 0
	})
	r.stop(t)

	logs := r.stderr.String()
	if !strings.Contains(logs, manifest("broken")+":5:") || !strings.Contains(logs, "manifest change not applied") {
		t.Errorf("the log does not place the problem:\n%s", logs)
	}
	checkSeq(t, out("keep1"), 1200)
	checkSeq(t, out("keep2"), 1200)
	checkSeq(t, out("removed"), removedAt)
	checkSeq(t, out("added"), 700)
	checkAtLeastOnce(t, out("edited"), "v2-")
	checkAtLeastOnce(t, out("broken"), "fixed-")
}

// checkAtLeastOnce fails unless the lines of path, with prefix (of the lines written after a
// restart) taken off, count up from 1 with no gap; repeats are allowed where a restart
// happened, and the prefixed lines must come last.
func checkAtLeastOnce(t *testing.T, path, prefix string) {
	t.Helper()
	got := lines(t, path)
	var last int64
	sawPrefix := false
	for i, v := range got {
		s, had := strings.CutPrefix(v, prefix)
		if sawPrefix && !had {
			t.Fatalf("%s line %d = %q: the old configuration wrote after the new one", path, i+1, v)
		}
		if had && !sawPrefix {
			sawPrefix = true
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("%s line %d = %q", path, i+1, v)
		}
		if n > last+1 {
			t.Fatalf("%s line %d = %q after %d: records lost", path, i+1, v, last)
		}
		last = n
	}
	if !sawPrefix {
		t.Fatalf("%s: no line of the new configuration (%s)", path, prefix)
	}
}

// TestRunReloadsOnSIGHUP: with a watch interval too long to matter, SIGHUP applies an edit; with
// --watch=false, GET /api/v1/reload says reloading is off.
func TestRunReloadsOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	mdir := filepath.Join(dir, "pipelines")
	if err := os.MkdirAll(mdir, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "gen.out")
	manifest := writeFile(t, filepath.Join(mdir, "gen.yaml"), genManifest("gen", "", out))
	addr := freeAddr(t)
	base := "http://" + addr
	r := startSluice(t, nil, "run", "--data-dir", filepath.Join(dir, "data"), "--admin-addr", addr, "--watch-interval", "1h", mdir)
	until(t, "gen delivering", r.done, r.stderr, func() bool { return lineCount(t, out) >= 100 })
	writeFile(t, manifest, genManifest("gen", "hup-", out))
	if err := r.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	until(t, "gen restarted by SIGHUP", r.done, r.stderr, func() bool {
		p, ok := infoOf(t, base, "", "gen")
		return ok && p.Restarts == 1 && strings.Contains(mustRead(t, out), "\nhup-")
	})
	r.stop(t)
	checkAtLeastOnce(t, out, "hup-")

	addr = freeAddr(t)
	r = startSluice(t, nil, "run", "--data-dir", filepath.Join(dir, "data"), "--admin-addr", addr, "--watch=false", mdir)
	until(t, "the second run serving its API", r.done, r.stderr, func() bool {
		code, body := call(t, "GET", "http://"+addr+"/api/v1/reload", "", "")
		return code == 404 && strings.Contains(body, "--watch=false")
	})
	r.stop(t)
}
