package main_test

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testenv"
)

// A SIGTERM at any moment of `sluice run`, even while it is still discovering plugins and loading
// the manifests, is a graceful stop: exit 0. The plugins directory holds a few pinned plugins so
// that discovery takes a while; each try sends SIGTERM a little later after signal handling is
// installed.
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
	// reached main, which takes from tens to hundreds of milliseconds depending on the machine's
	// load; a signal before that takes the default action. So each try waits for the debug line
	// saying the handling is installed, then signals after a delay that lands in plugin discovery,
	// manifest loading or the first records.
	const installed = "signal handling installed"
	for _, delay := range []time.Duration{0, 1, 5, 20, 50, 90, 170, 370} {
		delay *= time.Millisecond
		stderr := &testenv.Buffer{}
		cmd := exec.Command(bin, "--plugins-dir", plugins, "--log-level", "debug", "run", "--data-dir", filepath.Join(dir, "data"), "--admin-addr", "", manifest)
		cmd.Stderr = stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(2 * time.Minute); !strings.Contains(stderr.String(), installed); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				_ = cmd.Process.Kill()
				t.Fatalf("sluice run never logged %q; stderr:\n%s", installed, stderr.String())
			}
		}
		time.Sleep(delay)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		err := cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Errorf("SIGTERM %v after signal handling was installed: %v, want exit 0; stderr:\n%s", delay, err, stderr.String())
		} else if err != nil {
			t.Fatal(err)
		}
	}
}
