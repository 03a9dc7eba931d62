package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/connectors/all"
	"github.com/sluicehq/sluice/manifests"
)

// TestPipelineConfigBytesMatchTransformTest checks that a module in a pipeline receives the same
// config bytes as `sluice transform test --config` gives it for the same text: validate_price
// quotes its max_price as written in the config (SPEC.md, MAXTEXT), so the reject reasons of both
// paths must be equal, byte for byte, and carry the number text of the manifest.
func TestPipelineConfigBytesMatchTransformTest(t *testing.T) {
	wasm, err := filepath.Abs("../../transforms/validate_price/go/validate_price.wasm")
	if err != nil {
		t.Fatal(err)
	}
	record := `{"commodity":"gold","price":300,"ts":0}`
	for _, number := range []string{"250.50", "1e2", "2.5E+2"} {
		t.Run(number, func(t *testing.T) {
			want := "price: must be at most " + number

			dlq := filepath.Join(t.TempDir(), "dlq.jsonl")
			manifest := writeManifest(t, `apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: config-bytes}
spec:
  source: {type: generate, config: {count: 1, template: '`+record+`'}}
  transforms:
    - name: validate
      wasm: `+wasm+`
      config:
        max_price: `+number+`
  sinks: [{name: out, type: drop}]
  dead_letter: {type: file, config: {path: `+dlq+`}}
`)
			g := &Globals{Catalog: all.Catalog()}
			pipelines, diags := manifests.Load([]string{manifest}, manifests.LoadOptions{Catalog: g.Catalog})
			if len(diags) > 0 {
				t.Fatal(diags)
			}
			tr := pipelines[0].Transforms[0]
			flag := `{"max_price":` + number + `}`
			if string(tr.Config) != flag {
				t.Errorf("config = %s, want %s", tr.Config, flag)
			}
			if out, err := runCLI(t, "--admin-addr", "", "run", manifest); err != nil {
				t.Fatalf("run: %v\n%s", err, out)
			}
			var letter struct{ Reason string }
			if err := json.Unmarshal([]byte(strings.TrimSpace(mustReadFile(t, dlq))), &letter); err != nil {
				t.Fatal(err)
			}
			if letter.Reason != want {
				t.Errorf("pipeline: dead letter reason %q, want %q", letter.Reason, want)
			}

			input := filepath.Join(t.TempDir(), "in.jsonl")
			if err := os.WriteFile(input, []byte(record+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			rejects := filepath.Join(t.TempDir(), "rejects.jsonl")
			if _, errOut, err := runTransformCLI(t, "transform", "test", wasm, "--input", input, "--rejects", rejects, "--config", flag); err != nil {
				t.Fatalf("transform test: %v\n%s", err, errOut)
			}
			b, err := os.ReadFile(rejects)
			if err != nil {
				t.Fatal(err)
			}
			var r rejectLine
			if err := json.Unmarshal([]byte(strings.TrimSpace(string(b))), &r); err != nil {
				t.Fatalf("rejects file %q: %v", b, err)
			}
			if r.Reason != want {
				t.Errorf("transform test: reason %q, want %q", r.Reason, want)
			}
		})
	}
}

func mustReadFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
