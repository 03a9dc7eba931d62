package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/connectors/all"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// testSink refuses mode b; its error quotes the secret password, which must be redacted.
func testSink() connector.Component {
	return connector.SinkComponent(connector.Spec{
		Name:    "clitest-sink",
		Summary: "A sink that refuses mode b without a key.",
		Fields: []connector.Field{
			{Name: "mode", Type: connector.TypeString, Default: "a", Enum: []string{"a", "b"}},
			{Name: "password", Type: connector.TypeString, Secret: true},
		},
	}, func(cfg connector.Config, env connector.Env) (connector.Sink, error) {
		if cfg.String("mode") == "b" {
			return nil, &connector.ConfigError{Field: "mode", Msg: "mode b is refused with password " + cfg.String("password")}
		}
		return nil, nil
	})
}

// runCLI runs the command line with args and returns its standard output and error.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cat := all.Catalog()
	if err := cat.Add(testSink()); err != nil {
		t.Fatal(err)
	}
	root := newRoot(cat)
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append([]string{"--data-dir", t.TempDir()}, args...))
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func writeManifest(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pipeline.yaml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const goodManifest = `apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: copy}
spec:
  source: {type: file, config: {path: in.txt}}
  sinks:
    - name: out
      type: drop
`

func exitCode(err error) int {
	var ec exitCoder
	if err == nil {
		return 0
	}
	if asExitCoder(err, &ec) {
		return ec.ExitCode()
	}
	return -1
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name     string
		manifest string
		code     int
		want     []string
		never    string
	}{
		{"good", goodManifest, 0, []string{"ok: 1 pipeline (copy)"}, ""},
		{"unknown key", strings.Replace(goodManifest, "sinks:", "sinc: []\n  sinks:", 1), 1,
			[]string{`pipeline.yaml:6:3: unknown key "sinc" in spec; did you mean "sinks"?`}, ""},
		{"unknown sink", strings.Replace(goodManifest, "type: drop", "type: dorp", 1), 1,
			[]string{`pipeline.yaml:8:13: sink "out": unknown type "dorp"; did you mean "drop"? known sinks: `, "clitest-sink"}, ""},
		{"constructor check", strings.Replace(goodManifest, "type: drop", "type: clitest-sink\n      config: {mode: b, password: hunter2}", 1), 1,
			[]string{`pipeline.yaml:9:16: sink "out": config.mode: mode b is refused with password [redacted]`}, "hunter2"},
		{"missing module", strings.Replace(goodManifest, "  sinks:", "  transforms: [{name: v, wasm: missing.wasm}]\n  sinks:", 1), 1,
			[]string{`pipeline.yaml:6:32: transform "v": `, "missing.wasm"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runCLI(t, "validate", writeManifest(t, tc.manifest))
			if got := exitCode(err); got != tc.code {
				t.Fatalf("exit code %d, want %d (err %v)\n%s", got, tc.code, err, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if tc.never != "" && strings.Contains(out, tc.never) {
				t.Errorf("output shows %q:\n%s", tc.never, out)
			}
		})
	}
}

func TestValidateJSON(t *testing.T) {
	path := writeManifest(t, strings.Replace(goodManifest, "name: copy", "name: Copy", 1))
	out, err := runCLI(t, "validate", "--json", path)
	if exitCode(err) != 1 {
		t.Fatalf("exit code %d, want 1", exitCode(err))
	}
	var diags []struct {
		File    string
		Line    int
		Col     int
		Message string
	}
	if err := json.Unmarshal([]byte(out), &diags); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if len(diags) != 1 || diags[0].File != path || diags[0].Line != 3 || diags[0].Col != 18 {
		t.Errorf("got %+v", diags)
	}
}

func TestSchemaCommand(t *testing.T) {
	out, err := runCLI(t, "schema")
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if !strings.Contains(out, `"sink.clitest-sink"`) || !strings.Contains(out, `"source.file"`) {
		t.Error("schema lacks registered components")
	}
}

func TestComponentsAndDocs(t *testing.T) {
	out, err := runCLI(t, "components")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"KIND", "sink    clitest-sink", "A sink that refuses mode b without a key."} {
		if !strings.Contains(out, want) {
			t.Errorf("components output lacks %q:\n%s", want, out)
		}
	}
	out, err = runCLI(t, "docs", "clitest-sink")
	if err != nil || !strings.Contains(out, "# `clitest-sink` sink") || !strings.Contains(out, "${env:CLITEST_SINK_PASSWORD}") {
		t.Errorf("docs clitest-sink: %v\n%s", err, out)
	}
	out, err = runCLI(t, "docs", "file")
	if err != nil || !strings.Contains(out, "# `file` source") || !strings.Contains(out, "# `file` sink") {
		t.Errorf("docs file should print the source and the sink: %v\n%s", err, out)
	}
	out, err = runCLI(t, "docs", "sink/file")
	if err != nil || strings.Contains(out, "# `file` source") || !strings.Contains(out, "# `file` sink") {
		t.Errorf("docs sink/file should print only the sink: %v\n%s", err, out)
	}
	out, err = runCLI(t, "docs", "pipeline")
	if err != nil || !strings.Contains(out, "# Pipeline manifest") || !strings.Contains(out, "| `spec.batch.max_records` | int |  | `1024` |") {
		t.Errorf("docs pipeline should print the manifest reference with the runtime's defaults: %v\n%s", err, out)
	}
	_, err = runCLI(t, "docs", "clitest-snik")
	if err == nil || !strings.Contains(err.Error(), `did you mean "clitest-sink"?`) {
		t.Errorf("docs of an unknown name: %v", err)
	}
}

func TestValidateChecksSinkPortsAgainstModules(t *testing.T) {
	wasm, err := filepath.Abs("../../transforms/explode_array/explode_array.wasm")
	if err != nil {
		t.Fatal(err)
	}
	manifest := writeManifest(t, `apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: ports}
spec:
  source: {type: generate, config: {count: 1}}
  transforms:
    - {name: split, wasm: `+wasm+`, config: {field: items}}
  sinks:
    - {name: out, type: drop}
    - {name: empties, type: drop, from: empty}
    - {name: alerts, type: drop, from: alerts}
`)
	out, err := runCLI(t, "validate", manifest)
	if err == nil {
		t.Fatalf("validate accepted a sink reading an undeclared port:\n%s", out)
	}
	want := manifest + `:11:7: sink "alerts" reads port "alerts", which no transform emits`
	if !strings.Contains(out, want) || !strings.Contains(out, "main, empty") || strings.Contains(out, `"empties"`) {
		t.Fatalf("output:\n%s\nwant a line %q naming the declared ports, and nothing about the valid sink", out, want)
	}
}
