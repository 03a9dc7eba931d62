package cli

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestValidateAggregateStages checks that validate places, at the manifest line, a module that
// does not fit its stage (a plain module under aggregate:, an aggregate module under wasm:) and
// the module checks of an aggregate stage's settings, and that it accepts an aggregate stage whose
// late port a sink reads.
func TestValidateAggregateStages(t *testing.T) {
	plain, err := filepath.Abs("../../transforms/validate_price/go/validate_price.wasm")
	if err != nil {
		t.Fatal(err)
	}
	stats, err := filepath.Abs("../../transforms/stats/stats.wasm")
	if err != nil {
		t.Fatal(err)
	}
	head := `apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: agg}
spec:
  source: {type: generate, config: {count: 1}}
  sinks:
    - {name: out, type: drop}
    - {name: late, type: drop, from: late}
  transforms:
`
	tests := []struct {
		name, body string
		want       []string // empty: the manifest is valid
	}{
		{"aggregate stage", "    - name: stats\n      aggregate:\n        wasm: " + stats + "\n        key: $.commodity\n        time: $.ts\n        window: {session: 1m}\n        late: late\n        config: {field: price}\n", nil},
		{"plain module under aggregate", "    - name: stats\n      aggregate:\n        wasm: " + plain + "\n        late: late\n",
			[]string{`pipeline.yaml:12:9: transform "stats": aggregate.wasm: module ` + plain + ` is not an aggregate module (ABI 1.1, kinds: aggregate); use it as a transform with wasm:`,
				"hint: an aggregate: stage runs a module whose kinds list aggregate"}},
		{"aggregate module under wasm", "    - name: stats\n      wasm: " + stats + "\n",
			[]string{`pipeline.yaml:11:7: transform "stats": wasm: module ` + stats + ` is an aggregate module; use it under aggregate:`,
				"hint: aggregate: {wasm: PATH"}},
		{"aggregate config schema", "    - name: stats\n      aggregate:\n        wasm: " + stats + "\n        late: late\n        config: {field: price, colour: red}\n",
			[]string{`pipeline.yaml:14:32: transform "stats": aggregate.config.colour: not allowed`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runCLIStderr(t, "validate", writeManifest(t, head+tc.body))
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("refused: %v\n%s", err, out)
				}
				return
			}
			if exitCode(err) != 1 {
				t.Fatalf("exit code %d (err %v), want 1\n%s", exitCode(err), err, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}
