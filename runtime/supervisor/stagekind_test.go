package supervisor

import (
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/pipeline"
)

func TestStageKindProblems(t *testing.T) {
	plain := pipeline.Transform{Name: "v", Module: "/m/plain.wasm"}
	agg := pipeline.Transform{Name: "s", Module: "/m/stats.wasm", Aggregate: &pipeline.Aggregate{Tumbling: time.Minute}}
	session := pipeline.Transform{Name: "s", Module: "/m/stats.wasm", Aggregate: &pipeline.Aggregate{Session: time.Minute}}
	tests := []struct {
		name                  string
		t                     pipeline.Transform
		isAggregate, canMerge bool
		setting, msg, hint    string
	}{
		{"plain module, plain stage", plain, false, false, "", "", ""},
		{"aggregate module, aggregate stage", agg, true, false, "", "", ""},
		{"merging module, session windows", session, true, true, "", "", ""},
		{"plain module, aggregate stage", agg, false, false, "wasm",
			"module /m/stats.wasm is not an aggregate module (ABI 1.1, kinds: aggregate); use it as a transform with wasm:", "kinds list aggregate"},
		{"aggregate module, plain stage", plain, true, true, "wasm",
			"module /m/plain.wasm is an aggregate module; use it under aggregate:", "aggregate: {wasm: PATH"},
		{"session windows without merge", session, true, false, "aggregate.window.session",
			"session windows need a module that merges states, and module /m/stats.wasm does not export tf_agg_merge", "tumbling or hopping"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := stageKindProblems("p", tc.t, tc.isAggregate, tc.canMerge)
			if tc.setting == "" {
				if len(got) > 0 {
					t.Fatalf("problems %v", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("got %d problems (%v), want 1", len(got), got)
			}
			p := got[0]
			if p.Pipeline != "p" || p.Kind != "transform" || p.Component != tc.t.Name || p.Setting != tc.setting {
				t.Errorf("problem %+v, want transform %q setting %q", p, tc.t.Name, tc.setting)
			}
			if p.Err.Error() != tc.msg || !strings.Contains(p.Hint, tc.hint) {
				t.Errorf("got %q (hint %q)\nwant %q (hint containing %q)", p.Err, p.Hint, tc.msg, tc.hint)
			}
		})
	}
}
