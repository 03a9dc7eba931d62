package http

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binDir holds the binary sluiceBinary built, if a test asked for it.
var binDir string

// sluiceBinary builds cmd/sluice once for the package's process tests.
var sluiceBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "sluice-http-test-")
	if err != nil {
		return "", err
	}
	binDir = dir
	bin := filepath.Join(dir, "sluice")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/sluicehq/sluice/cmd/sluice")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir) // built by a test that ran
	}
	os.Exit(code)
}

func binary(t *testing.T) string {
	t.Helper()
	bin, err := sluiceBinary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// TestKill9MidRunNeitherLosesNorRepeatsAPageIntegration polls the 10,000-record API of 100 pages
// with `sluice run` (http → file), answering 429 with Retry-After and intermittent 500s, and kills
// the process with SIGKILL at random moments, restarting it on the same data directory until a run
// completes. Every record must reach the file in API order; the only repeats allowed are the
// records delivered after the last checkpoint of a killed run (the in-flight tail), and each
// restart must request the page of its checkpoint again, not an earlier one.
func TestKill9MidRunNeitherLosesNorRepeatsAPageIntegration(t *testing.T) {
	bin := binary(t)
	fx := prices(t)
	api := newFakeAPI(t, 100)
	api.delay = 8 * time.Millisecond
	var faults sync.Map // request number → status
	api.fault = func(n int) (int, string) {
		switch {
		case n%23 == 0:
			faults.Store(n, 429)
			return http.StatusTooManyRequests, "1"
		case n%11 == 0 || n%11 == 1 && n > 1:
			faults.Store(n, 500)
			return http.StatusInternalServerError, ""
		}
		return 0, ""
	}
	srv := api.start(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "prices.jsonl")
	manifest := filepath.Join(dir, "prices.yaml")
	if err := os.WriteFile(manifest, []byte(fmt.Sprintf(`apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: prices}
spec:
  source:
    type: http
    config:
      url: %s/v1/prices
      records: "$.data[*]"
      pagination: {next: "$.next"}
      retry: {initial_backoff: 20ms, max_backoff: 200ms}
  sinks:
    - {name: out, type: file, config: {path: %q}}
  batch: {max_records: 30, linger: 1ms}
  buffer: {max_records: 300}
`, srv.URL, out)), 0o644); err != nil {
		t.Fatal(err)
	}
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	t.Logf("seed %d", seed)
	kills := 0
	var restarts []int // index in the served-pages log where each run after a kill starts
	for attempt := 0; ; attempt++ {
		if attempt > 40 {
			t.Fatalf("no run completed after %d attempts", attempt)
		}
		if attempt > 0 {
			restarts = append(restarts, len(api.pagesServed()))
		}
		var stderr bytes.Buffer
		cmd := exec.Command(bin, "run", "--data-dir", filepath.Join(dir, "data"), "--admin-addr", "", "--log-level", "warn", manifest)
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		var timer <-chan time.Time
		if attempt < 5 {
			timer = time.After(time.Duration(150+rng.Intn(400)) * time.Millisecond)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("run failed: %v\n%s", err, stderr.String())
			}
		case <-timer:
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-done
			kills++
			continue
		}
		break
	}
	got := readLines(t, out)
	seen := make(map[string]bool, len(fx.lines))
	next, dups := 0, 0
	for i, l := range got {
		switch {
		case next < len(fx.lines) && l == fx.lines[next]:
			seen[l] = true
			next++
		case seen[l]:
			dups++
		default:
			t.Fatalf("output line %d %q is out of order or not from the API (expected %q)", i, l, fx.lines[min(next, len(fx.lines)-1)])
		}
	}
	if next != len(fx.lines) {
		t.Fatalf("lost data: only the first %d of %d records reached the sink (%d kills)", next, len(fx.lines), kills)
	}
	// What a kill repeats is what reached the sink after the last saved checkpoint: at most the
	// in-flight budget (300 records) plus what the committer had not saved yet, which on a loaded
	// machine can be a few batches more. 1,000 per kill is over three budgets; restarting from the
	// first page would repeat thousands.
	const repeatBound = 1000
	if dups > kills*repeatBound {
		t.Fatalf("%d records repeated after %d kills: more than %d per kill", dups, kills, repeatBound)
	}
	n429, n500 := 0, 0
	faults.Range(func(_, v any) bool {
		if v == 429 {
			n429++
		} else {
			n500++
		}
		return true
	})
	if n429 == 0 || n500 == 0 {
		t.Fatalf("the run saw %d 429s and %d 500s; the test means to show both survived", n429, n500)
	}
	// Each restart asks first for the page of its checkpoint: at most the page after the last one
	// the killed run was served, at least the oldest page that was still in flight or delivered
	// but not yet checkpointed (the same bound as the repeats).
	served := api.pagesServed()
	for _, at := range restarts {
		if at == 0 || at >= len(served) {
			continue
		}
		var prev, first int
		fmt.Sscanf(strings.TrimPrefix(served[at-1], "|"), "%d", &prev)
		fmt.Sscanf(strings.TrimPrefix(served[at], "|"), "%d", &first)
		if first > prev+100 || first < prev-repeatBound {
			t.Fatalf("a run killed after page %d restarted at page %d: want the checkpointed page, within the in-flight pages", prev/100+1, first/100+1)
		}
	}
	t.Logf("%d kills, %d records repeated, %d pages served for 100, %d 429s and %d 500s answered", kills, dups, len(served), n429, n500)
}

// TestValidateShowsTheFieldLine runs `sluice validate` on manifests with an invalid JSONPath,
// cron expression and URL: each problem is reported at its field's line and column.
func TestValidateShowsTheFieldLine(t *testing.T) {
	bin := binary(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.yaml")
	doc := func(name, config string) string {
		return fmt.Sprintf(`apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: %s}
spec:
  source:
    type: http
    config:
%s
  sinks: [{name: out, type: drop}]
`, name, config)
	}
	manifest := doc("badpath", `      url: https://api.example.com/v1/prices
      records: "$.data[*"`) + "---\n" + doc("badcron", `      url: https://api.example.com/v1/prices
      schedule: "0 2 * * * *"`) + "---\n" + doc("badurl", `      url: "example.com/v1/prices"`)
	if err := os.WriteFile(path, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "validate", "--json", path)
	outb, err := cmd.Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("validate: %v\n%s", err, outb)
	}
	var diags []struct {
		Line, Col int
		Message   string
	}
	if err := json.Unmarshal(outb, &diags); err != nil {
		t.Fatalf("%v: %s", err, outb)
	}
	want := []struct {
		line, col int
		msg       string
	}{{9, 7, "config.records: invalid JSONPath"}, {20, 7, "config.schedule: invalid cron expression"}, {30, 7, "config.url: \"example.com/v1/prices\" is not an absolute"}}
	if len(diags) != len(want) {
		t.Fatalf("diagnostics %+v", diags)
	}
	for i, w := range want {
		d := diags[i]
		if d.Line != w.line || d.Col != w.col || !strings.Contains(d.Message, w.msg) {
			t.Errorf("diagnostic %d: %d:%d %s; want %d:%d ...%s...", i, d.Line, d.Col, d.Message, w.line, w.col, w.msg)
		}
	}
}
