package manifests_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/manifests"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/sdk/go/abi"
)

// TestAggregateStages checks the runtime configuration each form of an aggregate stage decodes
// to, and that Config hands it to the runtime.
func TestAggregateStages(t *testing.T) {
	pipelines, diags := manifests.Load([]string{"testdata/good/aggregate.yaml"}, testOptions())
	if len(diags) > 0 {
		t.Fatal(diags)
	}
	byName := map[string]*manifests.Pipeline{}
	for _, p := range pipelines {
		byName[p.Name] = p
	}
	stage := func(pipelineName string, i int) manifests.Transform {
		t.Helper()
		p := byName[pipelineName]
		if p == nil || len(p.Transforms) <= i {
			t.Fatalf("pipeline %q has no transform %d", pipelineName, i)
		}
		return p.Transforms[i]
	}
	abs := func(rel string) string { return filepath.Join("testdata/good", rel) }
	defaultState, defaultMemory := abi.DefaultMaxState, int64(pipeline.DefaultAggregateMemory)
	tests := []struct {
		pipeline string
		index    int
		module   string
		config   string
		limits   manifests.Limits
		want     pipeline.Aggregate
	}{
		{"commodity-stats", 1, abs("transforms/stats/stats.wasm"), `{"field":"price"}`,
			manifests.Limits{MemoryBytes: 32 << 20, Timeout: 2 * time.Second, Mode: pipeline.ModeStrict, Instances: 1},
			pipeline.Aggregate{Key: "$.commodity", Time: "$.ts", Tumbling: time.Minute, AllowedLateness: 10 * time.Second,
				Late: "late", StateBytes: 16 << 10, MemoryBytes: 64 << 20}},
		{"hopping", 0, "/opt/sluice/stats.wasm", "{}",
			manifests.Limits{MemoryBytes: pipeline.DefaultTransformMemory, Timeout: pipeline.DefaultTransformTimeout, Mode: pipeline.DefaultTransformMode},
			pipeline.Aggregate{Key: "$", Time: "$['event time']", Hopping: 5 * time.Minute, Every: time.Minute, Early: 10 * time.Second, Late: pipeline.LateDrop,
				StateBytes: defaultState, MemoryBytes: defaultMemory}},
		{"sessions", 0, abs("modules/sessions.wasm"), "{}",
			manifests.Limits{MemoryBytes: pipeline.DefaultTransformMemory, Timeout: pipeline.DefaultTransformTimeout, Mode: pipeline.DefaultTransformMode},
			pipeline.Aggregate{Key: "$.user.id", Session: 30 * time.Second, Late: pipeline.LateDeadLetter, StateBytes: defaultState, MemoryBytes: defaultMemory}},
		{"per-key", 0, abs("modules/dedupe.wasm"), "{}",
			manifests.Limits{MemoryBytes: pipeline.DefaultTransformMemory, Timeout: pipeline.DefaultTransformTimeout, Mode: pipeline.DefaultTransformMode},
			pipeline.Aggregate{Time: "$.items[0].ts", TTL: time.Hour, Late: pipeline.LateDeadLetter, StateBytes: defaultState, MemoryBytes: defaultMemory}},
	}
	for _, tc := range tests {
		t.Run(tc.pipeline, func(t *testing.T) {
			s := stage(tc.pipeline, tc.index)
			if s.Aggregate == nil {
				t.Fatal("not an aggregate stage")
			}
			if *s.Aggregate != tc.want {
				t.Errorf("aggregate = %+v\nwant        %+v", *s.Aggregate, tc.want)
			}
			if s.Module != tc.module || string(s.Config) != tc.config || s.Limits != tc.limits {
				t.Errorf("module %q config %s limits %+v, want %q %s %+v", s.Module, s.Config, s.Limits, tc.module, tc.config, tc.limits)
			}
			cfg := byName[tc.pipeline].Config()
			if got := cfg.Transforms[tc.index].Aggregate; got == nil || *got != tc.want {
				t.Errorf("Config() gives aggregate %+v", got)
			}
		})
	}
	if s := stage("commodity-stats", 0); s.Aggregate != nil {
		t.Errorf("plain transform decoded as an aggregate stage: %+v", *s.Aggregate)
	}
	if s := stage("commodity-stats", 1); s.SHA256 != "3f1c0a0b0c0d0e0f101112131415161718191a1b1c1d1e1f2021222324252627" || s.OnReject != manifests.RejectDrop {
		t.Errorf("sha256 %q on_reject %q", s.SHA256, s.OnReject)
	}
	// The module's settings are found under their own names, for the module checks.
	s := stage("commodity-stats", 1)
	for field, want := range map[string]string{
		"wasm": "13:9", "sha256": "14:9", "config.field": "20:18", "limits.memory": "21:18", "limits.state": "21:74",
		"aggregate": "12:7", "aggregate.window.tumbling": "17:18", "aggregate.late": "19:9",
	} {
		if got := s.Fields[field]; fmt.Sprintf("%d:%d", got.Line, got.Col) != want {
			t.Errorf("Fields[%q] = %v, want line:col %s", field, got, want)
		}
	}
	if got := s.WasmPos; got.Line != 13 || got.Col != 15 {
		t.Errorf("WasmPos = %v, want the aggregate's wasm value at 13:15", got)
	}
}

// TestSchemaAndLoaderAgreeOnAggregates checks that the JSON Schema and the loader both refuse
// the malformed aggregate stages an editor can see (and both accept the well-formed ones).
// Mistakes only the loader can see (a hopping length that is not a multiple of every, zero
// durations, a late port no sink reads, delivery exactly_once without time) are in
// testdata/bad/aggregate_*.yaml.
func TestSchemaAndLoaderAgreeOnAggregates(t *testing.T) {
	sch := compileSchema(t)
	base := `apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: p}
spec:
  source: {type: testsource, config: {path: /tmp/a}}
  transforms:
    - name: stats
      aggregate:
        wasm: stats.wasm
        key: $.commodity
        window: {tumbling: 1m}
  sinks:
    - {name: out, type: testdrop}
    - {name: late, type: testdrop, from: late}
`
	tests := []struct {
		name, from, to string
		ok             bool
	}{
		{"tumbling", "", "", true},
		{"hopping", "{tumbling: 1m}", "{hopping: 5m, every: 1m}", true},
		{"session", "{tumbling: 1m}", "{session: 30s}", true},
		{"no window", "        window: {tumbling: 1m}\n", "        ttl: 1h\n", true},
		{"null window", "{tumbling: 1m}", "null", true},
		{"whole value", "$.commodity", "$", true},
		{"every setting", "        window: {tumbling: 1m}\n", "        window: {tumbling: 1m}\n        time: $.ts\n        allowed_lateness: 5s\n        early: 1s\n        late: late\n        sha256: " + strings.Repeat("ab", 32) + "\n        config: {field: price}\n        limits: {memory: 16MiB, state: 4KiB, state_memory: 8MiB}\n", true},
		{"late drop", "        window: {tumbling: 1m}\n", "        window: {tumbling: 1m}\n        late: drop\n", true},

		{"wasm and aggregate", "      aggregate:\n", "      wasm: plain.wasm\n      aggregate:\n", false},
		{"neither", "      aggregate:\n        wasm: stats.wasm\n        key: $.commodity\n        window: {tumbling: 1m}\n", "      on_reject: drop\n", false},
		{"no module", "        wasm: stats.wasm\n", "", false},
		{"unknown key", "        key:", "        keys: x\n        key:", false},
		{"two kinds", "{tumbling: 1m}", "{tumbling: 1m, session: 1m}", false},
		{"hopping without every", "{tumbling: 1m}", "{hopping: 5m}", false},
		{"every without hopping", "{tumbling: 1m}", "{tumbling: 1m, every: 1m}", false},
		{"every alone", "{tumbling: 1m}", "{every: 1m}", false},
		{"empty window", "{tumbling: 1m}", "{}", false},
		{"unknown window", "{tumbling: 1m}", "{sliding: 1m}", false},
		{"window not a duration", "{tumbling: 1m}", "{tumbling: soon}", false},
		{"key not a path", "$.commodity", "commodity", false},
		{"time not a path", "        key: $.commodity\n", "        key: $.commodity\n        time: ts\n", false},
		{"late not a name", "        window: {tumbling: 1m}\n", "        window: {tumbling: 1m}\n        late: Late Records\n", false},
		{"sha256", "        key:", "        sha256: abc\n        key:", false},
		{"module setting beside aggregate", "      aggregate:\n", "      config: {field: price}\n      aggregate:\n", false},
		{"sha256 beside aggregate", "      aggregate:\n", "      sha256: " + strings.Repeat("ab", 32) + "\n      aggregate:\n", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(base, tc.from, tc.to, 1)
			if tc.from != "" && src == base {
				t.Fatalf("replacement %q not applied", tc.from)
			}
			path := filepath.Join(t.TempDir(), "m.yaml")
			if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			_, diags := manifests.Load([]string{path}, manifests.LoadOptions{Catalog: testCatalog})
			serr := sch.Validate(yamlDocuments(t, path)[0])
			if loader := len(diags) == 0; loader != tc.ok {
				t.Errorf("loader accepts: %v, want %v (%v)", loader, tc.ok, diags)
			}
			if schema := serr == nil; schema != tc.ok {
				t.Errorf("schema accepts: %v, want %v (%v)", schema, tc.ok, serr)
			}
		})
	}
}

// TestPipelineDocsDescribeAggregates checks that the Pipeline reference lists the keys of an
// aggregate stage with the runtime's defaults and ranges.
func TestPipelineDocsDescribeAggregates(t *testing.T) {
	doc := manifests.RenderPipelineDocs()
	for _, want := range []string{
		"| `spec.transforms[].wasm` | string | one of `wasm`, `aggregate` |",
		"| `spec.transforms[].aggregate` | mapping | one of `wasm`, `aggregate` |",
		"| `spec.transforms[].aggregate.wasm` | string | yes |",
		"| `spec.transforms[].aggregate.key` | string |  |",
		"| `spec.transforms[].aggregate.time` | string |  |",
		"| `spec.transforms[].aggregate.window.tumbling` | duration | one of `tumbling`, `hopping` with `every`, `session` |",
		"| `spec.transforms[].aggregate.window.every` | duration | one of `tumbling`, `hopping` with `every`, `session` |",
		"| `spec.transforms[].aggregate.allowed_lateness` | duration |  | `0s` |",
		"| `spec.transforms[].aggregate.ttl` | duration |  |  |",
		"| `spec.transforms[].aggregate.early` | duration |  |  |",
		fmt.Sprintf("| `spec.transforms[].aggregate.late` | string |  | `%s` | `dead_letter`, `drop` or a port name |", pipeline.LateDeadLetter),
		fmt.Sprintf("| `spec.transforms[].aggregate.limits.memory` | bytesize |  | `%s` |", manifests.FormatByteSize(pipeline.DefaultTransformMemory)),
		fmt.Sprintf("| `spec.transforms[].aggregate.limits.state` | bytesize |  | `%s` | at least 1KiB and at most %s |", manifests.FormatByteSize(abi.DefaultMaxState), manifests.FormatByteSize(abi.MaxStateLimit)),
		fmt.Sprintf("| `spec.transforms[].aggregate.limits.state_memory` | bytesize |  | `%s` | at least 1MiB |", manifests.FormatByteSize(pipeline.DefaultAggregateMemory)),
		"An aggregate stage (`aggregate:` instead of `wasm:`)",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("the reference lacks %q", want)
		}
	}
}
