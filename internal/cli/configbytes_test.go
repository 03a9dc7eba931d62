package cli

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/connectors/all"
	"github.com/sluicehq/sluice/manifests"
	"github.com/sluicehq/sluice/sdk/go/connector"
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

			manifest := writeManifest(t, `apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: config-bytes}
spec:
  source: {type: generate, config: {count: 1}}
  transforms:
    - name: validate
      wasm: `+wasm+`
      config:
        max_price: `+number+`
  sinks: [{name: out, type: drop}]
`)
			g := &Globals{DataDir: t.TempDir(), Catalog: all.Catalog()}
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			stages := newStageFactory(g, log)
			defer stages.Close(context.Background())
			pipelines, diags := manifests.Load([]string{manifest}, manifests.LoadOptions{Catalog: g.Catalog, CheckModule: stages.Check})
			if len(diags) > 0 {
				t.Fatal(diags)
			}
			tr := pipelines[0].Transforms[0]
			flag := `{"max_price":` + number + `}`
			if string(tr.ConfigJSON) != flag {
				t.Errorf("ConfigJSON = %s, want %s", tr.ConfigJSON, flag)
			}
			st, err := stages.New(context.Background(), "config-bytes", pipelines[0].Config().Transforms[0], log)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close(context.Background())
			res, err := st.Process(context.Background(), []connector.Record{{Value: []byte(record)}})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Rejected) != 1 || res.Rejected[0].Reason != want {
				t.Errorf("pipeline: rejected %+v, want the reason %q", res.Rejected, want)
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
