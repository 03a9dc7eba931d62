package main_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestRunServesAdminAndStopsGracefully runs an unbounded pipeline, checks the admin endpoints,
// then sends SIGTERM: the process drains, checkpoints and exits 0, and a second run continues
// exactly after the last delivered record.
func TestRunServesAdminAndStopsGracefully(t *testing.T) {
	bin := buildSluice(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out.txt")
	manifest := filepath.Join(dir, "gen.yaml")
	os.WriteFile(manifest, []byte(fmt.Sprintf(`apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: gen}
spec:
  source: {type: generate, config: {rate: 2000, template: "{{seq}}"}}
  sinks: [{name: out, type: file, config: {path: %q}}]
`, out)), 0o644)
	addr := freeAddr(t)
	data := filepath.Join(dir, "data")
	start := func() (*exec.Cmd, *bytes.Buffer) {
		var stderr bytes.Buffer
		cmd := exec.Command(bin, "run", "--data-dir", data, "--admin-addr", addr, manifest)
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, &stderr
	}
	cmd, stderr := start()
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, _ := get(t, "http://"+addr+"/readyz")
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("never ready; stderr:\n%s", stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, body := get(t, "http://"+addr+"/healthz"); code != 200 || !strings.Contains(body, "ok") {
		t.Fatalf("/healthz = %d %q", code, body)
	}
	// Wait until some records are through, then read the metrics.
	for {
		if b, _ := os.ReadFile(out); bytes.Count(b, []byte("\n")) > 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no records delivered")
		}
		time.Sleep(20 * time.Millisecond)
	}
	code, metrics := get(t, "http://"+addr+"/metrics")
	for _, want := range []string{`sluice_records_in_total{component="source",pipeline="gen"}`, `sluice_records_out_total{component="out",pipeline="gen"}`,
		`sluice_batch_duration_seconds_bucket{component="out",pipeline="gen"`, `sluice_inflight_records{pipeline="gen"}`, `sluice_checkpoint_timestamp_seconds{pipeline="gen"}`,
		`sluice_oldest_inflight_seconds{pipeline="gen"}`, `sluice_pipeline_ready{pipeline="gen"} 1`} {
		if code != 200 || !strings.Contains(metrics, want) {
			t.Fatalf("/metrics (%d) lacks %s", code, want)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("graceful stop exited with %v; stderr:\n%s", err, stderr)
	}
	first := strings.Fields(mustRead(t, out))
	// Second run: continues after the last delivered record, with no gap and no repeat.
	cmd, stderr = start()
	// Signal once the process serves its admin endpoint: it has reached main and installed its
	// signal handling (on a loaded machine that can take much more than a fixed sleep).
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("second run never served /healthz; stderr:\n%s", stderr)
		}
	}
	// Stop it once it has delivered something: serving /healthz comes before the pipeline reads.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if b, _ := os.ReadFile(out); bytes.Count(b, []byte("\n")) > len(first) {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("second run delivered nothing within a minute; stderr:\n%s", stderr)
		}
	}
	cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("second run: %v\n%s", err, stderr)
	}
	all := strings.Fields(mustRead(t, out))
	if len(all) <= len(first) {
		t.Fatalf("second run delivered nothing (%d then %d)", len(first), len(all))
	}
	for i, v := range all {
		if v != fmt.Sprint(i+1) {
			t.Fatalf("line %d = %q: a gap or a repeat across a graceful restart", i, v)
		}
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRunRefusesBadManifestWithPositions(t *testing.T) {
	bin := buildSluice(t)
	dir := t.TempDir()
	manifest := filepath.Join(dir, "bad.yaml")
	os.WriteFile(manifest, []byte("apiVersion: sluice.dev/v1\nkind: Pipeline\nmetadata: {name: bad}\nspec:\n  source: {type: fiel, config: {}}\n  sinks: [{name: out, type: drop}]\n"), 0o644)
	cmd := exec.Command(bin, "run", "--data-dir", filepath.Join(dir, "data"), "--admin-addr", "", manifest)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit %v, want 1; output:\n%s", err, out)
	}
	if !strings.Contains(string(out), manifest+":5:") || !strings.Contains(string(out), `"file"`) {
		t.Fatalf("output lacks the position or the suggestion:\n%s", out)
	}
}
