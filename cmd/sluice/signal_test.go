package main_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// A SIGTERM at any moment of `sluice run`, even while it is still discovering plugins and loading
// the manifests, is a graceful stop: exit 0. The plugins directory holds a few pinned plugins so
// that discovery takes a while; each try sends SIGTERM a little later after the start.
func TestRunEarlySIGTERMExitsZero(t *testing.T) {
	bin := buildSluice(t)
	dir := t.TempDir()
	plugins := filepath.Join(dir, "plugins")
	plugin := filepath.Join(plugins, "p0")
	build := exec.Command("go", "build", "-mod=mod", "-o", plugin, ".")
	build.Dir = filepath.Join("..", "..", "examples", "plugin-csv")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("build example plugin: %v", err)
	}
	b, err := os.ReadFile(plugin)
	if err != nil {
		t.Fatal(err)
	}
	sum := fmt.Sprintf("%x", sha256.Sum256(b))
	for i := 0; i < 4; i++ {
		name := fmt.Sprintf("p%d", i)
		if i > 0 {
			if err := os.WriteFile(filepath.Join(plugins, name), b, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(plugins, name+".sha256"), []byte(sum+"  "+name+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	manifest := filepath.Join(dir, "gen.yaml")
	if err := os.WriteFile(manifest, []byte(fmt.Sprintf(`apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: gen}
spec:
  source: {type: generate, config: {rate: 2000, template: "{{seq}}"}}
  sinks: [{name: out, type: file, config: {path: %q}}]
`, filepath.Join(dir, "out.txt"))), 0o644); err != nil {
		t.Fatal(err)
	}
	// Signal handling cannot exist before the Go runtime has initialised every package and
	// reached main, which takes tens of milliseconds on an idle machine and several times that on
	// a loaded one. So the delays count from a start-up time measured here, as the slowest of
	// three `sluice version` runs (the same initialisation, then an exit), doubled for margin; plugin discovery and manifest loading follow, and the signal lands in them.
	var startup time.Duration
	for range 3 {
		t0 := time.Now()
		if out, err := exec.Command(bin, "version").CombinedOutput(); err != nil {
			t.Fatalf("sluice version: %v\n%s", err, out)
		}
		startup = max(startup, time.Since(t0))
	}
	startup *= 2
	t.Logf("start-up allowance %v", startup)
	for _, delay := range []time.Duration{0, 20, 50, 90, 170, 370} {
		delay = startup + delay*time.Millisecond
		var stderr bytes.Buffer
		cmd := exec.Command(bin, "--plugins-dir", plugins, "run", "--data-dir", filepath.Join(dir, "data"), "--admin-addr", "", manifest)
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		err := cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Errorf("SIGTERM %v after the start (start-up allowance %v): %v, want exit 0; stderr:\n%s", delay, startup, err, stderr.String())
		} else if err != nil {
			t.Fatal(err)
		}
	}
}
