package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A damaged checkpoint store stops run with a hint naming --reset; run --reset sets the file
// aside and runs from the beginning.
func TestRunWithACorruptCheckpointStore(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	os.MkdirAll(data, 0o755)
	os.WriteFile(filepath.Join(data, "checkpoints.db"), []byte("truncated"), 0o600)
	out := filepath.Join(dir, "out.txt")
	manifest := filepath.Join(dir, "p.yaml")
	os.WriteFile(manifest, []byte(`apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: p}
spec:
  source: {type: generate, config: {count: 3, template: "{{seq}}"}}
  sinks:
    - {name: out, type: file, config: {path: `+out+`}}
`), 0o644)
	msg, err := runCLIStderr(t, "run", "--admin-addr", "", "--data-dir", data, manifest)
	if err == nil || !strings.Contains(err.Error()+msg, "--reset") || !strings.Contains(err.Error()+msg, "checkpoints.db") {
		t.Fatalf("run on a damaged store: %v\n%s", err, msg)
	}
	if msg, err := runCLIStderr(t, "run", "--reset", "--admin-addr", "", "--data-dir", data, manifest); err != nil {
		t.Fatalf("run --reset on a damaged store: %v\n%s", err, msg)
	}
	if b, _ := os.ReadFile(out); string(b) != "1\n2\n3\n" {
		t.Fatalf("output %q", b)
	}
}
