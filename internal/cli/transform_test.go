package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/connectors/all"
	"github.com/sluicehq/sluice/connectors/file"
	"github.com/sluicehq/sluice/manifests"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

const hostileModule = "../../internal/wasmhost/testdata/hostile.wasm"

// runTransformCLI runs the command line with args and returns stdout and stderr apart.
func runTransformCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	root := NewRoot()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(append([]string{"--data-dir", t.TempDir()}, args...))
	err := root.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

func TestTransformTest(t *testing.T) {
	dir := t.TempDir()
	input := filepath.Join(dir, "in.jsonl")
	if err := os.WriteFile(input, []byte("a\nreject this\n\nemit\ndrop\ntrap\n{\"x\":1}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rejects := filepath.Join(dir, "rejects.jsonl")
	out, errOut, err := runTransformCLI(t, "transform", "test", hostileModule, "--input", input, "--rejects", rejects, "--config", `{"fail_init":false}`)
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	if want := "a\n\nemit#0\nemit#1\n{\"x\":1}\n"; out != want {
		t.Fatalf("stdout %q, want %q", out, want)
	}
	if !strings.Contains(errOut, "7 in, 3 passed, 2 emitted, 1 dropped, 2 rejected") {
		t.Fatalf("summary missing from stderr:\n%s", errOut)
	}
	b, err := os.ReadFile(rejects)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 {
		t.Fatalf("rejects file:\n%s", b)
	}
	var got []rejectLine
	for _, l := range lines {
		var r rejectLine
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("reject line %q: %v", l, err)
		}
		got = append(got, r)
	}
	if got[0] != (rejectLine{Line: 2, Value: "reject this", Code: 3, Reason: "value: out of range"}) ||
		got[1] != (rejectLine{Line: 6, Value: "trap", Code: 0xFF01, Reason: "wasm trap: out of bounds memory access"}) {
		t.Fatalf("rejects %+v", got)
	}
}

func TestTransformTestFailures(t *testing.T) {
	dir := t.TempDir()
	input := filepath.Join(dir, "in.jsonl")
	if err := os.WriteFile(input, []byte("a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "cfg.json")
	if err := os.WriteFile(cfgFile, []byte(`{"fail_init": true}`), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		msg  string
	}{
		{"init refused", []string{hostileModule, "--input", input, "--config", "@" + cfgFile}, `init: fail_init is set`},
		{"config not an object", []string{hostileModule, "--input", input, "--config", "[1]"}, `--config:1:1: config: expected a mapping, got a list`},
		{"missing input", []string{hostileModule, "--input", filepath.Join(dir, "nope.jsonl")}, `--input: open`},
		{"not a transform", []string{"../../internal/wasmhost/testdata/noexports.wasm", "--input", input}, `missing exports`},
		{"wrong ABI", []string{"../../internal/wasmhost/testdata/wrongabi.wasm", "--input", input}, `unsupported ABI version 2.0`},
		{"batch 0", []string{hostileModule, "--input", input, "--batch", "0"}, `--batch must be at least 1, got 0`},
		{"negative timeout", []string{hostileModule, "--input", input, "--timeout", "-1s"}, `--timeout must be more than 0, got -1s`},
		{"zero timeout", []string{hostileModule, "--input", input, "--timeout", "0s"}, `--timeout must be more than 0, got 0s`},
		{"negative memory", []string{hostileModule, "--input", input, "--memory-mib", "-1"}, `--memory-mib must be at least 1 and at most 4096 (4GiB), got -1`},
		{"zero memory", []string{hostileModule, "--input", input, "--memory-mib", "0"}, `--memory-mib must be at least 1 and at most 4096 (4GiB), got 0`},
		{"memory over 4GiB", []string{hostileModule, "--input", input, "--memory-mib", "4097"}, `--memory-mib must be at least 1 and at most 4096 (4GiB), got 4097`},
		{"memory below the module's", []string{"../../transforms/validate_price/go/validate_price.wasm", "--input", input, "--memory-mib", "1"}, `--memory-mib: 1048576 bytes is less than the `},
		{"max line not a size", []string{hostileModule, "--input", input, "--max-line-bytes", "lots"}, `--max-line-bytes: `},
		{"max line 0", []string{hostileModule, "--input", input, "--max-line-bytes", "0"}, `--max-line-bytes must be at least 1`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runTransformCLI(t, append([]string{"transform", "test"}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want %q", err, tc.msg)
			}
		})
	}
}

func TestTransformInspect(t *testing.T) {
	out, _, err := runTransformCLI(t, "transform", "inspect", hostileModule)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"name:          hostile\n", "version:       0.1.0\n", "abi:           1.0\n",
		"kinds:         validate, route\n", "ports:         main, alerts\n", `"fail_init"`} {
		if !strings.Contains(out, want) {
			t.Fatalf("inspect output lacks %q:\n%s", want, out)
		}
	}
	out, _, err = runTransformCLI(t, "transform", "inspect", "--json", hostileModule)
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		Name  string   `json:"name"`
		Ports []string `json:"ports"`
	}
	if err := json.Unmarshal([]byte(out), &meta); err != nil || meta.Name != "hostile" || len(meta.Ports) != 2 {
		t.Fatalf("inspect --json: %v %q", err, out)
	}
	if _, _, err := runTransformCLI(t, "transform", "inspect", "../../internal/wasmhost/testdata/wrongabi.wasm"); err == nil {
		t.Fatal("inspect of a wrong-ABI module succeeded")
	}
}

// TestTransformTestConfigBytes checks that --config hands the module the bytes a pipeline hands it
// for the same text under config:, whether the text is JSON with spaces, YAML flow or YAML block:
// no HTML escaping, number text as written, keys in written order.
func TestTransformTestConfigBytes(t *testing.T) {
	wasm, err := filepath.Abs("../../transforms/validate_price/go/validate_price.wasm")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, text, want string }{
		{"json", `{"max_price": 250.50, "note": "<a&b>", "big": 1e6}`, `{"max_price":250.50,"note":"<a&b>","big":1e6}`},
		{"flow", `{max_price: 2.5E+2, note: <x>}`, `{"max_price":2.5E+2,"note":"<x>"}`},
		{"block", "max_price: 1e2\nnote: \"<y>\"\nnested: {a: [1, 2.0]}", `{"max_price":1e2,"note":"<y>","nested":{"a":[1,2.0]}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readConfigFlag(tc.text)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("--config gives %s, want %s", got, tc.want)
			}
			file := filepath.Join(t.TempDir(), "cfg.yaml")
			if err := os.WriteFile(file, []byte(tc.text), 0o644); err != nil {
				t.Fatal(err)
			}
			if fromFile, err := readConfigFlag("@" + file); err != nil || string(fromFile) != string(got) {
				t.Errorf("--config @FILE gives %s (%v), want %s", fromFile, err, got)
			}
			config := " " + tc.text
			if strings.Contains(tc.text, "\n") {
				config = "\n        " + strings.ReplaceAll(tc.text, "\n", "\n        ")
			}
			manifest := writeManifest(t, `apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: config-bytes}
spec:
  source: {type: generate, config: {count: 1}}
  transforms:
    - name: validate
      wasm: `+wasm+`
      config:`+config+`
  sinks: [{name: out, type: drop}]
`)
			pipelines, diags := manifests.Load([]string{manifest}, manifests.LoadOptions{Catalog: all.Catalog()})
			if len(diags) > 0 {
				t.Fatal(diags)
			}
			if p := pipelines[0].Transforms[0].Config; string(p) != string(got) {
				t.Errorf("pipeline gives %s, --config %s", p, got)
			}
		})
	}
}

// TestTransformTestReadsLinesLikeTheFileSource checks that transform test and a pipeline reading the
// same file with the file source see the same records: CRLF ends a line, and empty and blank lines
// are records, not skipped.
func TestTransformTestReadsLinesLikeTheFileSource(t *testing.T) {
	input := filepath.Join(t.TempDir(), "in.jsonl")
	if err := os.WriteFile(input, []byte("{\"a\":1}\r\n\r\n  \n\t{\"b\":2}\r\nplain\n\n {\"c\":3} \nlast\r"), 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := file.NewSource(connector.Config{"path": input}, connector.Env{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close(context.Background())
	if err := src.Open(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for {
		recs, err := src.Read(context.Background())
		for _, r := range recs {
			want.Write(r.Value)
			want.WriteByte('\n')
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if want.String() != "{\"a\":1}\n\n  \n\t{\"b\":2}\nplain\n\n {\"c\":3} \nlast\n" {
		t.Fatalf("file source values %q", want.String())
	}
	// The hostile test module passes every one of these values unchanged.
	out, errOut, err := runTransformCLI(t, "transform", "test", hostileModule, "--input", input)
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	if out != want.String() {
		t.Fatalf("transform test passed %q, the file source reads %q", out, want.String())
	}
	if !strings.Contains(errOut, "8 in, 8 passed") {
		t.Fatalf("summary:\n%s", errOut)
	}
}

// Sixteen trapping records evenly spaced in a batch of 1,024 are isolated by transform test as by
// run (the same rule in the WASM host): before, transform test, with its one instance, stopped with
// "stage is broken" where run, which splits a batch over several instances, isolated them.
func TestTransformTestIsolatesSparsePoison(t *testing.T) {
	dir := t.TempDir()
	input := filepath.Join(dir, "in.jsonl")
	var b strings.Builder
	for i := 0; i < 1024; i++ {
		if i%64 == 32 {
			b.WriteString("trap\n")
		} else {
			b.WriteString("a\n")
		}
	}
	if err := os.WriteFile(input, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, err := runTransformCLI(t, "transform", "test", hostileModule, "--input", input, "--rejects", filepath.Join(dir, "rejects.jsonl"))
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	if !strings.Contains(errOut, "1024 in, 1008 passed, 0 emitted, 0 dropped, 16 rejected") {
		t.Fatalf("summary missing from stderr:\n%s", errOut)
	}
}

// Defect 3: transform test isolates a run of poison records at the start of a batch as a
// pipeline does (the same stage code); before, 12, 30 or 60 leading poison records in 1,024 made
// it report the stage broken.
func TestTransformTestIsolatesLeadingPoisonRun(t *testing.T) {
	for _, run := range []int{12, 30, 60} {
		dir := t.TempDir()
		input := filepath.Join(dir, "in.jsonl")
		var b strings.Builder
		for i := 0; i < 1024; i++ {
			if i < run {
				b.WriteString("trap\n")
			} else {
				b.WriteString("a\n")
			}
		}
		if err := os.WriteFile(input, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		_, errOut, err := runTransformCLI(t, "transform", "test", hostileModule, "--input", input, "--rejects", filepath.Join(dir, "rejects.jsonl"))
		if err != nil {
			t.Fatalf("%d poison: %v\n%s", run, err, errOut)
		}
		if want := fmt.Sprintf("1024 in, %d passed, 0 emitted, 0 dropped, %d rejected", 1024-run, run); !strings.Contains(errOut, want) {
			t.Fatalf("%d poison: summary missing from stderr:\n%s", run, errOut)
		}
	}
}

// transform test reads lines up to the file source's default max_line_bytes, and --max-line-bytes
// changes it: before, it accepted lines of up to 64 MiB that a pipeline sends to the dead letters.
func TestTransformTestMaxLineBytesIsTheFileSources(t *testing.T) {
	var def any
	for _, c := range file.Components() {
		for _, f := range c.Spec.Fields {
			if c.Spec.Kind == connector.KindSource && f.Name == "max_line_bytes" {
				def = f.Default
			}
		}
	}
	if def != int64(defaultMaxLine) {
		t.Fatalf("file source max_line_bytes default %v, transform test's %d", def, defaultMaxLine)
	}
	dir := t.TempDir()
	input := filepath.Join(dir, "in.jsonl")
	long := strings.Repeat("x", defaultMaxLine+1)
	if err := os.WriteFile(input, []byte("a\n"+long+"\r\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := runTransformCLI(t, "transform", "test", hostileModule, "--input", input)
	if err == nil || err.Error() != "--input: line 2 is longer than --max-line-bytes (16777216 bytes)" {
		t.Fatalf("err = %v", err)
	}
	_, errOut, err := runTransformCLI(t, "transform", "test", hostileModule, "--input", input, "--max-line-bytes", "17MiB", "--memory-mib", "128")
	if err != nil || !strings.Contains(errOut, "2 in, 2 passed") {
		t.Fatalf("with --max-line-bytes 17MiB: %v\n%s", err, errOut)
	}
	// A line of exactly the limit, ended by "\r\n", is accepted.
	if err := os.WriteFile(input, []byte(long[1:]+"\r\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errOut, err := runTransformCLI(t, "transform", "test", hostileModule, "--input", input, "--memory-mib", "128"); err != nil {
		t.Fatalf("line of exactly max_line_bytes: %v\n%s", err, errOut)
	}
}

// An aggregate module runs through the host's windows: window rows on stdout (the open ones
// closed at the end of the input), late records and unusable ones with the rejects.
func TestTransformTestAggregate(t *testing.T) {
	dir := t.TempDir()
	input := filepath.Join(dir, "in.jsonl")
	in := `{"commodity":"corn","price":1,"ts":1000}
{"commodity":"corn","price":3,"ts":2000}
{"commodity":"gold","price":10,"ts":3000}
{"commodity":"corn","price":5,"ts":61000}
{"commodity":"corn","price":7,"ts":500}
oops
`
	if err := os.WriteFile(input, []byte(in), 0o644); err != nil {
		t.Fatal(err)
	}
	rejects := filepath.Join(dir, "rejects.jsonl")
	out, errOut, err := runTransformCLI(t, "transform", "test", "../../transforms/stats/stats.wasm", "--input", input, "--rejects", rejects,
		"--key", "$.commodity", "--time", "$.ts", "--window", "tumbling:1m", "--config", "{field: price}")
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	want := `{"key":"corn","window_start":0,"window_end":60000,"count":2,"min":1,"max":3,"mean":2,"stddev":1,"first":1,"last":3}
{"key":"gold","window_start":0,"window_end":60000,"count":1,"min":10,"max":10,"mean":10,"stddev":0,"first":10,"last":10}
{"key":"corn","window_start":60000,"window_end":120000,"count":1,"min":5,"max":5,"mean":5,"stddev":0,"first":5,"last":5}
`
	if out != want {
		t.Fatalf("stdout:\n%s\nwant:\n%s", out, want)
	}
	b, _ := os.ReadFile(rejects)
	if !strings.Contains(string(b), `"line":5`) || !strings.Contains(string(b), `"code":65287`) || !strings.Contains(string(b), `"line":6`) || !strings.Contains(string(b), `"code":65286`) {
		t.Fatalf("rejects:\n%s", b)
	}
	// The aggregate flags are refused for a plain module.
	if _, errOut, err := runTransformCLI(t, "transform", "test", hostileModule, "--input", input, "--window", "tumbling:1m"); err == nil {
		t.Fatalf("--window accepted for a plain module:\n%s", errOut)
	}
}
