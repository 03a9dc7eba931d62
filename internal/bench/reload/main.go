// Command reload measures what a hot reload costs a sluice process running many pipelines: the
// time from a manifest's change on disk to its pipeline running again under the new configuration
// (as the admin API reports it), the reload's own duration as the process measures it (from the
// change seen to the pipeline running again), and that no other pipeline restarted. Run it with
// `go run ./internal/bench/reload`.
//
// Each pipeline generates records (rate 100/s) through the validate_price WASM module into a
// file sink, with a file dead-letter sink. Each round edits the manifest of one pipeline (its
// rate, 100 ↔ 101), a different one each round.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"
	"time"

	"github.com/sluicehq/sluice/internal/bench/sluicebin"
)

var (
	pipelines = flag.Int("pipelines", 100, "pipelines in the process")
	rounds    = flag.Int("rounds", 10, "manifest edits, each of another pipeline")
	interval  = flag.Duration("watch-interval", time.Second, "sluice run --watch-interval")
	logLevel  = flag.String("log-level", "warn", "sluice run --log-level (its log goes to stderr)")
	module    = flag.String("module", "transforms/validate_price/rust/validate_price.wasm", "the WASM module each pipeline runs")
)

type pipelineInfo struct {
	Name     string `json:"name"`
	State    string `json:"state"`
	Restarts int    `json:"restarts"`
}

type reloadState struct {
	Last *struct {
		DurationSeconds float64  `json:"duration_seconds"`
		ValidateSeconds float64  `json:"validate_seconds"`
		ApplySeconds    float64  `json:"apply_seconds"`
		Restarted       []string `json:"restarted"`
	} `json:"last"`
}

func main() {
	flag.Parse()
	setup, err := sluicebin.Build("sluice-bench-reload-", *module)
	if err != nil {
		fatal(err)
	}
	defer setup.Close()
	mod, tmp, bin := setup.Module, setup.Dir, setup.Bin
	for _, d := range []string{"out", "manifests", "data"} {
		if err := os.MkdirAll(filepath.Join(tmp, d), 0o755); err != nil {
			fatal(err)
		}
	}
	manifest := func(i, rate int) string {
		return fmt.Sprintf(`apiVersion: sluice.dev/v1
kind: Pipeline
metadata:
  name: p%03d
spec:
  source:
    type: generate
    config: {rate: %d, template: '{"symbol": "ACME", "price": {{seq}}}'}
  transforms:
    - name: validate
      wasm: %q
  sinks:
    - name: out
      type: file
      config: {path: %q}
  dead_letter:
    type: file
    config: {path: %q}
`, i, rate, mod, filepath.Join(tmp, "out", fmt.Sprintf("p%03d.jsonl", i)), filepath.Join(tmp, "out", fmt.Sprintf("p%03d.dlq.jsonl", i)))
	}
	path := func(i int) string { return filepath.Join(tmp, "manifests", fmt.Sprintf("p%03d.yaml", i)) }
	for i := range *pipelines {
		if err := os.WriteFile(path(i), []byte(manifest(i, 100)), 0o644); err != nil {
			fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "run", "--data-dir", filepath.Join(tmp, "data"), "--admin-addr", addr, "--log-level", *logLevel,
		"--watch-interval", interval.String(), filepath.Join(tmp, "manifests"))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		fatal(err)
	}
	child = cmd
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	base := "http://" + addr
	if err := waitFor(2*time.Minute, func() bool { code, _ := get(base + "/readyz"); return code == 200 }); err != nil {
		fatal(fmt.Errorf("never ready: %w", err))
	}

	fmt.Printf("reload benchmark: %d cores, %d pipelines (generate 100/s → %s → file sink), --watch-interval %s, %d edits\n\n",
		runtime.NumCPU(), *pipelines, filepath.Base(mod), *interval, *rounds)
	fmt.Printf("%-6s %-8s %22s %22s %12s %12s\n", "round", "pipeline", "write→running (wall)", "reload (in process)", "validating", "draining+start")
	var walls, inProc []time.Duration
	edited := map[string]int{}
	for r := range *rounds {
		i := (r * 37) % *pipelines
		name := fmt.Sprintf("p%03d", i)
		before := info(base, name).Restarts
		t0 := time.Now()
		if err := os.WriteFile(path(i), []byte(manifest(i, 100+(before+1)%2)), 0o644); err != nil {
			fatal(err)
		}
		if err := waitFor(time.Minute, func() bool {
			p := info(base, name)
			return p.Restarts == before+1 && p.State == "running"
		}); err != nil {
			fatal(fmt.Errorf("%s never restarted: %w", name, err))
		}
		wall := time.Since(t0)
		edited[name]++
		var st reloadState
		if _, body := get(base + "/api/v1/reload"); json.Unmarshal([]byte(body), &st) != nil || st.Last == nil {
			fatal(fmt.Errorf("GET /api/v1/reload: %s", body))
		}
		if !slices.Equal(st.Last.Restarted, []string{name}) {
			fatal(fmt.Errorf("round %d restarted %v, want only %s", r, st.Last.Restarted, name))
		}
		d := time.Duration(st.Last.DurationSeconds * float64(time.Second))
		walls, inProc = append(walls, wall), append(inProc, d)
		fmt.Printf("%-6d %-8s %22s %22s %12s %12s\n", r, name, wall.Round(time.Millisecond), d.Round(time.Millisecond),
			secs(st.Last.ValidateSeconds), secs(st.Last.ApplySeconds))
	}
	var list struct {
		Pipelines []pipelineInfo `json:"pipelines"`
	}
	if _, body := get(base + "/api/v1/pipelines"); json.Unmarshal([]byte(body), &list) != nil || len(list.Pipelines) != *pipelines {
		fatal(fmt.Errorf("GET /api/v1/pipelines: %d pipelines", len(list.Pipelines)))
	}
	others := 0
	for _, p := range list.Pipelines {
		if p.Restarts != edited[p.Name] || p.State != "running" {
			fatal(fmt.Errorf("%s: %s with %d restarts, want running with %d", p.Name, p.State, p.Restarts, edited[p.Name]))
		}
		if edited[p.Name] == 0 {
			others++
		}
	}
	fmt.Printf("\nwrite→running: median %s, max %s; reload in process (change seen → running, includes the 200 ms quiet wait): median %s, max %s\n",
		median(walls), slices.Max(walls).Round(time.Millisecond), median(inProc), slices.Max(inProc).Round(time.Millisecond))
	fmt.Printf("the %d pipelines not edited: all running, 0 restarts\n", others)
	_ = cmd.Process.Signal(syscall.SIGTERM)
}

func secs(f float64) time.Duration {
	return time.Duration(f * float64(time.Second)).Round(time.Millisecond)
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2].Round(time.Millisecond)
}

func info(base, name string) pipelineInfo {
	var p pipelineInfo
	_, body := get(base + "/api/v1/pipelines/" + name)
	_ = json.Unmarshal([]byte(body), &p)
	return p
}

func get(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func waitFor(limit time.Duration, cond func() bool) error {
	for deadline := time.Now().Add(limit); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("still waiting after %s", limit)
		}
	}
	return nil
}

// child is the sluice process, killed when the benchmark fails.
var child *exec.Cmd

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "reload benchmark:", err)
	if child != nil {
		_ = child.Process.Kill()
	}
	os.Exit(1)
}
